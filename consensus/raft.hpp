#pragma once

// The Raft state machine (Ongaro & Ousterhout; the structure follows etcd's
// raft): messages in (`step`), time in (`tick`), messages and log changes
// out (collected by raw_node into a `ready`). No I/O, no clock, no global
// randomness: the election jitter comes from a seeded generator in the
// config, so a run is a function of its inputs.
//
// Features: leader election with pre-vote and check-quorum; log replication
// with batching (max_bytes_per_message), pipelining and flow control (a
// bounded window of appends in flight per follower, a bound on uncommitted
// bytes); snapshots and their installation; membership changes by joint
// consensus; learners; leader transfer; ReadIndex reads (and lease reads,
// opt-in).

#include <deque>
#include <map>
#include <string>

#include "consensus/conf_changer.hpp"
#include "consensus/progress.hpp"
#include "consensus/raft_log.hpp"

namespace engram::consensus {

/// How the leader confirms a read.
enum class read_mode : uint8_t {
  /// ReadIndex: the leader records its commit index and confirms with a
  /// round of heartbeats that a quorum still follows it. Linearizable with
  /// no clock assumption.
  safe,
  /// Lease: the leader answers from its commit index without a round
  /// trip while its lease runs: an election timeout (minus
  /// `lease_margin_ticks`) after sending the latest heartbeat round a quorum
  /// answered — followers ignore campaigns for an election timeout after
  /// hearing their leader (check-quorum, required), and members that just
  /// started for their first one. Outside the lease (and while leadership
  /// is handed over) reads fall back to ReadIndex. Linearizable only if
  /// every member's ticks run at the same rate within the margin: a clock
  /// assumption ReadIndex does not make.
  lease,
};

/// The settings of one member.
struct config {
  node_id id = no_node;
  /// Ticks without hearing a leader before campaigning (randomised in
  /// [election_ticks, 2 × election_ticks)).
  int election_ticks = 10;
  /// Ticks between heartbeats; less than election_ticks.
  int heartbeat_ticks = 1;
  /// What was already applied (restart).
  index_t applied = 0;
  /// Payload bytes per append message (batching); at least one entry.
  uint64_t max_bytes_per_message = 1 << 20;
  /// Payload bytes of committed entries per ready.
  uint64_t max_committed_bytes_per_ready = 16 << 20;
  /// Appends in flight per follower (pipelining window).
  size_t max_inflight = 256;
  /// Uncommitted payload bytes the leader accepts before refusing
  /// proposals (0 = no limit).
  uint64_t max_uncommitted_bytes = 64 << 20;
  bool check_quorum = true;
  bool pre_vote = true;
  read_mode reads = read_mode::safe;
  /// Refuse proposals on followers instead of forwarding them.
  bool disable_forwarding = false;
  /// Lease reads: how many ticks before the lease's end the leader stops
  /// answering from it, a margin for clocks that tick at different rates.
  int lease_margin_ticks = 2;
  /// Seeds the election jitter.
  uint64_t seed = 1;
};

/// Why a step or proposal did nothing.
enum class step_error : uint8_t {
  none,
  /// The proposal was not accepted: no leader known, leadership being
  /// transferred, this member removed, or too many uncommitted bytes.
  proposal_dropped,
  /// The message is malformed or may not come from the network.
  invalid_message,
  /// A membership change was refused.
  invalid_change,
};

const char* to_string(step_error e);

/// The state of a member (for tests, metrics and status pages).
struct status {
  node_id id = no_node;
  hard_state hard;
  soft_state soft;
  index_t applied = 0;
  index_t last_index = 0;
  node_id transferee = no_node;
  membership config;
  /// The leader's view of every member.
  std::map<node_id, progress> members;
};

class raw_node;

/// The machine. Use it through raw_node.
class raft {
public:
  raft(const config& cfg, const storage& store);

  step_error step(message m);
  void tick();

  node_id id() const { return id_; }
  term_t term() const { return term_; }
  node_id vote() const { return vote_; }
  node_id leader() const { return lead_; }
  role state() const { return state_; }
  const raft_log& log() const { return log_; }
  const progress_tracker& tracker() const { return tracker_; }
  bool learner() const { return learner_; }
  node_id transferee() const { return lead_transferee_; }

  hard_state hard() const { return {term_, vote_, log_.committed}; }
  soft_state soft() const { return {lead_, state_}; }

  /// Applies a committed membership change; returns the new membership.
  step_error apply_conf_change(const conf_change& cc, conf_state& out);

private:
  friend class raw_node;

  enum class campaign_kind : uint8_t { pre_election, election, transfer };

  // -- roles ------------------------------------------------------------------
  void become_follower(term_t term, node_id lead);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void reset(term_t term);
  void reset_randomized_election_timeout();
  bool promotable() const;
  bool past_election_timeout() const {
    return election_elapsed_ >= randomized_election_timeout_;
  }

  // -- time -------------------------------------------------------------------
  void tick_election();
  void tick_heartbeat();

  // -- elections --------------------------------------------------------------
  void hup(campaign_kind kind);
  void campaign(campaign_kind kind);
  vote_result poll(node_id id, bool granted);

  // -- per-role handlers ------------------------------------------------------
  step_error step_leader(message& m);
  step_error step_candidate(message& m);
  step_error step_follower(message& m);
  void handle_append(const message& m);
  void handle_heartbeat(const message& m);
  void handle_snapshot(const message& m);
  bool restore(const snapshot& s);

  // -- replication ------------------------------------------------------------
  void send(message m);
  bool maybe_send_append(node_id to, bool send_if_empty);
  void send_append(node_id to) { maybe_send_append(to, true); }
  void send_heartbeat(node_id to);
  void send_timeout_now(node_id to);
  void broadcast_append();
  /// Sends a new heartbeat round to every member.
  void broadcast_heartbeat();
  bool append_entries(std::vector<entry>& entries);
  bool maybe_commit();
  bool committed_entry_in_current_term() const;
  bool increase_uncommitted(const std::vector<entry>& entries);
  void reduce_uncommitted(const std::vector<entry>& entries);
  void abort_leader_transfer() { lead_transferee_ = no_node; }

  /// Hands leadership to the most up-to-date voter (a removed leader).
  void hand_over();

  /// Whether this member, which left a joint configuration, may vote for a
  /// candidate still in it despite a longer log.
  bool left_joint_for(const message& m) const;

  // -- reads ------------------------------------------------------------------
  void send_read_index_response(const message& m);
  void respond_to_read(const message& req, index_t index);
  void release_pending_reads();
  /// The latest heartbeat round a quorum of voters answered.
  uint64_t quorum_round() const;
  /// Answers the reads a quorum confirmed.
  void confirm_reads();
  /// Whether the leader's lease covers now (lease reads).
  bool lease_valid() const;

  // -- membership -------------------------------------------------------------
  conf_state switch_to_config(changed_membership m);

  /// Called by raw_node::advance after the driver applied up to `applied`.
  void applied_to(index_t applied);

  // -- state ------------------------------------------------------------------
  /// A ReadIndex request: answered at `index` once a quorum answered
  /// heartbeat round `round` (or a later one).
  struct pending_read {
    message request;
    index_t index = 0;
    uint64_t round = 0;
  };

  /// Heartbeat rounds remembered for lease checks.
  static constexpr size_t max_rounds_kept = 64;
  /// Hand-over attempts of a removed leader before it steps down.
  static constexpr int max_hand_over_attempts = 3;

  node_id id_;
  term_t term_ = 0;
  node_id vote_ = no_node;
  raft_log log_;
  progress_tracker tracker_;
  role state_ = role::follower;
  bool learner_ = false;
  std::vector<message> msgs_;
  std::vector<read_state> read_states_;
  node_id lead_ = no_node;
  node_id lead_transferee_ = no_node;
  index_t pending_conf_index_ = 0;
  uint64_t uncommitted_bytes_ = 0;
  uint64_t max_uncommitted_bytes_;
  uint64_t max_msg_bytes_;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  bool check_quorum_;
  bool pre_vote_;
  read_mode reads_;
  bool disable_forwarding_;
  int heartbeat_timeout_;
  int election_timeout_;
  int lease_margin_;
  int randomized_election_timeout_ = 0;
  uint64_t rng_;
  /// Ticks since this member started (leases, transfers).
  uint64_t now_ = 0;
  /// With lease reads: a member that just started ignores campaigns for an
  /// election timeout, as if in a leader's lease.
  bool fresh_start_ = false;
  /// The leader's heartbeat rounds: the last one sent, when recent ones
  /// were sent, and the last one each member answered.
  uint64_t round_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> round_sent_;
  std::map<node_id, uint64_t> round_acked_;
  /// ReadIndex requests waiting for their round, oldest first.
  std::deque<pending_read> pending_reads_;
  /// Reads that arrived before the leader committed an entry of its term.
  std::vector<message> reads_before_commit_;
  /// When this leader last told a member to campaign (leader transfer).
  std::optional<uint64_t> timeout_now_at_;
  int hand_over_attempts_ = 0;
};

} // namespace engram::consensus
