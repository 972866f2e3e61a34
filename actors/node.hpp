#pragma once

#include "actors/api.hpp"
#include "actors/memory.hpp"
#include "actors/types.hpp"

#include <memory>
#include <string>

namespace caf {
class actor_system;
} // namespace caf

namespace engram::actors {

class directory;
struct node_context; // actors/internal/context.hpp
using node_context_ptr = std::shared_ptr<const node_context>;

/// A node: the process-level owner of one node actor, its database and its
/// directory. Agents and instances are spawned on demand; `open` returns
/// the memory handle an agent program uses.
class node {
public:
  /// Opens the node's database and spawns its node actor. Fails with a
  /// clear error for a bad node id or an unusable data directory.
  static expected<std::unique_ptr<node>> start(caf::actor_system& sys,
                                               node_config cfg);

  /// Stops the node actor and every actor it hosts, then closes the store.
  ~node();

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// The memory of instance `instance_id` of agent `agent_id` (spawning
  /// the agent and the instance here when needed).
  expected<memory> open(const std::string& agent_id,
                        const std::string& instance_id,
                        milliseconds timeout = milliseconds{5000});

  /// The agent actor hosting `agent_id` here (spawned when needed).
  expected<agent_actor> agent(const std::string& agent_id,
                              milliseconds timeout = milliseconds{5000});

  expected<node_status> status(milliseconds timeout = milliseconds{5000});

  /// The nodes of the cluster hosting agent `agent_id` (this one first when
  /// it does), from the directory the nodes keep among themselves.
  expected<std::vector<std::string>> locate(const std::string& agent_id,
                                            milliseconds timeout
                                            = milliseconds{5000});

  /// The actor of agent `agent_id` on a node hosting it (here when hosted,
  /// else the first reachable node): tell/ask it like a local actor.
  /// `unknown_agent` when no reachable node hosts it.
  expected<agent_actor> find(const std::string& agent_id,
                             milliseconds timeout = milliseconds{5000});

  /// Adds a peer: every hosted agent syncs with the same agent there.
  void add_peer(const std::string& peer_node, peer_actor peer,
                const std::string& signing_key = {});

  /// Stops the node (idempotent).
  void stop();

  const std::string& id() const noexcept;

  const node_actor& handle() const noexcept { return hdl_; }

  const std::shared_ptr<directory>& dir() const noexcept;

  /// The node's shared context (actors/internal/context.hpp).
  const node_context_ptr& context() const noexcept;

private:
  node(caf::actor_system& sys, node_context_ptr ctx, node_actor hdl);

  caf::actor_system* sys_;
  node_context_ptr ctx_;
  node_actor hdl_;
};

// Partitions and their replica ids (core/ids.hpp), as actors:: names too.
using engram::agent_partition;
using engram::instance_partition;
using engram::replica_of;

/// Makes two nodes in one process peers of each other.
void connect(node& x, node& y);

} // namespace engram::actors
