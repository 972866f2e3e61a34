#pragma once

// The node's RocksDB database: opened only when it is whole (a damaged
// store is refused, never opened with part of its data), checked without
// opening (`engramd --check-config`), and repaired on request
// (`engramd repair`).

#include "core/error.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crypto/aead.hpp"

namespace engram::persistence {

/// What a partition keeps besides its engrams, clocks and inbox. A replica
/// held in memory (as the runtime's agents and instances hold theirs)
/// answers queries and computes deltas from its version vectors: it needs
/// neither, and `record` then writes only the engrams it touched and the
/// context, reading nothing. Switching either on for a partition that kept
/// it off rebuilds it from the engrams on attach; switching it off drops it.
struct partition_options {
  /// A delta log: `deltas_since`, `acknowledge`, `truncate_log`.
  bool keep_log = true;
  /// Secondary indexes: `by_scope`, `by_type`, `by_time`, `by_subject`.
  bool keep_index = true;
};

/// How to open a store.
struct store_options {
  store_options() = default;

  /// Options for the store at `dir`, everything else defaulted.
  explicit store_options(std::string dir) : path(std::move(dir)) {
    // nop
  }

  /// The RocksDB directory.
  std::string path;
  /// Write every record with sync=true (fdatasync) before it is
  /// acknowledged. Turn off only where losing the last writes on a power
  /// failure is acceptable (tests of logic, never durability claims).
  bool sync = true;
  /// Create an empty store when the directory holds none.
  bool create_if_missing = true;
  /// The partition `store::open` attaches to (see `store::attach`).
  std::string partition;
  /// What the partition keeps (see `partition_options`).
  partition_options keeps;
  /// Encryption at rest: the master key that wraps the store's data keys.
  /// A new store is created encrypted (its keyring, wrapped, kept in the
  /// store); an encrypted store opens only with its master key, and a
  /// plain store that holds data is not opened with one. Every value is
  /// then sealed (AES-256-GCM) bound to its key, and the text index keys
  /// are built from (scopes, subjects, relations) is replaced by a keyed
  /// hash. Partition (agent) and peer names stay readable in keys.
  std::optional<crypto::key256> master_key;
};

/// What `database::repair` did and what it could not recover.
struct repair_report {
  /// Where the damaged files were copied before anything was changed.
  std::string backup;
  /// How the store was rebuilt ("write-ahead log replayed past damaged
  /// records", or "rebuilt from its table files").
  std::string method;
  /// Damage found, one line each (file, offset, what).
  std::vector<std::string> damage;
  /// What could not be recovered, one line each (records of a damaged log
  /// after a sequence number, files set aside in `lost/`, a sequence range
  /// the store had reached but no longer holds).
  std::vector<std::string> lost;
  /// Partitions (replicas) found, engram records read back, and records
  /// that could not be decoded.
  size_t partitions = 0;
  size_t engrams = 0;
  size_t corrupt = 0;
};

/// One RocksDB database, shared by the stores (partitions) attached to it: a
/// node keeps every replica it hosts in one database, each in its own
/// partition (its keys prefixed by the partition name). Thread-safe: stores
/// attached to one database may be used from different threads. The last
/// reference flushes and closes it.
///
/// Opening never deletes nor silently drops data. A new store is created
/// only in a missing or empty directory; a directory that holds other files
/// is refused (`invalid_argument`). An existing store is checked before it
/// is opened — every write-ahead log and the MANIFEST record by record, the
/// column families, a read-only open, and the sequence number its last
/// flush reached (kept in the `ENGRAM_STORE` file beside it) — and any
/// damage is refused with `damaged_store`, naming the file. The way forward
/// is `repair`.
class database {
public:
  /// Opens (or creates) the database at `options.path`.
  static expected<std::shared_ptr<database>> open(const store_options& options);

  /// What opening `path` would find, without changing anything: a
  /// description ("a new store will be created", "a store with 3
  /// partitions"), or the error `open` would give (a directory that cannot
  /// be created or written, a directory that is not a store, a damaged
  /// store).
  static expected<std::string> check(const std::string& path);

  /// Repairs the damaged store at `path`: copies the directory first (to
  /// `<path>.damaged-<UTC time>`), then replays what the write-ahead logs
  /// still hold past damaged records, or rebuilds the store from its table
  /// files when its MANIFEST is damaged; rebuilds each replica's causal
  /// context from the records recovered, and reports what it could not
  /// recover. The store opens normally afterwards.
  static expected<repair_report>
  repair(const std::string& path,
         const std::optional<crypto::key256>& master_key = {});

  /// What `rekey` did.
  struct rekey_report {
    /// The data key new values are sealed with now.
    uint32_t active_key = 0;
    /// Data keys the keyring holds (retired ones still open older values).
    size_t keys = 0;
    /// Values sealed again under the active key (with `reseal`).
    size_t resealed = 0;
  };

  /// Rotates the keys of the encrypted store at `path`: its keyring is
  /// opened with `old_master`, given a new data key (what new values are
  /// sealed with; older ones stay readable under theirs), and wrapped by
  /// `new_master` — no value is rewritten; the keyring's earlier versions
  /// are compacted away (the old master key opens nothing left on disk but
  /// values sealed under the data keys it wrapped). With `reseal`, every
  /// value is then sealed again under the new data key, the retired keys
  /// are dropped and every family compacted (nothing the old keys open is
  /// left). The index key is kept (index keys would change). Synced before
  /// it returns; the store must not be open.
  static expected<rekey_report> rekey(const std::string& path,
                                      const crypto::key256& old_master,
                                      const crypto::key256& new_master,
                                      bool reseal = false);

  /// True when the store is encrypted at rest.
  bool encrypted() const noexcept;

  /// Keeps a small record of the node's own under `name` (outside every
  /// partition; sealed when the store is encrypted), not synced: it
  /// survives a crash of the process, not of the machine.
  expected<void> put_note(const std::string& name, const std::string& value);

  /// The record kept under `name` (none when there is none). Error: it
  /// cannot be read or does not authenticate.
  expected<std::optional<std::string>> get_note(const std::string& name) const;

  ~database();

  database(const database&) = delete;
  database& operator=(const database&) = delete;

  const std::string& path() const noexcept;

  /// What the open noticed and took care of, one line each (a write cut
  /// short at the end of a log, table files no longer referenced set
  /// aside): for the node's log.
  const std::vector<std::string>& notes() const noexcept;

  /// The partitions the store holds, by name, in order.
  expected<std::vector<std::string>> partitions() const;

private:
  friend class store;
  friend class consensus_log;
  struct impl;
  explicit database(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace engram::persistence
