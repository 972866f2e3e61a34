#pragma once

// The interface a driver (an actor, a simulator, a test) uses: feed ticks,
// proposals and received messages in; take a `ready` out, act on it in the
// order it documents, then `advance`. Everything from the network goes
// through `step`, which refuses malformed or local-only messages.

#include "consensus/raft.hpp"

namespace engram::consensus {

class raw_node {
public:
  raw_node(const config& cfg, const storage& store);

  /// One unit of logical time (an election_ticks count of them make an
  /// election timeout).
  void tick() { raft_.tick(); }

  /// Starts an election now (tests, bootstrap).
  void campaign();

  /// Proposes an application command.
  step_error propose(std::string data);

  /// Proposes a membership change.
  step_error propose_conf_change(const conf_change& cc);

  /// Applies a committed membership change (the driver calls it when it
  /// applies the entry) and returns the new membership.
  step_error apply_conf_change(const conf_change& cc, conf_state& out) {
    return raft_.apply_conf_change(cc, out);
  }

  /// Feeds a message received from member `m.from`. Refuses local-only and
  /// malformed messages (invalid_message) without changing any state.
  step_error step(message m);

  /// Requests a linearizable read; `request` (unique per request) comes
  /// back in a read_state once the read index is confirmed.
  step_error read_index(std::string request);

  /// Asks the leader to hand leadership to `transferee`.
  void transfer_leader(node_id transferee);

  /// The driver could not deliver to `id`.
  void report_unreachable(node_id id);

  /// The driver delivered (or failed to deliver) a snapshot to `id`.
  void report_snapshot(node_id id, bool delivered);

  bool has_ready() const;

  /// What to persist, send and apply now. Call advance() after acting on it.
  ready get_ready();

  /// The driver acted on `rd`.
  void advance(const ready& rd);

  status get_status() const;

  const raft& machine() const { return raft_; }

private:
  bool valid(const message& m) const;

  raft raft_;
  soft_state prev_soft_;
  hard_state prev_hard_;
};

} // namespace engram::consensus
