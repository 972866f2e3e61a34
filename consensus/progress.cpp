#include "consensus/progress.hpp"

#include <algorithm>

#include "consensus/internal/check.hpp"

namespace engram::consensus {

// -- inflights ----------------------------------------------------------------

void inflights::add(index_t last) {
  ENGRAM_CONSENSUS_CHECK(!full(), "append added to a full in-flight window");
  ENGRAM_CONSENSUS_CHECK(count() == 0 || window_.back() < last,
                         "in-flight appends out of order");
  window_.push_back(last);
}

void inflights::free_le(index_t acked) {
  while (head_ < window_.size() && window_[head_] <= acked)
    ++head_;
  // Compact once the freed prefix dominates, so the vector stays small.
  if (head_ == window_.size()) {
    window_.clear();
    head_ = 0;
  } else if (head_ > 64 && head_ * 2 > window_.size()) {
    window_.erase(window_.begin(), window_.begin() + head_);
    head_ = 0;
  }
}

// -- progress -----------------------------------------------------------------

const char* to_string(progress_state s) {
  switch (s) {
    case progress_state::probe: return "probe";
    case progress_state::replicate: return "replicate";
    case progress_state::snapshot: return "snapshot";
  }
  return "?";
}

namespace {

void reset_state(progress& p, progress_state s) {
  p.probe_sent = false;
  p.pending_snapshot = 0;
  p.state = s;
  p.in_flight.reset();
}

} // namespace

void progress::become_probe() {
  // Leaving snapshot state, the follower is known to hold up to the
  // snapshot: probe from just after it.
  if (state == progress_state::snapshot) {
    auto pending = pending_snapshot;
    reset_state(*this, progress_state::probe);
    next = std::max(match + 1, pending + 1);
  } else {
    reset_state(*this, progress_state::probe);
    next = match + 1;
  }
}

void progress::become_replicate() {
  reset_state(*this, progress_state::replicate);
  next = match + 1;
}

void progress::become_snapshot(index_t snapshot_index) {
  reset_state(*this, progress_state::snapshot);
  pending_snapshot = snapshot_index;
}

bool progress::maybe_update(index_t n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

bool progress::maybe_decrease_to(index_t rejected, index_t match_hint) {
  if (state == progress_state::replicate) {
    // A rejection at or below the match is stale (reordered or duplicated).
    if (rejected <= match)
      return false;
    next = match + 1;
    return true;
  }
  // In probe state only the rejection of the append just sent counts.
  if (next == 0 || next - 1 != rejected)
    return false;
  next = std::max<index_t>(std::min(rejected, match_hint + 1), match + 1);
  probe_sent = false;
  return true;
}

bool progress::paused() const {
  switch (state) {
    case progress_state::probe: return probe_sent;
    case progress_state::replicate: return in_flight.full();
    case progress_state::snapshot: return true;
  }
  return true;
}

// -- membership ---------------------------------------------------------------

conf_state membership::to_conf_state() const {
  conf_state cs;
  cs.voters.assign(voters.incoming.begin(), voters.incoming.end());
  cs.voters_outgoing.assign(voters.outgoing.begin(), voters.outgoing.end());
  cs.learners.assign(learners.begin(), learners.end());
  cs.learners_next.assign(learners_next.begin(), learners_next.end());
  cs.auto_leave = auto_leave;
  return cs;
}

// -- progress_tracker ---------------------------------------------------------

index_t progress_tracker::committed() const {
  return config.voters.committed([this](node_id id) -> std::optional<index_t> {
    auto i = members.find(id);
    if (i == members.end())
      return std::nullopt;
    return i->second.match;
  });
}

bool progress_tracker::quorum_active() const {
  auto result = config.voters.count([this](node_id id) -> std::optional<bool> {
    auto i = members.find(id);
    if (i == members.end())
      return std::nullopt;
    return i->second.recent_active;
  });
  return result == vote_result::won;
}

vote_result progress_tracker::tally() const {
  return config.voters.count([this](node_id id) -> std::optional<bool> {
    auto i = votes_.find(id);
    if (i == votes_.end())
      return std::nullopt;
    return i->second;
  });
}

} // namespace engram::consensus
