#pragma once

// The durable log of one consensus group on this node: its hard state
// (term, vote, commit), its entries and its latest snapshot, in the node's
// RocksDB database (sealed like every value when the store is encrypted at
// rest), read back through an in-memory copy the Raft machine reads
// (consensus::storage).
//
// Durability: `save` writes a ready's snapshot, entries and hard state as
// one RocksDB write batch, synced (fdatasync) when the database syncs —
// the caller sends the ready's messages only after `save` returned, so no
// vote or acknowledgement leaves before what it promises is on disk. A
// batch is all or nothing: RocksDB's recovery cuts a write torn by a crash
// at the end of its log (whole batches survive), and `open` checks what is
// left — entries contiguous after the snapshot, terms never decreasing, the
// commit within the log, the term at least the last entry's — and refuses a
// log that breaks one (a clear error naming the group, never a guess).

#include "core/error.hpp"

#include <memory>
#include <mutex>
#include <string>

#include "consensus/storage.hpp"

namespace engram::persistence {

class database;

class consensus_log final : public consensus::storage {
public:
  /// Opens (or starts empty) the log of `group` in `db`.
  static expected<std::unique_ptr<consensus_log>>
  open(std::shared_ptr<database> db, std::string group);

  ~consensus_log() override;

  // -- consensus::storage (reads from memory) ---------------------------------

  std::pair<consensus::hard_state, consensus::conf_state>
  initial_state() const override;
  consensus::storage_error
  entries(consensus::index_t lo, consensus::index_t hi, uint64_t max_bytes,
          std::vector<consensus::entry>& out) const override;
  consensus::storage_error term(consensus::index_t i,
                                consensus::term_t& out) const override;
  consensus::index_t first_index() const override;
  consensus::index_t last_index() const override;
  consensus::storage_error
  get_snapshot(consensus::snapshot& out) const override;

  // -- writes -----------------------------------------------------------------

  /// Persists what a ready asks to persist (snapshot, entries, hard state)
  /// as one batch, synced when the database syncs.
  expected<void> save(const consensus::ready& rd);

  /// Records a snapshot of the application's state at `index` (applied)
  /// and drops the entries it covers, in one synced batch.
  expected<void> compact(consensus::index_t index,
                         const consensus::conf_state& conf, std::string data);

  /// The group's name.
  const std::string& group() const noexcept { return group_; }

private:
  consensus_log(std::shared_ptr<database> db, std::string group);

  std::shared_ptr<database> db_;
  std::string group_;
  std::string prefix_;
  /// Guards the cache: the group actor writes, metrics may read.
  mutable std::mutex mtx_;
  consensus::memory_storage cache_;
};

} // namespace engram::persistence
