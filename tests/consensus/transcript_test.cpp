// Golden transcripts (etcd raft's interaction tests are the model): each
// file in transcripts/ is a script of commands and the output they must
// produce — every message delivered, every state printed — so a change in
// behaviour shows up as a readable diff. ENGRAM_REWRITE_TRANSCRIPTS=1
// rewrites the files with what the machine does now (then read the diff).
//
// A block is a command line, "----", the expected output, and a blank line.
// Commands:
//   cluster voters=N [learners=N] [pre_vote=0] [check_quorum=0]
//           [max_inflight=N] [reads=lease]
//   campaign ID | tick ID [N] | propose ID TEXT | read ID REQUEST
//   stabilize | deliver (one round) | status | log ID | reads ID
//   isolate ID | heal | crash ID | restart ID | compact ID | add ID
//   conf ID [joint|explicit] (add_voter|add_learner|remove) ID ...
//   leave ID | transfer ID TARGET

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster.hpp"

using namespace engram::consensus;
using engram::consensus::test::cluster;

namespace {

std::string format(const entry& e) {
  std::ostringstream os;
  os << e.index << "/" << e.term;
  if (e.type == entry_type::conf_change) {
    auto cc = decode_conf_change(e.data);
    os << " conf";
    if (cc && cc->leaves_joint())
      os << " leave-joint";
    else if (cc)
      for (auto& c : cc->changes)
        os << " "
           << (c.type == change_type::add_voter     ? "v"
               : c.type == change_type::add_learner ? "l"
                                                    : "r")
           << c.node;
  } else if (!e.data.empty()) {
    os << " " << e.data;
  }
  return os.str();
}

std::string format(const message& m) {
  std::ostringstream os;
  os << m.from << "->" << m.to << " " << to_string(m.type) << " term "
     << m.term;
  switch (m.type) {
    case msg_type::vote:
    case msg_type::pre_vote:
      os << " last " << m.index << "/" << m.log_term;
      break;
    case msg_type::append:
      os << " after " << m.index << "/" << m.log_term << " commit " << m.commit;
      if (!m.entries.empty()) {
        os << " [";
        for (size_t i = 0; i < m.entries.size(); ++i)
          os << (i ? ", " : "") << format(m.entries[i]);
        os << "]";
      }
      break;
    case msg_type::append_response:
      os << " index " << m.index;
      if (m.reject)
        os << " rejected hint " << m.reject_hint << "/" << m.log_term;
      break;
    case msg_type::heartbeat:
      os << " commit " << m.commit << " round " << m.index;
      break;
    case msg_type::heartbeat_response: os << " round " << m.index; break;
    case msg_type::install_snapshot:
      os << " snapshot " << m.snap->meta.index << "/" << m.snap->meta.term;
      break;
    case msg_type::read_index_response: os << " index " << m.index; break;
    default:
      if (m.reject)
        os << " rejected";
      break;
  }
  if (!m.context.empty())
    os << " ctx " << m.context;
  return os.str();
}

std::string format_ids(const std::vector<node_id>& ids) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < ids.size(); ++i)
    os << (i ? " " : "") << ids[i];
  os << ")";
  return os.str();
}

struct interpreter {
  std::unique_ptr<cluster> c;
  std::ostringstream out;

  void hook() {
    c->on_deliver = [this](const message& m, bool lost) {
      out << (lost ? "lost " : "") << format(m) << "\n";
    };
  }

  void status() {
    for (auto id : c->ids()) {
      auto& m = c->at(id);
      if (!m.up) {
        out << id << ": down\n";
        continue;
      }
      auto st = m.node->get_status();
      out << id << ": " << to_string(st.soft.state) << " term " << st.hard.term
          << " lead " << st.soft.leader << " commit " << st.hard.commit
          << " applied " << st.applied << " last " << st.last_index
          << " voters " << format_ids(m.conf.voters);
      if (!m.conf.voters_outgoing.empty())
        out << "&" << format_ids(m.conf.voters_outgoing);
      if (!m.conf.learners.empty())
        out << " learners " << format_ids(m.conf.learners);
      out << "\n";
    }
  }

  void run(const std::string& line) {
    std::istringstream in{line};
    std::string cmd;
    in >> cmd;
    std::vector<std::string> args;
    for (std::string a; in >> a;)
      args.push_back(a);
    auto id = [&](size_t i) -> node_id {
      return std::stoull(args.at(i));
    };
    if (cmd == "cluster") {
      size_t voters = 3, learners = 0;
      std::vector<std::pair<std::string, std::string>> opts;
      for (auto& a : args) {
        auto eq = a.find('=');
        opts.emplace_back(a.substr(0, eq), a.substr(eq + 1));
      }
      for (auto& [k, v] : opts) {
        if (k == "voters")
          voters = std::stoul(v);
        else if (k == "learners")
          learners = std::stoul(v);
      }
      c = std::make_unique<cluster>(voters, learners, [opts](config& cfg) {
        for (auto& [k, v] : opts) {
          if (k == "pre_vote")
            cfg.pre_vote = v == "1";
          else if (k == "check_quorum")
            cfg.check_quorum = v == "1";
          else if (k == "max_inflight")
            cfg.max_inflight = std::stoul(v);
          else if (k == "reads" && v == "lease")
            cfg.reads = read_mode::lease;
        }
      });
      hook();
      out << "ok\n";
    } else if (cmd == "campaign") {
      c->at(id(0)).node->campaign();
      c->process(id(0));
      out << "ok\n";
    } else if (cmd == "tick") {
      c->tick(id(0), args.size() > 1 ? std::stoi(args[1]) : 1);
      out << "ok\n";
    } else if (cmd == "propose") {
      out << to_string(c->at(id(0)).node->propose(args.at(1))) << "\n";
      c->process(id(0));
    } else if (cmd == "read") {
      out << to_string(c->at(id(0)).node->read_index(args.at(1))) << "\n";
      c->process(id(0));
    } else if (cmd == "stabilize") {
      c->stabilize();
    } else if (cmd == "deliver") {
      auto batch = std::move(c->in_flight());
      c->in_flight().clear();
      for (auto& m : batch)
        c->deliver(m);
    } else if (cmd == "status") {
      status();
    } else if (cmd == "log") {
      auto& log = c->at(id(0)).node->machine().log();
      std::vector<entry> all;
      (void)log.slice(log.first_index(), log.last_index() + 1, no_limit, all);
      out << "first " << log.first_index() << ":";
      for (auto& e : all)
        out << " [" << format(e) << "]";
      out << "\n";
    } else if (cmd == "reads") {
      for (auto& r : c->at(id(0)).reads)
        out << r.request << " at " << r.index << "\n";
      c->at(id(0)).reads.clear();
    } else if (cmd == "isolate") {
      c->isolate(id(0));
      out << "ok\n";
    } else if (cmd == "heal") {
      c->heal();
      out << "ok\n";
    } else if (cmd == "crash") {
      c->crash(id(0));
      out << "ok\n";
    } else if (cmd == "restart") {
      c->restart(id(0));
      c->process(id(0));
      out << "ok\n";
    } else if (cmd == "compact") {
      c->compact(id(0));
      out << "first index " << c->at(id(0)).disk.first_index() << "\n";
    } else if (cmd == "add") {
      c->add_empty(id(0));
      out << "ok\n";
    } else if (cmd == "conf" || cmd == "leave") {
      conf_change cc;
      size_t i = 1;
      if (cmd == "conf" && i < args.size() && args[i] == "joint") {
        cc.mode = transition::joint_implicit;
        ++i;
      } else if (cmd == "conf" && i < args.size() && args[i] == "explicit") {
        cc.mode = transition::joint_explicit;
        ++i;
      }
      for (; i + 1 < args.size(); i += 2) {
        auto t = args[i] == "add_voter"     ? change_type::add_voter
                 : args[i] == "add_learner" ? change_type::add_learner
                                            : change_type::remove_node;
        cc.changes.push_back({t, std::stoull(args[i + 1])});
      }
      out << to_string(c->at(id(0)).node->propose_conf_change(cc)) << "\n";
      c->process(id(0));
    } else if (cmd == "transfer") {
      c->at(id(0)).node->transfer_leader(id(1));
      c->process(id(0));
      out << "ok\n";
    } else {
      out << "unknown command " << cmd << "\n";
    }
  }
};

struct block {
  /// The comment lines before the command (kept on rewrite).
  std::string comment;
  std::string command;
  std::string expected;
};

std::vector<block> parse(std::istream& in) {
  std::vector<block> blocks;
  std::string line;
  std::string comment;
  while (std::getline(in, line)) {
    if (line.empty())
      continue;
    if (line[0] == '#') {
      comment += line + "\n";
      continue;
    }
    block b;
    b.comment = std::move(comment);
    comment.clear();
    b.command = line;
    std::getline(in, line); // ----
    while (std::getline(in, line) && !line.empty())
      b.expected += line + "\n";
    blocks.push_back(std::move(b));
  }
  return blocks;
}

std::filesystem::path transcripts() {
  return std::filesystem::path{ENGRAM_CONSENSUS_TRANSCRIPTS};
}

} // namespace

BOOST_AUTO_TEST_SUITE(raft_transcripts)

BOOST_AUTO_TEST_CASE(every_transcript_replays_exactly) {
  bool rewrite = std::getenv("ENGRAM_REWRITE_TRANSCRIPTS") != nullptr;
  size_t files = 0;
  std::vector<std::filesystem::path> paths;
  for (auto& f : std::filesystem::directory_iterator{transcripts()})
    if (f.path().extension() == ".txt")
      paths.push_back(f.path());
  std::sort(paths.begin(), paths.end());
  for (auto& path : paths) {
    ++files;
    std::ifstream in{path};
    std::stringstream whole;
    whole << in.rdbuf();
    auto text = whole.str();
    std::istringstream lines{text};
    auto blocks = parse(lines);
    interpreter it;
    std::string rewritten;
    for (auto& b : blocks) {
      it.out.str("");
      it.run(b.command);
      auto got = it.out.str();
      if (!rewrite && got != b.expected)
        BOOST_ERROR(path.filename().string()
                    << ": " << b.command << "\nexpected:\n"
                    << b.expected << "got:\n"
                    << got);
      rewritten += b.comment + b.command + "\n----\n" + got + "\n";
    }
    if (rewrite) {
      std::ofstream o{path};
      o << rewritten;
    }
  }
  BOOST_TEST(files >= 8u);
}

BOOST_AUTO_TEST_SUITE_END()
