#pragma once

// Deterministic actor tests: CAF's test coordinator runs every actor on
// this thread in a fixed order with simulated time; frames between nodes go
// through link actors that drop, duplicate and delay them with a seeded RNG.

#include "actors/node.hpp"
#include "actors/sim_link.hpp"
#include "messages/envelope.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/message_view.hpp>
#include <caf/scheduler/test_coordinator.hpp>
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

namespace engram::test {

using actors::link_impl;
using actors::link_log;
using actors::link_params;

struct sim_config : engram_config {
  sim_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console", caf::atom("none"));
  }
};

struct sim_fixture {
  temp_dir dir;
  sim_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched
      = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  caf::scoped_actor self{sys, true};
  std::shared_ptr<manual_clock> wall
      = std::make_shared<manual_clock>(1'000'000);
  std::vector<std::unique_ptr<actors::node>> nodes;
  std::vector<caf::actor> others; // links, helpers: stopped at the end

  ~sim_fixture() {
    for (auto& n : nodes)
      caf::anon_send_exit(n->handle(), caf::exit_reason::user_shutdown);
    for (auto& x : others)
      caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
    // Run out every timer too: pending delayed messages keep their senders
    // alive, and the actor system waits for every actor before it ends.
    sched.run();
    for (int i = 0; i < 10'000 && sched.has_pending_timeout(); ++i) {
      sched.trigger_timeouts();
      sched.run();
    }
    nodes.clear();
  }

  actors::node&
  start(const std::string& id,
        std::function<void(actors::session_settings&)> tune = nullptr,
        std::function<void(actors::node_config&)> configure = nullptr) {
    actors::node_config c;
    c.node_id = id;
    c.data_dir = dir.sub(id);
    c.sync_writes = false;
    c.background_writes = false; // deterministic
    c.wall_clock = wall;
    c.sessions.push_delay = std::chrono::milliseconds{5};
    c.sessions.retransmit_after = std::chrono::milliseconds{100};
    c.sessions.anti_entropy_interval = std::chrono::milliseconds{1000};
    c.sessions.ping_interval = std::chrono::milliseconds{1000};
    c.sessions.peer_timeout = std::chrono::milliseconds{60'000};
    c.sessions.tick = std::chrono::milliseconds{50};
    if (tune)
      tune(c.sessions);
    if (configure)
      configure(c);
    auto n = actors::node::start(sys, std::move(c));
    if (!n)
      BOOST_FAIL(n.error_value().to_string());
    nodes.push_back(std::move(*n));
    sched.run();
    return *nodes.back();
  }

  /// Lets simulated time pass in steps, running everything due.
  void advance(std::chrono::milliseconds total,
               std::chrono::milliseconds step = std::chrono::milliseconds{10}) {
    for (auto t = std::chrono::milliseconds{0}; t < total; t += step) {
      wall->advance(static_cast<uint64_t>(step.count()) * 1000);
      sched.advance_time(step);
      sched.run();
    }
  }

  /// Sends a request and runs the system (advancing simulated time when
  /// nothing else is left to run) until it is answered; bounded.
  template<class Result, class Handle, class... Ts>
  expected<Result> ask(const Handle& dest, Ts... xs) {
    auto result = std::make_shared<std::optional<expected<Result>>>();
    auto args = std::make_tuple(std::move(xs)...);
    auto helper_hdl = sys.spawn([=](caf::event_based_actor* helper) {
      std::apply(
          [&](auto&... ys) {
            helper->request(dest, caf::infinite, ys...)
                .then(
                    [=](Result& r) {
                      *result = expected<Result>{std::move(r)};
                    },
                    [=](caf::error& e) {
                      *result = expected<Result>{actors::from_caf(e)};
                    });
          },
          args);
    });
    others.push_back(helper_hdl);
    sched.run();
    for (int i = 0; i < 2000 && !*result; ++i)
      advance(std::chrono::milliseconds{10});
    if (!*result)
      return make_error(errc::timeout, "no answer in 20 simulated seconds");
    return std::move(**result);
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
    auto px = caf::actor_cast<actors::peer_actor>(x.handle());
    auto py = caf::actor_cast<actors::peer_actor>(y.handle());
    auto to_y = sys.spawn(link_impl, py, p, log);
    auto q = p;
    q.seed = p.seed * 7919 + 1;
    auto to_x = sys.spawn(link_impl, px, q, log);
    others.push_back(caf::actor_cast<caf::actor>(to_y));
    others.push_back(caf::actor_cast<caf::actor>(to_x));
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
