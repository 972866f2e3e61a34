// Opening the node's RocksDB database only when it is whole, checking it
// without opening it, and repairing it on request.
//
// RocksDB, opened with its defaults on a damaged directory, can open part
// of a store and say nothing: a truncated MANIFEST rolls the store back and
// the open deletes the table files it no longer references; a damaged
// write-ahead log is replayed up to the damage (or past it) and the rest is
// dropped; a directory of unrelated files becomes a new store beside them.
// So before a store is opened read-write, it is checked: every log record
// by record (`internal/log_scan.hpp`), the column families, a read-only
// open (which never deletes), and the sequence number the store's last
// flush reached, which a listener keeps in the `ENGRAM_STORE` file beside
// the store (a MANIFEST that lost records recovers less than that).

#include "persistence/database.hpp"

#include "persistence/internal/database_impl.hpp"
#include "persistence/internal/log_scan.hpp"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

namespace engram::persistence {

namespace fs = std::filesystem;
using namespace internal;

namespace internal {

std::vector<rocksdb::ColumnFamilyDescriptor> family_descriptors() {
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  rocksdb::ColumnFamilyOptions cf_opts;
  // Point reads of engrams that do not exist yet (every first write) should
  // not touch table files: bloom filters answer them.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf_opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  for (auto* name : cf_names)
    descriptors.emplace_back(name, cf_opts);
  // A new engram's index keys are appended (they end with its ordinal); an
  // update deletes its old time key at a random place. 16 MB balances the
  // two: smaller memtables stall writes on flushes, larger ones make the
  // random deletes slower (bench_persistence, bench/README.md).
  descriptors[cf_index_].options.write_buffer_size = 16 << 20;
  // Engram ids are random: in a skip list every insert searches from its
  // top through cache misses. A hash memtable (a bucket per key) inserts
  // and looks up in O(1); scans (loading) sort it once. Most writes create
  // engrams: a bloom filter over the memtable answers their lookups.
  auto& engrams = descriptors[cf_engrams].options;
  engrams.prefix_extractor.reset(rocksdb::NewNoopTransform());
  engrams.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(1 << 18));
  engrams.memtable_prefix_bloom_size_ratio = 0.05;
  engrams.memtable_whole_key_filtering = true;
  return descriptors;
}

} // namespace internal

namespace {

/// The file beside a store that marks the directory as an Engram store and
/// holds the sequence number its last flush reached.
constexpr const char* marker_file = "ENGRAM_STORE";
constexpr const char* marker_magic = "engram-store 1";

error damaged(const std::string& what) {
  return make_error(errc::damaged_store, what);
}

std::string repair_hint(const std::string& path) {
  return " (the store was not opened and nothing was changed; "
         "`engramd repair --data-dir "
         + path + "` keeps a copy of it and recovers what it can)";
}

rocksdb::DBOptions db_options(bool fresh) {
  rocksdb::DBOptions opts;
  opts.create_if_missing = fresh;
  opts.create_missing_column_families = fresh;
  // Checks on every read of table files and of the logs at recovery.
  opts.paranoid_checks = true;
  // Only a record cut short at the very end of a log is tolerated (a write
  // that was never acknowledged); the scan before the open refuses damage
  // anywhere else, which this mode lets through in some cases.
  opts.wal_recovery_mode
      = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  opts.best_efforts_recovery = false;
  // Hash memtables take one writer at a time (the write group's leader
  // inserts for the group).
  opts.allow_concurrent_memtable_write = false;
  return opts;
}

// -- the marker file ----------------------------------------------------------

/// The flushed sequence the marker holds; nullopt without a marker.
std::optional<uint64_t> read_marker(const std::string& dir) {
  std::ifstream in{dir + "/" + marker_file};
  if (!in)
    return std::nullopt;
  std::string magic;
  std::getline(in, magic);
  std::string word;
  uint64_t flushed = 0;
  in >> word >> flushed;
  if (magic != marker_magic || word != "flushed-sequence")
    return uint64_t{0};
  return flushed;
}

/// Writes the marker whole (a temporary file synced, then renamed, then the
/// directory synced): a crash leaves the old one or the new one.
bool write_marker(const std::string& dir, uint64_t flushed) {
  // One writer at a time: the open and RocksDB's flush thread (the
  // listener below) may both write it, through the same temporary file.
  static std::mutex writing;
  std::lock_guard<std::mutex> guard{writing};
  auto tmp = dir + "/" + marker_file + ".tmp";
  auto text = std::string{marker_magic} + "\nflushed-sequence "
              + std::to_string(flushed) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return false;
  bool ok = ::write(fd, text.data(), text.size())
                == static_cast<ssize_t>(text.size())
            && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), (dir + "/" + marker_file).c_str()) != 0)
    return false;
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

/// Keeps the marker's flushed sequence at the highest sequence number a
/// completed flush wrote (RocksDB has synced the MANIFEST by then): a
/// MANIFEST that later loses records recovers less than that.
class flush_listener final : public rocksdb::EventListener {
public:
  flush_listener(std::string dir, uint64_t flushed)
      : dir_(std::move(dir)), flushed_(flushed) {
    // nop
  }

  void OnFlushCompleted(rocksdb::DB*,
                        const rocksdb::FlushJobInfo& info) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (info.largest_seqno <= flushed_)
      return;
    flushed_ = info.largest_seqno;
    write_marker(dir_, flushed_);
  }

private:
  std::string dir_;
  std::mutex mtx_;
  uint64_t flushed_;
};

// -- checks before an open ----------------------------------------------------

bool ends_with(const std::string& x, const char* suffix) {
  std::string s{suffix};
  return x.size() >= s.size()
         && x.compare(x.size() - s.size(), s.size(), s) == 0;
}

/// What the checks found about an existing store.
struct preflight_result {
  uint64_t latest_sequence = 0;
  std::vector<std::string> orphans; // table files no MANIFEST references
  std::vector<std::string> notes;
  bool has_marker = false;
  size_t logs = 0;
};

/// The lock a process holds on a store directory while it uses it (or
/// checks or repairs it): `ENGRAM_LOCK`, taken before anything is read, so
/// a second process can never take a running node's fresh table files for
/// leftovers of a crash. Released when destroyed.
class dir_lock {
public:
  dir_lock() = default;
  dir_lock(const dir_lock&) = delete;
  dir_lock& operator=(const dir_lock&) = delete;
  dir_lock(dir_lock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  dir_lock& operator=(dir_lock&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~dir_lock() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  static expected<dir_lock> take(const std::string& dir) {
    auto file = dir + "/ENGRAM_LOCK";
    dir_lock lock;
    lock.fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock.fd_ < 0)
      return make_error(errc::storage_failed,
                        "cannot open '" + file + "': " + std::strerror(errno));
    if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0)
      return make_error(errc::storage_failed,
                        "the store at '" + dir
                            + "' is in use by another process (or another "
                              "open in this one)");
    return lock;
  }

private:
  int fd_ = -1;
};

/// Whether a directory's entries look like a store (damaged or not).
bool looks_like_store(const std::set<std::string>& names) {
  for (auto& n : names)
    if (n == marker_file || n == "CURRENT" || ends_with(n, ".sst")
        || ends_with(n, ".log") || n.rfind("MANIFEST-", 0) == 0)
      return true;
  return false;
}

std::set<std::string> entries(const std::string& path, std::error_code& ec) {
  std::set<std::string> names;
  for (auto& entry : fs::directory_iterator(path, ec))
    names.insert(entry.path().filename().string());
  return names;
}

/// Refuses a non-empty directory that holds no store (before a lock file
/// is created in it).
expected<void> store_or_empty(const std::string& path) {
  std::error_code ec;
  auto names = entries(path, ec);
  if (ec)
    return make_error(errc::storage_failed,
                      "cannot list '" + path + "': " + ec.message());
  names.erase("ENGRAM_LOCK");
  if (names.empty() || looks_like_store(names))
    return {};
  return make_error(errc::invalid_argument,
                    "'" + path + "' is not an Engram store: it holds "
                        + std::to_string(names.size()) + " entries (e.g. '"
                        + *names.begin()
                        + "') but no store; give a new or empty directory");
}

/// Checks an existing, non-empty store directory without changing it (the
/// caller holds its lock).
expected<preflight_result> preflight(const std::string& path) {
  preflight_result result;
  std::set<std::string> names;
  std::error_code ec;
  for (auto& entry : fs::directory_iterator(path, ec))
    names.insert(entry.path().filename().string());
  if (ec)
    return make_error(errc::storage_failed,
                      "cannot list '" + path + "': " + ec.message());
  result.has_marker = names.count(marker_file) > 0;
  names.erase("ENGRAM_LOCK");
  if (names.count("CURRENT") == 0) {
    if (looks_like_store(names))
      return damaged("'" + path + "/CURRENT' is missing" + repair_hint(path));
    return make_error(errc::invalid_argument,
                      "'" + path + "' is not an Engram store: it holds "
                          + std::to_string(names.size()) + " entries (e.g. '"
                          + *names.begin()
                          + "') but no store; give a new or empty directory");
  }
  std::ifstream current{path + "/CURRENT"};
  std::string manifest;
  std::getline(current, manifest);
  if (manifest.rfind("MANIFEST-", 0) != 0 || names.count(manifest) == 0)
    return damaged("'" + path + "/CURRENT' names '" + manifest
                   + "', which is not there" + repair_hint(path));
  // Every log, record by record: damage before the end of a file is refused.
  // Only the newest write-ahead log may end in a write cut short (a log is
  // complete and synced before the next one starts).
  std::string newest_log;
  for (auto& n : names)
    if (ends_with(n, ".log")
        && (newest_log.empty() || n.size() > newest_log.size()
            || (n.size() == newest_log.size() && n > newest_log)))
      newest_log = n;
  for (auto& n : names) {
    bool is_manifest = n == manifest;
    if (!is_manifest && !ends_with(n, ".log"))
      continue;
    std::string io;
    auto scan = scan_log_file(path + "/" + n, !is_manifest, &io);
    if (!scan)
      return make_error(errc::storage_failed, io);
    if (scan->damaged_at)
      return damaged("'" + path + "/" + n + "' is damaged: " + scan->damage
                     + repair_hint(path));
    if (is_manifest && scan->records == 0)
      return damaged("'" + path + "/" + n + "' holds no record"
                     + repair_hint(path));
    if (scan->torn_tail && !is_manifest && n != newest_log)
      return damaged("'" + path + "/" + n
                     + "' is cut short but is not the newest log"
                     + repair_hint(path));
    if (scan->torn_tail)
      result.notes.push_back(n
                             + " ends in a write cut short (never "
                               "acknowledged): left out");
    if (!is_manifest)
      ++result.logs;
  }
  // A store of Engram's: exactly its column families.
  std::vector<std::string> families;
  auto st
      = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions{}, path, &families);
  if (!st.ok())
    return damaged("cannot read the column families of the store at '" + path
                   + "': " + st.ToString() + repair_hint(path));
  std::set<std::string> have{families.begin(), families.end()};
  std::set<std::string> want{std::begin(cf_names), std::end(cf_names)};
  if (have != want) {
    std::string list;
    for (auto& f : families)
      list += (list.empty() ? "" : ", ") + f;
    // Ours (the marker says so) with families missing: the MANIFEST lost
    // the records that created them.
    if (result.has_marker
        && std::includes(want.begin(), want.end(), have.begin(), have.end()))
      return damaged("'" + path + "/" + manifest
                     + "' is missing column families of the store (it names "
                     + list + ")" + repair_hint(path));
    return make_error(errc::invalid_argument,
                      "'" + path
                          + "' holds a RocksDB database that is not an "
                            "Engram store (column families: "
                          + list + ")");
  }
  // A read-only open never deletes nor writes anything.
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  st = rocksdb::DB::OpenForReadOnly(db_options(false), path,
                                    family_descriptors(), &handles, &raw);
  if (!st.ok())
    return damaged("the store at '" + path
                   + "' cannot be read: " + st.ToString() + repair_hint(path));
  std::unique_ptr<rocksdb::DB> probe{raw};
  result.latest_sequence = probe->GetLatestSequenceNumber();
  std::vector<rocksdb::LiveFileMetaData> live;
  probe->GetLiveFilesMetaData(&live);
  std::set<std::string> referenced;
  for (auto& f : live)
    referenced.insert(fs::path{f.name}.filename().string());
  for (auto* h : handles)
    probe->DestroyColumnFamilyHandle(h);
  probe.reset();
  for (auto& n : names)
    if (ends_with(n, ".sst") && referenced.count(n) == 0)
      result.orphans.push_back(n);
  if (auto flushed = read_marker(path);
      flushed && *flushed > result.latest_sequence) {
    std::string lost;
    for (auto& o : result.orphans)
      lost += " " + o;
    return damaged("'" + path + "/" + manifest
                   + "' is behind: the store had flushed up to sequence "
                   + std::to_string(*flushed) + ", it now recovers only up to "
                   + std::to_string(result.latest_sequence)
                   + (lost.empty()
                          ? std::string{}
                          : "; table files it no longer references:" + lost)
                   + repair_hint(path));
  }
  // Without the marker (a store of an earlier build) nothing tells whether
  // unreferenced table files are crash leftovers or what a damaged MANIFEST
  // lost: refused.
  if (!result.has_marker && !result.orphans.empty()) {
    std::string list;
    for (auto& o : result.orphans)
      list += " " + o;
    return damaged("'" + path + "/" + manifest
                   + "' does not reference the table files" + list
                   + ", and the store has no ENGRAM_STORE file to tell whether "
                     "they hold lost data"
                   + repair_hint(path));
  }
  return result;
}

/// Moves table files no MANIFEST references (left by a crash during a
/// flush or a compaction, their data covered) into `orphans/` instead of
/// letting the open delete them.
void set_aside(const std::string& path, const std::vector<std::string>& files,
               std::vector<std::string>& notes) {
  if (files.empty())
    return;
  std::error_code ec;
  fs::create_directories(path + "/orphans", ec);
  for (auto& f : files) {
    fs::rename(path + "/" + f, path + "/orphans/" + f, ec);
    notes.push_back("table file " + f
                    + " is referenced by no MANIFEST (left by a crash during a "
                      "flush or compaction): moved to orphans/");
  }
}

/// Whether `dir` (existing) accepts new files.
expected<void> writable(const fs::path& dir) {
  auto probe = (dir / ".engram-probe-XXXXXX").string();
  int fd = ::mkstemp(probe.data());
  if (fd < 0)
    return make_error(errc::storage_failed, "cannot write in '" + dir.string()
                                                + "': " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
  return {};
}

// -- encryption at rest -------------------------------------------------------

/// True when a partition (a replica) was ever attached to the store, or
/// the node kept a note in it.
bool holds_partitions(rocksdb::DB& db,
                      const std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
  rocksdb::ReadOptions opts;
  opts.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it{db.NewIterator(opts, cfs[cf_meta])};
  it->SeekToFirst();
  if (it->Valid() && static_cast<unsigned char>(it->key()[0]) != 0xff)
    return true;
  const std::string notes = "\xff"
                            "engram.note/";
  std::unique_ptr<rocksdb::Iterator> n{db.NewIterator(opts, cfs[cf_default])};
  n->Seek(notes);
  return n->Valid() && n->key().starts_with(notes);
}

/// The keyring a store keeps (nullptr: none).
expected<std::optional<std::string>>
read_keyring(rocksdb::DB& db,
             const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
             const std::string& path) {
  std::string saved;
  auto st
      = db.Get(rocksdb::ReadOptions{}, cfs[cf_default], keyring_key, &saved);
  if (st.IsNotFound())
    return std::optional<std::string>{};
  if (!st.ok())
    return storage_error(st, "cannot read the keyring of the store at '" + path
                                 + "'");
  return std::optional<std::string>{std::move(saved)};
}

expected<void>
write_keyring(rocksdb::DB& db,
              const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
              const crypto::keyring& keys, const crypto::key256& master,
              const std::string& path) {
  auto saved = keys.save(master);
  if (!saved)
    return saved.error_value();
  rocksdb::WriteOptions synced;
  synced.sync = true;
  auto st = db.Put(synced, cfs[cf_default], keyring_key, *saved);
  if (!st.ok())
    return storage_error(st, "cannot write the keyring of the store at '" + path
                                 + "'");
  return {};
}

/// How the store at `path` keeps its values: sealed with its keyring
/// (opened with `master`, created for a store that holds nothing yet), or
/// plain. Refuses an encrypted store without its master key or with
/// another, and a plain store that holds data with one.
expected<internal::sealing> open_sealing(
    rocksdb::DB& db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
    const std::string& path, const std::optional<crypto::key256>& master) {
  auto saved = read_keyring(db, cfs, path);
  if (!saved)
    return saved.error_value();
  if (!*saved) {
    if (!master)
      return internal::sealing{};
    if (holds_partitions(db, cfs))
      return make_error(errc::invalid_argument,
                        "the store at '" + path
                            + "' was written without encryption at rest: it "
                              "is not opened encrypted (encrypting a store "
                              "that holds data is not supported; start a new "
                              "one and let it sync from its peers)");
    auto keys = crypto::keyring::create();
    if (!keys)
      return keys.error_value();
    if (auto ok = write_keyring(db, cfs, *keys, *master, path); !ok)
      return ok.error_value();
    return internal::sealing{
        std::make_shared<const crypto::keyring>(std::move(*keys))};
  }
  if (!master)
    return make_error(errc::invalid_argument,
                      "the store at '" + path
                          + "' is encrypted at rest: it opens only with its "
                            "master key (distribution.encryption.at_rest)");
  auto keys = crypto::keyring::load(**saved, *master);
  if (!keys)
    return make_error(keys.error_value().code,
                      "the store at '" + path
                          + "': " + keys.error_value().message);
  return internal::sealing{
      std::make_shared<const crypto::keyring>(std::move(*keys))};
}

std::string utc_stamp() {
  auto now
      = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

} // namespace

// -- database -----------------------------------------------------------------

database::impl::~impl() {
  if (!db)
    return;
  // A clean shutdown flushes the memtables, so the next open need not
  // replay the write-ahead log (crash recovery still does).
  rocksdb::FlushOptions flush;
  flush.wait = true;
  (void)db->Flush(flush, cfs);
  for (auto* h : cfs)
    if (h != nullptr)
      db->DestroyColumnFamilyHandle(h);
}

database::database(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

database::~database() = default;

const std::string& database::path() const noexcept { return impl_->path; }

bool database::encrypted() const noexcept { return impl_->sealed.on(); }

namespace {

std::string note_key(const std::string& name) {
  return "\xff"
         "engram.note/"
         + name;
}

} // namespace

expected<void> database::put_note(const std::string& name,
                                  const std::string& value) {
  auto key = note_key(name);
  auto sealed = impl_->sealed.seal(cf_default, key, value);
  if (!sealed)
    return sealed.error_value();
  auto st = impl_->db->Put(rocksdb::WriteOptions{}, impl_->cfs[cf_default], key,
                           *sealed);
  if (!st.ok())
    return storage_error(st, "cannot keep note " + name);
  return {};
}

expected<std::optional<std::string>>
database::get_note(const std::string& name) const {
  auto key = note_key(name);
  std::string bytes;
  auto st = impl_->db->Get(rocksdb::ReadOptions{}, impl_->cfs[cf_default], key,
                           &bytes);
  if (st.IsNotFound())
    return std::optional<std::string>{};
  if (!st.ok())
    return storage_error(st, "cannot read note " + name);
  std::string buffer;
  auto opened = impl_->sealed.open(cf_default, key, bytes, buffer);
  if (!opened)
    return make_error(errc::corrupt_record,
                      "note " + name + ": " + opened.error_value().message);
  return std::optional<std::string>{std::string{*opened}};
}

const std::vector<std::string>& database::notes() const noexcept {
  return impl_->notes;
}

expected<std::shared_ptr<database>>
database::open(const store_options& options) {
  auto& path = options.path;
  if (path.empty())
    return make_error(errc::storage_failed, "store path is empty");
  std::error_code ec;
  bool exists = fs::exists(path, ec);
  if (exists && !fs::is_directory(path, ec))
    return make_error(errc::storage_failed,
                      "'" + path + "' is not a directory");
  bool fresh = !exists || fs::is_empty(path, ec);
  auto state = std::make_unique<impl>();
  state->path = path;
  state->sync = options.sync;
  uint64_t flushed = 0;
  if (fresh) {
    if (!options.create_if_missing)
      return make_error(errc::storage_failed, "no store at '" + path + "'");
    fs::create_directories(path, ec);
    if (ec)
      return make_error(errc::storage_failed, "cannot create store directory '"
                                                  + path
                                                  + "': " + ec.message());
  } else if (auto ok = store_or_empty(path); !ok) {
    return ok.error_value();
  }
  // Locked before anything is read or moved; held while the store is open.
  auto lock = dir_lock::take(path);
  if (!lock)
    return lock.error_value();
  state->lock = std::make_shared<dir_lock>(std::move(*lock));
  auto names = entries(path, ec);
  names.erase("ENGRAM_LOCK");
  fresh = names.empty();
  if (fresh && !options.create_if_missing)
    return make_error(errc::storage_failed, "no store at '" + path + "'");
  if (!fresh) {
    auto checked = preflight(path);
    if (!checked)
      return checked.error_value();
    state->notes = std::move(checked->notes);
    set_aside(path, checked->orphans, state->notes);
    if (!checked->has_marker)
      state->notes.push_back("no ENGRAM_STORE file (a store of an earlier "
                             "build): written now");
    flushed = checked->latest_sequence;
  }
  auto opts = db_options(fresh);
  state->listener = std::make_shared<flush_listener>(path, flushed);
  opts.listeners.push_back(state->listener);
  rocksdb::DB* raw = nullptr;
  auto st
      = rocksdb::DB::Open(opts, path, family_descriptors(), &state->cfs, &raw);
  if (!st.ok())
    return storage_error(st, "cannot open store at '" + path + "'");
  state->db.reset(raw);
  if (fresh) {
    // Every family gets a table file at once (what `repair` needs), and
    // the marker says this directory is an Engram store.
    rocksdb::WriteOptions synced;
    synced.sync = true;
    rocksdb::WriteBatch batch;
    for (auto* h : state->cfs)
      batch.Put(h, family_marker, "");
    // An encrypted store's keyring comes with it, in its first table file.
    if (options.master_key) {
      auto keys = crypto::keyring::create();
      if (!keys)
        return keys.error_value();
      auto saved = keys->save(*options.master_key);
      if (!saved)
        return saved.error_value();
      batch.Put(state->cfs[cf_default], keyring_key, *saved);
    }
    st = state->db->Write(synced, &batch);
    rocksdb::FlushOptions flush;
    flush.wait = true;
    if (st.ok())
      st = state->db->Flush(flush, state->cfs);
    if (!st.ok())
      return storage_error(st, "cannot initialize the store at '" + path + "'");
  }
  auto sealed = open_sealing(*state->db, state->cfs, path, options.master_key);
  if (!sealed)
    return sealed.error_value();
  state->sealed = std::move(*sealed);
  if (fresh || !read_marker(path))
    if (!write_marker(path, state->db->GetLatestSequenceNumber()))
      return make_error(errc::storage_failed,
                        "cannot write '" + path + "/" + marker_file + "'");
  return std::shared_ptr<database>{new database(std::move(state))};
}

expected<std::string> database::check(const std::string& path) {
  if (path.empty())
    return make_error(errc::storage_failed, "store path is empty");
  std::error_code ec;
  fs::path p{path};
  if (!fs::exists(p, ec)) {
    // Created at start: the nearest existing ancestor must take it.
    auto parent = p.has_parent_path() ? p.parent_path() : fs::path{"."};
    while (!parent.empty() && !fs::exists(parent, ec))
      parent = parent.parent_path();
    if (parent.empty())
      parent = ".";
    if (!fs::is_directory(parent, ec))
      return make_error(errc::storage_failed, "cannot create '" + path + "': '"
                                                  + parent.string()
                                                  + "' is not a directory");
    if (auto ok = writable(parent); !ok)
      return make_error(errc::storage_failed, "cannot create '" + path + "': "
                                                  + ok.error_value().message);
    return std::string{"a new store will be created at '" + path + "'"};
  }
  if (!fs::is_directory(p, ec))
    return make_error(errc::storage_failed,
                      "'" + path + "' is not a directory");
  if (auto ok = writable(p); !ok)
    return ok.error_value();
  if (auto ok = store_or_empty(path); !ok)
    return ok.error_value();
  auto names = entries(path, ec);
  names.erase("ENGRAM_LOCK");
  if (names.empty())
    return std::string{"a new store will be created in '" + path + "'"};
  auto lock = dir_lock::take(path);
  if (!lock)
    return lock.error_value();
  auto checked = preflight(path);
  if (!checked)
    return checked.error_value();
  return std::string{"the store at '" + path + "' is whole (sequence "
                     + std::to_string(checked->latest_sequence) + ")"};
}

expected<std::vector<std::string>> database::partitions() const {
  std::vector<std::string> result;
  rocksdb::ReadOptions opts;
  opts.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it{
      impl_->db->NewIterator(opts, impl_->cfs[cf_meta])};
  auto suffix = std::string{"\0", 1} + meta_key;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto key = it->key().ToString();
    if (!key.empty() && static_cast<unsigned char>(key[0]) == 0xff)
      continue;
    auto nul = key.find('\0');
    if (nul != std::string::npos
        && key.compare(nul, std::string::npos, suffix) == 0)
      result.push_back(key.substr(0, nul));
  }
  if (!it->status().ok())
    return storage_error(it->status(), "cannot list the partitions");
  return result;
}

expected<repair_report>
database::repair(const std::string& path,
                 const std::optional<crypto::key256>& master_key) {
  repair_report report;
  std::error_code ec;
  if (!fs::is_directory(path, ec) || !looks_like_store(entries(path, ec)))
    return make_error(errc::invalid_argument,
                      "'" + path + "' holds no store to repair");
  auto lock = dir_lock::take(path);
  if (!lock)
    return lock.error_value();
  // A copy of everything first.
  auto backup = path;
  while (!backup.empty() && backup.back() == '/')
    backup.pop_back();
  backup += ".damaged-" + utc_stamp();
  for (int i = 2; fs::exists(backup, ec); ++i)
    backup = backup.substr(0, backup.rfind(".damaged-")) + ".damaged-"
             + utc_stamp() + "-" + std::to_string(i);
  fs::copy(path, backup, fs::copy_options::recursive, ec);
  if (ec)
    return make_error(errc::storage_failed, "cannot copy '" + path + "' to '"
                                                + backup
                                                + "' first: " + ec.message());
  report.backup = backup;
  auto flushed = read_marker(path).value_or(0);
  // What is damaged, and from where on a log cannot be read.
  std::string manifest;
  std::getline(std::ifstream{path + "/CURRENT"}, manifest);
  bool manifest_ok = !manifest.empty() && fs::exists(path + "/" + manifest, ec);
  uint64_t seen = 0;
  for (auto& entry : fs::directory_iterator(path, ec)) {
    auto n = entry.path().filename().string();
    bool is_manifest = n == manifest;
    if (!is_manifest && !ends_with(n, ".log"))
      continue;
    auto scan = scan_log_file(entry.path().string(), !is_manifest);
    if (!scan)
      continue;
    seen = std::max(seen, scan->last_sequence);
    if (scan->damaged_at) {
      report.damage.push_back(n + ": " + scan->damage);
      if (is_manifest)
        manifest_ok = false;
      else
        report.lost.push_back(n + ": the write batches after sequence "
                              + std::to_string(scan->last_sequence)
                              + " (from offset "
                              + std::to_string(*scan->damaged_at)
                              + ") may be lost where the log cannot be read");
    } else if (is_manifest && scan->records == 0) {
      manifest_ok = false;
      report.damage.push_back(n + ": holds no record");
    }
  }
  if (!manifest_ok && report.damage.empty())
    report.damage.push_back("CURRENT or its MANIFEST is missing");
  // A MANIFEST that reads but is behind what was flushed is damaged too.
  auto descriptors = family_descriptors();
  uint64_t probe_sequence = 0;
  if (manifest_ok) {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    auto opts = db_options(false);
    opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
    auto st
        = rocksdb::DB::OpenForReadOnly(opts, path, descriptors, &handles, &raw);
    if (st.ok()) {
      probe_sequence = raw->GetLatestSequenceNumber();
      for (auto* h : handles)
        raw->DestroyColumnFamilyHandle(h);
      delete raw;
      if (probe_sequence < flushed) {
        manifest_ok = false;
        report.damage.push_back(manifest + ": behind (recovers up to sequence "
                                + std::to_string(probe_sequence)
                                + ", the store had flushed up to "
                                + std::to_string(flushed) + ")");
      }
    } else {
      manifest_ok = false;
      report.damage.push_back("the store cannot be read: " + st.ToString());
    }
  }
  rocksdb::Status st;
  if (manifest_ok) {
    // The MANIFEST is whole: replay the logs, skipping damaged records.
    report.method = "write-ahead logs replayed past their damaged records";
    auto opts = db_options(false);
    opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    st = rocksdb::DB::Open(opts, path, descriptors, &handles, &raw);
    if (st.ok()) {
      rocksdb::FlushOptions flush;
      flush.wait = true;
      st = raw->Flush(flush, handles);
      for (auto* h : handles)
        raw->DestroyColumnFamilyHandle(h);
      delete raw;
    }
  } else {
    // Rebuilt from the table files (and what the logs still hold); files
    // it cannot read go to lost/.
    report.method = "rebuilt from its table files (RocksDB RepairDB)";
    auto opts = db_options(false);
    rocksdb::Options unknown;
    st = rocksdb::RepairDB(path, opts, descriptors, unknown);
  }
  if (!st.ok())
    return make_error(errc::damaged_store,
                      "cannot repair '" + path + "': " + st.ToString()
                          + " (the copy is in '" + backup + "')");
  for (auto& entry : fs::recursive_directory_iterator(path + "/lost", ec))
    if (entry.is_regular_file())
      report.lost.push_back("lost/" + entry.path().filename().string()
                            + ": could not be read, set aside");
  // Open it (families a rebuild left out are created empty), rebuild the
  // replicas' contexts from what was recovered.
  auto opts = db_options(false);
  opts.create_missing_column_families = true;
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  st = rocksdb::DB::Open(opts, path, descriptors, &handles, &raw);
  if (!st.ok())
    return make_error(errc::damaged_store,
                      "the repaired store at '" + path
                          + "' does not open: " + st.ToString()
                          + " (the copy is in '" + backup + "')");
  auto state = std::make_unique<impl>();
  state->path = path;
  state->db.reset(raw);
  state->cfs = handles;
  database db{std::move(state)};
  // An encrypted store's records open only with its keys (a keyring the
  // damage took is not recreated: what it sealed would be lost).
  auto saved = read_keyring(*db.impl_->db, db.impl_->cfs, path);
  if (!saved)
    return saved.error_value();
  if (*saved || master_key) {
    if (!*saved)
      return make_error(errc::invalid_argument,
                        "the store at '" + path
                            + "' holds no keyring: it was not encrypted (or "
                              "its keyring was lost); repair it without a "
                              "master key");
    auto sealed = open_sealing(*db.impl_->db, db.impl_->cfs, path, master_key);
    if (!sealed)
      return sealed.error_value();
    db.impl_->sealed = std::move(*sealed);
  }
  auto names = db.partitions();
  if (!names)
    return names.error_value();
  report.partitions = names->size();
  for (auto& name : *names) {
    size_t corrupt = 0;
    auto n = rebuild_context(*db.impl_->db, db.impl_->cfs, db.impl_->sealed,
                             name, corrupt);
    if (!n)
      return n.error_value();
    report.engrams += *n;
    report.corrupt += corrupt;
  }
  auto recovered = db.impl_->db->GetLatestSequenceNumber();
  if (std::max(seen, flushed) > recovered)
    report.lost.push_back("the store had reached sequence "
                          + std::to_string(std::max(seen, flushed))
                          + ", it now holds up to "
                          + std::to_string(recovered));
  // Every family gets its marker again (a rebuild may have lost one).
  rocksdb::WriteOptions synced;
  synced.sync = true;
  rocksdb::WriteBatch batch;
  for (auto* h : db.impl_->cfs)
    batch.Put(h, family_marker, "");
  st = db.impl_->db->Write(synced, &batch);
  if (!st.ok())
    return storage_error(st, "cannot write the repaired store");
  rocksdb::FlushOptions flush;
  flush.wait = true;
  (void)db.impl_->db->Flush(flush, db.impl_->cfs);
  if (!write_marker(path, db.impl_->db->GetLatestSequenceNumber()))
    return make_error(errc::storage_failed,
                      "cannot write '" + path + "/" + marker_file + "'");
  return report;
}

expected<database::rekey_report>
database::rekey(const std::string& path, const crypto::key256& old_master,
                const crypto::key256& new_master, bool reseal) {
  store_options opts{path};
  opts.create_if_missing = false;
  opts.master_key = old_master; // and every check an open makes
  auto db = open(opts);
  if (!db)
    return db.error_value();
  auto& s = *(*db)->impl_;
  if (!s.sealed.on())
    return make_error(errc::invalid_argument,
                      "the store at '" + path + "' is not encrypted at rest");
  auto saved = read_keyring(*s.db, s.cfs, path);
  if (!saved)
    return saved.error_value();
  auto keys = crypto::keyring::load(**saved, old_master);
  if (!keys)
    return keys.error_value();
  // A new data key, and the keyring wrapped by the new master key: synced
  // before anything is sealed with it.
  auto active = keys->add_key();
  if (!active)
    return active.error_value();
  if (auto ok = write_keyring(*s.db, s.cfs, *keys, new_master, path); !ok)
    return ok.error_value();
  rekey_report report;
  report.active_key = *active;
  report.keys = keys->size();
  // What the old master key opens must not stay on disk: the keyring's
  // earlier versions (in table files and the write-ahead log) go with a
  // flush and a full compaction of the family (and, resealed, every value
  // sealed under a retired key with all of them).
  auto purge = [&](bool everything) -> expected<void> {
    rocksdb::FlushOptions flush;
    flush.wait = true;
    if (auto st = s.db->Flush(flush, s.cfs); !st.ok())
      return storage_error(st, "cannot flush the store");
    rocksdb::CompactRangeOptions all;
    all.bottommost_level_compaction
        = rocksdb::BottommostLevelCompaction::kForce;
    for (size_t family = 0;
         family < (everything ? static_cast<size_t>(cf_count) : 1); ++family)
      if (auto st = s.db->CompactRange(all, s.cfs[family], nullptr, nullptr);
          !st.ok())
        return storage_error(st, "cannot compact the store");
    return {};
  };
  if (!reseal) {
    if (auto ok = purge(false); !ok)
      return ok.error_value();
    return report;
  }
  // Every value sealed again under the new key (its key and family stay,
  // so it opens as before), then the retired keys go. A crash on the way
  // leaves values under either key, both held.
  internal::sealing old_sealing{s.sealed};
  internal::sealing new_sealing{std::make_shared<const crypto::keyring>(*keys)};
  rocksdb::WriteOptions synced;
  synced.sync = true;
  std::string buffer;
  auto notes = note_key("");
  for (size_t family = cf_default; family < cf_count; ++family) {
    rocksdb::ReadOptions scan;
    scan.total_order_seek = true;
    scan.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it{
        s.db->NewIterator(scan, s.cfs[family])};
    rocksdb::WriteBatch batch;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto key = it->key().ToStringView();
      // The families' markers and the keyring are not sealed; the node's
      // notes are.
      bool note = key.substr(0, notes.size()) == notes;
      if (family == cf_default
              ? !note
              : !key.empty() && static_cast<unsigned char>(key[0]) == 0xff)
        continue;
      if (family == cf_index_)
        continue; // ids, not sealed (checked against their records)
      auto plain
          = old_sealing.open(family, key, it->value().ToStringView(), buffer);
      if (!plain)
        return make_error(errc::corrupt_record,
                          std::string{cf_names[family]} + "/" + hex(key) + ": "
                              + plain.error_value().message
                              + " (nothing was resealed past it; the keyring "
                                "keeps every key)");
      auto sealed = new_sealing.seal(family, key, std::string{*plain});
      if (!sealed)
        return sealed.error_value();
      batch.Put(s.cfs[family], it->key(), *sealed);
      ++report.resealed;
      if (batch.Count() >= 4096) {
        if (auto st = s.db->Write(synced, &batch); !st.ok())
          return storage_error(st, "cannot reseal the store");
        batch.Clear();
      }
    }
    if (!it->status().ok())
      return storage_error(it->status(), "cannot scan the store");
    if (auto st = s.db->Write(synced, &batch); !st.ok())
      return storage_error(st, "cannot reseal the store");
  }
  keys->drop_retired();
  if (auto ok = write_keyring(*s.db, s.cfs, *keys, new_master, path); !ok)
    return ok.error_value();
  if (auto ok = purge(true); !ok)
    return ok.error_value();
  report.keys = keys->size();
  return report;
}

} // namespace engram::persistence
