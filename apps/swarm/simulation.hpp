#pragma once

// The swarm simulation: N agents on M nodes of the simulation library
// (sim/world.hpp), a seeded fault schedule, the workload, and the
// invariants checked after the heal (simulation.cpp runs it).

#include "actors/node.hpp"
#include "apps/swarm/options.hpp"
#include "apps/swarm/workload.hpp"

#include <caf/actor_cast.hpp>
#include <caf/exit_reason.hpp>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "sim/world.hpp"

namespace engram::swarm {

using ms = std::chrono::milliseconds;

class simulation {
public:
  simulation(const options& o, uint64_t seed)
      : opts_(o), seed_(seed), rng_(seed) {
    dir_ = (std::filesystem::temp_directory_path()
            / ("engram-swarm-" + std::to_string(::getpid()) + "-"
               + std::to_string(seed)))
               .string();
    std::filesystem::remove_all(dir_);
  }

  ~simulation() {
    shutdown();
    std::filesystem::remove_all(dir_);
  }

  run_result run();

  std::string csv() const { return csv_.str(); }

private:
  // -- time and requests (the simulation library) ------------------------

  void advance(ms total, ms step = ms{10}) { world_.advance(total, step); }

  template<class Result, class Handle, class... Ts>
  std::vector<std::optional<Result>> gather(const std::vector<Handle>& dests,
                                            Ts... xs) {
    return world_.gather<Result>(dests, std::move(xs)...);
  }

  // The digests of the replicas `dests` hold (what they hold entirely).
  std::vector<std::optional<uint64_t>>
  gather_digests(const std::vector<actors::agent_actor>& dests) {
    auto results
        = std::make_shared<std::vector<std::optional<uint64_t>>>(dests.size());
    world_.run_requests(
        dests.size(), [&](caf::event_based_actor* self, size_t i, auto done) {
          self->request(dests[i], caf::infinite, actors::digest_atom::value,
                        std::string{})
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
    auto c = sim::node_defaults(
        node_id(i), dir_ + "/" + node_id(i),
        std::make_shared<sim::skewed_clock>(world_.wall(), skew_us_[i]));
    c.sessions.anti_entropy_interval = ms{500};
    auto n = world_.start(std::move(c));
    if (!n)
      throw std::runtime_error("cannot start " + node_id(i) + ": "
                               + n.error_value().to_string());
    nodes_[i] = std::move(*n);
  }

  // Links i → j (one direction), with its own log.
  void link(size_t i, size_t j) {
    sim::link_params p;
    p.loss = opts_.loss;
    p.duplication = opts_.dup;
    p.delay = opts_.delay;
    p.seed = rng_();
    auto log = std::make_shared<sim::link_log>();
    log->keep_entries = false; // counters only: runs are long
    auto hdl = world_.spawn_link(*nodes_[j], p, log);
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
    world_.stop(caf::actor_cast<caf::actor>(nodes_[i]->handle()),
                caf::exit_reason::kill);
    world_.run_timers(100);
    nodes_[i].reset();
    up_[i] = false;
  }

  void restart(size_t i) {
    start_node(i);
    up_[i] = true;
    for (auto& [edge, l] : links_) {
      if (edge.second == i) { // links into i: a new destination
        caf::anon_send_exit(caf::actor_cast<caf::actor>(l.hdl),
                            caf::exit_reason::user_shutdown);
        link(edge.first, i);
      } else if (edge.first == i) {
        nodes_[i]->add_peer(node_id(edge.second), l.hdl);
      }
    }
    world_.run();
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
    row.t_ms = static_cast<double>(world_.now().count());
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
    std::vector<caf::actor> stop;
    for (auto& [_, l] : links_)
      stop.push_back(caf::actor_cast<caf::actor>(l.hdl));
    for (auto& n : nodes_)
      if (n)
        stop.push_back(caf::actor_cast<caf::actor>(n->handle()));
    if (driver_)
      stop.push_back(driver_);
    world_.shutdown(stop);
    nodes_.clear();
    links_.clear();
  }

  struct link_entry {
    actors::peer_actor hdl;
    std::shared_ptr<sim::link_log> log;
  };

  const options& opts_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::string dir_;
  sim::world world_{1'700'000'000'000'000ULL};
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
};

} // namespace engram::swarm
