#pragma once

// What every actor of one node shares: its configuration, its database and
// the directory of live actors (which the supervisor updates on respawn).

#include "actors/api.hpp"
#include "actors/types.hpp"
#include "persistence/store.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace engram::actors {

/// The node's directory: agent id → agent actor, instance key → instance
/// actor. Thread-safe; memory handles read it on every call so that they
/// follow an actor the supervisor respawned.
class directory {
public:
  std::optional<agent_actor> agent(const std::string& agent_id) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = agents_.find(agent_id);
    if (i == agents_.end())
      return std::nullopt;
    return i->second;
  }

  std::optional<instance_actor> instance(const std::string& key) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = instances_.find(key);
    if (i == instances_.end())
      return std::nullopt;
    return i->second;
  }

  void put(const std::string& agent_id, agent_actor hdl) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    agents_[agent_id] = std::move(hdl);
  }

  void put_instance(const std::string& key, instance_actor hdl) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    instances_[key] = std::move(hdl);
  }

  void erase(const std::string& agent_id) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    agents_.erase(agent_id);
  }

  void erase_instance(const std::string& key) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    instances_.erase(key);
  }

  void clear() {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    agents_.clear();
    instances_.clear();
  }

  /// The key of an instance of an agent.
  static std::string instance_key(const std::string& agent_id,
                                  const std::string& instance_id) {
    return agent_id + '/' + instance_id;
  }

private:
  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, agent_actor> agents_;
  std::unordered_map<std::string, instance_actor> instances_;
};

/// Shared by the actors of one node.
struct node_context {
  node_config config;
  std::shared_ptr<persistence::database> db;
  std::shared_ptr<directory> dir;

  /// The configuration of an agent hosted here.
  agent_config agent(const std::string& agent_id) const {
    agent_config result;
    if (config.agent_defaults)
      result = config.agent_defaults(agent_id);
    result.agent_id = agent_id;
    return result;
  }
};

using node_context_ptr = std::shared_ptr<const node_context>;

} // namespace engram::actors
