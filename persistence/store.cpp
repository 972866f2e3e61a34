#include "persistence/store.hpp"

#include "messages/codec.hpp"
#include "persistence/allocator.hpp"
#include "persistence/internal/database_impl.hpp"

#include <google/protobuf/arena.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "engram/v1/store.pb.h"

namespace engram::persistence {

namespace {

using namespace internal;

/// What peers acknowledged: "peer/" + name; "peer0" is the first key after.
constexpr const char* peer_prefix = "peer/";
constexpr const char* peer_end = "peer0";
/// Inbox messages: "inbox/" + arrival number; "inbox0" is the first key
/// after them.
constexpr const char* inbox_prefix = "inbox/";
constexpr const char* inbox_end = "inbox0";
/// Side records (proofs of origin): "side/" + their key; "side0" after.
constexpr const char* side_prefix = "side/";
constexpr const char* side_end = "side0";

std::string be64(uint64_t x) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>(x >> (56 - 8 * i));
  return out;
}

std::string be32(uint32_t x) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>(x >> (24 - 8 * i));
  return out;
}

// -- secondary index keys ---------------------------------------------------

// Encrypted at rest, the text a key is built from is a keyed hash.

std::string scope_prefix(const sealing& sealed, const memory_scope& scope) {
  return "s" + sealed.index_text(scope.key()) + '\0';
}

std::string type_prefix(memory_type type) {
  return std::string{"t"} + static_cast<char>(type);
}

std::string subject_prefix(const sealing& sealed, const std::string& subject,
                           const std::string& relation) {
  auto key = "b" + sealed.index_text(subject) + '\0';
  if (!relation.empty())
    key += sealed.index_text(relation) + '\0';
  return key;
}

std::string time_key(hlc_timestamp ts) {
  return "u" + be64(ts.wall_us) + be32(ts.logical);
}

/// The index keys of a version of the engram with local ordinal `ordinal`
/// (appended to `out`). Each key ends with the ordinal and holds the id as
/// its value: a new engram's keys go after every key of its prefix, where a
/// skip list inserts them cheaply, instead of at a random place.
void index_keys(const sealing& sealed, uint64_t ordinal, const version& v,
                std::vector<std::string>& out) {
  auto suffix = be64(ordinal);
  out.push_back(scope_prefix(sealed, v.value.scope) + suffix);
  out.push_back(type_prefix(v.value.type) + suffix);
  out.push_back(time_key(v.value.updated) + suffix);
  if (auto b = std::get_if<belief>(&v.value.body); b && !v.value.tombstone)
    out.push_back(subject_prefix(sealed, b->subject, b->relation) + suffix);
}

// -- record conversions ------------------------------------------------------

void to_record(const std::vector<version>& versions, const vector_clock& clock,
               uint64_t ordinal, v1::StoredEngram& out) {
  out.set_ordinal(ordinal);
  for (auto& v : versions) {
    auto* pv = out.add_versions();
    pv->mutable_dot()->set_replica(v.tag.replica);
    pv->mutable_dot()->set_counter(v.tag.counter);
    pv->set_resolves(v.resolves);
    messages::to_proto(v.value, *pv->mutable_engram());
  }
  messages::to_proto(clock, *out.mutable_clock());
}

/// An engram as stored: its versions and its version vector.
struct stored_engram {
  std::vector<version> versions;
  vector_clock clock;
  uint64_t ordinal = 0;
};

expected<stored_engram> from_record(std::string_view bytes, const engram_id& id,
                                    google::protobuf::Arena* arena = nullptr) {
  auto* record
      = google::protobuf::Arena::CreateMessage<v1::StoredEngram>(arena);
  std::unique_ptr<v1::StoredEngram> owned{arena == nullptr ? record : nullptr};
  if (!record->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error(errc::corrupt_record, "not a StoredEngram");
  stored_engram result;
  result.ordinal = record->ordinal();
  auto clock = messages::from_proto(record->clock(), messages::limits{});
  if (!clock)
    return make_error(errc::corrupt_record, clock.error_value().to_string());
  result.clock = std::move(*clock);
  result.versions.reserve(static_cast<size_t>(record->versions_size()));
  for (auto& pv : record->versions()) {
    auto value = messages::from_proto(pv.engram());
    if (!value)
      return make_error(errc::corrupt_record, value.error_value().to_string());
    if (value->id != id)
      return make_error(errc::corrupt_record,
                        "record holds engram " + value->id.to_string());
    if (pv.dot().replica() == 0 || pv.dot().counter() == 0)
      return make_error(errc::corrupt_record, "version with invalid dot");
    dot tag{pv.dot().replica(), pv.dot().counter()};
    // A version vector always covers the versions it belongs to.
    if (!result.clock.covers(tag))
      result.clock.set(tag.replica, tag.counter);
    result.versions.push_back(version{tag, pv.resolves(), std::move(*value)});
  }
  std::sort(result.versions.begin(), result.versions.end(),
            [](const version& x, const version& y) {
              return x.tag < y.tag;
            });
  return result;
}

} // namespace

namespace internal {

expected<size_t> rebuild_context(
    rocksdb::DB& db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
    const sealing& sealed, const std::string& partition, size_t& corrupt) {
  auto prefix = partition + '\0';
  auto prefix_end = partition + '\x01';
  std::string bytes;
  std::string buffer;
  auto st
      = db.Get(rocksdb::ReadOptions{}, cfs[cf_meta], prefix + meta_key, &bytes);
  v1::StoreMeta meta;
  expected<std::string_view> meta_bytes{std::string_view{}};
  if (st.ok())
    meta_bytes = sealed.open(cf_meta, prefix + meta_key, bytes, buffer);
  bool has_meta = st.ok() && meta_bytes
                  && meta.ParseFromArray(meta_bytes->data(),
                                         static_cast<int>(meta_bytes->size()));
  // Every event the records show, and nothing else: what the damage lost
  // is not claimed, so peers send it back.
  std::vector<dot> dots;
  size_t records = 0;
  rocksdb::Slice lo{prefix};
  rocksdb::Slice hi{prefix_end};
  rocksdb::ReadOptions scan;
  scan.iterate_lower_bound = &lo;
  scan.iterate_upper_bound = &hi;
  scan.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it{db.NewIterator(scan, cfs[cf_engrams])};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto raw = it->key();
    raw.remove_prefix(prefix.size());
    auto id = messages::id_from_bytes(raw.ToString());
    if (!id) {
      ++corrupt;
      continue;
    }
    auto opened = sealed.open(cf_engrams, it->key().ToStringView(),
                              it->value().ToStringView(), buffer);
    if (!opened) {
      ++corrupt;
      continue;
    }
    auto stored = from_record(*opened, *id);
    if (!stored) {
      ++corrupt;
      continue;
    }
    ++records;
    for (auto& [r, n] : stored->clock.entries())
      dots.push_back(dot{r, n});
    for (auto& v : stored->versions)
      dots.push_back(v.tag);
  }
  if (!it->status().ok())
    return storage_error(it->status(), "cannot read partition " + partition);
  v1::StoredContext out;
  messages::to_proto(causal_context{std::move(dots)}, *out.mutable_context());
  rocksdb::WriteBatch batch;
  auto context
      = sealed.seal(cf_clocks, prefix + context_key, messages::serialize(out));
  if (!context)
    return context.error_value();
  batch.Put(cfs[cf_clocks], prefix + context_key, *context);
  if (has_meta) {
    // A new incarnation: the replica writes under a new id from now on,
    // and never issues a dot it may have issued before the damage.
    if (meta.incarnation() == 0)
      meta.set_base_replica(meta.replica());
    meta.set_incarnation(meta.incarnation() + 1);
    meta.set_replica(incarnation_of(meta.base_replica(), meta.incarnation()));
    // The optional index and log may disagree with what was recovered:
    // rebuilt on the next attach that keeps them.
    meta.set_no_index(true);
    meta.set_no_log(true);
    batch.DeleteRange(cfs[cf_index_], prefix, prefix_end);
    batch.DeleteRange(cfs[cf_log], prefix, prefix_end);
    auto record
        = sealed.seal(cf_meta, prefix + meta_key, messages::serialize(meta));
    if (!record)
      return record.error_value();
    batch.Put(cfs[cf_meta], prefix + meta_key, *record);
  }
  rocksdb::WriteOptions synced;
  synced.sync = true; // the repair reports success only once it is durable
  if (st = db.Write(synced, &batch); !st.ok())
    return storage_error(st, "cannot write the context of " + partition);
  return records;
}

} // namespace internal

// -- impl -------------------------------------------------------------------

struct store::impl {
  std::shared_ptr<database> owner;
  rocksdb::DB* db = nullptr;
  const std::vector<rocksdb::ColumnFamilyHandle*>* cf_handles = nullptr;
  std::string path;
  std::string name;
  /// Every key of this partition starts with it: the name and a NUL.
  std::string prefix;
  /// The first key after the partition.
  std::string prefix_end;
  replica_id self = 0;
  /// Values sealed, index text hashed, when encrypted at rest.
  sealing sealed;
  bool sync = true;
  bool keep_log = true;
  bool keep_index = true;
  uint64_t next_sequence = 1;
  uint64_t next_ordinal = 1;
  /// The arrival number of the next inbox message.
  uint64_t next_message = 1;
  /// Batches prepared and not written yet (shared with them).
  std::shared_ptr<std::atomic<size_t>> unwritten
      = std::make_shared<std::atomic<size_t>>(0);

  rocksdb::ColumnFamilyHandle* cf(size_t index) const {
    return (*cf_handles)[index];
  }

  std::string key(std::string_view suffix) const {
    std::string result;
    result.reserve(prefix.size() + suffix.size());
    result += prefix;
    result += suffix;
    return result;
  }

  /// `value` as stored under `full_key` of `family`.
  expected<std::string> seal(size_t family, std::string_view full_key,
                             std::string value) const {
    return sealed.seal(family, full_key, std::move(value));
  }

  /// The value stored under `full_key` of `family` (in `buffer` when it
  /// was sealed). The error names the record: "<family>/<key>: <why>".
  expected<std::string_view> open(size_t family, std::string_view full_key,
                                  std::string_view stored,
                                  std::string& buffer) const {
    auto opened = sealed.open(family, full_key, stored, buffer);
    if (!opened)
      return make_error(errc::corrupt_record,
                        std::string{cf_names[family]} + "/" + hex(full_key)
                            + ": " + opened.error_value().message);
    return opened;
  }

  /// Puts `value` sealed under `full_key` of `family` into `batch`.
  expected<void> put(rocksdb::WriteBatch& batch, size_t family,
                     std::string_view full_key, std::string value) const {
    auto stored = seal(family, full_key, std::move(value));
    if (!stored)
      return stored.error_value();
    auto st = batch.Put(cf(family), full_key, *stored);
    if (!st.ok())
      return storage_error(st, "cannot add to a write batch");
    return {};
  }

  /// Calls `take(key suffix, opened value)` for every record of `meta`
  /// from this partition's `prefix` to its `end`; a value that does not
  /// open, or that `take` refuses (returning why), is skipped and reported
  /// in `corrupt` with its key.
  expected<void> scan_meta(
      std::string_view prefix, std::string_view end, const char* what,
      std::vector<corrupt_record>* corrupt,
      const std::function<std::string(std::string_view, std::string_view)>&
          take) const {
    auto bounded = iterate(cf_meta);
    auto& it = bounded->it;
    auto first = key(prefix);
    auto last = key(end);
    std::string buffer;
    for (it->Seek(first); it->Valid() && it->key().compare(last) < 0;
         it->Next()) {
      auto full_key = it->key().ToStringView();
      auto bytes
          = sealed.open(cf_meta, full_key, it->value().ToStringView(), buffer);
      auto why = bytes ? take(full_key.substr(first.size()), *bytes)
                       : bytes.error_value().message;
      if (!why.empty() && corrupt != nullptr)
        corrupt->push_back({"meta", hex(full_key), std::move(why)});
    }
    if (!it->status().ok())
      return storage_error(it->status(), std::string{what} + " scan failed");
    return {};
  }

  /// "store at '<path>'", and " partition '<name>'" unless unnamed.
  std::string where() const {
    return "store at '" + path + "'"
           + (name.empty() ? std::string{} : " partition '" + name + "'");
  }

  expected<void> require_index() const {
    if (keep_index)
      return {};
    return make_error(errc::unavailable,
                      where()
                          + " keeps no index (attach it with keep_index to "
                            "query the store)");
  }

  expected<void> require_log() const {
    if (keep_log)
      return {};
    return make_error(errc::unavailable,
                      where()
                          + " keeps no delta log (attach it with keep_log)");
  }

  /// The meta record: the schema this build writes, and what the partition
  /// keeps.
  v1::StoreMeta meta_record(uint64_t sequence, uint64_t ordinal) const {
    v1::StoreMeta meta;
    meta.set_schema_version(schema_version);
    meta.set_replica(self);
    meta.set_next_sequence(sequence);
    meta.set_next_ordinal(ordinal);
    meta.set_no_index(!keep_index);
    meta.set_no_log(!keep_log);
    return meta;
  }

  expected<void> write_meta_synced(uint64_t ordinal) {
    rocksdb::WriteOptions synced;
    synced.sync = true;
    rocksdb::WriteBatch batch;
    if (auto ok = put(batch, cf_meta, key(meta_key),
                      messages::serialize(meta_record(next_sequence, ordinal)));
        !ok)
      return ok;
    auto st = db->Write(synced, &batch);
    if (!st.ok())
      return storage_error(st, "cannot write the meta record");
    next_ordinal = ordinal;
    return {};
  }

  rocksdb::WriteOptions write_options() const {
    rocksdb::WriteOptions opts;
    opts.sync = sync;
    return opts;
  }

  /// An iterator over this partition of a column family.
  struct bounded_iterator {
    rocksdb::Slice lower;
    rocksdb::Slice upper;
    std::unique_ptr<rocksdb::Iterator> it;
  };

  std::unique_ptr<bounded_iterator>
  iterate(size_t family, const rocksdb::Snapshot* snapshot = nullptr) const {
    auto result = std::make_unique<bounded_iterator>();
    result->lower = rocksdb::Slice{prefix};
    result->upper = rocksdb::Slice{prefix_end};
    rocksdb::ReadOptions opts;
    opts.snapshot = snapshot;
    opts.iterate_lower_bound = &result->lower;
    opts.iterate_upper_bound = &result->upper;
    // The engrams family has a hash memtable: scan in key order.
    opts.total_order_seek = true;
    result->it.reset(db->NewIterator(opts, cf(family)));
    return result;
  }

  /// Calls `f(rocksdb::Slice key, std::string_view record, id, stored)`
  /// for every engram record of this partition in key order that opens and
  /// decodes (`record`: its bytes, opened; the others are left to `load` to
  /// report; `f` returns false to stop). Returns the scan's status.
  template<class F>
  rocksdb::Status for_each_record(F f) const {
    auto bounded = iterate(cf_engrams);
    auto& it = bounded->it;
    std::string buffer;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto raw = it->key();
      raw.remove_prefix(prefix.size());
      auto id = messages::id_from_bytes(raw.ToString());
      if (!id)
        continue;
      auto bytes = sealed.open(cf_engrams, it->key().ToStringView(),
                               it->value().ToStringView(), buffer);
      if (!bytes)
        continue;
      auto stored = from_record(*bytes, *id);
      if (stored && !f(it->key(), *bytes, *id, *stored))
        break;
    }
    return it->status();
  }

  /// Rebuilds this partition's index from its engram records, giving each
  /// engram an ordinal, and writes the meta record of the current schema:
  /// the migration from schema 1 (index keys ending with the id). A crash
  /// before the final, synced meta write leaves the old schema in meta, and
  /// the next open starts over. Undecodable records are left as they are
  /// (loading reports them).
  expected<void> rebuild_index() {
    auto st = db->DeleteRange(rocksdb::WriteOptions{}, cf(cf_index_), prefix,
                              prefix_end);
    if (!st.ok())
      return storage_error(st, "cannot clear the index");
    rocksdb::WriteBatch batch;
    uint64_t ordinal = 1;
    std::vector<std::string> keys;
    expected<void> added;
    auto scanned = for_each_record([&](rocksdb::Slice full_key,
                                       std::string_view value,
                                       const engram_id& id,
                                       const stored_engram& stored) {
      v1::StoredEngram record;
      if (!record.ParseFromArray(value.data(), static_cast<int>(value.size())))
        return true;
      record.set_ordinal(ordinal);
      added = put(batch, cf_engrams, full_key.ToStringView(),
                  messages::serialize(record));
      keys.clear();
      for (auto& v : stored.versions)
        index_keys(sealed, ordinal, v, keys);
      for (auto& k : keys)
        batch.Put(cf(cf_index_), key(k), messages::id_bytes(id));
      if (!added)
        return false;
      ++ordinal;
      if (batch.Count() >= 4096) {
        st = db->Write(rocksdb::WriteOptions{}, &batch);
        batch.Clear();
      }
      return st.ok();
    });
    if (!added)
      return added;
    if (!st.ok())
      return storage_error(st, "cannot write the index");
    if (!scanned.ok())
      return storage_error(scanned, "engram scan failed");
    if (st = db->Write(rocksdb::WriteOptions{}, &batch); !st.ok())
      return storage_error(st, "cannot write the index");
    return write_meta_synced(ordinal);
  }

  /// The replica's stored causal context; none when nothing was recorded.
  expected<std::optional<causal_context>> read_context() const {
    std::string bytes;
    auto st = db->Get(rocksdb::ReadOptions{}, cf(cf_clocks), key(context_key),
                      &bytes);
    if (st.IsNotFound())
      return std::optional<causal_context>{};
    if (!st.ok())
      return storage_error(st, "cannot read the replica's context");
    std::string buffer;
    auto opened = open(cf_clocks, key(context_key), bytes, buffer);
    if (!opened)
      return opened.error_value();
    v1::StoredContext stored;
    if (!stored.ParseFromArray(opened->data(),
                               static_cast<int>(opened->size())))
      return make_error(errc::corrupt_record,
                        "clocks/replica: not a StoredContext");
    auto context = messages::from_proto(stored.context(), messages::limits{});
    if (!context)
      return make_error(errc::corrupt_record,
                        "clocks/replica: " + context.error_value().to_string());
    return std::optional<causal_context>{std::move(*context)};
  }

  /// Removes this partition's index (the partition no longer keeps one)
  /// and says so in the meta record. A crash before the synced meta write
  /// leaves the old meta, and the next attach drops it again.
  expected<void> drop_index() {
    auto st = db->DeleteRange(rocksdb::WriteOptions{}, cf(cf_index_), prefix,
                              prefix_end);
    if (!st.ok())
      return storage_error(st, "cannot drop the index");
    return write_meta_synced(next_ordinal);
  }

  /// Removes this partition's delta log and the peers' acknowledgements.
  expected<void> drop_log() {
    rocksdb::WriteBatch batch;
    batch.DeleteRange(cf(cf_log), prefix, prefix_end);
    batch.DeleteRange(cf(cf_clocks), key(peer_prefix), key(peer_end));
    auto st = db->Write(rocksdb::WriteOptions{}, &batch);
    if (!st.ok())
      return storage_error(st, "cannot drop the delta log");
    return write_meta_synced(next_ordinal);
  }

  /// Starts a delta log for a partition that kept none: its engrams as
  /// they are stored now, in entries of up to 1 024, each with the stored
  /// context, so `deltas_since` also finds what was recorded before.
  /// Undecodable records are left out (loading reports them).
  expected<void> seed_log() {
    auto st = db->DeleteRange(rocksdb::WriteOptions{}, cf(cf_log), prefix,
                              prefix_end);
    if (!st.ok())
      return storage_error(st, "cannot clear the delta log");
    auto stored = read_context();
    if (!stored)
      return stored.error_value();
    auto context = stored->value_or(causal_context{});
    rocksdb::WriteBatch batch;
    replica_delta part;
    expected<void> added;
    auto flush = [&] {
      if (part.entries.empty())
        return;
      part.context = context;
      v1::LogEntry entry;
      messages::to_proto(part, *entry.mutable_batch());
      if (added)
        added = put(batch, cf_log, key(be64(next_sequence++)),
                    messages::serialize(entry));
      part.entries.clear();
    };
    auto scanned
        = for_each_record([&](rocksdb::Slice, std::string_view,
                              const engram_id& id, stored_engram& stored) {
            part.entries.push_back(delta_entry{id, std::move(stored.clock),
                                               std::move(stored.versions)});
            if (part.entries.size() == 1024)
              flush();
            return static_cast<bool>(added);
          });
    if (!scanned.ok())
      return storage_error(scanned, "engram scan failed");
    flush();
    if (!added)
      return added;
    if (st = db->Write(rocksdb::WriteOptions{}, &batch); !st.ok())
      return storage_error(st, "cannot write the delta log");
    return write_meta_synced(next_ordinal);
  }

  /// True when the stored record of `id` opens, decodes, and has
  /// `full_key` (an index key of this partition) among its index keys.
  bool record_has_key(const engram_id& id, std::string_view full_key,
                      const rocksdb::Snapshot* snapshot, std::string& bytes,
                      std::string& buffer,
                      std::vector<std::string>& keys) const {
    auto record_key = key(messages::id_bytes(id));
    rocksdb::ReadOptions at;
    at.snapshot = snapshot;
    if (!db->Get(at, cf(cf_engrams), record_key, &bytes).ok())
      return false;
    auto opened = sealed.open(cf_engrams, record_key, bytes, buffer);
    if (!opened)
      return false;
    auto stored = from_record(*opened, id);
    if (!stored)
      return false;
    keys.clear();
    for (auto& v : stored->versions)
      index_keys(sealed, stored->ordinal, v, keys);
    auto suffix = full_key.substr(prefix.size());
    return std::find(keys.begin(), keys.end(), suffix) != keys.end();
  }

  expected<std::vector<engram_id>>
  scan_ids(const std::string& first, const std::string& last = {}) const {
    if (auto ok = require_index(); !ok)
      return ok.error_value();
    std::vector<engram_id> ids;
    // One snapshot for the scan and the records it checks.
    struct snapshot_guard {
      rocksdb::DB* db;
      const rocksdb::Snapshot* snap;
      ~snapshot_guard() {
        if (snap != nullptr)
          db->ReleaseSnapshot(snap);
      }
    } snapshot{db, sealed.on() ? db->GetSnapshot() : nullptr};
    auto bounded = iterate(cf_index_, snapshot.snap);
    auto& it = bounded->it;
    auto prefix = key(first);
    auto end = last.empty() ? std::string{} : key(last);
    std::string bytes;
    std::string buffer;
    std::vector<std::string> keys;
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      auto key = it->key().ToStringView();
      if (end.empty() ? key.substr(0, prefix.size()) != prefix : key > end)
        break;
      auto id = messages::id_from_bytes(it->value().ToString());
      if (!id)
        continue;
      // Encrypted, an entry counts only when the engram's authenticated
      // record has it among its index keys: an entry changed, moved or
      // added in the files is never an answer.
      if (sealed.on()
          && !record_has_key(*id, key, snapshot.snap, bytes, buffer, keys))
        continue;
      ids.push_back(*id);
    }
    if (!it->status().ok())
      return storage_error(it->status(), "index scan failed");
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
  }
};

store::store(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

store::~store() = default;

const std::string& store::path() const noexcept { return impl_->path; }

const std::string& store::partition() const noexcept { return impl_->name; }

expected<std::unique_ptr<store>> store::open(const store_options& options,
                                             replica_id self) {
  auto db = database::open(options);
  if (!db)
    return db.error_value();
  return attach(*db, options.partition, self, options.keeps);
}

expected<uint32_t> store::incarnation(const std::shared_ptr<database>& db,
                                      const std::string& name) {
  if (!db)
    return make_error(errc::storage_failed, "no database");
  std::string bytes;
  auto full_key = name + '\0' + meta_key;
  auto st = db->impl_->db->Get(rocksdb::ReadOptions{}, db->impl_->cfs[cf_meta],
                               full_key, &bytes);
  if (st.IsNotFound())
    return uint32_t{0};
  if (!st.ok())
    return storage_error(st, "cannot read the meta record of partition '" + name
                                 + "'");
  std::string buffer;
  auto opened = db->impl_->sealed.open(cf_meta, full_key, bytes, buffer);
  v1::StoreMeta meta;
  if (!opened
      || !meta.ParseFromArray(opened->data(), static_cast<int>(opened->size())))
    return make_error(errc::corrupt_record, "the meta record of partition '"
                                                + name + "' cannot be decoded");
  return meta.incarnation();
}

expected<std::unique_ptr<store>>
store::attach(const std::shared_ptr<database>& db, const std::string& name,
              replica_id self, partition_options keeps) {
  if (!db)
    return make_error(errc::storage_failed, "no database to attach to");
  if (name.find('\0') != std::string::npos)
    return make_error(errc::invalid_argument,
                      "partition name contains a NUL byte");
  if (!name.empty() && static_cast<unsigned char>(name[0]) == 0xff)
    return make_error(errc::invalid_argument,
                      "partition names starting with byte 0xff are reserved");
  auto state = std::make_unique<impl>();
  state->owner = db;
  state->db = db->impl_->db.get();
  state->cf_handles = &db->impl_->cfs;
  state->path = db->impl_->path;
  state->name = name;
  state->prefix = name + '\0';
  state->prefix_end = name + '\x01';
  state->self = self;
  state->sealed = db->impl_->sealed;
  state->sync = db->impl_->sync;
  state->keep_log = keeps.keep_log;
  state->keep_index = keeps.keep_index;
  auto where = state->where();
  // Schema and ownership.
  std::string bytes;
  auto st = state->db->Get(rocksdb::ReadOptions{}, state->cf(cf_meta),
                           state->key(meta_key), &bytes);
  if (st.ok()) {
    std::string buffer;
    auto opened = state->open(cf_meta, state->key(meta_key), bytes, buffer);
    if (!opened)
      return make_error(errc::corrupt_record,
                        "meta record of " + where + ": "
                            + opened.error_value().message);
    v1::StoreMeta meta;
    if (!meta.ParseFromArray(opened->data(), static_cast<int>(opened->size())))
      return make_error(errc::corrupt_record,
                        "meta record of " + where + " cannot be decoded");
    if (meta.schema_version() > schema_version)
      return make_error(errc::schema_mismatch,
                        where + " was written by schema "
                            + std::to_string(meta.schema_version())
                            + ", this build reads schema "
                            + std::to_string(schema_version) + " and older");
    if (meta.replica() != self)
      return make_error(errc::schema_mismatch,
                        where + " belongs to another replica");
    state->next_sequence = std::max<uint64_t>(1, meta.next_sequence());
    state->next_ordinal = std::max<uint64_t>(1, meta.next_ordinal());
    // Schema 1 indexes are rebuilt (or dropped) whatever the meta says.
    auto old_index = meta.schema_version() < 2;
    auto fail = [&](const error& e, const std::string& what) {
      return make_error(e.code,
                        "cannot " + what + " of " + where + ": " + e.message);
    };
    if (state->keep_index && (old_index || meta.no_index())) {
      if (auto ok = state->rebuild_index(); !ok)
        return fail(ok.error_value(), "build the index");
    } else if (!state->keep_index && (old_index || !meta.no_index())) {
      if (auto ok = state->drop_index(); !ok)
        return fail(ok.error_value(), "drop the index");
    }
    if (state->keep_log && meta.no_log()) {
      if (auto ok = state->seed_log(); !ok)
        return fail(ok.error_value(), "start the delta log");
    } else if (!state->keep_log && !meta.no_log()) {
      if (auto ok = state->drop_log(); !ok)
        return fail(ok.error_value(), "drop the delta log");
    }
  } else if (!st.IsNotFound()) {
    return storage_error(st, "cannot read the meta record of " + where);
  } else {
    auto meta = state->meta_record(1, 1);
    // Not synced: the write-ahead log keeps it in order before the first
    // record, whose synced batch carries it (and the meta record) to disk;
    // a partition lost before that held nothing. (A node creates thousands
    // of partitions; an fsync each would dominate start-up.)
    rocksdb::WriteBatch batch;
    if (auto ok = state->put(batch, cf_meta, state->key(meta_key),
                             meta.SerializeAsString());
        !ok)
      return ok.error_value();
    st = state->db->Write(rocksdb::WriteOptions{}, &batch);
    if (!st.ok())
      return storage_error(st, "cannot initialize " + where);
  }
  // The inbox continues after its last kept message.
  {
    auto bounded = state->iterate(cf_meta);
    auto& it = bounded->it;
    it->SeekForPrev(state->key(inbox_end));
    auto first = state->key(inbox_prefix);
    if (it->Valid() && it->key().starts_with(first)
        && it->key().size() == first.size() + 8) {
      uint64_t n = 0;
      for (auto c : it->key().ToStringView().substr(first.size()))
        n = (n << 8) | static_cast<uint8_t>(c);
      state->next_message = n + 1;
    }
    if (!it->status().ok())
      return storage_error(it->status(), "cannot read the inbox of " + where);
  }
  return std::unique_ptr<store>{new store(std::move(state))};
}

// -- prepared writes
// -----------------------------------------------------------

struct prepared_write::impl {
  /// Keeps the database open until the batch is written.
  std::shared_ptr<database> owner;
  rocksdb::DB* db = nullptr;
  bool sync = true;
  bool written = false;
  uint64_t sequence = 0;
  rocksdb::WriteBatch batch;
  /// The store's count of batches not written yet.
  std::shared_ptr<std::atomic<size_t>> unwritten;

  ~impl() {
    if (!written && unwritten)
      --*unwritten;
  }
};

prepared_write::prepared_write() = default;
prepared_write::~prepared_write() = default;
prepared_write::prepared_write(prepared_write&&) noexcept = default;
prepared_write& prepared_write::operator=(prepared_write&&) noexcept = default;

bool prepared_write::empty() const noexcept { return !impl_; }

const database* prepared_write::owner() const noexcept {
  return impl_ ? impl_->owner.get() : nullptr;
}

uint64_t prepared_write::sequence() const noexcept {
  return impl_ ? impl_->sequence : 0;
}

expected<void> prepared_write::write(bool sync) {
  if (!impl_ || impl_->written)
    return make_error(errc::invalid_argument,
                      "prepared write is empty or was written already");
  rocksdb::WriteOptions opts;
  opts.sync = sync && impl_->sync;
  auto st = impl_->db->Write(opts, &impl_->batch);
  if (!st.ok())
    return storage_error(st, "cannot record delta");
  impl_->written = true;
  --*impl_->unwritten;
  return {};
}

expected<void>
prepared_write::write_all(const std::vector<prepared_write*>& group,
                          bool sync) {
  if (group.empty())
    return {};
  if (group.size() == 1)
    return group.front()->write(sync);
  // One batch of all: RocksDB's representation is a 12-byte header
  // (sequence, fixed64; count, fixed32, both little-endian) and the
  // records, so records concatenate (what RocksDB's own
  // WriteBatchInternal::Append does).
  constexpr size_t header = 12;
  std::string rep(header, '\0');
  uint64_t count = 0;
  bool synced = false;
  for (auto* w : group) {
    if (!w->impl_ || w->impl_->written
        || w->impl_->db != group.front()->impl_->db)
      return make_error(errc::invalid_argument,
                        "a group of prepared writes must be unwritten and of "
                        "one database");
    auto& data = w->impl_->batch.Data();
    if (data.size() < header)
      return make_error(errc::storage_failed, "a malformed write batch");
    rep.append(data, header, std::string::npos);
    count += w->impl_->batch.Count();
    synced = synced || w->impl_->sync;
  }
  if (count > UINT32_MAX)
    return make_error(errc::limit_exceeded, "too many records in one group");
  for (int i = 0; i < 4; ++i)
    rep[8 + i] = static_cast<char>((count >> (8 * i)) & 0xFF);
  rocksdb::WriteBatch combined{rep};
  rocksdb::WriteOptions opts;
  opts.sync = sync && synced;
  auto st = group.front()->impl_->db->Write(opts, &combined);
  if (!st.ok())
    return storage_error(st, "cannot record delta");
  for (auto* w : group) {
    w->impl_->written = true;
    --*w->impl_->unwritten;
  }
  return {};
}

expected<uint64_t> store::record(const replica_delta& delta,
                                 const replica& current) {
  auto prepared = prepare(delta, current);
  if (!prepared)
    return prepared.error_value();
  // Synced (unless the store was opened without sync): the caller
  // acknowledges the write once this returns.
  if (auto ok = prepared->write(); !ok)
    return ok.error_value();
  return prepared->sequence();
}

expected<prepared_write>
store::prepare(const replica_delta& delta, const replica& current,
               const std::vector<std::pair<std::string, std::string>>& side) {
  auto& s = *impl_;
  if (s.keep_index && *s.unwritten > 0)
    return make_error(errc::invalid_argument,
                      s.where()
                          + " keeps an index: prepare a batch once the one "
                            "before was written (it reads stored records)");
  // With an index, the stored records of the touched engrams are read in
  // one sorted batch: their index keys that the new versions no longer have
  // go.
  auto count = delta.entries.size();
  std::vector<std::string> raw_ids;
  raw_ids.reserve(count);
  for (auto& entry : delta.entries)
    raw_ids.push_back(s.key(messages::id_bytes(entry.id)));
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return raw_ids[x] < raw_ids[y];
  });
  std::vector<rocksdb::PinnableSlice> old_records;
  std::vector<rocksdb::Status> found;
  if (s.keep_index && count > 0) {
    std::vector<rocksdb::Slice> lookup;
    lookup.reserve(count);
    for (auto i : order)
      lookup.emplace_back(raw_ids[i]);
    old_records.resize(count);
    found.resize(count);
    s.db->MultiGet(rocksdb::ReadOptions{}, s.cf(cf_engrams), count,
                   lookup.data(), old_records.data(), found.data(), true);
  }
  // Writes go into the batch sorted per column family: the index's skip
  // list then inserts each key next to the previous one instead of
  // searching from its top.
  struct write_op {
    std::string key;
    std::string value;
    bool erase = false;
  };
  std::vector<write_op> engram_ops;
  std::vector<write_op> index_ops;
  engram_ops.reserve(count);
  if (s.keep_index)
    index_ops.reserve(count * 4);
  std::vector<std::string> old_keys;
  std::vector<std::string> new_keys;
  auto next_ordinal = s.next_ordinal;
  // Reused: its repeated fields and strings keep their allocations.
  v1::StoredEngram record;
  std::string buffer;
  for (size_t n = 0; n < count; ++n) {
    auto& entry = delta.entries[order[n]];
    auto& raw_id = raw_ids[order[n]];
    auto held = current.entry_of(entry.id);
    uint64_t ordinal = 0; // only an index needs it
    if (s.keep_index) {
      old_keys.clear();
      new_keys.clear();
      if (found[n].ok()) {
        auto bytes = s.sealed.open(cf_engrams, raw_id,
                                   old_records[n].ToStringView(), buffer);
        auto old = bytes ? from_record(*bytes, entry.id)
                         : expected<stored_engram>{bytes.error_value()};
        if (old) {
          ordinal = old->ordinal;
          for (auto& v : old->versions)
            index_keys(s.sealed, ordinal, v, old_keys);
        }
      } else if (!found[n].IsNotFound()) {
        return storage_error(found[n],
                             "cannot read engram " + entry.id.to_string());
      }
      // A new engram, or one whose record was corrupt: its old index
      // entries cannot be found, so queries may still list it under them.
      if (ordinal == 0)
        ordinal = next_ordinal++;
      if (held)
        for (auto& v : held->versions)
          index_keys(s.sealed, ordinal, v, new_keys);
      std::sort(old_keys.begin(), old_keys.end());
      std::sort(new_keys.begin(), new_keys.end());
      // An update usually keeps its scope, type and subject keys and only
      // moves in time.
      auto o = old_keys.begin();
      auto k = new_keys.begin();
      while (o != old_keys.end() || k != new_keys.end()) {
        if (k == new_keys.end() || (o != old_keys.end() && *o < *k)) {
          index_ops.push_back({s.key(*o++), {}, true});
        } else if (o == old_keys.end() || *k < *o) {
          // The id as it is (a random number, no content): encrypted, an
          // entry is checked against the engram's authenticated record
          // when a query finds it (scan_ids), not sealed on every write.
          index_ops.push_back(
              {s.key(*k++), messages::id_bytes(entry.id), false});
        } else {
          ++o;
          ++k;
        }
      }
    }
    if (!held) {
      engram_ops.push_back({std::move(raw_id), {}, true});
      continue;
    }
    record.Clear();
    to_record(held->versions, held->context, ordinal, record);
    auto value = s.seal(cf_engrams, raw_id, messages::serialize(record));
    if (!value)
      return value.error_value();
    engram_ops.push_back({std::move(raw_id), std::move(*value), false});
  }
  auto sequence = s.next_sequence;
  // The log entry, context and meta record, sealed before the batch is
  // counted as unwritten (a failure here leaves nothing behind).
  std::string log_value;
  if (s.keep_log) {
    v1::LogEntry log;
    messages::to_proto(delta, *log.mutable_batch());
    auto sealed
        = s.seal(cf_log, s.key(be64(sequence)), messages::serialize(log));
    if (!sealed)
      return sealed.error_value();
    log_value = std::move(*sealed);
  }
  v1::StoredContext context;
  messages::to_proto(current.context(), *context.mutable_context());
  auto context_value
      = s.seal(cf_clocks, s.key(context_key), messages::serialize(context));
  if (!context_value)
    return context_value.error_value();
  auto meta_value
      = s.seal(cf_meta, s.key(meta_key),
               messages::serialize(s.meta_record(sequence + 1, next_ordinal)));
  if (!meta_value)
    return meta_value.error_value();
  prepared_write result;
  result.impl_ = std::make_unique<prepared_write::impl>();
  result.impl_->owner = s.owner;
  result.impl_->db = s.db;
  result.impl_->sync = s.sync;
  result.impl_->unwritten = s.unwritten;
  ++*s.unwritten;
  auto& batch = result.impl_->batch;
  auto append = [&](size_t family, std::vector<write_op>& ops) {
    auto by_key = [](const write_op& x, const write_op& y) {
      return x.key < y.key;
    };
    // The engrams' ops come in key order already.
    if (!std::is_sorted(ops.begin(), ops.end(), by_key))
      std::sort(ops.begin(), ops.end(), by_key);
    for (auto& op : ops)
      if (op.erase)
        batch.Delete(s.cf(family), op.key);
      else
        batch.Put(s.cf(family), op.key, op.value);
  };
  append(cf_engrams, engram_ops);
  append(cf_index_, index_ops);
  if (s.keep_log)
    batch.Put(s.cf(cf_log), s.key(be64(sequence)), log_value);
  batch.Put(s.cf(cf_clocks), s.key(context_key), *context_value);
  batch.Put(s.cf(cf_meta), s.key(meta_key), *meta_value);
  for (auto& [key, value] : side)
    if (auto ok = s.put(batch, cf_meta, s.key(side_prefix + key), value); !ok)
      return ok.error_value();
  // The next batch follows this one (a failed write fails the replica's
  // owner, which attaches again and reads the numbers back from meta).
  s.next_sequence = sequence + 1;
  s.next_ordinal = next_ordinal;
  result.impl_->sequence = sequence;
  return result;
}

expected<load_report> store::load(replica& into) const {
  auto loaded = decode_into(into);
  // The decoders' batches are freed (and the threads gone): a large load
  // gives what they used back.
  if (loaded && loaded->engrams >= 65'536)
    return_free_memory();
  return loaded;
}

expected<load_report> store::decode_into(replica& into) const {
  auto& s = *impl_;
  if (into.self() != s.self || into.size() != 0)
    return make_error(errc::schema_mismatch,
                      "store at '" + s.path
                          + "' loads only into a fresh replica with its own "
                            "replica id");
  load_report report;
  auto stored = s.read_context();
  if (!stored)
    return stored.error_value();
  if (!*stored)
    return report; // nothing was ever recorded here
  replica_delta state;
  state.context = std::move(**stored);
  // The stored context first: the batches' dots are then mostly covered by
  // it, which keeps joining their contexts cheap.
  if (auto ok = into.restore(std::move(state)); !ok)
    return ok.error_value();
  // Decode the two halves of the id space on two threads while this one
  // restores what they decoded, in batches: decoding, not I/O, bounds
  // recovery, and batches keep the decoded form's memory small (the replica
  // holds engrams packed, a fraction of their decoded size).
  constexpr size_t batch_entries = 512;
  constexpr size_t max_batches = 4; // in flight
  struct channel {
    std::mutex mutex;
    std::condition_variable changed;
    std::deque<std::vector<delta_entry>> batches;
    std::vector<corrupt_record> corrupt;
    rocksdb::Status status;
    std::exception_ptr failure;
    int running = 2;
    /// Set under the lock, read without it by the decoders' loops.
    std::atomic<bool> cancelled{false};

    void cancel() {
      std::lock_guard<std::mutex> guard{mutex};
      cancelled = true;
      changed.notify_all();
    }
  } ch;
  auto push = [&](std::vector<delta_entry>& batch) {
    std::unique_lock<std::mutex> guard{ch.mutex};
    ch.changed.wait(guard, [&] {
      return ch.cancelled || ch.batches.size() < max_batches;
    });
    if (ch.cancelled)
      return false;
    ch.batches.push_back(std::move(batch));
    batch.clear();
    ch.changed.notify_all();
    return true;
  };
  auto decode_range = [&](const std::string& lower, const std::string& upper) {
    rocksdb::Slice lo{lower};
    rocksdb::Slice hi{upper};
    rocksdb::ReadOptions scan;
    scan.fill_cache = false;
    scan.iterate_lower_bound = &lo;
    scan.iterate_upper_bound = &hi;
    scan.total_order_seek = true;
    std::unique_ptr<rocksdb::Iterator> engrams{
        s.db->NewIterator(scan, s.cf(cf_engrams))};
    google::protobuf::Arena arena;
    std::vector<delta_entry> batch;
    std::vector<corrupt_record> corrupt;
    std::string buffer;
    bool open = true;
    for (engrams->SeekToFirst(); open && !ch.cancelled && engrams->Valid();
         engrams->Next()) {
      auto key = engrams->key();
      key.remove_prefix(s.prefix.size());
      auto id = messages::id_from_bytes(key.ToString());
      if (!id) {
        corrupt.push_back(
            {"engrams", hex(key.ToStringView()), "key is not an id"});
        continue;
      }
      auto bytes = s.sealed.open(cf_engrams, engrams->key().ToStringView(),
                                 engrams->value().ToStringView(), buffer);
      if (!bytes) {
        corrupt.push_back(
            {"engrams", hex(key.ToStringView()), bytes.error_value().message});
        continue;
      }
      arena.Reset();
      auto stored = from_record(*bytes, *id, &arena);
      if (!stored) {
        corrupt.push_back(
            {"engrams", hex(key.ToStringView()), stored.error_value().message});
        continue;
      }
      batch.push_back(delta_entry{*id, std::move(stored->clock),
                                  std::move(stored->versions)});
      if (batch.size() == batch_entries)
        open = push(batch);
    }
    if (open && !batch.empty())
      push(batch);
    std::lock_guard<std::mutex> guard{ch.mutex};
    if (ch.status.ok() && !engrams->status().ok())
      ch.status = engrams->status();
    for (auto& c : corrupt)
      ch.corrupt.push_back(std::move(c));
  };
  // A decoder's failure (out of memory) reaches the caller, as before.
  auto scan_part = [&](const std::string& lower, const std::string& upper) {
    try {
      decode_range(lower, upper);
    } catch (...) {
      std::lock_guard<std::mutex> guard{ch.mutex};
      if (!ch.failure)
        ch.failure = std::current_exception();
      ch.cancelled = true;
    }
    std::lock_guard<std::mutex> guard{ch.mutex};
    --ch.running;
    ch.changed.notify_all();
  };

  auto middle = s.key(std::string(1, '\x80'));
  // Whatever happens here (an error, an exception), the decoders stop and
  // are joined before `load` returns.
  struct joiner {
    channel& ch;
    std::vector<std::thread> threads;
    ~joiner() {
      ch.cancel();
      for (auto& t : threads)
        t.join();
    }
  } decoders{ch, {}};
  decoders.threads.reserve(2);
  try {
    decoders.threads.emplace_back([&] {
      scan_part(s.prefix, middle);
    });
  } catch (...) {
    ch.running = 0;
    throw;
  }
  try {
    decoders.threads.emplace_back([&] {
      scan_part(middle, s.prefix_end);
    });
  } catch (...) {
    std::lock_guard<std::mutex> guard{ch.mutex};
    --ch.running;
    throw;
  }
  expected<void> restored;
  for (;;) {
    std::vector<delta_entry> batch;
    {
      std::unique_lock<std::mutex> guard{ch.mutex};
      ch.changed.wait(guard, [&] {
        return !ch.batches.empty() || ch.running == 0;
      });
      if (ch.batches.empty())
        break;
      batch = std::move(ch.batches.front());
      ch.batches.pop_front();
      ch.changed.notify_all();
    }
    // Each batch carries the dots of its versions as its context.
    replica_delta part;
    part.entries = std::move(batch);
    std::vector<dot> dots;
    for (auto& entry : part.entries) {
      ++report.engrams;
      report.versions += entry.versions.size();
      for (auto& v : entry.versions)
        dots.push_back(v.tag);
    }
    part.context = causal_context{std::move(dots)};
    restored = into.restore(std::move(part));
    if (!restored)
      break; // the decoders stop when `decoders` goes
  }
  if (!restored)
    return restored.error_value();
  {
    std::lock_guard<std::mutex> guard{ch.mutex};
    if (ch.failure)
      std::rethrow_exception(ch.failure);
  }
  if (!ch.status.ok())
    return storage_error(ch.status, "engram scan failed");
  report.corrupt = std::move(ch.corrupt);
  std::sort(report.corrupt.begin(), report.corrupt.end(),
            [](const corrupt_record& x, const corrupt_record& y) {
              return x.key < y.key;
            });
  return report;
}

expected<std::vector<version>> store::get(const engram_id& id) const {
  auto& s = *impl_;
  std::string bytes;
  auto raw = messages::id_bytes(id);
  auto st
      = s.db->Get(rocksdb::ReadOptions{}, s.cf(cf_engrams), s.key(raw), &bytes);
  if (st.IsNotFound())
    return std::vector<version>{};
  if (!st.ok())
    return storage_error(st, "cannot read engram " + id.to_string());
  std::string buffer;
  auto opened = s.open(cf_engrams, s.key(raw), bytes, buffer);
  if (!opened)
    return opened.error_value();
  auto stored = from_record(*opened, id);
  if (!stored)
    return make_error(errc::corrupt_record, "engrams/" + hex(raw) + ": "
                                                + stored.error_value().message);
  return std::move(stored->versions);
}

expected<std::vector<engram_id>>
store::by_scope(const memory_scope& scope) const {
  return impl_->scan_ids(scope_prefix(impl_->sealed, scope));
}

expected<std::vector<engram_id>> store::by_type(memory_type type) const {
  return impl_->scan_ids(type_prefix(type));
}

expected<std::vector<engram_id>> store::by_time(hlc_timestamp from,
                                                hlc_timestamp to) const {
  return impl_->scan_ids(time_key(from), time_key(to) + std::string(8, '\xff'));
}

expected<std::vector<engram_id>>
store::by_subject(const std::string& subject,
                  const std::string& relation) const {
  return impl_->scan_ids(subject_prefix(impl_->sealed, subject, relation));
}

namespace {

// Decodes a log entry (reporting its key when it cannot be decoded).
expected<replica_delta> decode_log(const sealing& sealed,
                                   const rocksdb::Iterator& it) {
  std::string buffer;
  auto bytes = sealed.open(cf_log, it.key().ToStringView(),
                           it.value().ToStringView(), buffer);
  if (!bytes)
    return make_error(errc::corrupt_record,
                      "delta_log/" + hex(it.key().ToStringView()) + ": "
                          + bytes.error_value().message);
  v1::LogEntry entry;
  if (!entry.ParseFromArray(bytes->data(), static_cast<int>(bytes->size())))
    return make_error(errc::corrupt_record, "delta_log/"
                                                + hex(it.key().ToStringView())
                                                + ": not a LogEntry");
  auto delta = messages::from_proto(entry.batch(), messages::limits{});
  if (!delta)
    return make_error(errc::corrupt_record,
                      "delta_log/" + hex(it.key().ToStringView()) + ": "
                          + delta.error_value().message);
  return delta;
}

bool unseen_by(const replica_delta& delta, const causal_context& peer) {
  for (auto& entry : delta.entries)
    for (auto& v : entry.versions)
      if (!peer.contains(v.tag))
        return true;
  return false;
}

} // namespace

expected<void> store::keep_message(const stored_message& message) {
  auto& s = *impl_;
  v1::StoredMessage record;
  record.set_id(message.id);
  record.set_from(message.from);
  record.set_text(message.text);
  rocksdb::WriteBatch batch;
  if (auto ok
      = s.put(batch, cf_meta, s.key(inbox_prefix + be64(s.next_message)),
              messages::serialize(record));
      !ok)
    return ok;
  auto st = s.db->Write(s.write_options(), &batch);
  if (!st.ok())
    return storage_error(st, "cannot keep the message");
  ++s.next_message;
  return {};
}

expected<std::vector<stored_message>>
store::messages(std::vector<corrupt_record>* corrupt) const {
  std::vector<stored_message> out;
  auto ok = impl_->scan_meta(
      inbox_prefix, inbox_end, "inbox", corrupt,
      [&out](std::string_view, std::string_view bytes) -> std::string {
        v1::StoredMessage record;
        if (!record.ParseFromArray(bytes.data(),
                                   static_cast<int>(bytes.size())))
          return "not a StoredMessage";
        out.push_back({record.id(), record.from(), record.text()});
        return {};
      });
  if (!ok)
    return ok.error_value();
  return out;
}

expected<std::vector<std::pair<std::string, std::string>>>
store::side_records(std::vector<corrupt_record>* corrupt) const {
  std::vector<std::pair<std::string, std::string>> out;
  auto ok = impl_->scan_meta(
      side_prefix, side_end, "side record", corrupt,
      [&out](std::string_view key, std::string_view bytes) -> std::string {
        out.emplace_back(std::string{key}, std::string{bytes});
        return {};
      });
  if (!ok)
    return ok.error_value();
  return out;
}

expected<void> store::drop_side_records(const std::vector<std::string>& keys) {
  auto& s = *impl_;
  if (keys.empty())
    return {};
  rocksdb::WriteBatch batch;
  for (auto& key : keys)
    batch.Delete(s.cf(cf_meta), s.key(side_prefix + key));
  auto st = s.db->Write(s.write_options(), &batch);
  if (!st.ok())
    return storage_error(st, "cannot drop side records");
  return {};
}

expected<void> store::clear_messages() {
  auto& s = *impl_;
  rocksdb::WriteBatch batch;
  batch.DeleteRange(s.cf(cf_meta), s.key(inbox_prefix), s.key(inbox_end));
  auto st = s.db->Write(s.write_options(), &batch);
  if (!st.ok())
    return storage_error(st, "cannot clear the inbox");
  return {};
}

expected<replica_delta> store::deltas_since(const causal_context& peer) const {
  auto& s = *impl_;
  if (auto ok = s.require_log(); !ok)
    return ok.error_value();
  replica_delta result;
  auto bounded = s.iterate(cf_log);
  auto& it = bounded->it;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto delta = decode_log(s.sealed, *it);
    if (!delta)
      return delta.error_value();
    if (unseen_by(*delta, peer))
      join_deltas(result, *delta);
  }
  if (!it->status().ok())
    return storage_error(it->status(), "delta log scan failed");
  return result;
}

expected<void> store::acknowledge(const std::string& peer,
                                  const causal_context& seen) {
  if (auto ok = validate_id(peer, "peer name"); !ok)
    return ok;
  if (auto ok = impl_->require_log(); !ok)
    return ok;
  v1::PeerAck ack;
  ack.set_peer(peer);
  messages::to_proto(seen, *ack.mutable_seen());
  // Not synced: losing an acknowledgement only delays log truncation.
  rocksdb::WriteBatch batch;
  if (auto ok = impl_->put(batch, cf_clocks, impl_->key(peer_prefix + peer),
                           messages::serialize(ack));
      !ok)
    return ok;
  auto st = impl_->db->Write(rocksdb::WriteOptions{}, &batch);
  if (!st.ok())
    return storage_error(st, "cannot record acknowledgement");
  return {};
}

expected<size_t> store::truncate_log() {
  auto& s = *impl_;
  if (auto ok = s.require_log(); !ok)
    return ok.error_value();
  std::vector<causal_context> peers;
  auto bounded_acks = s.iterate(cf_clocks);
  auto& acks = bounded_acks->it;
  auto first_ack = s.key(peer_prefix);
  std::string buffer;
  for (acks->Seek(first_ack); acks->Valid(); acks->Next()) {
    if (!acks->key().starts_with(first_ack))
      break;
    auto bytes = s.open(cf_clocks, acks->key().ToStringView(),
                        acks->value().ToStringView(), buffer);
    if (!bytes)
      return bytes.error_value();
    v1::PeerAck ack;
    if (!ack.ParseFromArray(bytes->data(), static_cast<int>(bytes->size())))
      return make_error(errc::corrupt_record,
                        "clocks/" + acks->key().ToString() + ": not a PeerAck");
    auto seen = messages::from_proto(ack.seen(), messages::limits{});
    if (!seen)
      return seen.error_value();
    peers.push_back(std::move(*seen));
  }
  if (peers.empty())
    return size_t{0};
  rocksdb::WriteBatch batch;
  size_t removed = 0;
  auto bounded = s.iterate(cf_log);
  auto& it = bounded->it;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto delta = decode_log(s.sealed, *it);
    if (!delta)
      continue; // keep what we cannot read; deltas_since reports it
    bool everyone = std::none_of(peers.begin(), peers.end(),
                                 [&](const causal_context& p) {
                                   return unseen_by(*delta, p);
                                 });
    if (everyone) {
      batch.Delete(s.cf(cf_log), it->key());
      ++removed;
    }
  }
  // Not synced: a lost truncation is redone by the next one.
  auto st = s.db->Write(rocksdb::WriteOptions{}, &batch);
  if (!st.ok())
    return storage_error(st, "cannot truncate delta log");
  return removed;
}

size_t store::log_size() const {
  size_t n = 0;
  auto bounded = impl_->iterate(cf_log);
  auto& it = bounded->it;
  for (it->SeekToFirst(); it->Valid(); it->Next())
    ++n;
  return n;
}

} // namespace engram::persistence
