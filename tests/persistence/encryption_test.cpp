// Encryption at rest: what a store encrypted with a master key leaves in its
// directory, how it refuses a changed or moved record and a wrong key, and
// how its keys rotate.
#include "messages/codec.hpp"
#include "persistence/store.hpp"

#include <boost/test/unit_test.hpp>
#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "crypto/aead.hpp"
#include "raw_store.hpp"
#include "temp_dir.hpp"
#include "test_util.hpp"

using namespace engram;
using namespace engram::test;
using persistence::database;
using persistence::store;
using persistence::store_options;

namespace {

crypto::key256 key_of(char fill) {
  return *crypto::key256::from_bytes(std::string(32, fill));
}

store_options encrypted(const std::string& path, char fill = 'k') {
  store_options opts{path};
  opts.master_key = key_of(fill);
  return opts;
}

template<class T>
T done(expected<T> x) {
  if (!x)
    throw std::runtime_error(x.error_value().to_string());
  return std::move(*x);
}

// The text planted in everything a store keeps: no file of an encrypted
// store may hold it.
const std::string canary = "CANARY-q7Zx3";

// Writes engrams and a message whose every field holds the canary, into a
// store of `opts`, in two sessions: the first one's records are flushed to
// table files when it closes, the second one's stay in the write-ahead log
// (the store is left open while the directory is searched).
std::unique_ptr<store> plant(const store_options& opts, node& n,
                             std::vector<engram_id>& ids) {
  auto write = [&](store& db, const std::string& tag) {
    auto scope = memory_scope::agent("agent-" + canary + tag);
    for (auto& rec :
         {make_fact("key-" + canary + tag, "value-" + canary, scope),
          make_belief("subject-" + canary + tag, "relation-" + canary,
                      "object-" + canary, 0.7, scope),
          make_episode("episode-" + canary + tag, {{{1, 0}, "event-" + canary}},
                       scope)}) {
      auto d = must(n.mem.put(rec));
      ids.push_back(d.entries.front().id);
      BOOST_REQUIRE(db.record(d, n.mem));
    }
    BOOST_REQUIRE(db.keep_message({7, "from-" + canary, "text-" + canary}));
    BOOST_REQUIRE(db.acknowledge("peer", n.mem.context()));
  };
  {
    auto db = done(store::open(opts, 1));
    write(*db, "1");
  }
  auto db = done(store::open(opts, 1));
  write(*db, "2");
  return db;
}

std::string engram_key(const engram_id& id) {
  return std::string(1, '\0') + messages::id_bytes(id);
}

} // namespace

BOOST_AUTO_TEST_SUITE(store_encryption)

BOOST_AUTO_TEST_CASE(no_file_of_an_encrypted_store_holds_what_it_keeps) {
  temp_dir dir;
  // The same writes into a plain store: the search finds the canary there
  // (in table files and in the log), so finding nothing below means
  // something.
  {
    node n{1};
    std::vector<engram_id> ids;
    auto db = plant(store_options{dir.sub("plain")}, n, ids);
    auto found = files_containing(dir.sub("plain"), canary);
    BOOST_CHECK_GE(found.size(), 2u);
  }
  node n{1};
  std::vector<engram_id> ids;
  auto path = dir.sub("sealed");
  auto db = plant(encrypted(path), n, ids);
  BOOST_CHECK(db->get(ids.front()));
  auto found = files_containing(path, canary);
  BOOST_CHECK_MESSAGE(found.empty(), "the canary is in "
                                         << found.size() << " files, the first "
                                         << (found.empty() ? "" : found[0]));
  // Nor does a piece of it that an index key could be built from.
  BOOST_CHECK(files_containing(path, "subject-" + canary).empty());
  BOOST_CHECK(files_containing(path, "relation-" + canary).empty());
  BOOST_CHECK(files_containing(path, "agent-" + canary).empty());
  // Everything reads back: the replica, the queries on hashed index keys,
  // the inbox.
  db.reset();
  auto again = done(store::open(encrypted(path), 1));
  node restored{1};
  auto report = done(again->load(restored.mem));
  BOOST_CHECK(report.corrupt.empty());
  BOOST_CHECK(restored.mem.same_state(n.mem));
  auto beliefs = done(again->by_subject("subject-" + canary + "1"));
  BOOST_REQUIRE_EQUAL(beliefs.size(), 1u);
  BOOST_CHECK(beliefs.front() == ids[1]);
  BOOST_CHECK_EQUAL(
      done(again->by_subject("subject-" + canary + "1", "relation-" + canary))
          .size(),
      1u);
  BOOST_CHECK(
      done(again->by_subject("subject-" + canary + "1", "other")).empty());
  auto scoped
      = done(again->by_scope(memory_scope::agent("agent-" + canary + "2")));
  BOOST_CHECK_EQUAL(scoped.size(), 3u);
  BOOST_CHECK_EQUAL(done(again->by_type(memory_type::episodic)).size(), 2u);
  auto inbox = done(again->messages());
  BOOST_REQUIRE_EQUAL(inbox.size(), 2u);
  BOOST_CHECK_EQUAL(inbox.front().text, "text-" + canary);
  BOOST_CHECK(done(again->deltas_since(causal_context{})).entries.size()
              == ids.size());
}

BOOST_AUTO_TEST_CASE(a_changed_or_moved_value_is_reported_and_never_served) {
  temp_dir dir;
  auto path = dir.sub("db");
  node n{1};
  std::vector<engram_id> ids;
  {
    auto db = done(store::open(encrypted(path), 1));
    for (int i = 0; i < 4; ++i) {
      auto d = must(n.mem.put(make_fact("k" + std::to_string(i), "v")));
      ids.push_back(d.entries.front().id);
      BOOST_REQUIRE(db->record(d, n.mem));
    }
    BOOST_REQUIRE(db->keep_message({1, "a", "hello"}));
  }
  // One value with a flipped byte, another engram's value under a third
  // one's key, and a flipped byte in the inbox.
  with_raw(path, [&](rocksdb::DB* db, auto family) {
    std::string value;
    BOOST_REQUIRE(
        db->Get({}, family("engrams"), engram_key(ids[0]), &value).ok());
    value[value.size() / 2] ^= 0x20;
    BOOST_REQUIRE(
        db->Put({}, family("engrams"), engram_key(ids[0]), value).ok());
    BOOST_REQUIRE(
        db->Get({}, family("engrams"), engram_key(ids[1]), &value).ok());
    BOOST_REQUIRE(
        db->Put({}, family("engrams"), engram_key(ids[2]), value).ok());
    std::unique_ptr<rocksdb::Iterator> it{db->NewIterator({}, family("meta"))};
    for (it->SeekToFirst(); it->Valid(); it->Next())
      if (it->key().ToString().find("inbox/") != std::string::npos) {
        auto bytes = it->value().ToString();
        bytes.back() ^= 1;
        BOOST_REQUIRE(db->Put({}, family("meta"), it->key(), bytes).ok());
      }
  });
  auto db = done(store::open(encrypted(path), 1));
  node restored{1};
  auto report = done(db->load(restored.mem));
  BOOST_REQUIRE_EQUAL(report.corrupt.size(), 2u);
  std::set<std::string> bad;
  for (auto& c : report.corrupt) {
    BOOST_CHECK_EQUAL(c.column_family, "engrams");
    BOOST_CHECK(c.reason.find("authenticate") != std::string::npos);
    bad.insert(c.key);
  }
  BOOST_CHECK(bad.count(ids[0].to_string()) == 1);
  BOOST_CHECK(bad.count(ids[2].to_string()) == 1);
  BOOST_CHECK_EQUAL(report.engrams, 2u);
  BOOST_CHECK(!restored.mem.get(ids[0]));
  BOOST_CHECK(!restored.mem.get(ids[2]));
  BOOST_CHECK(restored.mem.get(ids[1]));
  BOOST_CHECK(restored.mem.get(ids[3]));
  for (auto i : {0, 2}) {
    auto read = db->get(ids[static_cast<size_t>(i)]);
    BOOST_REQUIRE(!read);
    BOOST_CHECK(read.error_value().code == errc::corrupt_record);
    BOOST_CHECK(
        read.error_value().message.find(ids[static_cast<size_t>(i)].to_string())
        != std::string::npos);
  }
  std::vector<persistence::corrupt_record> corrupt;
  BOOST_CHECK(done(db->messages(&corrupt)).empty());
  BOOST_CHECK_EQUAL(corrupt.size(), 1u);
}

// The index's values are ids as they are; a query checks every entry it
// finds against the engram's authenticated record, so entries pointed at
// another engram in the files are never answers.
BOOST_AUTO_TEST_CASE(a_changed_index_entry_is_never_an_answer) {
  temp_dir dir;
  auto path = dir.sub("db");
  node n{1};
  std::vector<engram_id> ids;
  {
    auto db = done(store::open(encrypted(path), 1));
    for (auto* subject : {"s1", "s2"}) {
      auto d = must(n.mem.put(make_belief(subject, "r", "o")));
      ids.push_back(d.entries.front().id);
      BOOST_REQUIRE(db->record(d, n.mem));
    }
    BOOST_CHECK((done(db->by_subject("s1")) == std::vector<engram_id>{ids[0]}));
  }
  with_raw(path, [&](rocksdb::DB* db, auto family) {
    std::unique_ptr<rocksdb::Iterator> it{db->NewIterator({}, family("index"))};
    std::vector<std::string> keys;
    for (it->SeekToFirst(); it->Valid(); it->Next())
      if (static_cast<uint8_t>(it->key()[0]) != 0xff)
        keys.push_back(it->key().ToString());
    BOOST_REQUIRE_GE(keys.size(), 8u);
    for (auto& k : keys) // every entry now names the second engram
      BOOST_REQUIRE(
          db->Put({}, family("index"), k, messages::id_bytes(ids[1])).ok());
  });
  auto db = done(store::open(encrypted(path), 1));
  BOOST_CHECK(done(db->by_subject("s1")).empty());
  BOOST_CHECK((done(db->by_subject("s2")) == std::vector<engram_id>{ids[1]}));
  BOOST_CHECK((done(db->by_type(memory_type::semantic))
               == std::vector<engram_id>{ids[1]}));
  BOOST_CHECK((done(db->by_scope(memory_scope::agent("alpha")))
               == std::vector<engram_id>{ids[1]}));
}

BOOST_AUTO_TEST_CASE(a_store_opens_only_with_its_own_master_key) {
  temp_dir dir;
  auto path = dir.sub("db");
  {
    node n{1};
    auto db = done(store::open(encrypted(path, 'a'), 1));
    BOOST_REQUIRE(db->record(must(n.mem.put(make_fact("k", "v"))), n.mem));
  }
  auto plain = store::open(store_options{path}, 1);
  BOOST_REQUIRE(!plain);
  BOOST_CHECK(plain.error_value().message.find("encrypted at rest")
              != std::string::npos);
  auto wrong = store::open(encrypted(path, 'b'), 1);
  BOOST_REQUIRE(!wrong);
  BOOST_CHECK(wrong.error_value().code == errc::unauthenticated);
  BOOST_CHECK(wrong.error_value().message.find("master key")
              != std::string::npos);
  BOOST_CHECK(wrong.error_value().message.find(path) != std::string::npos);
  // The right key still opens it: refusals changed nothing.
  BOOST_CHECK(store::open(encrypted(path, 'a'), 1));
  // A plain store that holds data is not opened with a key (it would mix
  // sealed and plain records).
  auto other = dir.sub("plain");
  {
    node n{1};
    auto db = done(store::open(store_options{other}, 1));
    BOOST_REQUIRE(db->record(must(n.mem.put(make_fact("k", "v"))), n.mem));
  }
  auto mixed = store::open(encrypted(other), 1);
  BOOST_REQUIRE(!mixed);
  BOOST_CHECK(mixed.error_value().message.find("without encryption")
              != std::string::npos);
  BOOST_CHECK(store::open(store_options{other}, 1));
}

BOOST_AUTO_TEST_CASE(rekey_rotates_without_rewriting_and_reseal_retires) {
  temp_dir dir;
  auto path = dir.sub("db");
  node n{1};
  auto write = [&](const std::string& key, char master) {
    auto db = done(store::open(encrypted(path, master), 1));
    BOOST_REQUIRE(db->record(must(n.mem.put(make_fact(key, "v"))), n.mem));
  };
  write("before", 'a');
  {
    auto db = done(database::open(encrypted(path, 'a')));
    BOOST_REQUIRE(db->put_note("replay/n2", "window"));
    BOOST_CHECK(!done(db->get_note("nothing")));
  }
  auto key_ids = [&] {
    std::set<uint32_t> seen;
    with_raw(path, [&](rocksdb::DB* db, auto family) {
      std::unique_ptr<rocksdb::Iterator> it{
          db->NewIterator({}, family("engrams"))};
      for (it->SeekToFirst(); it->Valid(); it->Next())
        if (static_cast<uint8_t>(it->key()[0]) != 0xff)
          seen.insert(done(crypto::sealed_key_id(it->value().ToString())));
    });
    return seen;
  };
  BOOST_CHECK(key_ids() == std::set<uint32_t>{1});
  // The keyring and a record as the old master key and data key left them.
  auto raw_value = [&](const std::string& family, const std::string& key) {
    std::string value;
    with_raw(path, [&](rocksdb::DB* db, auto handle) {
      BOOST_REQUIRE(db->Get({}, handle(family), key, &value).ok());
    });
    return value;
  };
  auto old_keyring = raw_value("default", "\xff"
                                          "engram.keyring");
  auto before_id = derive_id(memory_scope::agent("alpha"), fact{"before", ""});
  auto old_record = raw_value("engrams", engram_key(before_id));
  // A new master key and a new data key; nothing sealed again.
  auto rotated = done(database::rekey(path, key_of('a'), key_of('b')));
  BOOST_CHECK_EQUAL(rotated.active_key, 2u);
  BOOST_CHECK_EQUAL(rotated.keys, 2u);
  BOOST_CHECK_EQUAL(rotated.resealed, 0u);
  // The keyring the old master key opens is gone from every file; the
  // record is still as it was.
  BOOST_CHECK(files_containing(path, old_keyring).empty());
  BOOST_CHECK(!files_containing(path, old_record).empty());
  BOOST_CHECK(!store::open(encrypted(path, 'a'), 1));
  BOOST_CHECK(!database::rekey(path, key_of('a'), key_of('c')));
  write("after", 'b');
  BOOST_CHECK((key_ids() == std::set<uint32_t>{1, 2}));
  {
    auto db = done(store::open(encrypted(path, 'b'), 1));
    node restored{1};
    auto report = done(db->load(restored.mem));
    BOOST_CHECK(report.corrupt.empty());
    BOOST_CHECK(restored.mem.same_state(n.mem));
  }
  // Sealed again under a third data key; the retired ones go.
  auto resealed = done(database::rekey(path, key_of('b'), key_of('c'), true));
  BOOST_CHECK_EQUAL(resealed.active_key, 3u);
  BOOST_CHECK_EQUAL(resealed.keys, 1u);
  BOOST_CHECK_GT(resealed.resealed, 2u);
  BOOST_CHECK(key_ids() == std::set<uint32_t>{3});
  // Nothing sealed under the retired keys is left on disk.
  BOOST_CHECK(files_containing(path, old_record).empty());
  // The node's notes were sealed again too.
  BOOST_CHECK_EQUAL(
      *done(done(database::open(encrypted(path, 'c')))->get_note("replay/n2")),
      "window");
  auto db = done(store::open(encrypted(path, 'c'), 1));
  node restored{1};
  auto report = done(db->load(restored.mem));
  BOOST_CHECK(report.corrupt.empty());
  BOOST_CHECK(restored.mem.same_state(n.mem));
  BOOST_CHECK_EQUAL(done(db->by_type(memory_type::semantic)).size(), 2u);
  // A plain store has nothing to rotate.
  auto plain = dir.sub("plain");
  done(store::open(store_options{plain}, 1));
  auto refused = database::rekey(plain, key_of('a'), key_of('b'));
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().message.find("without encryption")
              != std::string::npos);
}

BOOST_AUTO_TEST_CASE(repairing_an_encrypted_store_takes_its_key) {
  temp_dir dir;
  auto path = dir.sub("db");
  node n{1};
  {
    auto db = done(store::open(encrypted(path), 1));
    for (int i = 0; i < 3; ++i)
      BOOST_REQUIRE(db->record(
          must(n.mem.put(make_fact("k" + std::to_string(i), "v"))), n.mem));
  }
  auto without = database::repair(path);
  BOOST_REQUIRE(!without);
  BOOST_CHECK(without.error_value().message.find("encrypted at rest")
              != std::string::npos);
  auto report = done(database::repair(path, key_of('k')));
  BOOST_CHECK_EQUAL(report.partitions, 1u);
  BOOST_CHECK_EQUAL(report.engrams, 3u);
  BOOST_CHECK_EQUAL(report.corrupt, 0u);
  // The repaired replica writes under a new incarnation; its records read.
  auto db = done(database::open(encrypted(path)));
  auto incarnation = done(store::incarnation(db, ""));
  BOOST_CHECK_EQUAL(incarnation, 1u);
  auto s = done(store::attach(db, "", incarnation_of(1, incarnation)));
  node restored{incarnation_of(1, incarnation)};
  auto loaded = done(s->load(restored.mem));
  BOOST_CHECK_EQUAL(loaded.engrams, 3u);
  BOOST_CHECK(loaded.corrupt.empty());
}

BOOST_AUTO_TEST_SUITE_END()
