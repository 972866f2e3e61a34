#pragma once

// Deterministic actor tests: CAF's test coordinator runs every actor on
// this thread in a fixed order with simulated time; frames between nodes go
// through link actors that drop, duplicate and delay them with a seeded RNG.

#include "actors/node.hpp"
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

/// What a link saw: every frame handed to it, by direction.
struct link_log {
  struct entry {
    std::string from;
    std::string agent;
    std::string type;
    uint64_t sequence = 0;
    bool delivered = true;
  };
  std::vector<entry> entries;
  size_t dropped = 0;
  size_t duplicated = 0;
  /// While set, the link drops everything (a partition).
  bool partitioned = false;

  /// The message types sent by `from`, in order.
  std::vector<std::string> types_from(const std::string& from) const {
    std::vector<std::string> out;
    for (auto& e : entries)
      if (e.from == from)
        out.push_back(e.type);
    return out;
  }
};

struct link_params {
  double loss = 0;
  double duplication = 0;
  /// Probability that a frame is held back (delivered after later ones).
  double delay = 0;
  std::chrono::milliseconds max_delay{100};
  /// Every frame takes this long (a slow or distant peer).
  std::chrono::milliseconds latency{0};
  uint64_t seed = 1;
};

struct link_state {
  std::mt19937_64 rng;
  static inline const char* name = "engram.test.link";
};

inline actors::peer_actor::behavior_type
link_impl(actors::peer_actor::stateful_pointer<link_state> self,
          actors::peer_actor dest, link_params p,
          std::shared_ptr<link_log> log) {
  self->state.rng.seed(p.seed);
  // Whatever else a node asks its peer (an agent's handle, ...) goes
  // straight through while the link is up, and fails while partitioned.
  self->set_default_handler(
      [dest, log](caf::scheduled_actor* s,
                  caf::message_view& x) -> caf::result<caf::message> {
        if (log->partitioned)
          return caf::sec::request_receiver_down;
        auto rp = s->make_response_promise();
        rp.delegate(caf::actor_cast<caf::actor>(dest),
                    x.move_content_to_message());
        return caf::delegated<caf::message>{};
      });
  return {
      [=](actors::wire_frame& frame) {
        auto& rng = self->state.rng;
        std::uniform_real_distribution<double> coin{0, 1};
        link_log::entry e;
        e.from = frame.from_node;
        e.agent = frame.agent;
        if (auto env = messages::decode_envelope(frame.envelope)) {
          e.type = v1::MessageType_Name(env->type());
          if (env->type() == v1::SYNC_RESPONSE) {
            v1::SyncResponse r;
            if (r.ParseFromString(env->payload()))
              e.sequence = r.sequence();
          }
        }
        if (log->partitioned || coin(rng) < p.loss) {
          e.delivered = false;
          log->entries.push_back(e);
          ++log->dropped;
          return;
        }
        log->entries.push_back(e);
        int copies = coin(rng) < p.duplication ? 2 : 1;
        if (copies == 2)
          ++log->duplicated;
        for (int i = 0; i < copies; ++i) {
          if (coin(rng) < p.delay) {
            std::uniform_int_distribution<int> ms{
                1, static_cast<int>(p.max_delay.count())};
            self->delayed_send(
                dest, p.latency + std::chrono::milliseconds{ms(rng)}, frame);
          } else if (p.latency.count() > 0) {
            self->delayed_send(dest, p.latency, frame);
          } else {
            self->send(dest, frame);
          }
        }
      },
  };
}

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

  std::vector<memory_view> query(const actors::instance_actor& inst,
                                 query_filter filter = {}) {
    return ok(ask<std::vector<memory_view>>(inst, actors::query_atom::value,
                                            std::move(filter)));
  }

  actors::node_status status(actors::node& n) {
    return ok(ask<actors::node_status>(n.handle(), actors::status_atom::value));
  }
};

} // namespace engram::test
