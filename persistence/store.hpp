#pragma once

#include "core/causal_context.hpp"
#include "core/engram.hpp"
#include "core/error.hpp"
#include "core/replica.hpp"
#include "persistence/database.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace engram::persistence {

/// The schema this build writes, and the newest it reads. Schema 1 stores
/// (index keys ending with the engram id) are migrated on open: their index
/// is rebuilt from the engram records.
constexpr uint32_t schema_version = 2;

class store;
class write_queue;

/// A change `store::prepare` turned into one batch of writes, not written
/// yet. Batches of one store must be written in the order they were
/// prepared (`write_queue` does that off the caller's thread). Move-only.
class prepared_write {
public:
  prepared_write();
  ~prepared_write();
  prepared_write(prepared_write&&) noexcept;
  prepared_write& operator=(prepared_write&&) noexcept;

  /// The delta-log sequence number the change was given.
  uint64_t sequence() const noexcept;

  /// Holds no batch (default-constructed or moved from).
  bool empty() const noexcept;

  /// Writes the batch, with sync=true when `sync` and the store syncs
  /// (a group of batches needs it only on its last: the write-ahead log is
  /// synced up to there). Writing twice is refused.
  expected<void> write(bool sync = true);

private:
  friend class store;
  friend class write_queue;
  /// Writes the batches of one database as one batch (one write to the
  /// log, synced once when `sync`): all or none. Each must be unwritten.
  static expected<void> write_all(const std::vector<prepared_write*>& group,
                                  bool sync);
  const database* owner() const noexcept;
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A record that could not be decoded: the store reports it and keeps
/// serving the rest.
struct corrupt_record {
  std::string column_family;
  /// The record's key in hex.
  std::string key;
  std::string reason;
};

/// A message told to the agent whose memory a store holds, kept until read.
struct stored_message {
  /// The sender's message id (retries carry the same one).
  uint64_t id = 0;
  std::string from;
  std::string text;
};

/// What loading a replica from the store found.
struct load_report {
  size_t engrams = 0;
  size_t versions = 0;
  std::vector<corrupt_record> corrupt;
};

/// The node's durable store: RocksDB with column families `engrams` (per
/// engram: every version held and its version vector, one record), `clocks`
/// (the replica's causal context and what each peer acknowledged),
/// `delta_log` (every recorded delta, for sync), `index` (secondary indexes
/// for queries) and `meta` (schema version, replica id, next log sequence,
/// what the partition keeps). The log and the index are optional per
/// partition (`partition_options`). Every record is protobuf (engram.v1
/// store.proto).
///
/// One mutation or join = one WriteBatch holding the changed engrams with
/// their version vectors, the replica's context, and the index entries and
/// delta-log entry when kept, written with sync=true before `record`
/// returns: what it acknowledged survives a crash, and `load` restores the
/// replica exactly.
class store {
public:
  /// Opens (or creates) the store of replica `self`. Refuses, with an error
  /// naming the problem, a directory that cannot be opened, a store written
  /// by a newer schema, or one that belongs to another replica.
  static expected<std::unique_ptr<store>> open(const store_options& options,
                                               replica_id self);

  /// How often partition `name` of `db` was repaired (0 for a new or never
  /// repaired one): its replica writes as `incarnation_of(base, n)`.
  static expected<uint32_t> incarnation(const std::shared_ptr<database>& db,
                                        const std::string& name);

  /// Attaches to partition `name` of `db` as replica `self` (creating the
  /// partition when new), with the same refusals as `open`.
  static expected<std::unique_ptr<store>>
  attach(const std::shared_ptr<database>& db, const std::string& name,
         replica_id self, partition_options keeps = {});

  ~store();

  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Durably records `delta` after it was applied to `current` (a local
  /// mutation or a join): the engrams it touched as `current` now holds
  /// them, and the delta in the log. Returns the log sequence number. After
  /// a join, record its `join_report::resolutions` too: they are writes.
  /// Acknowledge a write only once this has returned successfully.
  expected<uint64_t> record(const replica_delta& delta, const replica& current);

  /// `record` in two steps: this one builds the batch from `current` (on
  /// the thread that owns the replica) and gives it its sequence number;
  /// `prepared_write::write` writes it (on any thread, in order). Only
  /// acknowledge once it was written. A partition with an index reads the
  /// stored records here: preparing while a batch of it is still unwritten
  /// is refused.
  /// `side` (key, value) records go into the same batch, kept beside the
  /// engrams (the proofs of origin of the versions: `side_records`).
  expected<prepared_write>
  prepare(const replica_delta& delta, const replica& current,
          const std::vector<std::pair<std::string, std::string>>& side = {});

  /// The side records kept (sealed like every value). A record that
  /// cannot be opened is skipped and reported in `corrupt`.
  expected<std::vector<std::pair<std::string, std::string>>>
  side_records(std::vector<corrupt_record>* corrupt = nullptr) const;

  /// Removes side records, synced (unless the store does not sync).
  expected<void> drop_side_records(const std::vector<std::string>& keys);

  /// Restores everything stored into `into`, a fresh replica with this
  /// store's replica id (anything else is refused). Undecodable records are
  /// reported, not loaded. On an error `into` holds part of the store (and
  /// the store's whole causal context): discard it.
  expected<load_report> load(replica& into) const;

  /// The versions stored for an engram (empty when unknown).
  expected<std::vector<version>> get(const engram_id& id) const;

  // -- queries (ids in ascending order; refused without an index) ----------

  expected<std::vector<engram_id>> by_scope(const memory_scope& scope) const;
  expected<std::vector<engram_id>> by_type(memory_type type) const;
  /// Engrams with a version written in [from, to] (HLC order).
  expected<std::vector<engram_id>> by_time(hlc_timestamp from,
                                           hlc_timestamp to) const;
  /// Beliefs about `subject` (and `relation`, when given).
  expected<std::vector<engram_id>> by_subject(const std::string& subject,
                                              const std::string& relation
                                              = {}) const;

  // -- the agent's inbox -----------------------------------------------------

  /// Keeps a message until `clear_messages`, synced (unless the store was
  /// opened without sync): acknowledge the tell once this returns.
  expected<void> keep_message(const stored_message& message);

  /// The messages kept, in arrival order. A record that cannot be decoded is
  /// skipped and, when `corrupt` is given, reported there with its key.
  expected<std::vector<stored_message>>
  messages(std::vector<corrupt_record>* corrupt = nullptr) const;

  /// Forgets every message kept (they were read), synced.
  expected<void> clear_messages();

  // -- sync support (refused without a delta log) ---------------------------

  /// The logged deltas holding a version `peer` has not seen, joined.
  expected<replica_delta> deltas_since(const causal_context& peer) const;

  /// Records what `peer` has acknowledged.
  expected<void> acknowledge(const std::string& peer,
                             const causal_context& seen);

  /// Removes log entries every known peer has acknowledged; returns how many.
  /// With no known peer nothing is removed.
  expected<size_t> truncate_log();

  /// Number of entries in the delta log.
  size_t log_size() const;

  const std::string& path() const noexcept;

  const std::string& partition() const noexcept;

private:
  expected<load_report> decode_into(replica& into) const;

  struct impl;
  explicit store(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace engram::persistence
