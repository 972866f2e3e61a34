// engram-swarm: a deterministic swarm simulator. N agents across M nodes in
// one process, on the same node, agent, instance and session actors as
// production, under CAF's test coordinator (one thread, simulated time) with
// seeded simulated links (loss, duplication, delay, partitions) and a
// seeded fault schedule (a partition of the nodes in halves, possibly one
// way; a node crash and restart on its store; clock skew). A run is
// reproducible from (seed, build, options): the same command prints the
// same report and report hash.
//
// Every run checks the invariants: after the heal all replicas of every
// agent are identical (the convergence time is reported), no acknowledged
// write is lost, conflicts are resolved per configuration (facts: one
// version, TakeNewest; beliefs: alternatives kept and marked contested,
// Fork). A failing seed prints the command that reproduces it.
//
//   engram-swarm --seed 7 --agents 200 --nodes 8 --writes 2000 --loss 0.1
//                --partition --crash [--seeds 100] [--csv F] [--plot F.png]

#include "actors/net.hpp"
#include "actors/node.hpp"
#include "actors/sim_link.hpp"
#include "apps/common/client_config.hpp"
#include "apps/common/process.hpp"
#include "federation/codec.hpp"
#include "federation/membership.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace engram;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using ms = std::chrono::milliseconds;

namespace {

struct options {
  uint64_t seed = 1;
  size_t seeds = 1;
  size_t agents = 100;
  size_t nodes = 8;
  size_t writes = 1000;
  /// Simulated time over which the writes are spread.
  int64_t workload_ms = 4000;
  double conflict_rate = 0.2;
  double belief_share = 0.2;
  /// Shares of writes that are episodes and skills (in Agent scope), and
  /// of writes kept in the writing instance (Instance scope).
  double episodic_share = 0.1;
  double procedural_share = 0.1;
  double instance_share = 0.05;
  /// Per write, the chance of also a share (redacted, accepted by the
  /// receiver with trust 0.8) and of a tell, between random agents.
  double share_rate = 0.0;
  double tell_rate = 0.0;
  /// Per write, the chance of a broadcast by a member of the swarm's
  /// federation (the first eight agents; only with this option).
  double broadcast_rate = 0.0;
  double loss = 0.0;
  double dup = 0.0;
  double delay = 0.0;
  bool partition = false;
  bool one_way = false;
  bool crash = false;
  int64_t skew_ms = 0;
  /// Give up converging after this much simulated time past the heal.
  int64_t heal_limit_ms = 120'000;
  std::string csv;
  std::string plot;
  bool quiet = false;
};

/// The command that reproduces a run of `seed`.
std::string command_of(const options& o, uint64_t seed) {
  std::ostringstream out;
  out << "engram-swarm --seed " << seed << " --agents " << o.agents
      << " --nodes " << o.nodes << " --writes " << o.writes << " --workload-ms "
      << o.workload_ms << " --conflict-rate " << o.conflict_rate
      << " --belief-share " << o.belief_share << " --episodic-share "
      << o.episodic_share << " --procedural-share " << o.procedural_share
      << " --instance-share " << o.instance_share;
  if (o.share_rate > 0)
    out << " --share-rate " << o.share_rate;
  if (o.tell_rate > 0)
    out << " --tell-rate " << o.tell_rate;
  if (o.broadcast_rate > 0)
    out << " --broadcast-rate " << o.broadcast_rate;
  if (o.loss > 0)
    out << " --loss " << o.loss;
  if (o.dup > 0)
    out << " --dup " << o.dup;
  if (o.delay > 0)
    out << " --delay " << o.delay;
  if (o.partition)
    out << " --partition";
  if (o.one_way)
    out << " --one-way";
  if (o.crash)
    out << " --crash";
  if (o.skew_ms > 0)
    out << " --skew-ms " << o.skew_ms;
  if (o.heal_limit_ms != options{}.heal_limit_ms)
    out << " --heal-limit-ms " << o.heal_limit_ms;
  return out.str();
}

uint64_t fnv1a(const std::string& text, uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(x));
  return buf;
}

struct sim_config : caf::actor_system_config {
  sim_config() {
    actors::register_types(*this);
    set("scheduler.policy", caf::atom("testing"));
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console", caf::atom("none"));
  }
};

/// A wall clock `offset_us` off the simulation's (clock skew).
class skewed_clock final : public physical_clock {
public:
  skewed_clock(std::shared_ptr<manual_clock> base, int64_t offset_us)
      : base_(std::move(base)), offset_(offset_us) {}
  uint64_t now_us() override {
    return static_cast<uint64_t>(static_cast<int64_t>(base_->now_us())
                                 + offset_);
  }

private:
  std::shared_ptr<manual_clock> base_;
  int64_t offset_;
};

// One write of the workload (Agent scope): a fact, belief, episode or
// skill, on a contended key with probability `conflict_rate`.
engram_record make_write(const options& o, std::mt19937_64& rng, size_t issued,
                         uint64_t now_us) {
  std::uniform_real_distribution<double> coin{0, 1};
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent({});
  e.confidence = 0.5 + 0.5 * coin(rng);
  bool hot = coin(rng) < o.conflict_rate;
  auto kind = coin(rng);
  auto tag = std::to_string(issued);
  if (kind < o.episodic_share) {
    e.type = memory_type::episodic;
    e.body = episode{hot ? "ep-hot" + std::to_string(rng() % 2) : "ep-" + tag,
                     {event{hlc_timestamp{now_us, 0}, "e" + tag}}};
  } else if (kind < o.episodic_share + o.procedural_share) {
    e.type = memory_type::procedural;
    e.body = skill{hot ? "sk-hot" + std::to_string(rng() % 2) : "sk-" + tag,
                   {refinement{static_cast<uint32_t>(issued), "r" + tag}}};
  } else if (coin(rng) < o.belief_share) {
    e.body = belief{hot ? "hot" + std::to_string(rng() % 2) : "s" + tag, "is",
                    "v" + tag};
  } else {
    e.body
        = fact{hot ? "hot" + std::to_string(rng() % 4) : "k" + tag, "v" + tag};
  }
  return e;
}

struct acked_write {
  size_t agent;
  engram_id id;
  /// Instance-scoped: the node of the instance that holds it (else none).
  std::optional<size_t> node;
};

/// What the driver actor saw of the writes it was handed. Every write of
/// the workload is one of: not issued (its node was down: the agent's
/// program waits), acknowledged, refused (nothing stored), stored but not
/// confirmed at its level, or of unknown outcome (no answer: a timeout or
/// its node crashed while it was in flight).
struct write_log {
  size_t issued = 0;
  size_t not_issued = 0;
  std::vector<acked_write> acked;
  size_t refused = 0;
  std::vector<acked_write> not_confirmed;
  size_t unknown = 0;
  size_t tells_acked = 0;
  size_t tells_refused = 0;
  size_t shares_accepted = 0;
  size_t shares_refused = 0;
  size_t broadcasts_acked = 0;
  size_t broadcasts_refused = 0;
  /// Agents that accepted a share (with at least one memory in it).
  std::set<size_t> receivers;
};

using write_atom = caf::atom_constant<caf::atom("write")>;

// Counts a write's failure as what it says about the write: stored but
// not confirmed (its id kept: it must reach every replica), refused
// (nothing stored), or unknown (no answer from the node, or a timeout).
void classify(write_log& log, const caf::error& err, size_t agent) {
  auto e = actors::from_caf(err);
  if (!actors::is_engram_error(err) || e.code == errc::timeout) {
    ++log.unknown;
  } else if (e.code == errc::not_confirmed) {
    auto id = engram_id::parse(e.subject);
    log.not_confirmed.push_back({agent, id ? *id : engram_id{}, std::nullopt});
  } else {
    ++log.refused;
  }
}

// What the workload's writes came to, for the report (the ones still
// unanswered at the end count as unknown).
std::string outcomes(const write_log& log, size_t writes) {
  auto answered
      = log.acked.size() + log.refused + log.not_confirmed.size() + log.unknown;
  auto pending = log.issued > answered ? log.issued - answered : 0;
  return "writes=" + std::to_string(writes)
         + " issued=" + std::to_string(log.issued)
         + " acked=" + std::to_string(log.acked.size())
         + " refused=" + std::to_string(log.refused)
         + " not_confirmed=" + std::to_string(log.not_confirmed.size())
         + " unknown=" + std::to_string(log.unknown + pending)
         + " not_issued=" + std::to_string(log.not_issued) + " (node down)";
}

/// One row of --csv: cumulative counts since the run started. A field a
/// mode does not measure is left empty.
struct sample_row {
  double t_ms = 0;
  size_t issued = 0;
  size_t acked = 0;
  size_t refused = 0;
  size_t not_confirmed = 0;
  size_t unknown = 0;
  std::optional<uint64_t> frames;
  std::optional<uint64_t> dropped;
  std::optional<uint64_t> bytes;
  std::optional<size_t> converged;
  std::optional<size_t> contested;
  bool partitioned = false;
  bool crashed = false;
};

constexpr const char* csv_header
    = "t_ms,issued,acked,refused,not_confirmed,unknown,frames,dropped,bytes,"
      "converged_agents,contested,partitioned,crashed\n";

template<class T>
std::string field(const std::optional<T>& x) {
  return x ? std::to_string(*x) : std::string{};
}

std::string csv_line(const sample_row& r) {
  char t[32];
  std::snprintf(t, sizeof(t), "%.0f", r.t_ms);
  return std::string{t} + ',' + std::to_string(r.issued) + ','
         + std::to_string(r.acked) + ',' + std::to_string(r.refused) + ','
         + std::to_string(r.not_confirmed) + ',' + std::to_string(r.unknown)
         + ',' + field(r.frames) + ',' + field(r.dropped) + ',' + field(r.bytes)
         + ',' + field(r.converged) + ',' + field(r.contested) + ','
         + (r.partitioned ? "1" : "0") + ',' + (r.crashed ? "1" : "0") + '\n';
}

void fill_outcomes(sample_row& row, const write_log& log) {
  row.issued = log.issued;
  row.acked = log.acked.size();
  row.refused = log.refused;
  row.not_confirmed = log.not_confirmed.size();
  row.unknown = log.unknown;
}

// Issues writes (learn requests) and records which were acknowledged.
caf::behavior driver(caf::event_based_actor* self,
                     std::shared_ptr<write_log> log) {
  return {
      [=](write_atom, const actors::instance_actor& inst, engram_record& e,
          uint64_t agent, uint64_t node, bool in_instance) {
        self->request(inst, caf::infinite, actors::learn_atom::value,
                      std::move(e), true)
            .then(
                [=](engram_id id) {
                  std::optional<size_t> where;
                  if (in_instance)
                    where = static_cast<size_t>(node);
                  log->acked.push_back({static_cast<size_t>(agent), id, where});
                },
                [=](caf::error& err) {
                  classify(*log, err, static_cast<size_t>(agent));
                });
      },
      [=](actors::tell_atom, const actors::instance_actor& inst,
          const std::string& to) {
        self->request(inst, caf::infinite, actors::tell_atom::value, to,
                      std::string{"hello"})
            .then(
                [=](bool) {
                  ++log->tells_acked;
                },
                [=](caf::error&) {
                  ++log->tells_refused;
                });
      },
      [=](actors::broadcast_atom, const actors::instance_actor& inst,
          const std::string& fed) {
        self->request(inst, caf::infinite, actors::broadcast_atom::value, fed,
                      std::string{"news"})
            .then(
                [=](uint64_t) {
                  ++log->broadcasts_acked;
                },
                [=](caf::error&) {
                  ++log->broadcasts_refused;
                });
      },
      [=](actors::share_atom, const actors::instance_actor& from_inst,
          const std::string& from, const std::string& to,
          const actors::instance_actor& to_inst, uint64_t to_agent) {
        query_filter f;
        f.type = memory_type::semantic;
        f.limit = 2;
        self->request(from_inst, caf::infinite, actors::share_atom::value, to,
                      f, std::string{"redact_pii"}, true)
            .then(
                [=](std::string& id) {
                  self->request(to_inst, caf::infinite,
                                actors::accept_atom::value, from, id, 0.8)
                      .then(
                          [=](uint64_t n) {
                            if (n != 0) {
                              ++log->shares_accepted;
                              log->receivers.insert(
                                  static_cast<size_t>(to_agent));
                            }
                          },
                          [=](caf::error&) {
                            ++log->shares_refused;
                          });
                },
                [=](caf::error&) {
                  ++log->shares_refused;
                });
      },
  };
}

struct run_result {
  bool ok = true;
  /// The time series (--csv), when sampled.
  std::string csv;
  std::vector<std::string> failures;
  std::string report;
  uint64_t report_hash = 0;
  double converge_ms = -1;
};

class simulation {
public:
  simulation(const options& o, uint64_t seed)
      : opts_(o), seed_(seed), rng_(seed) {
    dir_ = (fs::temp_directory_path()
            / ("engram-swarm-" + std::to_string(::getpid()) + "-"
               + std::to_string(seed)))
               .string();
    fs::remove_all(dir_);
  }

  ~simulation() {
    shutdown();
    fs::remove_all(dir_);
  }

  run_result run();

private:
  // -- time -----------------------------------------------------------------

  void advance(ms total, ms step = ms{10}) {
    for (ms t{0}; t < total; t += step) {
      wall_->advance(static_cast<uint64_t>(step.count()) * 1000);
      sched_.advance_time(step);
      sched_.run();
      now_ += step;
    }
  }

  // Calls `ask(helper, i, done)` for every i < n in one helper actor and
  // runs the system until each called `done` (bounded).
  template<class Ask>
  void run_requests(size_t n, Ask ask) {
    auto pending = std::make_shared<size_t>(n);
    auto helper = sys_.spawn([=](caf::event_based_actor* self) {
      for (size_t i = 0; i < n; ++i)
        ask(self, i, [pending] {
          --*pending;
        });
    });
    sched_.run();
    for (int i = 0; i < 1000 && *pending > 0; ++i) {
      sched_.advance_time(ms{1});
      sched_.run();
    }
    caf::anon_send_exit(helper, caf::exit_reason::user_shutdown);
    sched_.run();
  }

  // Asks every one of `dests` the same request; the answers in order
  // (nullopt: an error).
  template<class Result, class Handle, class... Ts>
  std::vector<std::optional<Result>> gather(const std::vector<Handle>& dests,
                                            Ts... xs) {
    auto results
        = std::make_shared<std::vector<std::optional<Result>>>(dests.size());
    run_requests(dests.size(),
                 [&](caf::event_based_actor* self, size_t i, auto done) {
                   self->request(dests[i], caf::infinite, xs...)
                       .then(
                           [=](Result& r) {
                             (*results)[i] = std::move(r);
                             done();
                           },
                           [=](caf::error&) {
                             done();
                           });
                 });
    return std::move(*results);
  }

  // The digests of the replicas `dests` hold (what they hold entirely).
  std::vector<std::optional<uint64_t>>
  gather_digests(const std::vector<actors::agent_actor>& dests) {
    auto results
        = std::make_shared<std::vector<std::optional<uint64_t>>>(dests.size());
    run_requests(dests.size(),
                 [&](caf::event_based_actor* self, size_t i, auto done) {
                   self->request(dests[i], caf::infinite,
                                 actors::digest_atom::value, std::string{})
                       .then(
                           [=](uint64_t d, causal_context&) {
                             (*results)[i] = d;
                             done();
                           },
                           [=](caf::error&) {
                             done();
                           });
                 });
    return std::move(*results);
  }

  // -- topology -------------------------------------------------------------

  std::vector<size_t> replicas_of(size_t agent) const {
    std::vector<size_t> out;
    for (size_t k = 0; k < std::min<size_t>(3, opts_.nodes); ++k)
      out.push_back((agent + k) % opts_.nodes);
    return out;
  }

  std::string node_id(size_t i) const { return "n" + std::to_string(i); }

  void start_node(size_t i) {
    actors::node_config c;
    c.node_id = node_id(i);
    c.data_dir = dir_ + "/" + c.node_id;
    c.sync_writes = false;
    c.background_writes = false; // a seed replays exactly
    c.wall_clock = std::make_shared<skewed_clock>(wall_, skew_us_[i]);
    c.sessions.push_delay = ms{5};
    c.sessions.retransmit_after = ms{100};
    c.sessions.anti_entropy_interval = ms{500};
    c.sessions.ping_interval = ms{1000};
    c.sessions.peer_timeout = ms{60'000};
    c.sessions.tick = ms{50};
    auto n = actors::node::start(sys_, std::move(c));
    if (!n)
      throw std::runtime_error("cannot start " + node_id(i) + ": "
                               + n.error_value().to_string());
    nodes_[i] = std::move(*n);
    sched_.run();
  }

  // Links i → j (one direction), with its own log.
  void link(size_t i, size_t j) {
    actors::link_params p;
    p.loss = opts_.loss;
    p.duplication = opts_.dup;
    p.delay = opts_.delay;
    p.seed = rng_();
    auto log = std::make_shared<actors::link_log>();
    log->keep_entries = false; // counters only: runs are long
    auto dest = caf::actor_cast<actors::peer_actor>(nodes_[j]->handle());
    auto hdl = sys_.spawn(actors::link_impl, dest, p, log);
    if (auto old = links_.find({i, j}); old != links_.end()) {
      // A link replaced (its destination restarted): what it carried still
      // counts, so the run's totals never go back.
      retired_frames_ += old->second.log->frames;
      retired_dropped_ += old->second.log->dropped;
      retired_bytes_ += old->second.log->bytes;
    }
    links_[{i, j}] = {hdl, log};
    nodes_[i]->add_peer(node_id(j), hdl);
  }

  std::set<std::pair<size_t, size_t>> neighbours() const {
    std::set<std::pair<size_t, size_t>> out;
    for (size_t a = 0; a < std::min(opts_.agents, opts_.nodes); ++a) {
      auto rs = replicas_of(a);
      for (auto x : rs)
        for (auto y : rs)
          if (x != y)
            out.insert({x, y});
    }
    return out;
  }

  void open_instances(size_t node) {
    std::vector<actors::node_actor> dests;
    std::vector<size_t> which;
    for (size_t a = 0; a < opts_.agents; ++a)
      for (auto r : replicas_of(a))
        if (r == node)
          which.push_back(a);
    // One request per agent (the helper asks them all at once).
    for (auto a : which) {
      auto got = gather<actors::instance_actor>(
          std::vector<actors::node_actor>{nodes_[node]->handle()},
          actors::instance_atom::value, "a" + std::to_string(a),
          "i" + std::to_string(node));
      if (got[0])
        instances_[{a, node}] = *got[0];
      auto agent = gather<actors::agent_actor>(
          std::vector<actors::node_actor>{nodes_[node]->handle()},
          actors::agent_atom::value, "a" + std::to_string(a));
      if (agent[0])
        agents_[{a, node}] = *agent[0];
    }
  }

  void crash(size_t i) {
    caf::anon_send_exit(nodes_[i]->handle(), caf::exit_reason::kill);
    sched_.run();
    for (int k = 0; k < 100 && sched_.has_pending_timeout(); ++k) {
      sched_.trigger_timeouts();
      sched_.run();
    }
    nodes_[i].reset();
    up_[i] = false;
  }

  void restart(size_t i) {
    start_node(i);
    up_[i] = true;
    for (auto& [edge, l] : links_) {
      if (edge.second == i) { // links into i: a new destination
        caf::anon_send_exit(l.hdl, caf::exit_reason::user_shutdown);
        link(edge.first, i);
      } else if (edge.first == i) {
        nodes_[i]->add_peer(node_id(edge.second), l.hdl);
      }
    }
    sched_.run();
    open_instances(i);
  }

  void set_partition(bool on) {
    size_t half = opts_.nodes / 2;
    for (auto& [edge, l] : links_) {
      bool across = (edge.first < half) != (edge.second < half);
      // One way: only frames from the first half to the second are lost.
      bool cut = across && (!opts_.one_way || edge.first < half);
      l.log->partitioned = on && cut;
    }
    partitioned_ = on;
  }

  // -- checks ---------------------------------------------------------------

  // Per agent: whether all its replicas hold the same state; and a hash of
  // every digest.
  std::pair<size_t, uint64_t> converged_agents() {
    std::vector<actors::agent_actor> dests;
    std::vector<size_t> owner;
    for (size_t a = 0; a < opts_.agents; ++a)
      for (auto r : replicas_of(a))
        if (up_[r]) {
          dests.push_back(agents_[{a, r}]);
          owner.push_back(a);
        }
    auto digests = gather_digests(dests);
    std::vector<std::set<uint64_t>> per_agent(opts_.agents);
    uint64_t all = 0xcbf29ce484222325ULL;
    for (size_t k = 0; k < dests.size(); ++k) {
      per_agent[owner[k]].insert(digests[k] ? *digests[k] : k + 1);
      all = fnv1a(hex(digests[k] ? *digests[k] : 0), all);
    }
    size_t equal = 0;
    for (auto& s : per_agent)
      equal += s.size() == 1 ? 1 : 0;
    return {equal, all};
  }

  uint64_t bytes() const {
    uint64_t n = retired_bytes_;
    for (auto& [_, l] : links_)
      n += l.log->bytes;
    return n;
  }

  uint64_t frames(bool dropped) const {
    uint64_t n = dropped ? retired_dropped_ : retired_frames_;
    for (auto& [_, l] : links_)
      n += dropped ? l.log->dropped : l.log->frames;
    return n;
  }

  // Engrams held in contested alternatives now (each agent's first live
  // replica).
  size_t contested_now() {
    std::vector<actors::agent_actor> dests;
    for (size_t a = 0; a < opts_.agents; ++a)
      for (auto r : replicas_of(a))
        if (up_[r]) {
          dests.push_back(agents_[{a, r}]);
          break;
        }
    query_filter f;
    f.contested_only = true;
    auto views = gather<std::vector<memory_view>>(
        dests, actors::query_atom::value, f,
        actors::code_of(consistency_level::local));
    size_t n = 0;
    for (auto& v : views)
      if (v) {
        std::set<engram_id> ids;
        for (auto& x : *v)
          ids.insert(x.value.id);
        n += ids.size();
      }
    return n;
  }

  void sample(std::shared_ptr<write_log> log, size_t converged) {
    sample_row row;
    row.t_ms = static_cast<double>(now_.count());
    fill_outcomes(row, *log);
    row.frames = frames(false);
    row.dropped = frames(true);
    row.bytes = bytes();
    row.converged = converged;
    row.contested = contested_now();
    row.partitioned = partitioned_;
    row.crashed = std::find(up_.begin(), up_.end(), false) != up_.end();
    csv_ << csv_line(row);
  }

  void shutdown() {
    for (auto& [_, l] : links_)
      caf::anon_send_exit(l.hdl, caf::exit_reason::user_shutdown);
    for (auto& n : nodes_)
      if (n)
        caf::anon_send_exit(n->handle(), caf::exit_reason::user_shutdown);
    if (driver_)
      caf::anon_send_exit(driver_, caf::exit_reason::user_shutdown);
    sched_.run();
    for (int i = 0; i < 10'000 && sched_.has_pending_timeout(); ++i) {
      sched_.trigger_timeouts();
      sched_.run();
    }
    nodes_.clear();
    links_.clear();
  }

  struct link_entry {
    actors::peer_actor hdl;
    std::shared_ptr<actors::link_log> log;
  };

  const options& opts_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::string dir_;
  sim_config cfg_;
  caf::actor_system sys_{cfg_};
  caf::scheduler::test_coordinator& sched_
      = dynamic_cast<caf::scheduler::test_coordinator&>(sys_.scheduler());
  std::shared_ptr<manual_clock> wall_
      = std::make_shared<manual_clock>(1'700'000'000'000'000ULL);
  ms now_{0};
  std::vector<int64_t> skew_us_;
  std::vector<std::unique_ptr<actors::node>> nodes_;
  std::vector<bool> up_;
  std::map<std::pair<size_t, size_t>, link_entry> links_;
  std::map<std::pair<size_t, size_t>, actors::instance_actor> instances_;
  std::map<std::pair<size_t, size_t>, actors::agent_actor> agents_;
  caf::actor driver_;
  std::ostringstream csv_;
  bool partitioned_ = false;
  uint64_t retired_frames_ = 0;
  uint64_t retired_dropped_ = 0;
  uint64_t retired_bytes_ = 0;

public:
  std::string csv() const { return csv_.str(); }
};

run_result simulation::run() {
  run_result result;
  auto& o = opts_;
  // The fault schedule, from the seed.
  std::uniform_int_distribution<int64_t> skew{-o.skew_ms, o.skew_ms};
  for (size_t i = 0; i < o.nodes; ++i)
    skew_us_.push_back(o.skew_ms > 0 ? skew(rng_) * 1000 : 0);
  auto w = o.workload_ms;
  int64_t part_from = w * (20 + static_cast<int64_t>(rng_() % 20)) / 100;
  // Half of the runs heal only when the workload is over: concurrent
  // writes are left for the heal to merge (and conflicts to resolve).
  int64_t part_to
      = rng_() % 2 == 0
            ? w
            : part_from + w * (20 + static_cast<int64_t>(rng_() % 20)) / 100;
  size_t crashed = o.nodes > 1 ? rng_() % o.nodes : 0;
  int64_t crash_at = w * (30 + static_cast<int64_t>(rng_() % 30)) / 100;
  int64_t restart_at
      = crash_at + w * (10 + static_cast<int64_t>(rng_() % 20)) / 100;
  // Nodes, links, agents.
  nodes_.resize(o.nodes);
  up_.assign(o.nodes, true);
  for (size_t i = 0; i < o.nodes; ++i)
    start_node(i);
  for (auto [i, j] : neighbours())
    link(i, j);
  sched_.run();
  for (size_t i = 0; i < o.nodes; ++i)
    open_instances(i);
  auto log = std::make_shared<write_log>();
  driver_ = sys_.spawn(driver, log);
  // The swarm's federation: the first agents (up to eight), led by a0, each
  // a member on its first replica's node.
  size_t members = o.broadcast_rate > 0 ? std::min<size_t>(8, o.agents) : 0;
  std::string fed;
  if (members > 1) {
    federation::federation_config fc;
    fc.name = "swarm";
    for (size_t m = 0; m < members; ++m)
      fc.initial_members.push_back("a" + std::to_string(m));
    auto st = federation::federation_state::create(fc, wall_->now_us());
    if (!st)
      throw std::runtime_error(st.error_value().to_string());
    fed = st->id();
    auto home = [&](size_t m) {
      return instances_[{m, replicas_of(m)[0]}];
    };
    namespace cmd = federation::cmd;
    using command = federation::federation_command;
    gather<federation::federation_state>(
        std::vector<actors::instance_actor>{home(0)},
        actors::federation_atom::value, fed, command{"a0", cmd::create{*st}});
    for (size_t m = 1; m < members; ++m) {
      bool joined = false;
      for (int attempt = 0; attempt < 50 && !joined; ++attempt) {
        advance(ms{50});
        joined = gather<federation::federation_state>(
                     std::vector<actors::instance_actor>{home(m)},
                     actors::federation_atom::value, fed,
                     command{"a" + std::to_string(m), cmd::join{}})[0]
                     .has_value();
      }
      if (!joined)
        throw std::runtime_error("a" + std::to_string(m)
                                 + " could not join the swarm's federation");
    }
    // Every member's node knows every member before the workload starts (a
    // broadcast goes to the members its node knows of).
    auto everyone = [&] {
      for (size_t m = 0; m < members; ++m) {
        auto st = gather<federation::federation_state>(
            std::vector<actors::instance_actor>{home(m)},
            actors::federation_atom::value, fed,
            command{"a" + std::to_string(m), cmd::read_state{}})[0];
        if (!st || st->members().size() != members)
          return false;
      }
      return true;
    };
    for (int i = 0; i < 200 && !everyone(); ++i)
      advance(ms{50});
    if (!everyone())
      throw std::runtime_error("the swarm's federation did not reach every "
                               "member's node");
  }
  csv_ << csv_header;
  // The workload: writes spread over the workload time, faults on schedule.
  const ms step{10};
  auto steps = static_cast<size_t>(std::max<int64_t>(1, w / step.count()));
  size_t issued = 0;
  bool partitioned = false;
  std::uniform_real_distribution<double> coin{0, 1};
  for (size_t s = 0; s < steps; ++s) {
    auto t = static_cast<int64_t>(s) * step.count();
    // Faults on schedule; each change is a row of the series (exact fault
    // windows in the CSV and the plot).
    if (o.partition && !partitioned && t >= part_from && t < part_to) {
      set_partition(true);
      partitioned = true;
      sample(log, converged_agents().first);
    } else if (partitioned && t >= part_to) {
      set_partition(false);
      partitioned = false;
      sample(log, converged_agents().first);
    }
    if (o.crash && o.nodes > 1 && up_[crashed] && t >= crash_at
        && t < restart_at) {
      crash(crashed);
      sample(log, converged_agents().first);
    }
    if (o.crash && o.nodes > 1 && !up_[crashed] && t >= restart_at) {
      restart(crashed);
      sample(log, converged_agents().first);
    }
    auto due = o.writes * (s + 1) / steps;
    for (; issued < due; ++issued) {
      auto a = static_cast<size_t>(rng_() % o.agents);
      auto rs = replicas_of(a);
      auto r = rs[rng_() % rs.size()];
      auto e = make_write(o, rng_, issued, wall_->now_us());
      bool in_instance = coin(rng_) < o.instance_share;
      if (in_instance)
        e.scope = memory_scope::instance({});
      if (!up_[r]) {
        ++log->not_issued; // the node is down: the agent's program waits
        continue;
      }
      ++log->issued;
      caf::anon_send(driver_, write_atom::value, instances_[{a, r}], e,
                     static_cast<uint64_t>(a), static_cast<uint64_t>(r),
                     in_instance);
      auto other = [&] {
        auto b = static_cast<size_t>(rng_() % o.agents);
        auto bs = replicas_of(b);
        return std::make_pair(b, bs[rng_() % bs.size()]);
      };
      if (o.share_rate > 0 && coin(rng_) < o.share_rate) {
        auto [b, rb] = other();
        if (b != a && up_[rb])
          caf::anon_send(driver_, actors::share_atom::value, instances_[{a, r}],
                         "a" + std::to_string(a), "a" + std::to_string(b),
                         instances_[{b, rb}], static_cast<uint64_t>(b));
      }
      if (members > 1 && coin(rng_) < o.broadcast_rate) {
        auto m = static_cast<size_t>(rng_() % members);
        auto home = replicas_of(m)[0];
        if (up_[home])
          caf::anon_send(driver_, actors::broadcast_atom::value,
                         instances_[{m, home}], fed);
      }
      if (o.tell_rate > 0 && coin(rng_) < o.tell_rate) {
        auto [b, rb] = other();
        (void)rb;
        caf::anon_send(driver_, actors::tell_atom::value, instances_[{a, r}],
                       "a" + std::to_string(b));
      }
    }
    advance(step);
    if (s % 50 == 0) {
      sample(log, converged_agents().first);
      if (!o.quiet && o.seeds == 1 && ::isatty(2))
        std::fprintf(stderr, "\r[%-40s] %3zu%%",
                     std::string(40 * (s + 1) / steps, '#').c_str(),
                     100 * (s + 1) / steps);
    }
  }
  if (!o.quiet && o.seeds == 1 && ::isatty(2))
    std::fprintf(stderr, "\r%60s\r", "");
  // Heal everything, then let anti-entropy converge.
  set_partition(false);
  if (!up_[crashed])
    restart(crashed);
  advance(ms{50});
  auto healed = now_;
  auto [equal, state_hash] = converged_agents();
  while (equal < o.agents && now_ - healed < ms{o.heal_limit_ms}) {
    advance(ms{100});
    std::tie(equal, state_hash) = converged_agents();
    sample(log, equal);
  }
  sample(log, equal);
  if (members > 1)
    advance(ms{1500}); // broadcasts queued for members back only now
  result.converge_ms
      = equal == o.agents ? static_cast<double>((now_ - healed).count()) : -1;
  if (equal < o.agents)
    result.failures.push_back(
        std::to_string(o.agents - equal) + " agents' replicas still differ "
        + std::to_string(o.heal_limit_ms) + " ms after the heal");
  // Invariants on what every replica holds.
  std::vector<actors::agent_actor> dests;
  std::vector<std::pair<size_t, size_t>> owner;
  for (size_t a = 0; a < o.agents; ++a)
    for (auto r : replicas_of(a)) {
      dests.push_back(agents_[{a, r}]);
      owner.push_back({a, r});
    }
  auto views = gather<std::vector<memory_view>>(
      dests, actors::query_atom::value, query_filter{},
      actors::code_of(consistency_level::local));
  std::map<std::pair<size_t, size_t>, std::map<engram_id, size_t>> held;
  size_t contested = 0, lost = 0, bad_resolution = 0;
  for (size_t k = 0; k < dests.size(); ++k) {
    if (!views[k]) {
      result.failures.push_back("agent a" + std::to_string(owner[k].first)
                                + " on " + node_id(owner[k].second)
                                + " did not answer");
      continue;
    }
    auto& ids = held[owner[k]];
    std::map<engram_id, std::vector<const memory_view*>> by_id;
    for (auto& v : *views[k]) {
      ++ids[v.value.id];
      by_id[v.value.id].push_back(&v);
    }
    for (auto& [id, vs] : by_id) {
      if (vs.size() < 2)
        continue;
      bool is_fact = std::holds_alternative<fact>(vs[0]->value.body);
      bool all_contested = std::all_of(vs.begin(), vs.end(), [](auto* v) {
        return v->contested;
      });
      if (is_fact || !all_contested)
        ++bad_resolution;
      else if (owner[k].second == replicas_of(owner[k].first)[0])
        ++contested;
    }
  }
  // Instance-scoped writes stay in their instance: never in the agent's
  // replicas, always in the instance (unless its node crashed: the
  // instance's memory is on that node's store and comes back with it).
  std::vector<actors::instance_actor> inst_dests;
  std::vector<const acked_write*> inst_writes;
  size_t leaked = 0;
  // A write stored but not confirmed at its level reaches every replica
  // too once they are back.
  size_t unconfirmed_lost = 0;
  for (auto& wr : log->not_confirmed)
    for (auto r : replicas_of(wr.agent))
      if (held[{wr.agent, r}].count(wr.id) == 0)
        ++unconfirmed_lost;
  if (unconfirmed_lost > 0)
    result.failures.push_back(std::to_string(unconfirmed_lost)
                              + " writes stored but not confirmed missing from "
                                "a replica");
  for (auto& wr : log->acked) {
    if (!wr.node) {
      for (auto r : replicas_of(wr.agent))
        if (held[{wr.agent, r}].count(wr.id) == 0)
          ++lost;
      continue;
    }
    for (auto r : replicas_of(wr.agent))
      leaked += held[{wr.agent, r}].count(wr.id);
    inst_dests.push_back(instances_[{wr.agent, *wr.node}]);
    inst_writes.push_back(&wr);
  }
  query_filter own;
  own.kind = scope_kind::instance;
  auto inst_views = gather<std::vector<memory_view>>(
      inst_dests, actors::query_atom::value, own);
  for (size_t k = 0; k < inst_dests.size(); ++k)
    if (!inst_views[k]
        || std::none_of(inst_views[k]->begin(), inst_views[k]->end(),
                        [&](auto& v) {
                          return v.value.id == inst_writes[k]->id;
                        }))
      ++lost;
  if (leaked > 0)
    result.failures.push_back(std::to_string(leaked)
                              + " Instance-scope memories found in agent "
                                "replicas");
  // Shares: every replica of an agent that accepted one holds memories
  // reported by another agent.
  size_t unshared = 0;
  for (size_t k = 0; k < dests.size(); ++k)
    if (views[k] && log->receivers.count(owner[k].first) > 0
        && std::none_of(views[k]->begin(), views[k]->end(), [](auto& v) {
             return v.value.epistemic.kind == epistemic_kind::reported;
           }))
      ++unshared;
  if (unshared > 0)
    result.failures.push_back(std::to_string(unshared)
                              + " replicas of agents that accepted a share "
                                "hold nothing reported");
  // Tells: every acknowledged one is in the agent's inbox, once. An inbox
  // is part of the agent's replicated memory (the replicas converged above),
  // so it is read on one replica per agent; reading marks the messages read
  // everywhere. With crashes, a tell whose acknowledgement the crash took
  // may be there too.
  std::vector<actors::agent_actor> inbox_dests;
  for (size_t a = 0; a < o.agents; ++a)
    inbox_dests.push_back(agents_[{a, replicas_of(a)[0]}]);
  auto inboxes = gather<std::vector<std::string>>(inbox_dests,
                                                  actors::inbox_atom::value);
  size_t delivered = 0, news = 0;
  for (auto& in : inboxes)
    if (in)
      for (size_t i = 0; i + 1 < in->size(); i += 2)
        ++((*in)[i + 1] == "news" ? news : delivered);
  // Broadcasts: every other member gets each one (queued while it was
  // unreachable), unless a crash took the queue on the sender's node.
  auto expected_news = log->broadcasts_acked * (members > 0 ? members - 1 : 0);
  if (o.crash ? news > expected_news : news != expected_news)
    result.failures.push_back(std::to_string(log->broadcasts_acked)
                              + " broadcasts acknowledged to "
                              + std::to_string(members - 1) + " members, "
                              + std::to_string(news) + " in their inboxes");
  bool tells_ok
      = o.crash ? delivered >= log->tells_acked
                      && delivered <= log->tells_acked + log->tells_refused
                : delivered == log->tells_acked;
  if (!tells_ok)
    result.failures.push_back(std::to_string(log->tells_acked)
                              + " tells acknowledged, "
                              + std::to_string(delivered) + " in inboxes");
  if (lost > 0)
    result.failures.push_back(std::to_string(lost)
                              + " acknowledged writes missing from a replica");
  if (bad_resolution > 0)
    result.failures.push_back(
        std::to_string(bad_resolution)
        + " engrams not resolved per config (a fact with several versions "
          "or uncontested belief alternatives)");
  result.ok = result.failures.empty();
  // The report: everything in it follows from (seed, build, options).
  std::ostringstream r;
  r << "engram-swarm seed=" << seed_ << " agents=" << o.agents
    << " nodes=" << o.nodes << " writes=" << o.writes << '\n';
  r << "faults: loss=" << o.loss << " dup=" << o.dup << " delay=" << o.delay;
  if (o.partition)
    r << " partition=" << (o.one_way ? "one-way" : "halves") << '@' << part_from
      << ".." << part_to << "ms";
  if (o.crash && o.nodes > 1)
    r << " crash=" << node_id(crashed) << '@' << crash_at << ".." << restart_at
      << "ms";
  if (o.skew_ms > 0)
    r << " skew=+-" << o.skew_ms << "ms";
  r << '\n';
  r << outcomes(*log, o.writes) << '\n';
  r << "frames=" << frames(false) << " dropped=" << frames(true)
    << " bytes=" << bytes() << '\n';
  if (o.share_rate > 0 || o.tell_rate > 0)
    r << "shares_accepted=" << log->shares_accepted
      << " shares_refused=" << log->shares_refused
      << " tells_acked=" << log->tells_acked << " tells_delivered=" << delivered
      << " tells_refused=" << log->tells_refused << '\n';
  if (members > 1)
    r << "broadcasts_acked=" << log->broadcasts_acked
      << " broadcasts_refused=" << log->broadcasts_refused
      << " broadcast_deliveries=" << news << '\n';
  r << "converged_after_heal_ms=" << result.converge_ms
    << " contested_engrams=" << contested << '\n';
  r << "invariants: " << (result.ok ? "ok" : "FAILED") << '\n';
  r << "state_hash=" << hex(state_hash) << '\n';
  result.report = r.str();
  result.report_hash = fnv1a(result.report);
  return result;
}

// -- --real: the same workload on engramd processes -------------------------

using apps::client_config;

// Runs the workload against `o.nodes` engramd processes on 127.0.0.1 (real
// time, real TCP): each agent on three nodes, the writes issued as fast as
// they are acknowledged, optionally one node SIGKILLed mid-run and
// restarted on its store, or frozen (SIGSTOP) for a while. Then the same
// invariants: replicas identical, no acknowledged write lost.
run_result run_real(const options& o, uint64_t seed,
                    const std::string& engramd) {
  run_result result;
  std::mt19937_64 rng{seed};
  auto dir = (fs::temp_directory_path()
              / ("engram-swarm-real-" + std::to_string(::getpid())))
                 .string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  client_config cfg;
  caf::actor_system sys{cfg};
  std::vector<apps::process> procs(o.nodes);
  std::vector<uint16_t> ports(o.nodes);
  auto start = [&](size_t i) {
    auto id = "n" + std::to_string(i);
    auto port_file = dir + "/" + id + ".port";
    fs::remove(port_file);
    std::vector<std::string> argv{engramd,
                                  "--node-id",
                                  id,
                                  "--data-dir",
                                  dir + "/" + id,
                                  "--listen",
                                  "127.0.0.1:" + std::to_string(ports[i]),
                                  "--port-file",
                                  port_file,
                                  "--log-level",
                                  "warn"};
    for (size_t j = 0; j < o.nodes; ++j)
      if (j != i && ports[j] != 0) {
        argv.push_back("--peer");
        argv.push_back("127.0.0.1:" + std::to_string(ports[j]));
      }
    procs[i] = apps::process{argv, dir + "/" + id + ".log"};
    ports[i] = apps::read_port(port_file);
  };
  auto node = [&](size_t i) -> std::optional<actors::node_actor> {
    auto r = actors::connect_remote(sys, {"127.0.0.1", ports[i]}, ms{5000});
    if (!r)
      return std::nullopt;
    return r->hdl;
  };
  auto replicas = [&](size_t a) {
    std::vector<size_t> out;
    for (size_t k = 0; k < std::min<size_t>(3, o.nodes); ++k)
      out.push_back((a + k) % o.nodes);
    return out;
  };
  caf::scoped_actor self{sys};
  std::map<std::pair<size_t, size_t>, actors::instance_actor> insts;
  auto open = [&](size_t i) {
    auto nh = node(i);
    if (!nh)
      throw std::runtime_error("cannot reach n" + std::to_string(i));
    for (size_t a = 0; a < o.agents; ++a)
      for (auto r : replicas(a))
        if (r == i)
          self->request(*nh, ms{10'000}, actors::instance_atom::value,
                        "a" + std::to_string(a), "i" + std::to_string(i))
              .receive(
                  [&](actors::instance_actor& x) {
                    insts[{a, i}] = x;
                  },
                  [&](caf::error& e) {
                    throw std::runtime_error(to_string(e));
                  });
  };
  for (size_t i = 0; i < o.nodes; ++i)
    start(i);
  for (size_t i = 0; i < o.nodes; ++i)
    open(i);
  size_t crashed = o.nodes > 1 ? rng() % o.nodes : 0;
  std::vector<bool> up(o.nodes, true);
  write_log log;
  auto& acked = log.acked;
  auto t0 = std::chrono::steady_clock::now();
  // The time series (with --csv / --plot): sampled every 20 ms; frames and
  // bytes are what the nodes' sessions sent, kept cumulative across a
  // node's restart (its counters start again at zero).
  bool sampling = !o.csv.empty() || !o.plot.empty();
  bool frozen_now = false;
  std::vector<uint64_t> frames_base(o.nodes), frames_last(o.nodes);
  std::vector<uint64_t> bytes_base(o.nodes), bytes_last(o.nodes);
  std::ostringstream csv;
  csv << csv_header;
  auto last_sample = t0 - ms{1000};
  auto sample = [&](std::optional<size_t> converged, bool force = false) {
    auto now = std::chrono::steady_clock::now();
    if (!sampling || (!force && now - last_sample < ms{20}))
      return;
    last_sample = now;
    sample_row row;
    row.t_ms = std::chrono::duration<double, std::milli>(now - t0).count();
    fill_outcomes(row, log);
    uint64_t frames = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < o.nodes; ++i) {
      bool frozen = frozen_now && i == (crashed + 1) % o.nodes;
      auto nh = up[i] && !frozen ? node(i) : std::nullopt;
      if (nh) {
        self->request(*nh, ms{500}, actors::status_atom::value)
            .receive(
                [&](actors::node_status& st) {
                  uint64_t f = 0;
                  uint64_t b = 0;
                  for (auto& x : st.session_details) {
                    f += x.frames_out;
                    b += x.bytes_out;
                  }
                  if (f < frames_last[i]) { // restarted
                    frames_base[i] += frames_last[i];
                    bytes_base[i] += bytes_last[i];
                  }
                  frames_last[i] = f;
                  bytes_last[i] = b;
                },
                [](caf::error&) {});
      }
      frames += frames_base[i] + frames_last[i];
      bytes += bytes_base[i] + bytes_last[i];
    }
    row.frames = frames;
    row.bytes = bytes;
    row.converged = converged;
    row.partitioned = frozen_now;
    row.crashed = std::find(up.begin(), up.end(), false) != up.end();
    csv << csv_line(row);
  };
  sample(std::nullopt, true);
  for (size_t w = 0; w < o.writes; ++w) {
    sample(std::nullopt);
    if (o.crash && o.nodes > 1 && w == o.writes / 2) {
      procs[crashed].signal(SIGKILL);
      procs[crashed].wait(ms{5000});
      up[crashed] = false;
    }
    if (o.partition && o.nodes > 1 && w == o.writes / 3) {
      sample(std::nullopt, true);
      procs[(crashed + 1) % o.nodes].signal(SIGSTOP); // frozen: cut off
      frozen_now = true;
    }
    if (o.partition && o.nodes > 1 && w == 2 * o.writes / 3) {
      sample(std::nullopt, true);
      procs[(crashed + 1) % o.nodes].signal(SIGCONT);
      frozen_now = false;
    }
    if (o.crash && o.nodes > 1 && w == 3 * o.writes / 4) {
      start(crashed);
      open(crashed);
      up[crashed] = true;
    }
    auto a = static_cast<size_t>(rng() % o.agents);
    auto rs = replicas(a);
    auto r = rs[rng() % rs.size()];
    bool frozen = o.partition && o.nodes > 1 && r == (crashed + 1) % o.nodes
                  && w >= o.writes / 3 && w < 2 * o.writes / 3;
    if (!up[r] || frozen) {
      ++log.not_issued;
      continue;
    }
    ++log.issued;
    auto e = make_write(
        o, rng, w,
        static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count()));
    self->request(insts[{a, r}], ms{10'000}, actors::learn_atom::value, e, true)
        .receive(
            [&](engram_id id) {
              acked.push_back({a, id, std::nullopt});
            },
            [&](caf::error& err) {
              classify(log, err, a);
            });
  }
  sample(std::nullopt, true);
  auto written = std::chrono::steady_clock::now();
  // Converge: every agent's replicas report the same digest.
  auto digests_equal = [&](size_t& equal) {
    equal = 0;
    for (size_t a = 0; a < o.agents; ++a) {
      std::set<uint64_t> seen;
      for (auto r : replicas(a))
        self->request(insts[{a, r}], ms{5000}, actors::query_atom::value,
                      query_filter{}, actors::code_of(consistency_level::local))
            .receive(
                [&](std::vector<memory_view>& views) {
                  uint64_t h = 0;
                  for (auto& v : views)
                    h ^= fnv1a(v.value.id.to_string()
                               + std::to_string(v.value.updated.wall_us));
                  seen.insert(h);
                },
                [&](caf::error&) {
                  seen.insert(seen.size() + 1);
                });
      equal += seen.size() == 1 ? 1 : 0;
    }
    return equal == o.agents;
  };
  size_t equal = 0;
  while (!digests_equal(equal)
         && std::chrono::steady_clock::now() - written < ms{o.heal_limit_ms}) {
    sample(equal);
    std::this_thread::sleep_for(ms{50});
  }
  sample(equal, true);
  result.csv = csv.str();
  auto converge_ms = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - written)
                         .count();
  result.converge_ms = equal == o.agents ? converge_ms : -1;
  if (equal < o.agents)
    result.failures.push_back(std::to_string(o.agents - equal)
                              + " agents' replicas still differ");
  size_t lost = 0;
  auto stored = acked;
  stored.insert(stored.end(), log.not_confirmed.begin(),
                log.not_confirmed.end());
  for (auto& wr : stored)
    for (auto r : replicas(wr.agent))
      self->request(insts[{wr.agent, r}], ms{5000}, actors::query_atom::value,
                    query_filter{}, actors::code_of(consistency_level::local))
          .receive(
              [&](std::vector<memory_view>& views) {
                if (std::none_of(views.begin(), views.end(), [&](auto& v) {
                      return v.value.id == wr.id;
                    }))
                  ++lost;
              },
              [&](caf::error&) {
                ++lost;
              });
  if (lost > 0)
    result.failures.push_back(std::to_string(lost)
                              + " stored writes (acknowledged or not "
                                "confirmed) missing from a replica");
  size_t clean = 0;
  for (auto& p : procs) {
    p.signal(SIGCONT);
    p.signal(SIGTERM);
    auto rc = p.wait(ms{10'000});
    clean += rc && *rc == 0 ? 1 : 0;
  }
  result.ok = result.failures.empty();
  auto write_ms
      = std::chrono::duration<double, std::milli>(written - t0).count();
  std::ostringstream r;
  r << "engram-swarm --real seed=" << seed << " agents=" << o.agents
    << " nodes=" << o.nodes << " (engramd processes) writes=" << o.writes
    << '\n';
  r << "faults:";
  if (o.partition && o.nodes > 1)
    r << " freeze=n" << (crashed + 1) % o.nodes << " (SIGSTOP, writes "
      << o.writes / 3 << ".." << 2 * o.writes / 3 << ")";
  if (o.crash && o.nodes > 1)
    r << " crash=n" << crashed << " (SIGKILL, restarted)";
  r << '\n';
  r << outcomes(log, o.writes) << " in " << static_cast<long>(write_ms)
    << " ms\n";
  r << "converged_after_last_write_ms=" << static_cast<long>(converge_ms)
    << " clean_shutdowns=" << clean << "/" << o.nodes << '\n';
  r << "invariants: " << (result.ok ? "ok" : "FAILED") << '\n';
  result.report = r.str();
  result.report_hash = fnv1a(result.report);
  fs::remove_all(dir);
  return result;
}

/// A fault window of a run: what, and from when to when (ms).
struct fault_window {
  std::string what;
  double from = 0;
  double to = 0;
};

// The windows in which the CSV's partitioned / crashed columns are 1.
std::vector<fault_window> fault_windows(const std::string& csv) {
  std::vector<fault_window> out;
  std::istringstream in{csv};
  std::string line;
  std::getline(in, line); // the header
  std::optional<double> since[2];
  const char* names[2] = {"partition", "node down"};
  double last_t = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls{line};
    for (std::string x; std::getline(ls, x, ',');)
      f.push_back(x);
    if (f.size() < 13)
      continue;
    last_t = std::stod(f[0]);
    for (int k = 0; k < 2; ++k) {
      bool on = f[11 + static_cast<size_t>(k)] == "1";
      if (on && !since[k])
        since[k] = last_t;
      else if (!on && since[k]) {
        out.push_back({names[k], *since[k], last_t});
        since[k].reset();
      }
    }
  }
  for (int k = 0; k < 2; ++k)
    if (since[k])
      out.push_back({names[k], *since[k], last_t});
  return out;
}

// A string for a gnuplot script, single-quoted (a quote doubled).
std::string quoted(const std::string& x) {
  std::string out = "'";
  for (auto c : x) {
    out += c;
    if (c == '\'')
      out += '\'';
  }
  return out + "'";
}

// A private scratch directory (mode 0700), removed when destroyed.
struct scratch_dir {
  std::string path;
  scratch_dir() {
    auto tmpl = (fs::temp_directory_path() / "engram-swarm-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("cannot make a temporary directory: "
                               + std::string{std::strerror(errno)});
    path = tmpl;
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
};

// Runs gnuplot on `script` (no shell), its errors to `errors`; its exit
// status, or -1 when it could not be started.
int run_gnuplot(const std::string& script, const std::string& errors) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, errors.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::string program = "gnuplot";
  std::vector<char*> args{program.data(), const_cast<char*>(script.c_str()),
                          nullptr};
  pid_t pid = 0;
  auto rc = posix_spawnp(&pid, "gnuplot", &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Plots the CSV at `csv_path` into `o.plot`: three panels sharing the time
// axis (writes; frames and kB sent; converged agents and contested
// engrams), fault windows shaded, units on every axis, legends outside the
// curves. Returns an error message when no plot was written.
std::optional<std::string> write_plot(const options& o,
                                      const std::string& csv_path,
                                      const std::string& csv, bool simulated) {
  scratch_dir scratch;
  auto script = scratch.path + "/plot.gp";
  auto errors = scratch.path + "/plot.err";
  auto data = quoted(csv_path);
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1100,1000 font ',10'\n"
     << "set output " << quoted(o.plot) << "\n"
     << "set datafile separator ','\n"
     << "set key outside right top\n"
     << "set grid\n"
     << "set lmargin 12\nset rmargin 30\n";
  int n = 0;
  for (auto& w : fault_windows(csv)) {
    ++n;
    // Translucent, so overlapping windows both show.
    auto color = w.what == "partition" ? "#e69f00" : "#d55e00";
    gp << "set object " << n << " rect from " << w.from << ", graph 0 to "
       << w.to << ", graph 1 fc rgb '" << color
       << "' fs transparent solid 0.2 noborder behind\n";
    gp << "set label " << n << " '" << w.what << "' at " << w.from << ", graph "
       << (w.what == "partition" ? "0.93" : "0.83")
       << " offset 0.5,0 font ',9'\n";
  }
  auto time_axis = simulated ? "time (simulated ms)" : "time (ms)";
  // One time range for every panel.
  double last_t = 0;
  {
    std::istringstream in{csv};
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line))
      if (!line.empty())
        last_t = std::max(last_t, std::stod(line.substr(0, line.find(','))));
  }
  gp << "set xrange [0:" << std::max(last_t, 1.0) << "]\n";
  gp << "set multiplot layout 3,1 title 'engram-swarm " << o.agents
     << " agents, " << o.nodes << " nodes, seed " << o.seed
     << " (shaded: fault windows)'\n";
  gp << "set xlabel '" << time_axis << "'\n";
  gp << "set ylabel 'writes (count)'\n"
     << "plot " << data
     << " using 1:2 with lines lw 2 title 'issued', "
        "'' using 1:3 with lines lw 2 title 'acknowledged', "
        "'' using 1:4 with lines title 'refused', "
        "'' using 1:5 with lines title 'not confirmed', "
        "'' using 1:6 with lines title 'unknown'\n";
  // Real runs measure no dropped frames (TCP) nor contested engrams.
  gp << "set ylabel 'frames (count)'\nset y2label 'kB sent'\nset y2tics\n"
     << "plot " << data << " using 1:7 with lines lw 2 title 'frames sent', "
     << (simulated ? "'' using 1:8 with lines title 'frames dropped', " : "")
     << "'' using 1:($9/1000) axes x1y2 with lines lw 2 title 'kB sent "
        "(right axis)'\n";
  if (simulated)
    gp << "set ylabel 'agents (count)'\nset y2label 'engrams (count)'\n"
       << "plot " << data
       << " using 1:10 with lines lw 2 title 'agents converged', "
          "'' using 1:11 axes x1y2 with lines title 'contested engrams (right "
          "axis)'\n";
  else
    gp << "set ylabel 'agents (count)'\nunset y2label\nunset y2tics\n"
       << "plot " << data
       << " using 1:10 with linespoints lw 2 title 'agents converged (after "
          "the last write)'\n";
  gp << "unset multiplot\n";
  {
    std::ofstream out{script};
    out << gp.str();
    if (!out)
      return "cannot write " + script;
  }
  auto rc = run_gnuplot(script, errors);
  std::ifstream in{errors};
  std::string why{std::istreambuf_iterator<char>{in}, {}};
  std::error_code ec;
  if (rc != 0 || !fs::exists(o.plot, ec) || fs::file_size(o.plot, ec) == 0) {
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    if (why.empty())
      why = rc < 0 ? "gnuplot cannot be started (is it installed?)"
                   : "gnuplot failed";
    return "no plot written to " + o.plot + ": " + why;
  }
  return std::nullopt;
}

// Writes the run's CSV (--csv, or a private temporary file for --plot
// alone) and the plot; an error message when either could not be written.
std::optional<std::string>
write_series(const options& o, const std::string& csv, bool simulated) {
  std::optional<scratch_dir> scratch;
  if (o.csv.empty())
    scratch.emplace();
  auto path = o.csv.empty() ? scratch->path + "/series.csv" : o.csv;
  {
    std::ofstream out{path};
    out << csv;
    if (!out)
      return "cannot write " + path + ": " + std::strerror(errno);
  }
  std::optional<std::string> failed;
  if (!o.plot.empty()) {
    failed = write_plot(o, path, csv, simulated);
    if (!failed)
      std::printf("plot: %s\n", o.plot.c_str());
  }
  if (!o.csv.empty())
    std::printf("csv: %s\n", o.csv.c_str());
  return failed;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"engram-swarm: a deterministic swarm simulator (same actors "
               "as production, simulated time and network)"};
  app.option_defaults()->always_capture_default();
  app.add_option("--seed", o.seed, "the seed (with --seeds: the first)");
  app.add_option("--seeds", o.seeds, "run this many seeds from --seed on")
      ->check(CLI::Range(1, 100000));
  app.add_option("--agents", o.agents, "agents")->check(CLI::Range(1, 1000000));
  app.add_option("--nodes", o.nodes, "simulated nodes")
      ->check(CLI::Range(1, 1024));
  app.add_option("--writes", o.writes, "learns over the workload");
  app.add_option("--workload-ms", o.workload_ms,
                 "simulated time the writes are spread over")
      ->check(CLI::Range(int64_t{10}, int64_t{3'600'000}));
  app.add_option("--conflict-rate", o.conflict_rate,
                 "share of writes to contended keys")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--belief-share", o.belief_share,
                 "share of writes that are beliefs (the rest facts)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--episodic-share", o.episodic_share,
                 "share of writes that are episodes (Agent scope)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--procedural-share", o.procedural_share,
                 "share of writes that are skills (Agent scope)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--instance-share", o.instance_share,
                 "share of writes kept in the writing instance")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--share-rate", o.share_rate,
                 "per write, the chance of a share (PII-redacted, accepted "
                 "with trust 0.8) between two agents")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--tell-rate", o.tell_rate,
                 "per write, the chance of a tell between two agents")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--broadcast-rate", o.broadcast_rate,
                 "per write, the chance of a broadcast in the swarm's "
                 "federation (its first eight agents)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--loss", o.loss, "frame loss probability")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--dup", o.dup, "frame duplication probability")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--delay", o.delay, "probability a frame is held back")
      ->check(CLI::Range(0.0, 0.9));
  app.add_flag("--partition", o.partition,
               "cut the nodes in halves for a while");
  app.add_flag("--one-way", o.one_way,
               "the partition loses frames one way only");
  app.add_flag("--crash", o.crash, "crash a node and restart it on its store");
  app.add_option("--skew-ms", o.skew_ms, "node clocks off by up to this")
      ->check(CLI::Range(int64_t{0}, int64_t{3'600'000}));
  app.add_option("--heal-limit-ms", o.heal_limit_ms,
                 "simulated time allowed to converge after the heal");
  app.add_option("--csv", o.csv, "write the time series (single seed)");
  app.add_option("--plot", o.plot, "write a PNG plot (gnuplot; single seed)");
  app.add_flag("--quiet", o.quiet, "no progress bar");
  bool real = false;
  app.add_flag("--real", real,
               "run the workload on engramd processes on 127.0.0.1 instead "
               "(real time and TCP; not reproducible)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (real) {
    if (o.loss > 0 || o.dup > 0 || o.delay > 0 || o.skew_ms > 0 || o.one_way
        || o.seeds > 1 || o.share_rate > 0 || o.tell_rate > 0
        || o.broadcast_rate > 0) {
      std::fprintf(
          stderr,
          "engram-swarm: --real runs on TCP between engramd "
          "processes: --loss, --dup, --delay, --skew-ms, --one-way, "
          "--share-rate, --tell-rate, --broadcast-rate and --seeds need the "
          "simulated "
          "network (--partition freezes a node, --crash kills one)\n");
      return 2;
    }
    auto engramd = (fs::path{argv[0]}.parent_path() / "engramd").string();
    if (!fs::exists(engramd)) {
      std::fprintf(stderr, "engram-swarm: engramd not found at %s\n",
                   engramd.c_str());
      return 2;
    }
    run_result r;
    try {
      r = run_real(o, o.seed, engramd);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "engram-swarm: %s\n", e.what());
      return 1;
    }
    std::printf("%s", r.report.c_str());
    for (auto& f : r.failures)
      std::printf("  invariant violated: %s\n", f.c_str());
    if (!o.csv.empty() || !o.plot.empty())
      if (auto failed = write_series(o, r.csv, false)) {
        std::fprintf(stderr, "engram-swarm: %s\n", failed->c_str());
        return 1;
      }
    return r.ok ? 0 : 1;
  }
  if (o.episodic_share + o.procedural_share > 1.0) {
    std::fprintf(stderr, "engram-swarm: --episodic-share + --procedural-share "
                         "must not exceed 1\n");
    return 2;
  }
  if (o.one_way && !o.partition) {
    std::fprintf(stderr, "engram-swarm: --one-way needs --partition\n");
    return 2;
  }
  if ((!o.csv.empty() || !o.plot.empty()) && o.seeds > 1) {
    std::fprintf(stderr, "engram-swarm: --csv and --plot take one seed\n");
    return 2;
  }
  size_t failed = 0;
  for (uint64_t seed = o.seed; seed < o.seed + o.seeds; ++seed) {
    run_result r;
    std::string csv;
    try {
      simulation sim{o, seed};
      r = sim.run();
      csv = sim.csv();
    } catch (const std::exception& e) {
      r.ok = false;
      r.failures.push_back(e.what());
    }
    if (o.seeds == 1) {
      std::printf("%sreport_hash=%s\n", r.report.c_str(),
                  hex(r.report_hash).c_str());
      if (!o.csv.empty() || !o.plot.empty())
        if (auto failed = write_series(o, csv, true)) {
          std::fprintf(stderr, "engram-swarm: %s\n", failed->c_str());
          return 1;
        }
    } else {
      std::printf("seed %llu: %s converged_after_heal_ms=%.0f report_hash=%s\n",
                  static_cast<unsigned long long>(seed), r.ok ? "ok" : "FAILED",
                  r.converge_ms, hex(r.report_hash).c_str());
    }
    if (!r.ok) {
      ++failed;
      for (auto& f : r.failures)
        std::printf("  invariant violated: %s\n", f.c_str());
      std::printf("  reproduce: %s\n", command_of(o, seed).c_str());
    }
    std::fflush(stdout);
  }
  if (o.seeds > 1)
    std::printf("%zu of %zu seeds passed\n", o.seeds - failed, o.seeds);
  return failed == 0 ? 0 : 1;
}
