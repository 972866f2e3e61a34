#pragma once

// The node actor's state (actors/node.cpp), shared with the file of its
// peers' identity proofs (actors/node_peers.cpp).

#include "actors/internal/context.hpp"
#include "actors/types.hpp"

#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace engram::actors {

/// A child that failed more often than this (over the node's life) is not
/// respawned again.
constexpr size_t max_restarts = 5;

struct hosted_agent {
  agent_actor hdl;
  std::map<std::string, session_actor> sessions; // by peer node
  size_t restarts = 0;
};

struct hosted_instance {
  instance_actor hdl;
  std::string agent_id;
  std::string instance_id;
  size_t restarts = 0;
};

struct node_state {
  node_context_ptr ctx;
  std::map<std::string, hosted_agent> agents;
  std::map<std::string, hosted_instance> instances; // by directory key
  std::map<std::string, peer_actor> peers;
  /// Directory frames from nodes not (yet) peers: a peer's first
  /// announcement can overtake the message that makes it our peer (they
  /// come from different actors). Replayed when it becomes one; bounded.
  std::map<std::string, std::vector<wire_frame>> early_frames;
  size_t respawns = 0;
  std::unique_ptr<hybrid_logical_clock> clock;
  /// Restarts of the consensus member after failures.
  size_t consensus_restarts = 0;
  uint64_t ping_nonce = 0;
  /// The ping in flight to each peer: (nonce, wall time sent).
  std::map<std::string, std::pair<uint64_t, uint64_t>> pings;
  /// Challenges given to nodes asking to be peers (TLS): each taken once,
  /// within a minute.
  std::map<std::string, std::chrono::steady_clock::time_point> challenges;
  /// What each peer signs its envelopes with (bound to its certificate by
  /// its proof), the sequence numbers accepted from it, and the highest
  /// kept in the store (a replay after a restart is refused too).
  struct peer_signer {
    std::string key;
    crypto::replay_window window;
    uint64_t kept = 0;
  };
  std::map<std::string, peer_signer> signers;
  /// Envelopes refused since the last line logged about them (at most one
  /// line a second).
  size_t refused_frames = 0;
  std::chrono::steady_clock::time_point refusal_logged;

  static inline const char* name = "engram.node";

  // Children are monitored, not linked: they stop with the node.
  ~node_state() {
    for (auto& [_, agent] : agents) {
      for (auto& [_, s] : agent.sessions)
        caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(agent.hdl, caf::exit_reason::user_shutdown);
    }
    for (auto& [_, inst] : instances)
      caf::anon_send_exit(inst.hdl, caf::exit_reason::user_shutdown);
    if (ctx) {
      if (auto group = ctx->universal->get())
        caf::anon_send_exit(*group, caf::exit_reason::user_shutdown);
      ctx->universal->set(std::nullopt);
      ctx->dir->clear();
    }
  }
};

using node_ptr = node_actor::stateful_pointer<node_state>;

/// Makes `peer` (node `peer_node`) a peer (actors/node.cpp), whose
/// envelopes are signed with `signing_key` (empty: not signed).
void register_peer(node_ptr self, const std::string& peer_node, peer_actor peer,
                   const std::string& signing_key);

/// A node asking to be a peer, with its proof (actors/node_peers.cpp).
void peer_request(node_ptr self, const std::string& peer_node, peer_actor peer,
                  const std::string& cert_pem, const std::string& nonce,
                  const std::string& signature, const std::string& signing_key);

/// Takes `key` as what `peer_node` signs its envelopes with (empty: it
/// does not sign), its replay window restored from the store when this
/// node kept one for that key.
void use_signing_key(node_ptr self, const std::string& peer_node,
                     const std::string& key);

/// True when `frame` (from a peer) is signed by the peer's key with a
/// sequence number not accepted before; refusals are logged (at most one
/// line a second) and counted. A peer that does not sign (no TLS, or
/// signatures off) passes.
bool authentic_frame(node_ptr self, const wire_frame& frame);

/// A fresh one-time challenge for a node asking to be a peer.
std::string issue_challenge(node_ptr self);

/// This node's proof of its id for a connecting node's challenge.
caf::result<std::string, std::string, std::string>
prove_identity(node_ptr self, const std::string& challenge);

} // namespace engram::actors
