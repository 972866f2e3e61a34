#include "persistence/consensus_log.hpp"

#include "messages/consensus_codec.hpp"
#include "persistence/database.hpp"
#include "persistence/internal/database_impl.hpp"

#include <rocksdb/write_batch.h>

namespace engram::persistence {

namespace c = consensus;
using namespace internal;

namespace {

/// Consensus records live outside every partition (0xff) in the default
/// family: "\xff" "engram.raft/" <group> "/" then "h" (hard state), "s"
/// (snapshot) or "e" + the index in 8 big-endian bytes (entries, in order).
std::string prefix_of(const std::string& group) {
  return "\xff"
         "engram.raft/"
         + group + "/";
}

std::string entry_key(const std::string& prefix, c::index_t i) {
  std::string key = prefix + "e";
  for (int shift = 56; shift >= 0; shift -= 8)
    key.push_back(static_cast<char>((i >> shift) & 0xff));
  return key;
}

error refused(const std::string& group, const std::string& what) {
  return make_error(errc::corrupt_record,
                    "consensus log of group " + group + ": " + what);
}

} // namespace

consensus_log::consensus_log(std::shared_ptr<database> db, std::string group)
    : db_(std::move(db)), group_(std::move(group)), prefix_(prefix_of(group_)) {
}

consensus_log::~consensus_log() = default;

expected<std::unique_ptr<consensus_log>>
consensus_log::open(std::shared_ptr<database> db, std::string group) {
  if (group.empty() || group.find('/') == 0)
    return make_error(errc::invalid_field, "consensus group name is empty");
  std::unique_ptr<consensus_log> log{new consensus_log(db, std::move(group))};
  auto& impl = *db->impl_;
  auto* family = impl.cfs[cf_default];
  std::string buffer;
  auto read
      = [&](const std::string& key) -> expected<std::optional<std::string>> {
    std::string bytes;
    auto st = impl.db->Get(rocksdb::ReadOptions{}, family, key, &bytes);
    if (st.IsNotFound())
      return std::optional<std::string>{};
    if (!st.ok())
      return storage_error(st,
                           "cannot read consensus log of group " + log->group_);
    auto opened = impl.sealed.open(cf_default, key, bytes, buffer);
    if (!opened)
      return refused(log->group_,
                     hex(key) + ": " + opened.error_value().message);
    return std::optional<std::string>{std::string{*opened}};
  };
  // The snapshot first: the log starts after it.
  auto snap_bytes = read(log->prefix_ + "s");
  if (!snap_bytes)
    return snap_bytes.error_value();
  if (*snap_bytes) {
    auto snap = messages::decode_snapshot(**snap_bytes);
    if (!snap)
      return refused(log->group_, "snapshot: " + snap.error_value().message);
    (void)log->cache_.apply_snapshot(std::move(*snap));
  }
  auto hs_bytes = read(log->prefix_ + "h");
  if (!hs_bytes)
    return hs_bytes.error_value();
  c::hard_state hs;
  if (*hs_bytes) {
    auto decoded = messages::decode_hard_state(**hs_bytes);
    if (!decoded)
      return refused(log->group_,
                     "hard state: " + decoded.error_value().message);
    hs = *decoded;
  }
  // The entries, in index order, contiguous from the snapshot on.
  std::vector<c::entry> entries;
  auto first = log->cache_.first_index();
  auto expected_index = first;
  c::term_t last_term = log->cache_.current_snapshot().meta.term;
  std::unique_ptr<rocksdb::Iterator> it{
      impl.db->NewIterator(rocksdb::ReadOptions{}, family)};
  auto entries_prefix = log->prefix_ + "e";
  for (it->Seek(entries_prefix); it->Valid(); it->Next()) {
    auto key = it->key().ToStringView();
    if (key.substr(0, entries_prefix.size()) != entries_prefix)
      break;
    auto opened
        = impl.sealed.open(cf_default, key, it->value().ToStringView(), buffer);
    if (!opened)
      return refused(log->group_,
                     "entry " + hex(key) + ": " + opened.error_value().message);
    auto e = messages::decode_entry(*opened);
    if (!e)
      return refused(log->group_,
                     "entry " + hex(key) + ": " + e.error_value().message);
    if (e->index < first)
      continue; // covered by the snapshot (left by a crash mid-compaction)
    if (e->index != expected_index)
      return refused(log->group_, "entry " + std::to_string(e->index)
                                      + " follows "
                                      + std::to_string(expected_index - 1)
                                      + ": the log has a gap");
    if (e->term < last_term)
      return refused(log->group_, "entry " + std::to_string(e->index)
                                      + " has a term below its predecessor's");
    last_term = e->term;
    ++expected_index;
    entries.push_back(std::move(*e));
  }
  if (!it->status().ok())
    return storage_error(it->status(),
                         "cannot read consensus log of group " + log->group_);
  if (!log->cache_.append(std::move(entries)))
    return refused(log->group_, "the entries do not follow the snapshot");
  if (!hs.empty()) {
    if (hs.commit > log->cache_.last_index())
      return refused(log->group_,
                     "committed up to " + std::to_string(hs.commit)
                         + " but holds entries up to "
                         + std::to_string(log->cache_.last_index()));
    if (hs.term < last_term)
      return refused(log->group_, "its term " + std::to_string(hs.term)
                                      + " is below its last entry's");
  }
  log->cache_.set_hard_state(hs);
  return log;
}

// -- reads --------------------------------------------------------------------

std::pair<c::hard_state, c::conf_state> consensus_log::initial_state() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return cache_.initial_state();
}

c::storage_error consensus_log::entries(c::index_t lo, c::index_t hi,
                                        uint64_t max_bytes,
                                        std::vector<c::entry>& out) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return cache_.entries(lo, hi, max_bytes, out);
}

c::storage_error consensus_log::term(c::index_t i, c::term_t& out) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return cache_.term(i, out);
}

c::index_t consensus_log::first_index() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return cache_.first_index();
}

c::index_t consensus_log::last_index() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return cache_.last_index();
}

c::storage_error consensus_log::get_snapshot(c::snapshot& out) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return cache_.get_snapshot(out);
}

// -- writes -------------------------------------------------------------------

expected<void> consensus_log::save(const c::ready& rd) {
  if (!rd.snap && rd.entries.empty() && !rd.hard)
    return {};
  auto& impl = *db_->impl_;
  auto* family = impl.cfs[cf_default];
  rocksdb::WriteBatch batch;
  auto put = [&](const std::string& key, std::string value) -> expected<void> {
    auto sealed = impl.sealed.seal(cf_default, key, std::move(value));
    if (!sealed)
      return sealed.error_value();
    auto st = batch.Put(family, key, *sealed);
    if (!st.ok())
      return storage_error(st, "cannot write consensus log");
    return {};
  };
  std::lock_guard<std::mutex> guard{mtx_};
  auto old_last = cache_.last_index();
  if (rd.snap) {
    // The snapshot replaces the whole log.
    auto st = batch.DeleteRange(family, entry_key(prefix_, 0),
                                entry_key(prefix_, ~c::index_t{0}));
    if (!st.ok())
      return storage_error(st, "cannot write consensus log");
    if (auto r = put(prefix_ + "s", messages::encode(*rd.snap)); !r)
      return r;
    old_last = 0;
  }
  if (!rd.entries.empty()) {
    // Entries replace any suffix from their first index on.
    auto to = rd.entries.back().index;
    if (old_last > to) {
      auto st = batch.DeleteRange(family, entry_key(prefix_, to + 1),
                                  entry_key(prefix_, old_last + 1));
      if (!st.ok())
        return storage_error(st, "cannot write consensus log");
    }
    for (auto& e : rd.entries)
      if (auto r = put(entry_key(prefix_, e.index), messages::encode(e)); !r)
        return r;
  }
  if (rd.hard)
    if (auto r = put(prefix_ + "h", messages::encode(*rd.hard)); !r)
      return r;
  // Synced (when the database syncs): the caller sends this ready's votes
  // and acknowledgements only after this returns.
  rocksdb::WriteOptions wo;
  wo.sync = impl.sync;
  auto st = impl.db->Write(wo, &batch);
  if (!st.ok())
    return storage_error(st, "cannot write consensus log of group " + group_);
  if (rd.snap)
    (void)cache_.apply_snapshot(*rd.snap);
  if (!rd.entries.empty() && !cache_.append(rd.entries))
    return make_error(errc::storage_failed,
                      "consensus log of group " + group_
                          + ": entries do not follow the log");
  if (rd.hard)
    cache_.set_hard_state(*rd.hard);
  return {};
}

expected<void> consensus_log::compact(c::index_t index,
                                      const c::conf_state& conf,
                                      std::string data) {
  auto& impl = *db_->impl_;
  auto* family = impl.cfs[cf_default];
  std::lock_guard<std::mutex> guard{mtx_};
  if (index <= cache_.current_snapshot().meta.index)
    return {};
  if (index > cache_.last_index())
    return make_error(errc::invalid_field,
                      "cannot compact consensus log beyond its last entry");
  c::term_t t = 0;
  if (cache_.term(index, t) != c::storage_error::none)
    return make_error(errc::invalid_field,
                      "cannot compact consensus log at a compacted entry");
  c::snapshot snap;
  snap.meta.index = index;
  snap.meta.term = t;
  snap.meta.conf = conf;
  snap.data = std::move(data);
  rocksdb::WriteBatch batch;
  auto key = prefix_ + "s";
  auto sealed = impl.sealed.seal(cf_default, key, messages::encode(snap));
  if (!sealed)
    return sealed.error_value();
  auto st = batch.Put(family, key, *sealed);
  if (st.ok())
    st = batch.DeleteRange(family, entry_key(prefix_, 0),
                           entry_key(prefix_, index + 1));
  if (!st.ok())
    return storage_error(st, "cannot compact consensus log");
  // Synced: a snapshot replaces entries that no longer exist afterwards.
  rocksdb::WriteOptions wo;
  wo.sync = impl.sync;
  st = impl.db->Write(wo, &batch);
  if (!st.ok())
    return storage_error(st, "cannot compact consensus log of group " + group_);
  (void)cache_.create_snapshot(index, conf, snap.data);
  (void)cache_.compact(index);
  return {};
}

} // namespace engram::persistence
