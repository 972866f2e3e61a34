#include "sim/world.hpp"

#include "actors/types.hpp"

#include <caf/atom.hpp>

namespace engram::sim {

world_config::world_config() {
  actors::register_types(*this);
  set("scheduler.policy", caf::atom("testing"));
  set("logger.file-verbosity", caf::atom("quiet"));
  set("logger.console", caf::atom("none"));
}

actors::node_config node_defaults(const std::string& id,
                                  const std::string& data_dir,
                                  std::shared_ptr<physical_clock> wall) {
  actors::node_config c;
  c.node_id = id;
  c.data_dir = data_dir;
  c.sync_writes = false;
  c.background_writes = false; // deterministic
  c.wall_clock = std::move(wall);
  c.sessions.push_delay = ms{5};
  c.sessions.retransmit_after = ms{100};
  c.sessions.anti_entropy_interval = ms{1000};
  c.sessions.ping_interval = ms{1000};
  c.sessions.peer_timeout = ms{60'000};
  c.sessions.tick = ms{50};
  return c;
}

world::world(uint64_t wall_start_us)
    : sched_(dynamic_cast<caf::scheduler::test_coordinator&>(sys_.scheduler())),
      wall_(std::make_shared<manual_clock>(wall_start_us)) {
  // nop
}

world::~world() { shutdown(); }

expected<std::unique_ptr<actors::node>> world::start(actors::node_config c) {
  auto n = actors::node::start(sys_, std::move(c));
  sched_.run();
  return n;
}

void world::advance(ms total, ms step) {
  for (ms t{0}; t < total; t += step) {
    wall_->advance(static_cast<uint64_t>(step.count()) * 1000);
    sched_.advance_time(step);
    sched_.run();
    now_ += step;
  }
}

void world::run_timers(size_t rounds) {
  for (size_t i = 0; i < rounds && sched_.has_pending_timeout(); ++i) {
    sched_.trigger_timeouts();
    sched_.run();
  }
}

actors::peer_actor world::spawn_link(const actors::node& dest, link_params p,
                                     std::shared_ptr<link_log> log) {
  auto to = caf::actor_cast<actors::peer_actor>(dest.handle());
  auto hdl = sys_.spawn(link_impl, to, p, std::move(log));
  keep(caf::actor_cast<caf::actor>(hdl));
  return hdl;
}

void world::stop(const caf::actor& x, caf::exit_reason why) {
  caf::anon_send_exit(x, why);
  sched_.run();
}

void world::shutdown(const std::vector<caf::actor>& also) {
  for (auto& x : also)
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  for (auto& x : kept_)
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  kept_.clear();
  sched_.run();
  run_timers(10'000);
}

} // namespace engram::sim
