#pragma once

// Deterministic actor tests: CAF's test coordinator runs every actor on
// this thread in a fixed order with simulated time; frames between nodes go
// through link actors that drop, duplicate and delay them with a seeded RNG.

#include "actors/node.hpp"
#include "messages/envelope.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/message_view.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "fixture.hpp"
#include "sim/world.hpp"

namespace engram::test {

using sim::link_impl;
using sim::link_log;
using sim::link_params;

/// The simulation library's world (sim/world.hpp) with the tests' nodes.
struct sim_fixture {
  temp_dir dir;
  sim::world world;
  caf::actor_system& sys = world.system();
  caf::scheduler::test_coordinator& sched = world.scheduler();
  caf::scoped_actor self{sys, true};
  std::shared_ptr<manual_clock> wall = world.wall();
  std::vector<std::unique_ptr<actors::node>> nodes;
  std::vector<caf::actor> others; // links, helpers: stopped at the end

  ~sim_fixture() {
    std::vector<caf::actor> stop;
    for (auto& n : nodes)
      stop.push_back(caf::actor_cast<caf::actor>(n->handle()));
    stop.insert(stop.end(), others.begin(), others.end());
    world.shutdown(stop);
    nodes.clear();
  }

  actors::node&
  start(const std::string& id,
        std::function<void(actors::session_settings&)> tune = nullptr,
        std::function<void(actors::node_config&)> configure = nullptr) {
    auto c = sim::node_defaults(id, dir.sub(id), wall);
    if (tune)
      tune(c.sessions);
    if (configure)
      configure(c);
    auto n = world.start(std::move(c));
    if (!n)
      BOOST_FAIL(n.error_value().to_string());
    nodes.push_back(std::move(*n));
    return *nodes.back();
  }

  /// Lets simulated time pass in steps, running everything due.
  void advance(std::chrono::milliseconds total,
               std::chrono::milliseconds step = std::chrono::milliseconds{10}) {
    world.advance(total, step);
  }

  /// Sends a request and runs the system (advancing simulated time when
  /// nothing else is left to run) until it is answered; bounded.
  template<class Result, class Handle, class... Ts>
  expected<Result> ask(const Handle& dest, Ts... xs) {
    return world.ask<Result>(dest, std::move(xs)...);
  }

  actors::instance_actor instance(actors::node& n, const std::string& agent,
                                  const std::string& inst) {
    return ok(ask<actors::instance_actor>(
        n.handle(), actors::instance_atom::value, agent, inst));
  }

  /// Connects two nodes through a pair of links (one per direction).
  std::shared_ptr<link_log> link(actors::node& x, actors::node& y,
                                 link_params p = {}) {
    auto log = std::make_shared<link_log>();
    auto to_y = world.spawn_link(y, p, log);
    auto q = p;
    q.seed = p.seed * 7919 + 1;
    auto to_x = world.spawn_link(x, q, log);
    x.add_peer(y.id(), to_y);
    y.add_peer(x.id(), to_x);
    sched.run();
    return log;
  }

  expected<engram_id> learn(const actors::instance_actor& inst,
                            engram_record value) {
    return ask<engram_id>(inst, actors::learn_atom::value, std::move(value),
                          false);
  }

  // What this node's replicas hold (a Local read: the tests check what
  // sync brought here, not what another replica would answer).
  std::vector<memory_view> query(const actors::instance_actor& inst,
                                 query_filter filter = {}) {
    return ok(ask<std::vector<memory_view>>(
        inst, actors::query_atom::value, std::move(filter),
        actors::code_of(consistency_level::local)));
  }

  actors::node_status status(actors::node& n) {
    return ok(ask<actors::node_status>(n.handle(), actors::status_atom::value));
  }
};

} // namespace engram::test
