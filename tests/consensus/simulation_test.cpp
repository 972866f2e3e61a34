// A seeded simulator for the Raft machine: messages dropped, duplicated,
// reordered and cut by partitions (symmetric and one-way); members crashed
// and restarted, some in the middle of a write (an unsynced tail lost);
// disks that lag (readies processed late); clocks that drift (members
// ticking at different rates); snapshots and compaction; membership changes
// through joint consensus; leader transfers; reads. After every step it
// checks the invariants of Raft's TLA+ specification:
//
// - election safety: at most one leader per term;
// - log matching: an entry (index, term) has one content and one
//   predecessor term everywhere it is persisted;
// - leader completeness: a leader's log holds every committed entry;
// - state machine safety: every member applies the same entry at an index;
// - committed entries are durable: nothing applied is ever applied
//   differently, also after crashes;
// - terms never decrease and votes are never forgotten, also across
//   restarts;
// - reads are linearizable: a read reflects every write acknowledged before
//   it began, nothing written after it ended, and reads ordered in time see
//   states ordered the same way.
//
// At the end of each schedule the faults stop and the group must elect a
// leader and commit a write (liveness). ENGRAM_RAFT_SCHEDULES sets how many
// schedules run (100 000 by default), ENGRAM_RAFT_SEED replays one.

#include <boost/test/unit_test.hpp>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "cluster.hpp"
#include "consensus/linearizability.hpp"

using namespace engram::consensus;
using engram::consensus::test::cluster;

namespace {

struct violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define SIM_REQUIRE(cond, what)                                                \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::ostringstream os_;                                                  \
      os_ << what;                                                             \
      throw violation(os_.str());                                              \
    }                                                                          \
  } while (false)

struct rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) {
    return n == 0 ? 0 : static_cast<size_t>(next() % n);
  }
  bool chance(double p) {
    return static_cast<double>(next() >> 11) * 0x1.0p-53 < p;
  }
};

/// What the schedules exercised (so a degenerate simulator fails too).
struct coverage {
  size_t steps = 0, leaders = 0, applied = 0, acked_writes = 0, reads = 0,
         snapshots = 0, conf_changes = 0, joint = 0, crashes = 0, torn = 0,
         transfers = 0;
};

coverage totals;

/// The invariant checks fed by the cluster's observer hooks.
struct checker : test::observer {
  struct record {
    entry_type type;
    std::string data;
  };
  /// (index, term) → content, and → predecessor term (log matching).
  std::map<std::pair<index_t, term_t>, record> contents;
  std::map<std::pair<index_t, term_t>, term_t> predecessor;
  /// Every applied entry: index → (term, content): state machine safety.
  std::map<index_t, std::pair<term_t, record>> committed;
  /// A bound on the term in which each entry committed: the highest term
  /// any member had when the entry was first applied (the committing
  /// leader's term is at most that).
  std::map<index_t, term_t> committed_by;
  std::map<term_t, node_id> leaders;
  std::map<node_id, index_t> last_applied;
  cluster* group = nullptr;

  void persisted(node_id id, const std::vector<entry>& es) override {
    auto& disk = group->at(id).disk;
    for (auto& e : es) {
      auto key = std::make_pair(e.index, e.term);
      auto [it, fresh] = contents.emplace(key, record{e.type, e.data});
      SIM_REQUIRE(
          fresh || (it->second.type == e.type && it->second.data == e.data),
          "log matching: entry (" << e.index << ", " << e.term
                                  << ") has two contents");
      if (e.index < disk.first_index())
        continue;
      term_t prev = 0;
      if (disk.term(e.index - 1, prev) != storage_error::none)
        continue;
      auto [p, new_link] = predecessor.emplace(key, prev);
      SIM_REQUIRE(new_link || p->second == prev,
                  "log matching: entry (" << e.index << ", " << e.term
                                          << ") follows terms " << p->second
                                          << " and " << prev);
    }
  }

  void applied(node_id id, const entry& e) override {
    auto& last = last_applied[id];
    SIM_REQUIRE(e.index == last + 1,
                "member " << id << " applied " << e.index << " after " << last);
    last = e.index;
    ++totals.applied;
    if (e.type == entry_type::conf_change)
      ++totals.conf_changes;
    auto [it, fresh] = committed.emplace(
        e.index, std::make_pair(e.term, record{e.type, e.data}));
    if (fresh)
      committed_by.emplace(e.index, highest_term());
    SIM_REQUIRE(
        fresh
            || (it->second.first == e.term && it->second.second.data == e.data),
        "state machine safety: index " << e.index << " applied with terms "
                                       << it->second.first << " and "
                                       << e.term);
  }

  term_t highest_term() const {
    term_t t = 0;
    for (auto id : group->ids()) {
      auto& m = group->at(id);
      t = std::max(t, m.disk.hard().term);
      if (m.up)
        t = std::max(t, m.node->machine().term());
    }
    return t;
  }

  void installed(node_id id, const snapshot& s) override {
    ++totals.snapshots;
    auto c = committed.find(s.meta.index);
    SIM_REQUIRE(c == committed.end() || c->second.first == s.meta.term,
                "a snapshot at " << s.meta.index << " has term " << s.meta.term
                                 << ", committed " << c->second.first);
    last_applied[id] = s.meta.index;
  }
};

struct pending_read {
  node_id at;
  std::string request;
  /// The key read (values are "<key>=<n>").
  std::string key;
  size_t invoked;
  /// Highest index of a write acknowledged before the read began.
  index_t must_see;
  std::optional<index_t> read_index;
};

struct completed_read {
  size_t invoked, completed;
  index_t served_at;
};

struct schedule {
  uint64_t seed;
  rng r;
  cluster c;
  checker check;
  /// Per member: term and vote last observed in memory (since its last
  /// start), and on its disk (monotonic across restarts).
  std::map<node_id, std::pair<term_t, node_id>> seen_hard;
  std::map<node_id, std::pair<term_t, node_id>> durable_hard;
  /// Ticks per step for drifting clocks.
  std::map<node_id, int> tick_weight;
  size_t now = 0;
  uint64_t next_value = 0;
  /// Writes not yet acknowledged: value → proposer and invocation time.
  std::map<std::string, std::pair<node_id, size_t>> writes;
  /// When each write was invoked.
  std::map<std::string, size_t> invoked_at;
  std::map<std::string, index_t> write_index;
  index_t max_acked = 0;
  std::vector<std::pair<size_t, index_t>> acked; // (time, index)
  std::vector<pending_read> reads;
  std::vector<completed_read> done_reads;
  /// What the clients saw, for the linearizability checker: puts (value =
  /// the entry) and gets (value = the last entry of the key applied where
  /// the read was served).
  std::vector<register_op> history;
  std::map<std::string, size_t> put_op;
  size_t read_seq = 0;

  /// Every fifth schedule reads under leases. Its members' clocks tick
  /// together (the lease's clock assumption: equal rates); the others'
  /// drift freely.
  static bool lease_reads(uint64_t seed) { return seed % 5 == 0; }

  static std::function<void(config&)> fast(uint64_t seed) {
    return [seed](config& cfg) {
      cfg.election_ticks = 5;
      cfg.heartbeat_ticks = 1;
      cfg.max_inflight = 4;
      cfg.max_bytes_per_message = 64;
      cfg.seed = seed;
      if (lease_reads(seed)) {
        cfg.reads = read_mode::lease;
        cfg.lease_margin_ticks = 1;
      }
    };
  }

  explicit schedule(uint64_t s)
      : seed(s), r{s * 0x9e3779b97f4a7c15ULL + 7}, c{3, 0, fast(s), s} {
    c.add_empty(4);
    c.add_empty(5);
    check.group = &c;
    c.watcher = &check;
    for (auto id : c.ids()) {
      check.last_applied[id] = c.at(id).node->machine().log().applied;
      tick_weight[id] = 1 + static_cast<int>(r.below(3));
    }
  }

  std::vector<node_id> up() {
    std::vector<node_id> out;
    for (auto id : c.ids())
      if (c.at(id).up)
        out.push_back(id);
    return out;
  }

  node_id any_up() {
    auto u = up();
    return u.empty() ? no_node : u[r.below(u.size())];
  }

  /// Checks that (term, vote) moved forward from `seen`, and records it.
  static void moves_forward(node_id id, const char* what,
                            std::pair<term_t, node_id>& seen, term_t term,
                            node_id vote) {
    auto& [t, v] = seen;
    SIM_REQUIRE(term >= t, what << " term of member " << id << " went from "
                                << t << " back to " << term);
    SIM_REQUIRE(term > t || v == no_node || vote == v,
                what << " vote of member " << id << " in term " << t
                     << " went from " << v << " to " << vote);
    if (term > t)
      v = no_node;
    t = term;
    if (vote != no_node)
      v = vote;
  }

  void invariants() {
    for (auto id : c.ids()) {
      auto& m = c.at(id);
      // What is on disk never goes back, crashed or not.
      moves_forward(id, "the durable", durable_hard[id], m.disk.hard().term,
                    m.disk.hard().vote);
      if (!m.up)
        continue;
      auto& raft = m.node->machine();
      moves_forward(id, "the", seen_hard[id], raft.term(), raft.vote());
      if (raft.state() == role::leader) {
        auto [it, fresh] = check.leaders.emplace(raft.term(), id);
        SIM_REQUIRE(fresh || it->second == id,
                    "election safety: " << it->second << " and " << id
                                        << " lead term " << raft.term());
        if (fresh) {
          ++totals.leaders;
          leader_completeness(id);
        }
        if (!c.at(id).conf.voters_outgoing.empty())
          ++totals.joint;
      }
    }
  }

  /// Leader completeness: a leader of term T holds every entry committed in
  /// a term before T.
  void leader_completeness(node_id id) {
    auto& raft = c.at(id).node->machine();
    auto& log = raft.log();
    for (auto& [index, what] : check.committed) {
      if (check.committed_by.at(index) >= raft.term())
        continue;
      SIM_REQUIRE(index <= log.last_index(), "leader completeness: leader "
                                                 << id << " lacks committed "
                                                 << index);
      if (index < log.first_index())
        continue;
      SIM_REQUIRE(log.term_or_zero(index) == what.first,
                  "leader completeness: leader "
                      << id << " has term " << log.term_or_zero(index)
                      << " at committed " << index << " (" << what.first
                      << ")");
    }
  }

  /// Records what the members applied and served since the last step.
  void observe() {
    for (auto id : c.ids()) {
      auto& m = c.at(id);
      if (!m.up)
        continue;
      for (auto& [index, value] : m.applied) {
        auto w = writes.find(value);
        if (w == writes.end())
          continue;
        if (write_index.emplace(value, index).second) {
          // A write begun after a read ended lands after the state it saw.
          auto began = invoked_at.at(value);
          for (auto& d : done_reads)
            SIM_REQUIRE(d.completed >= began || index > d.served_at,
                        "linearizability: write at "
                            << index << " begun after a read of state "
                            << d.served_at << " ended");
        }
        if (w->second.first == id) {
          // Acknowledged to its client: applied where it was proposed.
          acked.emplace_back(now, index);
          history[put_op.at(value)].returned = now;
          ++totals.acked_writes;
          max_acked = std::max(max_acked, index);
          writes.erase(w);
        }
      }
      for (auto& rs : m.reads)
        for (auto& p : reads)
          if (p.at == id && p.request == rs.request && !p.read_index)
            p.read_index = rs.index;
      m.reads.clear();
    }
    for (auto i = reads.begin(); i != reads.end();) {
      auto& m = c.at(i->at);
      if (!m.up) {
        i = reads.erase(i); // the client gave up
        continue;
      }
      auto applied = m.node->machine().log().applied;
      if (!i->read_index || applied < *i->read_index) {
        ++i;
        continue;
      }
      SIM_REQUIRE(applied >= i->must_see,
                  "linearizability: a read begun after write "
                      << i->must_see << " was acknowledged served state "
                      << applied);
      for (auto& d : done_reads)
        if (d.completed < i->invoked)
          SIM_REQUIRE(applied >= d.served_at,
                      "linearizability: a later read saw state "
                          << applied << " before " << d.served_at);
      done_reads.push_back({i->invoked, now, applied});
      std::string seen;
      for (auto& [index, value] : m.applied)
        if (index <= applied
            && value.compare(0, i->key.size() + 1, i->key + "=") == 0)
          seen = value;
      history.push_back({register_op::get, i->key, seen, i->invoked, now});
      ++totals.reads;
      i = reads.erase(i);
    }
  }

  void step() {
    ++now;
    ++totals.steps;
    auto roll = r.below(100);
    auto& wire = c.in_flight();
    if (roll < 28) {
      // Tick one member; drifting clocks tick some faster.
      if (lease_reads(seed)) {
        for (auto id : up())
          c.tick(id);
      } else if (auto id = any_up(); id != no_node) {
        c.tick(id, tick_weight[id]);
      }
    } else if (roll < 56) {
      // Deliver a message, any of them (reordering).
      if (!wire.empty()) {
        auto i = r.below(wire.size());
        auto m = wire[i];
        wire.erase(wire.begin() + static_cast<ptrdiff_t>(i));
        // A slow disk: sometimes the ready waits for a later step.
        c.deliver(m, !r.chance(0.2));
      }
    } else if (roll < 59) {
      if (!wire.empty()) {
        auto i = r.below(wire.size());
        auto m = wire[i];
        wire.erase(wire.begin() + static_cast<ptrdiff_t>(i));
        c.lost(m);
      }
    } else if (roll < 61) {
      if (!wire.empty())
        wire.push_back(wire[r.below(wire.size())]);
    } else if (roll < 63) {
      c.process_all();
    } else if (roll < 73) {
      auto id = any_up();
      if (id != no_node) {
        auto n = next_value++;
        auto key = "k" + std::to_string(n % 3);
        auto value = key + "=" + std::to_string(n);
        put_op[value] = history.size();
        history.push_back({register_op::put, key, value, now, std::nullopt});
        writes.emplace(value, std::make_pair(id, now));
        invoked_at.emplace(value, now);
        (void)c.at(id).node->propose(value);
        c.process(id);
      }
    } else if (roll < 83) {
      auto id = any_up();
      if (id != no_node) {
        auto request = "r" + std::to_string(read_seq++);
        reads.push_back({id, request, "k" + std::to_string(r.below(3)), now,
                         max_acked, std::nullopt});
        (void)c.at(id).node->read_index(request);
        c.process(id);
      }
    } else if (roll < 87) {
      // Cutting off the leader (it may go on believing it leads while the
      // others elect another) most often: the case reads must survive.
      auto choice = r.below(4);
      auto a = 1 + r.below(5);
      auto b = 1 + r.below(5);
      if (choice == 0 && r.chance(0.6) && c.leader() != no_node)
        c.isolate(c.leader());
      else if (choice == 0)
        c.isolate(a);
      else if (choice == 1 && a != b)
        c.cut_one_way(a, b);
      else
        c.heal();
    } else if (roll < 90) {
      auto id = 1 + r.below(5);
      auto& m = c.at(id);
      if (m.up) {
        ++totals.crashes;
        if (r.chance(0.5)) {
          c.crash(id);
        } else {
          ++totals.torn;
          // Crash in the middle of the next write.
          c.torn_member = id;
          c.torn_keep = r.below(3);
        }
      } else {
        restart(id);
      }
    } else if (roll < 92) {
      auto id = any_up();
      if (id != no_node)
        c.compact(id);
    } else if (roll < 95) {
      propose_membership();
    } else if (roll < 97) {
      auto lead = c.leader();
      if (lead != no_node) {
        ++totals.transfers;
        c.at(lead).node->transfer_leader(1 + r.below(5));
      }
      if (lead != no_node)
        c.process(lead);
    } else {
      auto id = any_up();
      if (id != no_node)
        c.process(id);
    }
    invariants();
    observe();
  }

  std::string describe() {
    std::ostringstream os;
    for (auto id : c.ids()) {
      auto& m = c.at(id);
      os << "\n  member " << id;
      if (!m.up) {
        os << " down";
        continue;
      }
      auto st = m.node->get_status();
      os << " " << to_string(st.soft.state) << " term " << st.hard.term
         << " vote " << st.hard.vote << " lead " << st.soft.leader << " last "
         << st.last_index << " commit " << st.hard.commit << " applied "
         << st.applied << " first " << m.node->machine().log().first_index()
         << " voters";
      for (auto v : st.config.voters.incoming)
        os << " " << v;
      if (st.config.voters.joint()) {
        os << " | outgoing";
        for (auto v : st.config.voters.outgoing)
          os << " " << v;
      }
      os << " learners";
      for (auto v : st.config.learners)
        os << " " << v;
      for (auto& [pid, p] : st.members)
        os << "\n    " << pid << ": match " << p.match << " next " << p.next
           << " " << to_string(p.state) << (p.recent_active ? " active" : "");
    }
    return os.str();
  }

  /// A restart resumes from the disk: the term and vote it had synced.
  void restart(node_id id) {
    c.restart(id);
    auto& raft = c.at(id).node->machine();
    seen_hard[id] = durable_hard[id];
    moves_forward(id, "the restarted", seen_hard[id], raft.term(), raft.vote());
    check.last_applied[id] = raft.log().applied;
  }

  void propose_membership() {
    auto lead = c.leader();
    if (lead == no_node)
      return;
    auto& cs = c.at(lead).conf;
    conf_change cc;
    if (!cs.voters_outgoing.empty()) {
      if (!cs.auto_leave)
        (void)c.at(lead).node->propose_conf_change(cc); // leave
      c.process(lead);
      return;
    }
    auto n = 1 + r.below(3);
    for (size_t i = 0; i < n; ++i) {
      auto id = 1 + r.below(5);
      auto kind = r.below(3);
      cc.changes.push_back({kind == 0   ? change_type::add_voter
                            : kind == 1 ? change_type::add_learner
                                        : change_type::remove_node,
                            id});
    }
    auto mode = r.below(3);
    cc.mode = mode == 0   ? transition::automatic
              : mode == 1 ? transition::joint_implicit
                          : transition::joint_explicit;
    (void)c.at(lead).node->propose_conf_change(cc);
    c.process(lead);
  }

  /// Faults stop: every member back up, the network healed, messages
  /// delivered in order. A leader must emerge and commit a write.
  void settle() {
    c.heal();
    c.torn_member = no_node;
    for (auto id : c.ids()) {
      if (!c.at(id).up)
        restart(id);
    }
    for (int round = 0; round < 400; ++round) {
      for (auto id : c.ids())
        c.tick(id);
      c.stabilize(50);
      invariants();
      observe();
      auto lead = c.leader();
      if (lead == no_node)
        continue;
      auto& cs = c.at(lead).conf;
      if (!cs.voters_outgoing.empty() && !cs.auto_leave) {
        (void)c.at(lead).node->propose_conf_change(conf_change{});
        continue;
      }
      if (!cs.voters_outgoing.empty())
        continue;
      // A write through the leader must commit and reach every voter.
      std::string value = "final=" + std::to_string(seed);
      if (c.at(lead).applied.empty()
          || c.at(lead).applied.rbegin()->second != value) {
        (void)c.at(lead).node->propose(value);
        continue;
      }
      bool everywhere = true;
      for (auto v : cs.voters) {
        auto& a = c.at(v).applied;
        everywhere = everywhere && !a.empty() && a.rbegin()->second == value;
      }
      if (everywhere)
        return;
    }
    SIM_REQUIRE(false, "liveness: no leader committed a write to every voter "
                       "within 400 rounds after the faults stopped"
                           << describe());
  }

  void run(size_t steps) {
    for (size_t i = 0; i < steps; ++i)
      step();
    settle();
    // The whole history, searched for an order (Wing & Gong).
    auto lin = check_linearizable(history);
    SIM_REQUIRE(lin.ok, "linearizability: the history of key "
                            << lin.key << " has no linearization ("
                            << history.size() << " operations)");
  }
};

/// The schedule running, for the abort handler: a broken invariant inside
/// the machine aborts the process, and the seed must still be printed.
volatile uint64_t current_seed = 0;
volatile uint64_t current_steps = 0;

extern "C" void print_seed_on_abort(int) {
  char buf[160];
  auto n = std::snprintf(buf, sizeof buf,
                         "\naborted in seed %llu; reproduce: "
                         "ENGRAM_RAFT_SEED=%llu ENGRAM_RAFT_STEPS=%llu "
                         "engram_consensus_tests --run_test=raft_simulation\n",
                         static_cast<unsigned long long>(current_seed),
                         static_cast<unsigned long long>(current_seed),
                         static_cast<unsigned long long>(current_steps));
  if (n > 0)
    (void)!write(2, buf, static_cast<size_t>(n));
}

uint64_t env_or(const char* name, uint64_t fallback) {
  auto* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

} // namespace

BOOST_AUTO_TEST_SUITE(raft_simulation)

BOOST_AUTO_TEST_CASE(raft_invariants_hold_on_every_step_of_100000_schedules) {
  auto schedules = env_or("ENGRAM_RAFT_SCHEDULES", 100000);
  auto first = env_or("ENGRAM_RAFT_SEED", 1);
  if (std::getenv("ENGRAM_RAFT_SEED"))
    schedules = env_or("ENGRAM_RAFT_SCHEDULES", 1);
  auto steps = env_or("ENGRAM_RAFT_STEPS", 300);
  size_t failures = 0;
  current_steps = steps;
  std::signal(SIGABRT, print_seed_on_abort);
  for (uint64_t seed = first; seed < first + schedules; ++seed) {
    current_seed = seed;
    try {
      schedule s{seed};
      s.run(steps);
    } catch (const violation& e) {
      ++failures;
      BOOST_ERROR(
          "seed " << seed << ": " << e.what()
                  << "\n  reproduce: ENGRAM_RAFT_SEED=" << seed
                  << " ENGRAM_RAFT_STEPS=" << steps
                  << " engram_consensus_tests --run_test=raft_simulation");
      if (failures >= 5)
        break;
    }
  }
  BOOST_TEST(failures == 0u);
  auto& t = totals;
  BOOST_TEST_MESSAGE("schedules "
                     << schedules << ", steps " << t.steps << ", leaders "
                     << t.leaders << ", applied " << t.applied
                     << ", acked writes " << t.acked_writes << ", reads "
                     << t.reads << ", snapshots " << t.snapshots
                     << ", conf changes " << t.conf_changes << ", joint steps "
                     << t.joint << ", crashes " << t.crashes << " (torn "
                     << t.torn << "), transfers " << t.transfers);
  // Every kind of event happened often (per 100 schedules).
  if (schedules >= 1000) {
    auto per100 = [&](size_t n) {
      return n * 100 / schedules;
    };
    BOOST_TEST(per100(t.leaders) >= 100u);
    BOOST_TEST(per100(t.acked_writes) >= 50u);
    BOOST_TEST(per100(t.reads) >= 10u);
    BOOST_TEST(per100(t.snapshots) >= 5u);
    BOOST_TEST(per100(t.conf_changes) >= 20u);
    BOOST_TEST(per100(t.joint) >= 5u);
    BOOST_TEST(per100(t.crashes) >= 100u);
  }
}

BOOST_AUTO_TEST_SUITE_END()
