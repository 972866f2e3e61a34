#include "actors/memory.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <chrono>
#include <thread>

namespace engram::actors {

namespace {

/// How often a call is retried while the supervisor respawns the actor.
constexpr int respawn_attempts = 50;
constexpr auto respawn_pause = std::chrono::milliseconds{10};

} // namespace

memory::memory(caf::actor_system& sys, std::shared_ptr<directory> dir,
               std::string agent_id, std::string instance_id,
               milliseconds timeout)
    : sys_(&sys), dir_(std::move(dir)), agent_id_(std::move(agent_id)),
      instance_id_(std::move(instance_id)),
      key_(directory::instance_key(agent_id_, instance_id_)), timeout_(timeout),
      self_(std::make_unique<caf::scoped_actor>(sys)) {
  // nop
}

memory::memory(memory&&) noexcept = default;
memory& memory::operator=(memory&&) noexcept = default;
memory::~memory() = default;

expected<instance_actor> memory::actor() const {
  if (auto hdl = dir_->instance(key_))
    return *hdl;
  return make_error(errc::unknown_agent, "no instance " + instance_id_
                                             + " of agent " + agent_id_
                                             + " runs on this node");
}

template<class Result, class... Ts>
expected<Result> memory::blocking(Ts&&... xs) {
  for (int attempt = 0;; ++attempt) {
    auto inst = actor();
    if (!inst)
      return inst.error_value();
    expected<Result> result = make_error(errc::timeout, "no answer");
    (*self_)
        ->request(*inst, timeout_, xs...)
        .receive(
            [&](Result& r) {
              result = std::move(r);
            },
            [&](caf::error& e) {
              result = from_caf(e);
            });
    // The instance (or its agent) failed and is being respawned: the same
    // handle retries against the new actor.
    if (!result && result.error_value().code == errc::unavailable
        && attempt < respawn_attempts) {
      std::this_thread::sleep_for(respawn_pause);
      continue;
    }
    return result;
  }
}

expected<engram_id> memory::learn(engram_record value) {
  return blocking<engram_id>(learn_atom::value, std::move(value), false);
}

expected<engram_id> memory::learn_scoped(engram_record value,
                                         memory_scope scope) {
  value.scope = std::move(scope);
  return blocking<engram_id>(learn_atom::value, std::move(value), true);
}

expected<std::vector<memory_view>> memory::query(const query_filter& filter) {
  return blocking<std::vector<memory_view>>(query_atom::value, filter);
}

expected<std::vector<memory_view>> memory::query(const query_filter& filter,
                                                 consistency_level level) {
  return blocking<std::vector<memory_view>>(query_atom::value, filter,
                                            code_of(level));
}

expected<engram_id> memory::forget(const engram_id& id, std::string reason) {
  return blocking<engram_id>(forget_atom::value, id, std::move(reason));
}

expected<engram_id> memory::archive(const engram_id& id) {
  return blocking<engram_id>(archive_atom::value, id);
}

expected<sync_result> memory::sync(const sync_config& cfg) {
  return blocking<sync_result>(sync_atom::value, cfg);
}

expected<std::vector<pending_question>> memory::pending() {
  return blocking<std::vector<pending_question>>(pending_atom::value);
}

expected<engram_id> memory::answer(uint64_t conflict_id,
                                   const std::string& option) {
  return blocking<engram_id>(answer_atom::value, conflict_id, option);
}

} // namespace engram::actors
