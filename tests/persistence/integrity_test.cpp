// A store is opened only when it is whole: damage in a log, a MANIFEST that
// lost records, a directory that is not a store are refused with an error
// naming the file; table files no MANIFEST references are set aside, never
// deleted; `database::check` finds the same without changing anything; and
// `database::repair` keeps a copy, recovers, and reports.

#include "persistence/internal/log_scan.hpp"
#include "persistence/store.hpp"

#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "temp_dir.hpp"
#include "test_util.hpp"

using namespace engram;
using namespace engram::test;
using persistence::database;
using persistence::store;
using persistence::store_options;
namespace fs = std::filesystem;

namespace {

std::string largest(const std::string& dir, const std::string& suffix) {
  std::string best;
  uintmax_t size = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    auto n = e.path().filename().string();
    if (n.size() > suffix.size()
        && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0
        && e.file_size() >= size) {
      size = e.file_size();
      best = n;
    }
  }
  return best;
}

// Writes `n` facts into partition "p" of the store at `path` in synced
// batches; with `crash`, the database is left as a crash leaves it (its
// write-ahead log not flushed into table files).
void write_facts(const std::string& path, size_t n, bool flush = true,
                 const std::string& prefix = "k") {
  node x{1};
  auto s = store::open(store_options{path}, 1);
  BOOST_REQUIRE(s);
  BOOST_REQUIRE((*s)->load(x.mem));
  for (size_t i = 0; i < n; ++i) {
    auto d = must(x.mem.put(make_fact(prefix + std::to_string(i), "v")));
    BOOST_REQUIRE((*s)->record(d, x.mem));
  }
  if (!flush) // a child that dies keeps its log: emulate by copying it
    fs::copy(path, path + ".crashed", fs::copy_options::recursive);
}

// The replica of partition "" (base id 1) loaded from the store at `path`
// (a repaired one writes under a new incarnation of its id).
struct loaded_replica {
  replica_id self = 1;
  std::unique_ptr<node> x;
  std::unique_ptr<store> db;

  explicit loaded_replica(const std::string& path) {
    auto data = database::open(store_options{path});
    if (!data)
      throw std::runtime_error(data.error_value().to_string());
    auto inc = store::incarnation(*data, "");
    BOOST_REQUIRE(inc);
    self = incarnation_of(1, *inc);
    x = std::make_unique<node>(self);
    auto s = store::attach(*data, "", self);
    if (!s)
      throw std::runtime_error(s.error_value().to_string());
    db = std::move(*s);
    BOOST_REQUIRE(db->load(x->mem));
  }
};

size_t loaded(const std::string& path) {
  return loaded_replica{path}.x->mem.size();
}

void overwrite(const std::string& file, uintmax_t at,
               const std::string& bytes) {
  std::fstream f{file, std::ios::in | std::ios::out | std::ios::binary};
  f.seekp(static_cast<std::streamoff>(at));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

} // namespace

BOOST_AUTO_TEST_SUITE(store_integrity)

BOOST_AUTO_TEST_CASE(a_log_is_read_record_by_record) {
  temp_dir dir;
  auto path = dir.sub("db");
  write_facts(path, 40, false);
  auto crashed = path + ".crashed";
  auto log = largest(crashed, ".log");
  BOOST_REQUIRE(!log.empty());
  auto whole = persistence::internal::scan_log_file(crashed + "/" + log, true);
  BOOST_REQUIRE(whole);
  BOOST_CHECK(!whole->damaged_at);
  BOOST_CHECK(!whole->torn_tail);
  BOOST_CHECK_GE(whole->records, 40u);
  BOOST_CHECK_GE(whole->last_sequence, 40u);
  // A write cut short at the end is tolerated (never acknowledged).
  auto size = fs::file_size(crashed + "/" + log);
  fs::copy_file(crashed + "/" + log, dir.sub("torn.log"));
  fs::resize_file(dir.sub("torn.log"), size - 3);
  auto torn = persistence::internal::scan_log_file(dir.sub("torn.log"), true);
  BOOST_REQUIRE(torn);
  BOOST_CHECK(torn->torn_tail);
  BOOST_CHECK(!torn->damaged_at);
  // A zeroed header in the middle, followed by data, is damage.
  fs::copy_file(crashed + "/" + log, dir.sub("zeroed.log"));
  overwrite(dir.sub("zeroed.log"), 0, std::string(7, '\0'));
  auto zeroed
      = persistence::internal::scan_log_file(dir.sub("zeroed.log"), true);
  BOOST_REQUIRE(zeroed);
  BOOST_CHECK(zeroed->damaged_at);
  BOOST_CHECK(zeroed->damage.find("zeroed record header") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_damaged_log_is_refused_then_repaired) {
  temp_dir dir;
  auto path = dir.sub("db");
  write_facts(path, 40, false);
  auto crashed = path + ".crashed";
  auto log = largest(crashed, ".log");
  overwrite(crashed + "/" + log, fs::file_size(crashed + "/" + log) / 2,
            "ZZZZZZZZZZZZZZZZ");
  auto refused = store::open(store_options{crashed}, 1);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::damaged_store);
  BOOST_CHECK(refused.error_value().message.find(log) != std::string::npos);
  auto checked = database::check(crashed);
  BOOST_REQUIRE(!checked);
  BOOST_CHECK(checked.error_value().code == errc::damaged_store);
  auto report = database::repair(crashed);
  BOOST_REQUIRE_MESSAGE(
      report, (report ? std::string{} : report.error_value().to_string()));
  BOOST_CHECK(fs::exists(report->backup));
  BOOST_CHECK_EQUAL(report->damage.size(), 1u);
  BOOST_CHECK(!report->lost.empty());
  loaded_replica r{crashed};
  BOOST_CHECK_LT(r.x->mem.size(), 40u);
  // Its context claims what it holds, nothing more (peers send back the
  // rest), and it writes under a new id: no dot it may have issued before
  // the damage is issued again.
  BOOST_CHECK_NE(r.self, replica_id{1});
  BOOST_CHECK_LT(r.x->mem.context().upper_bound().get(1), 40u);
  auto next = must(r.x->mem.put(make_fact("after", "repair")));
  BOOST_CHECK(next.entries.front().versions.front().tag.replica == r.self);
}

// Cut anywhere (in the records that create column families, too), the
// MANIFEST is refused as damage and repaired.
BOOST_DATA_TEST_CASE(a_manifest_behind_its_flushes_is_refused_then_repaired,
                     boost::unit_test::data::make({1, 2, 3}), quarters) {
  temp_dir dir;
  auto path = dir.sub("db");
  for (int round = 0; round < 3; ++round) // several flushes (clean closes)
    write_facts(path, 10, true, "r" + std::to_string(round) + "k");
  std::string manifest;
  std::getline(std::ifstream{path + "/CURRENT"}, manifest);
  std::set<std::string> tables;
  for (auto& e : fs::directory_iterator(path))
    if (e.path().extension() == ".sst")
      tables.insert(e.path().filename().string());
  fs::resize_file(path + "/" + manifest,
                  fs::file_size(path + "/" + manifest) * quarters / 4);
  auto refused = store::open(store_options{path}, 1);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::damaged_store);
  BOOST_CHECK_MESSAGE(refused.error_value().message.find(manifest)
                          != std::string::npos,
                      refused.error_value().message);
  for (auto& t : tables) // nothing deleted
    BOOST_CHECK(fs::exists(path + "/" + t));
  auto report = database::repair(path);
  BOOST_REQUIRE_MESSAGE(
      report, (report ? std::string{} : report.error_value().to_string()));
  BOOST_CHECK(report->method.find("table files") != std::string::npos);
  BOOST_CHECK_EQUAL(loaded(path), 30u); // every flushed table was recovered
}

BOOST_AUTO_TEST_CASE(what_is_not_a_store_is_refused_untouched) {
  temp_dir dir;
  auto other = dir.sub("other");
  fs::create_directories(other);
  std::ofstream{other + "/notes.txt"} << "mine";
  auto refused = database::open(store_options{other});
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::invalid_argument);
  BOOST_CHECK(refused.error_value().message.find("is not an Engram store")
              != std::string::npos);
  BOOST_CHECK_EQUAL(
      std::distance(fs::directory_iterator(other), fs::directory_iterator{}),
      1);
  // Another program's RocksDB (only the default family).
  auto foreign = dir.sub("foreign");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    BOOST_REQUIRE(rocksdb::DB::Open(o, foreign, &raw).ok());
    BOOST_REQUIRE(raw->Put({}, "their", "data").ok());
    delete raw;
  }
  auto theirs = database::open(store_options{foreign});
  BOOST_REQUIRE(!theirs);
  BOOST_CHECK(theirs.error_value().message.find("not an Engram store")
              != std::string::npos);
  BOOST_CHECK(!database::check(foreign));
  // A new directory, an empty one: fine.
  BOOST_CHECK(database::check(dir.sub("new/sub")));
  BOOST_CHECK(!database::check("/proc/engram-nope"));
}

BOOST_AUTO_TEST_CASE(a_table_file_no_manifest_references_is_set_aside) {
  temp_dir dir;
  auto path = dir.sub("db");
  write_facts(path, 10);
  auto sst = largest(path, ".sst");
  BOOST_REQUIRE(!sst.empty());
  // What a crash during a flush leaves: a table file with a higher number.
  fs::copy_file(path + "/" + sst, path + "/999999.sst");
  auto db = database::open(store_options{path});
  BOOST_REQUIRE(db);
  BOOST_CHECK(fs::exists(path + "/orphans/999999.sst"));
  bool noted = false;
  for (auto& n : (*db)->notes())
    noted = noted || n.find("999999.sst") != std::string::npos;
  BOOST_CHECK(noted);
  auto parts = (*db)->partitions();
  BOOST_REQUIRE(parts);
  BOOST_CHECK_EQUAL(parts->size(), 1u);
  db->reset();
  // A store of an earlier build (no ENGRAM_STORE file) with such a file:
  // nothing tells whether it holds lost data, so it is refused.
  fs::remove(path + "/ENGRAM_STORE");
  fs::copy_file(path + "/orphans/999999.sst", path + "/999998.sst");
  auto old = database::open(store_options{path});
  BOOST_REQUIRE(!old);
  BOOST_CHECK(old.error_value().code == errc::damaged_store);
  BOOST_CHECK(fs::exists(path + "/999998.sst"));
}

BOOST_AUTO_TEST_CASE(a_store_in_use_is_neither_opened_nor_checked_again) {
  temp_dir dir;
  auto path = dir.sub("db");
  write_facts(path, 3);
  auto first = database::open(store_options{path});
  BOOST_REQUIRE(first);
  auto second = database::open(store_options{path});
  BOOST_REQUIRE(!second);
  BOOST_CHECK(second.error_value().message.find("in use") != std::string::npos);
  auto checked = database::check(path);
  BOOST_REQUIRE(!checked);
  BOOST_CHECK(checked.error_value().message.find("in use")
              != std::string::npos);
  BOOST_CHECK(!database::repair(path));
}

BOOST_AUTO_TEST_CASE(only_the_newest_log_may_end_cut_short) {
  temp_dir dir;
  auto path = dir.sub("db");
  write_facts(path, 20, false);
  auto crashed = path + ".crashed";
  auto log = largest(crashed, ".log");
  // An older log (a higher number follows it) cut short: refused.
  fs::copy_file(crashed + "/" + log, crashed + "/999999.log");
  fs::resize_file(crashed + "/" + log, fs::file_size(crashed + "/" + log) - 3);
  auto refused = store::open(store_options{crashed}, 1);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().message.find("is not the newest log")
              != std::string::npos);
}

BOOST_AUTO_TEST_CASE(only_a_store_is_repaired) {
  temp_dir dir;
  auto other = dir.sub("home");
  fs::create_directories(other);
  std::ofstream{other + "/notes.txt"} << "mine";
  auto refused = database::repair(other);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().message.find("holds no store")
              != std::string::npos);
  BOOST_CHECK(!fs::exists(other + "/CURRENT"));
}

BOOST_AUTO_TEST_SUITE_END()
