#pragma once

// The internals of `persistence::database` shared by `database.cpp` (open,
// integrity checks, repair) and `store.cpp` (partitions). Not installed.

#include "core/error.hpp"
#include "persistence/internal/sealing.hpp"
#include "persistence/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace engram::persistence::internal {

/// The column families of a store, in the order of their handles.
inline constexpr const char* cf_names[]
    = {"default", "engrams", "clocks", "delta_log", "index", "meta"};

enum cf_index : size_t {
  cf_default,
  cf_engrams,
  cf_clocks,
  cf_log,
  cf_index_,
  cf_meta,
  cf_count
};

/// Keys within a partition (after its name and a NUL).
inline constexpr const char* meta_key = "store";
inline constexpr const char* context_key = "replica";

/// The key every column family holds from a store's creation on, outside
/// every partition (partition names never start with 0xff): each family
/// then always has a table file, which `RepairDB` needs to recover the
/// family's writes from a damaged write-ahead log.
inline const std::string family_marker = "\xff"
                                         "engram.family";

/// Where an encrypted store keeps its keyring (wrapped by the master key),
/// in the default family, outside every partition.
inline const std::string keyring_key = "\xff"
                                       "engram.keyring";

/// `bytes` in lowercase hex (keys in messages).
inline std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto c : bytes) {
    out += digits[(static_cast<unsigned char>(c) >> 4) & 0xf];
    out += digits[static_cast<unsigned char>(c) & 0xf];
  }
  return out;
}

/// A RocksDB status as an error naming what failed.
inline error storage_error(const rocksdb::Status& st, const std::string& what) {
  return make_error(errc::storage_failed, what + ": " + st.ToString());
}

/// The column families with the options the store uses.
std::vector<rocksdb::ColumnFamilyDescriptor> family_descriptors();

/// Rebuilds the causal context of `partition` from its engram records (a
/// repaired store's stored context may claim events whose records were
/// lost, or lack events of records it holds): every version's dot and every
/// version vector's entries, nothing more, so peers send back what was
/// lost. The partition's replica gets a new incarnation (a new id it
/// writes under: no dot it may have issued before is issued again).
/// Returns the number of engram records read; undecodable ones are counted
/// in `corrupt`.
expected<size_t> rebuild_context(
    rocksdb::DB& db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
    const sealing& sealed, const std::string& partition, size_t& corrupt);

} // namespace engram::persistence::internal

namespace engram::persistence {

struct database::impl {
  /// The directory's lock, held while the database is open (declared
  /// first: released last, after the database closed).
  std::shared_ptr<void> lock;
  std::string path;
  bool sync = true;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  /// What the open noticed and took care of.
  std::vector<std::string> notes;
  /// How values are kept: sealed when the store is encrypted at rest.
  internal::sealing sealed;
  /// Keeps the marker file's flushed sequence up to date.
  std::shared_ptr<rocksdb::EventListener> listener;

  ~impl();
};

} // namespace engram::persistence
