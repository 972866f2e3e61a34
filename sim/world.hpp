#pragma once

// One simulation library: the node, agent, instance and session actors of
// production, in one process under CAF's test coordinator (one thread,
// simulated time, a manual wall clock), connected by seeded simulated links
// (sim/link.hpp). The deterministic actor tests (tests/actors/sim.hpp) and
// the swarm simulator (engram-swarm) both run on it: the same inputs give
// the same run.

#include "actors/node.hpp"
#include "core/hlc.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "sim/link.hpp"

namespace engram::sim {

using ms = std::chrono::milliseconds;

/// Engram's message types, the testing scheduler, no logs.
struct world_config : caf::actor_system_config {
  world_config();
};

/// A node configured for simulation: its store in `data_dir`, no fsync and
/// no background writer (a seed replays exactly), the wall clock given, and
/// session timings that let a simulated minute pass in a few thousand steps.
actors::node_config node_defaults(const std::string& id,
                                  const std::string& data_dir,
                                  std::shared_ptr<physical_clock> wall);

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

/// The actor system of a simulation, its simulated time, and the actors it
/// stops at the end.
class world {
public:
  /// The wall clock starts at `wall_start_us`.
  explicit world(uint64_t wall_start_us = 1'000'000);

  /// Stops every kept actor and runs out every timer.
  ~world();

  world(const world&) = delete;
  world& operator=(const world&) = delete;

  caf::actor_system& system() noexcept { return sys_; }

  caf::scheduler::test_coordinator& scheduler() noexcept { return sched_; }

  const std::shared_ptr<manual_clock>& wall() const noexcept { return wall_; }

  /// The simulated time advance() let pass.
  ms now() const noexcept { return now_; }

  /// Starts a node and runs what its start queued.
  expected<std::unique_ptr<actors::node>> start(actors::node_config c);

  /// Runs everything runnable now (no time passes).
  void run() { sched_.run(); }

  /// Lets `total` pass in steps of `step`: the wall clock and the actors'
  /// timers, running everything due after each step.
  void advance(ms total, ms step = ms{10});

  /// Fires pending timers and runs what they start, until none is pending
  /// or `rounds` rounds passed (no wall time passes).
  void run_timers(size_t rounds);

  /// An actor (a link, a helper) stopped when the world ends.
  void keep(caf::actor x) { kept_.push_back(std::move(x)); }

  /// A link delivering to `dest`'s node (one direction), kept.
  actors::peer_actor spawn_link(const actors::node& dest, link_params p,
                                std::shared_ptr<link_log> log);

  /// Ends `x` with `why` and runs what that starts.
  void stop(const caf::actor& x,
            caf::exit_reason why = caf::exit_reason::user_shutdown);

  /// Calls `ask(helper, i, done)` for every i < n from one helper actor and
  /// runs the system until each called `done`: the actors' timers advance
  /// in 1 ms steps (the wall clock stands still), at most 1 000 of them.
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
    stop(helper);
  }

  /// Asks every one of `dests` the same request; the answers in order
  /// (nullopt: an error or no answer).
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

  /// One request, answered while simulated time passes in 10 ms steps
  /// (wall clock and timers); bounded: 20 simulated seconds.
  template<class Result, class Handle, class... Ts>
  expected<Result> ask(const Handle& dest, Ts... xs) {
    auto result = std::make_shared<std::optional<expected<Result>>>();
    auto args = std::make_tuple(std::move(xs)...);
    auto helper = sys_.spawn([=](caf::event_based_actor* self) {
      std::apply(
          [&](auto&... ys) {
            self->request(dest, caf::infinite, ys...)
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
    keep(helper);
    sched_.run();
    for (int i = 0; i < 2000 && !*result; ++i)
      advance(ms{10});
    if (!*result)
      return make_error(errc::timeout, "no answer in 20 simulated seconds");
    return std::move(**result);
  }

  /// Stops `also` (e.g. the nodes) and every kept actor, then runs out
  /// every timer: pending delayed messages keep their senders alive, and
  /// the actor system waits for every actor before it ends.
  void shutdown(const std::vector<caf::actor>& also = {});

private:
  world_config cfg_;
  caf::actor_system sys_{cfg_};
  caf::scheduler::test_coordinator& sched_;
  std::shared_ptr<manual_clock> wall_;
  ms now_{0};
  std::vector<caf::actor> kept_;
};

} // namespace engram::sim
