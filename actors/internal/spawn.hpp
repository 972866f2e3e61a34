#pragma once

// Spawning the node's child actors. Each is spawned by `parent` (the node,
// their supervisor) and monitored by it.

#include "actors/internal/context.hpp"
#include "actors/types.hpp"

#include <string>

namespace caf {
class actor_system;
class local_actor;
} // namespace caf

namespace engram::actors {

/// The node actor: hosts and supervises the node's agents, instances and
/// sessions, routes peers' frames (actors/node.cpp).
node_actor spawn_node(caf::actor_system& sys, node_context_ptr ctx);

/// An agent actor: loads the agent's replica from its partition
/// ("a/<agent>") and serves it.
agent_actor spawn_agent(caf::local_actor* parent, node_context_ptr ctx,
                        const std::string& agent_id);

/// An instance actor: loads its Instance-scope memory from its partition
/// ("i/<agent>/<instance>"), which keeps no delta log (it never syncs).
instance_actor spawn_instance(caf::local_actor* parent, node_context_ptr ctx,
                              const std::string& agent_id,
                              const std::string& instance_id);

/// A sync session between this node's replica of `agent_id` and the same
/// agent's replica on `peer_node`, reached through `peer`.
session_actor spawn_session(caf::local_actor* parent, node_context_ptr ctx,
                            const std::string& agent_id,
                            const std::string& peer_node, peer_actor peer,
                            agent_actor agent);

/// The node's member of the Universal scope's consensus group
/// (actors/consensus.cpp): the Raft machine over the mesh, its durable log
/// in the node's store, the facts it applied.
consensus_actor spawn_consensus(caf::local_actor* parent, node_context_ptr ctx);

} // namespace engram::actors
