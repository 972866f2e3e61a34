#pragma once

// What a leader knows of each member's log (`progress`), the window of
// appends in flight to it (`inflights`), and the membership with everyone's
// progress and votes (`progress_tracker`).

#include <map>
#include <set>
#include <vector>

#include "consensus/quorum.hpp"
#include "consensus/types.hpp"

namespace engram::consensus {

/// A bounded window of appends sent and not yet acknowledged, by the last
/// index each carried: flow control for a follower in `replicate` state.
class inflights {
public:
  inflights() = default;

  explicit inflights(size_t capacity) : capacity_(capacity) {}

  /// Records an append whose last entry is `last`; indexes grow.
  void add(index_t last);

  /// Forgets every append up to and including `acked`.
  void free_le(index_t acked);

  /// Frees the oldest append (a heartbeat answered while the window is
  /// full: appends were probably lost, let one more through to find out).
  void free_first() {
    if (count() > 0)
      free_le(window_[head_]);
  }

  void reset() {
    window_.clear();
    head_ = 0;
  }

  bool full() const { return count() >= capacity_; }

  size_t count() const { return window_.size() - head_; }

private:
  size_t capacity_ = 256;
  std::vector<index_t> window_;
  size_t head_ = 0;
};

/// How the leader sends to a follower.
enum class progress_state : uint8_t {
  /// One append at a time until the follower's match is found.
  probe,
  /// Appends pipelined up to the in-flight limit.
  replicate,
  /// A snapshot is on its way; nothing else is sent.
  snapshot,
};

const char* to_string(progress_state s);

/// The leader's view of one member.
struct progress {
  index_t match = 0;
  index_t next = 1;
  progress_state state = progress_state::probe;
  /// The snapshot index being sent (state snapshot).
  index_t pending_snapshot = 0;
  /// Heard from since the last check-quorum round.
  bool recent_active = false;
  /// In probe: an append was sent and not answered (pause until heartbeat
  /// response or append response).
  bool probe_sent = false;
  bool learner = false;
  inflights in_flight;

  void become_probe();
  void become_replicate();
  void become_snapshot(index_t snapshot_index);

  /// The follower acknowledged up to `n`; true when `match` grew.
  bool maybe_update(index_t n);

  /// An append up to `n` was sent (replicate state).
  void optimistic_update(index_t n) { next = n + 1; }

  /// The follower rejected an append at `rejected`; its log may match up to
  /// `match_hint`. False when the rejection is stale.
  bool maybe_decrease_to(index_t rejected, index_t match_hint);

  /// Whether sending appends must wait.
  bool paused() const;
};

/// The membership: voters (joint while changing) and learners.
struct membership {
  joint_config voters;
  std::set<node_id> learners;
  /// Outgoing voters that become learners when the joint state is left.
  std::set<node_id> learners_next;
  bool auto_leave = false;

  conf_state to_conf_state() const;
};

/// The membership with everyone's progress and the votes of an election.
class progress_tracker {
public:
  explicit progress_tracker(size_t max_inflight = 256)
      : max_inflight_(max_inflight) {}

  membership config;
  /// Every voter and learner. Ordered: iteration order reaches messages.
  std::map<node_id, progress> members;

  size_t max_inflight() const { return max_inflight_; }

  /// The largest index a (joint) majority of voters holds.
  index_t committed() const;

  /// Whether a (joint) majority of voters was heard from recently (the
  /// caller's own entry is marked active by the caller).
  bool quorum_active() const;

  /// Whether `id` is the only voter: it decides alone.
  bool sole_voter(node_id id) const {
    return config.voters.incoming.size() == 1 && !config.voters.joint()
           && config.voters.incoming.count(id) > 0;
  }

  bool is_voter(node_id id) const { return config.voters.contains(id); }

  void reset_votes() { votes_.clear(); }

  /// Records `id`'s vote (the first one counts).
  void record_vote(node_id id, bool granted) { votes_.emplace(id, granted); }

  /// The election's state given the votes recorded.
  vote_result tally() const;

private:
  size_t max_inflight_;
  std::map<node_id, bool> votes_;
};

} // namespace engram::consensus
