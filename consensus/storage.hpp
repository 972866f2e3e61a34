#pragma once

// The durable log as the Raft machine reads it, and an in-memory
// implementation (tests, and the cache a durable store keeps in front of
// RocksDB: consensus/log_store.hpp).

#include <vector>

#include "consensus/types.hpp"

namespace engram::consensus {

/// Why a storage read failed.
enum class storage_error : uint8_t {
  none,
  /// The index lies before the first entry: it was compacted into the
  /// snapshot.
  compacted,
  /// The index lies after the last entry.
  unavailable,
  /// The snapshot is being produced; ask again later.
  snapshot_unavailable,
  /// A snapshot or compaction older than what is stored.
  out_of_date,
};

const char* to_string(storage_error e);

/// Read access to what was persisted. Every entry returned was synced.
class storage {
public:
  virtual ~storage();

  /// The persisted hard state, and the membership as of the applied index
  /// the machine is started with (`config::applied`): the snapshot's, when
  /// the application restarts from its snapshot and replays the log (the
  /// membership changes after it are applied again).
  virtual std::pair<hard_state, conf_state> initial_state() const = 0;

  /// Entries [lo, hi), at least one when any, at most `max_bytes` of payload
  /// beyond the first.
  virtual storage_error entries(index_t lo, index_t hi, uint64_t max_bytes,
                                std::vector<entry>& out) const = 0;

  /// The term of entry `i` (also of the snapshot's last entry).
  virtual storage_error term(index_t i, term_t& out) const = 0;

  /// The index of the first entry still held (snapshot index + 1).
  virtual index_t first_index() const = 0;

  /// The index of the last entry (the snapshot index when none follow).
  virtual index_t last_index() const = 0;

  /// The latest snapshot.
  virtual storage_error get_snapshot(snapshot& out) const = 0;
};

/// Keeps the prefix of `entries` whose payload fits `max_bytes` (at least
/// one entry).
void limit_size(std::vector<entry>& entries, uint64_t max_bytes);

/// The log in memory. `entries_[0]` is a dummy at the snapshot's position.
class memory_storage : public storage {
public:
  memory_storage();

  std::pair<hard_state, conf_state> initial_state() const override;
  storage_error entries(index_t lo, index_t hi, uint64_t max_bytes,
                        std::vector<entry>& out) const override;
  storage_error term(index_t i, term_t& out) const override;
  index_t first_index() const override;
  index_t last_index() const override;
  storage_error get_snapshot(snapshot& out) const override;

  // -- writing (by the driver, from `ready`) ----------------------------------

  void set_hard_state(const hard_state& hs) { hard_ = hs; }

  const hard_state& hard() const { return hard_; }

  /// Replaces the log by a snapshot.
  storage_error apply_snapshot(snapshot s);

  /// Records a snapshot of the application state at `i` (≤ last index);
  /// entries stay until `compact`.
  storage_error create_snapshot(index_t i, const conf_state& cs,
                                std::string data);

  /// Drops the entries before `compact_index`.
  storage_error compact(index_t compact_index);

  /// Appends entries, replacing any conflicting suffix. The entries must
  /// follow or overlap the stored log.
  [[nodiscard]] bool append(std::vector<entry> entries);

  /// Drops the entries after `last` (an unsynced tail lost in a crash).
  void truncate_after(index_t last);

  const snapshot& current_snapshot() const { return snapshot_; }

private:
  hard_state hard_;
  snapshot snapshot_;
  std::vector<entry> entries_;
};

} // namespace engram::consensus
