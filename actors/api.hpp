#pragma once

// The plain data of the actor runtime's API: configuration and results.
// No CAF here; `actors/types.hpp` makes these types messages.

#include "actors/tls.hpp"
#include "core/conflict.hpp"
#include "core/engram.hpp"
#include "core/hlc.hpp"
#include "core/placement.hpp"
#include "core/replica.hpp"
#include "core/resolution.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crypto/aead.hpp"

namespace engram::actors {

using std::chrono::milliseconds;

/// How an agent's memory syncs with the same agent on other nodes (the
/// spec's `SyncConfig`).
struct sync_config {
  /// The scope to sync: Agent (the agent's shared memory) by default.
  scope_kind scope = scope_kind::agent;
  /// Periodic anti-entropy interval (0: keep the current setting).
  milliseconds interval{0};
  /// Push every change (debounced) as it happens.
  bool on_change = true;
  /// How long `sync` waits for the peers.
  milliseconds timeout{5000};
};

/// The spec's `SyncResult`: Clean{synced_count} when nothing conflicted,
/// Merged{merged_count, conflicts} when conflicts were detected and handled.
struct sync_result {
  enum class outcome : uint8_t { clean, merged };
  outcome kind = outcome::clean;
  /// Clean: versions exchanged with the peers (sent and received).
  size_t synced_count = 0;
  /// Merged: versions received and merged.
  size_t merged_count = 0;
  /// Merged: the conflicts detected (resolved per config, or pending).
  std::vector<conflict> conflicts;
  /// Peers that took part.
  size_t peers = 0;

  bool clean() const noexcept { return kind == outcome::clean; }
};

/// The timing of sync sessions.
struct session_settings {
  /// Changes are held this long after the first of them, then pushed
  /// together (debounce). A replication (a write at Quorum or All), a sync
  /// or an answer to the peer sends what is held at once.
  milliseconds push_delay{5};
  /// Push changes as they happen (else only anti-entropy carries them).
  bool on_change = true;
  /// Unacknowledged frames are resent after this (doubling per attempt).
  milliseconds retransmit_after{200};
  /// Periodic anti-entropy (digest exchange).
  milliseconds anti_entropy_interval{1000};
  /// A quiet peer is pinged after this.
  milliseconds ping_interval{1000};
  /// A peer silent for this long is reported unreachable.
  milliseconds peer_timeout{5000};
  /// The timer resolution of a session.
  milliseconds tick{50};
  /// Frames in flight per session; beyond, changes wait (and are batched):
  /// a slow peer is throttled to what it acknowledges.
  size_t max_outstanding = 64;
  /// Versions waiting to be pushed per session; beyond, they are dropped in
  /// favour of the next anti-entropy round (which sends what the peer
  /// misses): memory per session stays bounded, nothing is lost.
  size_t max_pending_versions = 65'536;
  /// Engrams read from the replica per piece of a large delta streaming to
  /// a peer (an anti-entropy answer): the next piece is read once fewer
  /// versions than this wait to be sent, so a sender holds about two pieces
  /// decoded whatever the delta's size. The first piece is a quarter of
  /// this: its frames leave at once.
  size_t stream_piece = 8192;
};

/// How an agent is hosted on a node (the spec's per-agent `MemoryConfig`).
struct agent_config {
  std::string agent_id;
  /// Where `learn` puts each memory type.
  scope_defaults default_scopes;
  /// How the agent's replicas merge and resolve conflicts: CRDT strategy
  /// per memory type and `conflict_resolution` per conflict kind. A
  /// conflict handler is configured as `escalate{handler}`; it runs in the
  /// agent actor.
  replica_config replication;
  /// Answers `ask`s from other agents (run in the agent actor on the node
  /// that receives the question; quick, no blocking). Without one, an ask
  /// is refused with a clear error.
  std::function<std::string(const std::string& from,
                            const std::string& question)>
      on_ask;
  /// Decides the belief conflicts of federations this agent leads when
  /// their policy is Escalate (called on the leader's node, in the
  /// federation's actor; its resolution syncs to every member). Without
  /// `on_conflict`, the conflict waits for the leader's answer.
  conflict_handler federation_conflicts;
  /// Without `on_ask`: answer from the agent's memory (the value of the
  /// fact keyed by the question, else its beliefs about that subject), as
  /// engramd does for the agents it hosts. Off: such asks are refused.
  bool answer_from_memory = false;
  /// Messages `tell` and `broadcast` leave in the agent's inbox until read;
  /// beyond this many, a tell is refused (the sender learns it).
  size_t inbox_capacity = 10'000;
};

/// What merging a batch from a peer did (the agent actor's answer to its
/// sessions).
struct merge_summary {
  /// Versions added.
  size_t applied = 0;
  /// Conflicts detected.
  std::vector<conflict> conflicts;
  /// The ids of those this replica kept open (forked, or waiting for an
  /// answer). The others were settled by the configured resolution, which
  /// every replica applies alike.
  std::vector<uint64_t> open;
};

/// What a sync session reports (observability, tests).
struct session_stats {
  std::string peer_node;
  std::string agent;
  bool established = false;
  /// Frames received / sent (retransmissions included).
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  /// Batches from the peer merged into the replica (each exactly once).
  uint64_t merged = 0;
  /// Retransmitted or duplicated batches recognised and not merged again.
  uint64_t duplicates = 0;
  /// Batches refused (undecodable, or the agent could not merge them).
  uint64_t refused = 0;
  uint64_t retransmits = 0;
  /// Frames waiting for the peer's acknowledgement.
  uint64_t outstanding = 0;
  /// Versions waiting to be pushed, and how often the pending bound was
  /// hit (the changes then left to anti-entropy).
  uint64_t pending_versions = 0;
  uint64_t pending_overflows = 0;
  /// Engrams of a delta streaming to the peer not read from the replica
  /// yet (it is read in pieces as the peer acknowledges).
  uint64_t unread_engrams = 0;
  /// Anti-entropy rounds started, and those that found the states equal.
  uint64_t rounds = 0;
  uint64_t idle_rounds = 0;
  /// Envelope bytes sent and received.
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

/// One observable event: its name and key=value fields (node, peer, agent,
/// counts). Sessions report being established, lost and repaired; never
/// per message.
using event_fields = std::vector<std::pair<std::string, std::string>>;
using event_handler
    = std::function<void(const std::string& event, const event_fields&)>;

/// How a node runs.
/// The consensus group of the Universal scope (Raft): which nodes hold it,
/// and its timings (the spec's ConsensusProtocol::Raft{election_timeout,
/// heartbeat_interval}).
struct consensus_config {
  /// The node ids that hold the Universal scope (its voters); empty: no
  /// Universal scope in this cluster. Every member lists the same nodes.
  /// Read at the group's first start (later changes of the list are not
  /// applied to a running group).
  std::vector<std::string> members;
  /// A follower that hears no leader for this long (randomised up to twice
  /// it) starts an election.
  std::chrono::milliseconds election_timeout{1000};
  /// How often the leader sends heartbeats; at most a third of the
  /// election timeout.
  std::chrono::milliseconds heartbeat_interval{100};
};

/// What a write with consensus needs (the spec's QuorumConfig).
struct quorum_config {
  /// Members that must be reachable for the write to be tried (0: a
  /// majority of the group); fewer: `unavailable` at once.
  uint32_t min_nodes = 0;
  /// The write fails with `timeout` when it is not committed and applied by
  /// then (its outcome is then unknown).
  std::chrono::milliseconds timeout{5000};
};

struct node_config {
  /// Unique among the nodes that sync with each other.
  std::string node_id;
  /// This node's certificate, key, CA and revocation list: peers must prove
  /// their node id with a certificate of the same CA before they are peers
  /// (none: peers are taken at their word — in-process nodes, --insecure).
  tls_config tls;
  /// The embedded store's directory (one RocksDB database per node, one
  /// partition per hosted replica).
  std::string data_dir;
  /// Write every acknowledged change with fdatasync (see store_options).
  bool sync_writes = true;
  /// Encryption at rest: the master key of the node's store (see
  /// `persistence::store_options::master_key`); none keeps it plain.
  std::optional<crypto::key256> master_key;
  /// With TLS, sign every envelope sent to a peer (Ed25519, a key of the
  /// process's run bound to the certificate) and accept from a peer only
  /// envelopes it signed, each sequence number once (a replay window per
  /// peer, kept in the store). Off only to measure what it costs.
  bool sign_envelopes = true;
  /// End-to-end encryption required (the spec's E2EEncryption): a tell
  /// whose text is not sealed to its recipient (e2e::seal) and a share not
  /// sealed to it (federation::seal_share) are refused by the sender's
  /// node, so neither reaches another node in the clear; broadcasts, which
  /// are not sealed yet, are refused too.
  bool e2e_required = false;
  /// Write the agents' merged batches on a thread of their own (the node's
  /// write queue): an agent merges the next frame while the last one is
  /// written and synced, and acknowledges each once it is durable. Off,
  /// each is written on the agent's thread before it goes on: what a
  /// deterministic simulation (CAF's test coordinator) needs.
  bool background_writes = true;
  session_settings sessions;
  /// The node ids of the cluster, which placement ranks (empty: this node
  /// and the peers it knows, as they come and go).
  std::vector<std::string> members;
  /// How each agent's memory is replicated: strategy, factor, consistency
  /// of writes and reads. The default (Symmetric, every node, One) keeps an
  /// agent's memory on every node hosting the agent.
  replication_config replication;
  /// How each agent's memory is split into partitions placed on nodes.
  partition_config partitioning;
  /// The Universal scope's consensus group.
  consensus_config consensus;
  /// The configuration of an agent hosted here, by agent id (default:
  /// the spec's defaults).
  std::function<agent_config(const std::string& agent_id)> agent_defaults;
  /// Receives the node's events (engramd logs them; default: none). Called
  /// from actor threads: must be thread-safe and quick.
  event_handler on_event;
  /// Wall-clock source of the node's hybrid logical clocks (default: the
  /// system clock; simulations inject a manual one).
  std::shared_ptr<physical_clock> wall_clock;
  /// The largest clock offset tolerated between nodes (CockroachDB's
  /// max-offset). Nodes measure each other's clocks (pings carry wall
  /// time); with a peer known to be beyond it a node neither sends nor
  /// merges sync frames, and a node beyond it from most of its peers
  /// refuses writes (`clock_offset`), until the clocks agree again: a
  /// clock running ahead would win every newest-wins conflict. 1 ms to 1 h.
  milliseconds max_clock_offset{500};
};

/// A peer's clock as a node last measured it.
struct clock_offset {
  std::string peer;
  /// The peer's clock minus this node's, in µs.
  int64_t offset_us = 0;
  /// The round trip of the measurement, in µs (the offset's error is at
  /// most half of it).
  int64_t rtt_us = 0;
};

/// What a node reports about itself.
struct node_status {
  std::string node_id;
  size_t agents = 0;
  size_t instances = 0;
  size_t sessions = 0;
  size_t respawns = 0;
  /// Every sync session's figures.
  std::vector<session_stats> session_details;
  /// Each peer's clock as last measured.
  std::vector<clock_offset> clock_offsets;
  /// Why this node refuses writes because of its clock (empty: it does not).
  std::string clock_refusal;
  /// The peers this node knows, and which of them it reaches now.
  std::vector<std::string> peers_up{};
  std::vector<std::string> peers_down{};
};

} // namespace engram::actors
