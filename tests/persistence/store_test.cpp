#include "messages/codec.hpp"
#include "persistence/store.hpp"

#include <boost/test/unit_test.hpp>
#include <rocksdb/db.h>

#include <fstream>
#include <set>

#include "engram/v1/store.pb.h"
#include "raw_store.hpp"
#include "temp_dir.hpp"
#include "test_util.hpp"

using namespace engram;
using namespace engram::test;
using persistence::store;
using persistence::store_options;

namespace {

std::unique_ptr<store> must_open(const std::string& path, replica_id self) {
  auto s = store::open(store_options{path}, self);
  if (!s)
    throw std::runtime_error(s.error_value().to_string());
  return std::move(*s);
}

// A replica whose every mutation is recorded.
struct durable_node {
  node n;
  std::unique_ptr<store> db;

  durable_node(const std::string& path, replica_id id)
      : n(id), db(must_open(path, id)) {
    // nop
  }

  replica_delta apply(expected<replica_delta> d) {
    auto delta = must(std::move(d));
    auto seq = db->record(delta, n.mem);
    if (!seq)
      throw std::runtime_error(seq.error_value().to_string());
    return delta;
  }
};

// Writes raw bytes into a column family of a closed store.
void poke(const std::string& path, const std::string& cf,
          const std::string& key, const std::string& value) {
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (auto* name :
       {"default", "engrams", "clocks", "delta_log", "index", "meta"})
    cfs.emplace_back(name, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::Open(rocksdb::DBOptions{}, path, cfs, &handles, &raw);
  BOOST_REQUIRE(st.ok());
  size_t i = 0;
  while (cfs[i].name != cf)
    ++i;
  BOOST_REQUIRE(raw->Put(rocksdb::WriteOptions{}, handles[i], key, value).ok());
  for (auto* h : handles)
    raw->DestroyColumnFamilyHandle(h);
  delete raw;
}

// Every key and value of a column family.
template<class Family>
std::vector<std::pair<std::string, std::string>>
dump(rocksdb::DB* db, Family family, const std::string& name) {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it{
      db->NewIterator(rocksdb::ReadOptions{}, family(name))};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    if (it->key().empty() || static_cast<uint8_t>(it->key()[0]) != 0xff)
      out.emplace_back(it->key().ToString(), it->value().ToString());
  return out; // without the families' markers (keys from 0xff on)
}

// The value of a successful result (fails the test otherwise).
template<class T>
T done(expected<T> x) {
  if (!x)
    throw std::runtime_error(x.error_value().to_string());
  return std::move(*x);
}

void done(expected<void> x) {
  if (!x)
    throw std::runtime_error(x.error_value().to_string());
}

} // namespace

BOOST_AUTO_TEST_SUITE(store_recovery)

BOOST_AUTO_TEST_CASE(reopening_restores_the_replica_exactly) {
  temp_dir dir;
  auto path = dir.sub("db");
  std::unique_ptr<node> original;
  {
    durable_node a{path, 1};
    node b{2};
    a.apply(a.n.mem.put(make_fact("user.name", "Bob")));
    auto f = a.apply(a.n.mem.put(make_fact("plan", "friday")));
    a.apply(a.n.mem.put(make_episode("standup", {{{1, 0}, "hello"}})));
    a.apply(a.n.mem.put(make_skill("deploy", {{1, "canary"}})));
    a.apply(a.n.mem.forget(f.entries.front().id, "obsolete"));
    // A forked belief conflict arrives from b and is recorded.
    a.apply(a.n.mem.put(make_belief("sky", "color", "blue")));
    auto theirs = must(b.mem.put(make_belief("sky", "color", "green")));
    auto report = must_join(a.n.mem, theirs);
    BOOST_REQUIRE_EQUAL(report.forked.size(), 1u);
    BOOST_REQUIRE(a.db->record(theirs, a.n.mem));
    original = std::make_unique<node>(1);
    must_join(original->mem, a.n.mem.full_state());
    BOOST_REQUIRE(original->mem.same_state(a.n.mem));
  }
  auto db = must_open(path, 1);
  node stranger{7};
  BOOST_CHECK(!db->load(stranger.mem)); // another replica's id is refused
  node restored{1};
  auto report = db->load(restored.mem);
  BOOST_REQUIRE(report);
  BOOST_CHECK(report->corrupt.empty());
  BOOST_CHECK(!db->load(restored.mem)); // and so is a replica already loaded
  // user.name, plan (forgotten), standup, deploy, sky/color (two versions).
  BOOST_CHECK_EQUAL(report->engrams, 5u);
  BOOST_CHECK_EQUAL(report->versions, 6u);
  BOOST_CHECK(restored.mem.same_state(original->mem));
  // A write after recovery continues the replica's dots.
  auto next = must(restored.mem.put(make_fact("after", "restart")));
  BOOST_CHECK_GT(next.entries.front().versions.front().tag.counter, 6u);
}

BOOST_AUTO_TEST_CASE(a_newer_schema_or_another_replica_is_refused) {
  temp_dir dir;
  auto path = dir.sub("db");
  must_open(path, 1);
  auto other = store::open(store_options{path}, 2);
  BOOST_REQUIRE(!other);
  BOOST_CHECK(other.error_value().code == errc::schema_mismatch);
  BOOST_CHECK(other.error_value().message.find("another replica")
              != std::string::npos);
  v1::StoreMeta meta;
  meta.set_schema_version(persistence::schema_version + 1);
  meta.set_replica(1);
  poke(path, "meta", std::string(1, '\0') + "store", meta.SerializeAsString());
  auto newer = store::open(store_options{path}, 1);
  BOOST_REQUIRE(!newer);
  BOOST_CHECK(newer.error_value().code == errc::schema_mismatch);
  BOOST_CHECK(newer.error_value().message.find("schema 2")
              != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_unusable_directory_is_refused_with_its_path) {
  temp_dir dir;
  auto file = dir.sub("not-a-dir");
  std::ofstream{file} << "x";
  auto res = store::open(store_options{file + "/db"}, 1);
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == errc::storage_failed);
  BOOST_CHECK(res.error_value().message.find(file) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_corrupt_record_is_reported_and_the_rest_served) {
  temp_dir dir;
  auto path = dir.sub("db");
  engram_id bad_id;
  {
    durable_node a{path, 1};
    a.apply(a.n.mem.put(make_fact("good", "1")));
    auto d = a.apply(a.n.mem.put(make_fact("bad", "2")));
    bad_id = d.entries.front().id;
  }
  poke(path, "engrams", std::string(1, '\0') + messages::id_bytes(bad_id),
       "\xff\xff garbage");
  auto db = must_open(path, 1);
  node restored{1};
  auto report = db->load(restored.mem);
  BOOST_REQUIRE(report);
  BOOST_REQUIRE_EQUAL(report->corrupt.size(), 1u);
  BOOST_CHECK_EQUAL(report->corrupt.front().column_family, "engrams");
  BOOST_CHECK_EQUAL(report->corrupt.front().key,
                    bad_id.to_string()); // hex of the 16 id bytes
  BOOST_CHECK_EQUAL(report->engrams, 1u);
  auto good = derive_id(memory_scope::agent("alpha"), fact{"good", ""});
  BOOST_CHECK(restored.mem.get(good));
  auto read_bad = db->get(bad_id);
  BOOST_REQUIRE(!read_bad);
  BOOST_CHECK(read_bad.error_value().code == errc::corrupt_record);
  BOOST_CHECK(read_bad.error_value().message.find(bad_id.to_string())
              != std::string::npos);
  auto read_good = db->get(good);
  BOOST_REQUIRE(read_good);
  BOOST_CHECK_EQUAL(read_good->size(), 1u);
}

BOOST_AUTO_TEST_CASE(
    a_partition_without_index_and_log_builds_them_when_attached_with_them) {
  temp_dir dir;
  auto path = dir.sub("db");
  const persistence::partition_options in_memory{false, false};
  node n{1};
  std::vector<engram_id> live;
  {
    auto db = persistence::database::open(store_options{path});
    BOOST_REQUIRE(db);
    auto m = done(store::attach(*db, "agent/m", 1, in_memory));
    for (int i = 0; i < 5; ++i) {
      auto d = must(n.mem.put(make_fact("k" + std::to_string(i), "v")));
      live.push_back(d.entries.front().id);
      BOOST_REQUIRE(m->record(d, n.mem));
    }
    auto beta = make_fact("k1", "w", memory_scope::agent("beta"));
    beta.id = live[1];
    auto moved = must(n.mem.put(std::move(beta)));
    BOOST_REQUIRE(m->record(moved, n.mem));
    BOOST_REQUIRE(m->record(must(n.mem.forget(live[4], "gone")), n.mem));
    // What needs the index or the log is refused, naming what is missing.
    auto scoped = m->by_scope(memory_scope::agent("alpha"));
    BOOST_REQUIRE(!scoped);
    BOOST_CHECK(scoped.error_value().code == errc::unavailable);
    BOOST_CHECK(scoped.error_value().message.find("partition 'agent/m' keeps "
                                                  "no index")
                != std::string::npos);
    auto since = m->deltas_since(causal_context{});
    BOOST_REQUIRE(!since);
    BOOST_CHECK(since.error_value().message.find("keeps no delta log")
                != std::string::npos);
    BOOST_CHECK(!m->acknowledge("peer", causal_context{}));
    BOOST_CHECK(!m->truncate_log());
    BOOST_CHECK_EQUAL(m->log_size(), 0u);
    node loaded{1};
    BOOST_REQUIRE(m->load(loaded.mem));
    BOOST_CHECK(loaded.mem.same_state(n.mem));
  }
  auto count = [&](const std::string& family) {
    size_t keys = 0;
    with_raw(path, [&](rocksdb::DB* db, auto cf) {
      keys = dump(db, cf, family).size();
    });
    return keys;
  };
  BOOST_CHECK_EQUAL(count("index"), 0u);
  BOOST_CHECK_EQUAL(count("delta_log"), 0u);
  {
    // Attached with both, the partition builds them from its engrams.
    auto db = persistence::database::open(store_options{path});
    BOOST_REQUIRE(db);
    auto m = done(store::attach(*db, "agent/m", 1));
    // (A forgotten engram's tombstone keeps its scope.)
    auto alpha = done(m->by_scope(memory_scope::agent("alpha")));
    std::vector<engram_id> expected{live[0], live[2], live[3], live[4]};
    std::sort(expected.begin(), expected.end());
    BOOST_CHECK(alpha == expected);
    auto beta = done(m->by_scope(memory_scope::agent("beta")));
    BOOST_REQUIRE_EQUAL(beta.size(), 1u);
    BOOST_CHECK(beta.front() == live[1]);
    // The log starts with what was stored: a fresh peer gets everything.
    node peer{2};
    must_join(peer.mem, done(m->deltas_since(causal_context{})));
    BOOST_CHECK(peer.mem.same_state(n.mem));
    auto before = m->log_size();
    BOOST_REQUIRE(m->record(must(n.mem.put(make_fact("k5", "v"))), n.mem));
    BOOST_CHECK_EQUAL(m->log_size(), before + 1);
    BOOST_REQUIRE(m->acknowledge("peer", peer.mem.context()));
  }
  BOOST_CHECK_GT(count("index"), 0u);
  BOOST_CHECK_GT(count("delta_log"), 0u);
  {
    // Attached without them again, it drops them (and what peers
    // acknowledged); everything stored still loads.
    auto db = persistence::database::open(store_options{path});
    BOOST_REQUIRE(db);
    auto m = done(store::attach(*db, "agent/m", 1, in_memory));
    node loaded{1};
    BOOST_REQUIRE(m->load(loaded.mem));
    BOOST_CHECK(loaded.mem.same_state(n.mem));
  }
  BOOST_CHECK_EQUAL(count("index"), 0u);
  BOOST_CHECK_EQUAL(count("delta_log"), 0u);
  size_t acks = 0;
  with_raw(path, [&](rocksdb::DB* db, auto cf) {
    for (auto& [key, value] : dump(db, cf, "clocks"))
      if (key.find("peer/") != std::string::npos)
        ++acks;
  });
  BOOST_CHECK_EQUAL(acks, 0u);
}

BOOST_AUTO_TEST_CASE(partitions_of_one_database_hold_separate_replicas) {
  temp_dir dir;
  auto db = persistence::database::open(store_options{dir.sub("db")});
  BOOST_REQUIRE(db);
  engram_id in_a;
  {
    auto a = store::attach(*db, "agent/a", 1);
    auto b = store::attach(*db, "agent/b", 2, {false, true});
    BOOST_REQUIRE(a && b);
    node na{1};
    node nb{2};
    auto da = must(na.mem.put(make_fact("shared-key", "from a")));
    in_a = da.entries.front().id;
    BOOST_REQUIRE((*a)->record(da, na.mem));
    for (int i = 0; i < 3; ++i) {
      auto db_ = must(nb.mem.put(make_fact("k" + std::to_string(i), "b")));
      BOOST_REQUIRE((*b)->record(db_, nb.mem));
    }
    BOOST_CHECK_EQUAL((*a)->log_size(), 1u);
    BOOST_CHECK_EQUAL((*b)->log_size(), 0u); // b keeps no log
    auto scoped = (*b)->by_scope(memory_scope::agent("alpha"));
    BOOST_REQUIRE(scoped);
    BOOST_CHECK_EQUAL(scoped->size(), 3u);
    auto wrong = store::attach(*db, "agent/a", 7);
    BOOST_REQUIRE(!wrong);
    BOOST_CHECK(wrong.error_value().message.find("partition 'agent/a'")
                != std::string::npos);
  }
  auto a = store::attach(*db, "agent/a", 1);
  auto b = store::attach(*db, "agent/b", 2);
  BOOST_REQUIRE(a && b);
  node ra{1};
  node rb{2};
  BOOST_REQUIRE((*a)->load(ra.mem));
  BOOST_REQUIRE((*b)->load(rb.mem));
  BOOST_CHECK_EQUAL(ra.mem.size(), 1u);
  BOOST_CHECK_EQUAL(rb.mem.size(), 3u);
  BOOST_CHECK(ra.mem.get(in_a));
  BOOST_CHECK(!rb.mem.get(in_a));
}

BOOST_AUTO_TEST_CASE(a_schema_1_store_is_migrated_on_open) {
  temp_dir dir;
  auto path = dir.sub("db");
  engram_id fact_id;
  engram_id belief_id;
  {
    durable_node a{path, 1};
    a.n.wall.set(1'000);
    fact_id = a.apply(a.n.mem.put(make_fact("k1", "v"))).entries.front().id;
    a.n.wall.set(2'000);
    belief_id = a.apply(a.n.mem.put(make_belief("sky", "color", "blue")))
                    .entries.front()
                    .id;
  }
  // Make it what schema 1 wrote: records without ordinals, index keys
  // ending with the engram id (empty values), meta without a next ordinal.
  with_raw(path, [&](rocksdb::DB* db, auto family) {
    for (auto& [key, value] : dump(db, family, "index"))
      BOOST_REQUIRE(db->Delete({}, family("index"), key).ok());
    for (auto& [key, value] : dump(db, family, "engrams")) {
      v1::StoredEngram record;
      BOOST_REQUIRE(record.ParseFromString(value));
      BOOST_REQUIRE_NE(record.ordinal(), 0u);
      record.clear_ordinal();
      BOOST_REQUIRE(
          db->Put({}, family("engrams"), key, record.SerializeAsString()).ok());
      auto id = key.substr(1);
      for (auto old_key : {"s" + memory_scope::agent("alpha").key() + '\0',
                           std::string{"t"} + '\x02'})
        BOOST_REQUIRE(
            db->Put({}, family("index"), '\0' + old_key + id, "").ok());
    }
    std::string bytes;
    auto meta_key = std::string(1, '\0') + "store";
    BOOST_REQUIRE(db->Get({}, family("meta"), meta_key, &bytes).ok());
    v1::StoreMeta meta;
    BOOST_REQUIRE(meta.ParseFromString(bytes));
    meta.set_schema_version(1);
    meta.clear_next_ordinal();
    BOOST_REQUIRE(
        db->Put({}, family("meta"), meta_key, meta.SerializeAsString()).ok());
  });
  {
    durable_node a{path, 1};
    auto alpha = a.db->by_scope(memory_scope::agent("alpha"));
    BOOST_REQUIRE(alpha);
    BOOST_CHECK_EQUAL(alpha->size(), 2u);
    auto sky = a.db->by_subject("sky", "color");
    BOOST_REQUIRE(sky);
    BOOST_REQUIRE_EQUAL(sky->size(), 1u);
    BOOST_CHECK(sky->front() == belief_id);
    auto early = a.db->by_time({0, 0}, {1'500, 0});
    BOOST_REQUIRE(early);
    BOOST_REQUIRE_EQUAL(early->size(), 1u);
    BOOST_CHECK(early->front() == fact_id);
    auto report = a.db->load(a.n.mem);
    BOOST_REQUIRE(report);
    BOOST_CHECK_EQUAL(report->engrams, 2u);
    // Writes after the migration: a new engram, an update that moves k1.
    a.n.wall.set(5'000);
    a.apply(a.n.mem.put(make_fact("k2", "v")));
    a.apply(a.n.mem.put(make_fact("k1", "changed")));
    alpha = a.db->by_scope(memory_scope::agent("alpha"));
    BOOST_REQUIRE(alpha);
    BOOST_CHECK_EQUAL(alpha->size(), 3u);
    early = a.db->by_time({0, 0}, {1'500, 0});
    BOOST_REQUIRE(early);
    BOOST_CHECK(early->empty());
  }
  // The store is schema 2 now; every engram has its own ordinal, and the
  // old index keys are gone: every index value is an id.
  with_raw(path, [&](rocksdb::DB* db, auto family) {
    std::string bytes;
    BOOST_REQUIRE(
        db->Get({}, family("meta"), std::string(1, '\0') + "store", &bytes)
            .ok());
    v1::StoreMeta meta;
    BOOST_REQUIRE(meta.ParseFromString(bytes));
    BOOST_CHECK_EQUAL(meta.schema_version(), persistence::schema_version);
    std::set<uint64_t> ordinals;
    for (auto& [key, value] : dump(db, family, "engrams")) {
      v1::StoredEngram record;
      BOOST_REQUIRE(record.ParseFromString(value));
      BOOST_CHECK_NE(record.ordinal(), 0u);
      BOOST_CHECK_LT(record.ordinal(), meta.next_ordinal());
      ordinals.insert(record.ordinal());
    }
    BOOST_CHECK_EQUAL(ordinals.size(), 3u);
    for (auto& [key, value] : dump(db, family, "index"))
      BOOST_CHECK_EQUAL(value.size(), 16u);
  });
}

BOOST_AUTO_TEST_CASE(inbox_messages_survive_reopening_until_cleared) {
  temp_dir dir;
  auto path = dir.sub("db");
  {
    auto db = must_open(path, 1);
    BOOST_CHECK(done(db->messages()).empty());
    done(db->keep_message({7, "alice", "first"}));
    done(db->keep_message({8, "bob", "second"}));
  }
  {
    auto db = must_open(path, 1);
    // Numbering continues after the last kept message.
    done(db->keep_message({9, "carol", "third"}));
    auto kept = done(db->messages());
    BOOST_REQUIRE_EQUAL(kept.size(), 3u);
    BOOST_CHECK_EQUAL(kept[0].id, 7u);
    BOOST_CHECK_EQUAL(kept[0].from, "alice");
    BOOST_CHECK_EQUAL(kept[0].text, "first");
    BOOST_CHECK_EQUAL(kept[1].text, "second");
    BOOST_CHECK_EQUAL(kept[2].from, "carol");
    BOOST_CHECK_EQUAL(kept[2].id, 9u);
    done(db->clear_messages());
    BOOST_CHECK(done(db->messages()).empty());
  }
  {
    auto db = must_open(path, 1);
    BOOST_CHECK(done(db->messages()).empty());
    done(db->keep_message({10, "dave", "after"}));
  }
  // A corrupt message is reported with its key; the others are served.
  // (After the clear, numbering started again: "after" is number 1.)
  poke(path, "meta",
       std::string(1, '\0') + "inbox/" + std::string(7, '\0') + "\x05",
       "\xff\xff garbage");
  auto db = must_open(path, 1);
  std::vector<persistence::corrupt_record> corrupt;
  auto kept = done(db->messages(&corrupt));
  BOOST_REQUIRE_EQUAL(kept.size(), 1u);
  BOOST_CHECK_EQUAL(kept[0].text, "after");
  BOOST_REQUIRE_EQUAL(corrupt.size(), 1u);
  BOOST_CHECK_EQUAL(corrupt[0].column_family, "meta");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(store_queries)

BOOST_AUTO_TEST_CASE(queries_by_scope_type_time_and_subject) {
  temp_dir dir;
  durable_node a{dir.sub("db"), 1};
  auto team = memory_scope::collective("team", {"alpha", "beta"});
  a.n.wall.set(1'000);
  auto f1 = a.apply(a.n.mem.put(make_fact("k1", "v", team)));
  a.n.wall.set(2'000);
  auto f2 = a.apply(a.n.mem.put(make_fact("k2", "v")));
  a.n.wall.set(3'000);
  auto b1 = a.apply(a.n.mem.put(make_belief("sky", "color", "blue")));
  auto b2 = a.apply(a.n.mem.put(make_belief("sky", "size", "big")));
  auto e1 = a.apply(a.n.mem.put(make_episode("e", {})));
  auto id = [](const replica_delta& d) {
    return d.entries.front().id;
  };
  auto team_ids = a.db->by_scope(team);
  BOOST_REQUIRE(team_ids);
  BOOST_REQUIRE_EQUAL(team_ids->size(), 1u);
  BOOST_CHECK(team_ids->front() == id(f1));
  auto episodic = a.db->by_type(memory_type::episodic);
  BOOST_REQUIRE(episodic);
  BOOST_REQUIRE_EQUAL(episodic->size(), 1u);
  BOOST_CHECK(episodic->front() == id(e1));
  auto sky = a.db->by_subject("sky");
  BOOST_REQUIRE(sky);
  BOOST_CHECK_EQUAL(sky->size(), 2u);
  auto sky_color = a.db->by_subject("sky", "color");
  BOOST_REQUIRE(sky_color);
  BOOST_REQUIRE_EQUAL(sky_color->size(), 1u);
  BOOST_CHECK(sky_color->front() == id(b1));
  auto early = a.db->by_time({0, 0}, {2'500, 0});
  BOOST_REQUIRE(early);
  BOOST_CHECK_EQUAL(early->size(), 2u);
  // An update moves the engram in time: the old index entry is gone.
  a.n.wall.set(9'000);
  a.apply(a.n.mem.put(make_fact("k2", "changed")));
  early = a.db->by_time({0, 0}, {2'500, 0});
  BOOST_REQUIRE(early);
  BOOST_REQUIRE_EQUAL(early->size(), 1u);
  BOOST_CHECK(early->front() == id(f1));
  auto late = a.db->by_time({8'000, 0}, {10'000, 0});
  BOOST_REQUIRE(late);
  BOOST_REQUIRE_EQUAL(late->size(), 1u);
  BOOST_CHECK(late->front() == id(f2));
  (void)b2;
}

BOOST_AUTO_TEST_CASE(deltas_since_a_peer_clock_and_log_truncation) {
  temp_dir dir;
  durable_node a{dir.sub("db"), 1};
  node peer{2};
  for (int i = 0; i < 5; ++i)
    must_join(peer.mem,
              a.apply(a.n.mem.put(make_fact("k" + std::to_string(i), "v"))));
  a.apply(a.n.mem.put(make_fact("k9", "new")));
  auto missing = a.db->deltas_since(peer.mem.context());
  BOOST_REQUIRE(missing);
  BOOST_CHECK_EQUAL(missing->version_count(), 1u);
  must_join(peer.mem, *missing);
  BOOST_CHECK(peer.mem.same_state(a.n.mem));
  BOOST_CHECK_EQUAL(a.db->log_size(), 6u);
  // No peer has acknowledged anything yet: nothing is truncated.
  BOOST_CHECK_EQUAL(*a.db->truncate_log(), 0u);
  BOOST_REQUIRE(a.db->acknowledge("peer-2", peer.mem.context()));
  BOOST_CHECK_EQUAL(*a.db->truncate_log(), 6u);
  BOOST_CHECK_EQUAL(a.db->log_size(), 0u);
  a.apply(a.n.mem.put(make_fact("k10", "newer")));
  BOOST_CHECK_EQUAL(*a.db->truncate_log(), 0u); // peer-2 has not seen it
  BOOST_CHECK_EQUAL(a.db->log_size(), 1u);
}

BOOST_AUTO_TEST_SUITE_END()
