#pragma once

// The log as the Raft machine sees it: the persisted part (a `storage`)
// followed by the unstable part not yet handed to the driver for
// persistence, plus the commit and apply positions.

#include <limits>
#include <optional>

#include "consensus/storage.hpp"

namespace engram::consensus {

constexpr uint64_t no_limit = std::numeric_limits<uint64_t>::max();

/// Entries (and possibly a snapshot) not yet persisted by the driver.
struct unstable {
  std::optional<snapshot> snap;
  std::vector<entry> entries;
  /// The index of entries[0].
  index_t offset = 0;

  std::optional<index_t> maybe_first_index() const;
  std::optional<index_t> maybe_last_index() const;
  std::optional<term_t> maybe_term(index_t i) const;

  /// The driver persisted up to (i, t).
  void stable_to(index_t i, term_t t);
  void stable_snap_to(index_t i);
  void restore(snapshot s);
  void truncate_and_append(const std::vector<entry>& ents);
};

/// The log, with its commit and apply positions.
class raft_log {
public:
  raft_log(const storage& store, uint64_t max_committed_bytes);

  index_t committed = 0;
  index_t applied = 0;

  index_t first_index() const;
  index_t last_index() const;
  term_t last_term() const;

  /// The term of entry `i`, or the error reading it.
  storage_error term(index_t i, term_t& out) const;

  /// The term of entry `i`, 0 when it is not held.
  term_t term_or_zero(index_t i) const {
    term_t t = 0;
    return term(i, t) == storage_error::none ? t : 0;
  }

  bool match_term(index_t i, term_t t) const {
    term_t have = 0;
    return term(i, have) == storage_error::none && have == t;
  }

  /// Whether a candidate whose log ends at (last_index, last_term) is at
  /// least as up to date as this log.
  bool up_to_date(index_t index, term_t t) const {
    return t > last_term() || (t == last_term() && index >= last_index());
  }

  /// Appends entries a leader sent after (index, log_term) and advances the
  /// commit to min(commit, last new index). Returns the last new index, or
  /// nullopt when the log does not hold (index, log_term). Sets `refused`
  /// when the entries would overwrite committed ones (a broken leader).
  std::optional<index_t> maybe_append(index_t index, term_t log_term,
                                      index_t commit,
                                      const std::vector<entry>& ents,
                                      bool& refused);

  /// Appends entries (they follow or overwrite the unstable tail).
  index_t append(const std::vector<entry>& ents);

  /// The first index of `ents` whose term differs from the log, or 0.
  index_t find_conflict(const std::vector<entry>& ents) const;

  /// The largest index ≤ `index` whose term is ≤ `t` (a hint for a leader
  /// whose append was rejected).
  index_t find_conflict_by_term(index_t index, term_t t) const;

  /// Entries from `i` on, at most `max_bytes`.
  storage_error entries(index_t i, uint64_t max_bytes,
                        std::vector<entry>& out) const;

  /// Entries [lo, hi).
  storage_error slice(index_t lo, index_t hi, uint64_t max_bytes,
                      std::vector<entry>& out) const;

  /// Committed entries not yet applied (at most the configured bytes).
  std::vector<entry> next_committed() const;
  bool has_next_committed() const;

  const std::vector<entry>& unstable_entries() const {
    return unstable_.entries;
  }

  const std::optional<snapshot>& unstable_snapshot() const {
    return unstable_.snap;
  }

  storage_error get_snapshot(snapshot& out) const;

  void commit_to(index_t i);
  void applied_to(index_t i);

  /// Advances the commit when `max_index` is in `t` (only entries of the
  /// leader's term commit by counting).
  bool maybe_commit(index_t max_index, term_t t);

  void stable_to(index_t i, term_t t) { unstable_.stable_to(i, t); }

  void stable_snap_to(index_t i) { unstable_.stable_snap_to(i); }

  /// Replaces the log by a snapshot (not yet persisted).
  void restore(snapshot s);

private:
  const storage& store_;
  unstable unstable_;
  uint64_t max_committed_bytes_;
};

} // namespace engram::consensus
