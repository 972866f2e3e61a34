// The durable consensus log: what a Raft member saves survives a restart
// (term, vote, entries, snapshot), a process killed in the middle of its
// writes reopens with every acknowledged entry, a damaged log is refused
// with its group named, and an encrypted store keeps the entries sealed.
#include "messages/consensus_codec.hpp"
#include "persistence/consensus_log.hpp"
#include "persistence/database.hpp"

#include <boost/test/unit_test.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <map>

#include "consensus/raw_node.hpp"
#include "raw_store.hpp"
#include "temp_dir.hpp"

using namespace engram;
namespace c = engram::consensus;

namespace {

std::shared_ptr<persistence::database> open_db(const std::string& path,
                                               std::optional<crypto::key256> key
                                               = std::nullopt) {
  persistence::store_options opts{path};
  opts.master_key = key;
  auto db = persistence::database::open(opts);
  if (!db)
    BOOST_FAIL(db.error_value().message);
  return *db;
}

std::unique_ptr<persistence::consensus_log>
open_log(std::shared_ptr<persistence::database> db,
         const std::string& group = "universal") {
  auto log = persistence::consensus_log::open(std::move(db), group);
  if (!log)
    BOOST_FAIL(log.error_value().message);
  return std::move(*log);
}

c::entry make_entry(c::index_t i, c::term_t t, std::string data) {
  c::entry e;
  e.index = i;
  e.term = t;
  e.data = std::move(data);
  return e;
}

c::snapshot bootstrap(std::vector<c::node_id> voters) {
  c::snapshot s;
  s.meta.index = 1;
  s.meta.term = 1;
  s.meta.conf.voters = std::move(voters);
  return s;
}

/// A member of a group whose log is durable: the machine, its log, what it
/// applied.
struct durable_member {
  c::node_id id;
  std::string path;
  std::shared_ptr<persistence::database> db;
  std::unique_ptr<persistence::consensus_log> log;
  std::unique_ptr<c::raw_node> node;
  std::map<c::index_t, std::string> applied;

  void start() {
    db = open_db(path);
    log = open_log(db);
    c::config cfg;
    cfg.id = id;
    cfg.election_ticks = 10;
    cfg.seed = id;
    cfg.applied = log->first_index() - 1;
    node = std::make_unique<c::raw_node>(cfg, *log);
    applied.clear();
  }

  void stop() {
    node.reset();
    log.reset();
    db.reset();
  }
};

/// Processes every ready of every member and delivers messages until quiet.
void run(std::map<c::node_id, durable_member>& group) {
  std::vector<c::message> wire;
  for (int round = 0; round < 200; ++round) {
    for (auto& [id, m] : group) {
      while (m.node->has_ready()) {
        auto rd = m.node->get_ready();
        auto saved = m.log->save(rd);
        if (!saved)
          BOOST_FAIL(saved.error_value().message);
        for (auto& msg : rd.messages)
          wire.push_back(msg);
        for (auto& e : rd.committed)
          if (e.type == c::entry_type::normal && !e.data.empty())
            m.applied[e.index] = e.data;
        m.node->advance(rd);
      }
    }
    if (wire.empty())
      return;
    auto batch = std::move(wire);
    wire.clear();
    for (auto& msg : batch) {
      // Through the wire form, as between nodes.
      auto decoded = messages::decode_message(messages::encode(msg));
      BOOST_REQUIRE(decoded.has_value());
      (void)group.at(msg.to).node->step(std::move(*decoded));
    }
  }
}

} // namespace

BOOST_AUTO_TEST_SUITE(consensus_logs)

BOOST_AUTO_TEST_CASE(
    a_saved_log_reopens_with_its_term_vote_entries_and_snapshot) {
  test::temp_dir dir;
  {
    auto db = open_db(dir.path());
    auto log = open_log(db);
    BOOST_TEST(log->last_index() == 0u);
    c::ready rd;
    rd.snap = bootstrap({1, 2, 3});
    rd.entries
        = {make_entry(2, 2, "a"), make_entry(3, 2, "b"), make_entry(4, 3, "c")};
    rd.hard = c::hard_state{3, 2, 3};
    BOOST_REQUIRE(log->save(rd).has_value());
  }
  auto db = open_db(dir.path());
  auto log = open_log(db);
  auto [hs, cs] = log->initial_state();
  BOOST_TEST(hs.term == 3u);
  BOOST_TEST(hs.vote == 2u);
  BOOST_TEST(hs.commit == 3u);
  BOOST_TEST((cs.voters == std::vector<c::node_id>{1, 2, 3}));
  BOOST_TEST(log->first_index() == 2u);
  BOOST_TEST(log->last_index() == 4u);
  std::vector<c::entry> out;
  BOOST_TEST((log->entries(2, 5, c::no_limit, out) == c::storage_error::none));
  BOOST_TEST(out.size() == 3u);
  BOOST_TEST(out[2].data == "c");
  // Another group in the same database is separate.
  auto other = open_log(db, "federation/f1");
  BOOST_TEST(other->last_index() == 0u);
}

BOOST_AUTO_TEST_CASE(
    entries_replace_a_conflicting_suffix_and_snapshots_the_log) {
  test::temp_dir dir;
  {
    auto db = open_db(dir.path());
    auto log = open_log(db);
    c::ready rd;
    rd.snap = bootstrap({1});
    rd.entries = {make_entry(2, 1, "a"), make_entry(3, 1, "b"),
                  make_entry(4, 1, "c"), make_entry(5, 1, "d")};
    rd.hard = c::hard_state{1, 1, 2};
    BOOST_REQUIRE(log->save(rd).has_value());
    // A new leader's entries replace 3..5 by 3.
    c::ready next;
    next.entries = {make_entry(3, 2, "B")};
    next.hard = c::hard_state{2, 0, 2};
    BOOST_REQUIRE(log->save(next).has_value());
    BOOST_TEST(log->last_index() == 3u);
  }
  {
    auto db = open_db(dir.path());
    auto log = open_log(db);
    BOOST_TEST(log->last_index() == 3u);
    c::term_t t = 0;
    BOOST_TEST((log->term(3, t) == c::storage_error::none));
    BOOST_TEST(t == 2u);
    BOOST_REQUIRE(
        log->compact(3, c::conf_state{{1}, {}, {}, {}, false}, "state")
            .has_value());
    BOOST_TEST(log->first_index() == 4u);
  }
  auto db = open_db(dir.path());
  auto log = open_log(db);
  BOOST_TEST(log->first_index() == 4u);
  BOOST_TEST(log->last_index() == 3u);
  c::snapshot s;
  BOOST_TEST((log->get_snapshot(s) == c::storage_error::none));
  BOOST_TEST(s.data == "state");
  BOOST_TEST(s.meta.term == 2u);
}

BOOST_AUTO_TEST_CASE(restarts_never_decrease_the_term_or_forget_a_vote) {
  test::temp_dir dir;
  std::map<c::node_id, durable_member> group;
  for (c::node_id id = 1; id <= 3; ++id) {
    auto& m = group[id];
    m.id = id;
    m.path = dir.sub("n" + std::to_string(id));
    auto db = open_db(m.path);
    auto log = open_log(db);
    c::ready rd;
    rd.snap = bootstrap({1, 2, 3});
    rd.hard = c::hard_state{1, 0, 1};
    BOOST_REQUIRE(log->save(rd).has_value());
  }
  std::map<c::node_id, std::pair<c::term_t, c::node_id>> before;
  size_t writes = 0;
  for (int restart = 0; restart < 6; ++restart) {
    for (auto& [id, m] : group) {
      m.start();
      auto st = m.node->get_status();
      if (restart > 0) {
        BOOST_TEST(st.hard.term == before[id].first);
        BOOST_TEST(st.hard.vote == before[id].second);
      }
    }
    // Each round a different member campaigns, and every member writes.
    group.at(1 + restart % 3).node->campaign();
    run(group);
    for (auto& [id, m] : group) {
      (void)m.node->propose("w" + std::to_string(writes++));
      run(group);
    }
    for (auto& [id, m] : group) {
      auto st = m.node->get_status();
      before[id] = {st.hard.term, st.hard.vote};
      m.stop();
    }
  }
  // Everything written was applied everywhere after the last restart.
  for (auto& [id, m] : group)
    m.start();
  group.at(1).node->campaign();
  run(group);
  for (auto& [id, m] : group)
    BOOST_TEST(m.applied.size() == writes);
}

BOOST_AUTO_TEST_CASE(
    a_process_killed_mid_write_keeps_every_acknowledged_entry) {
  test::temp_dir dir;
  std::map<c::index_t, std::string> acked;
  for (int cycle = 0; cycle < 6; ++cycle) {
    int fds[2];
    BOOST_REQUIRE(pipe(fds) == 0);
    auto pid = fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      auto tag = "c" + std::to_string(cycle);
      execl(ENGRAM_CONSENSUS_CHILD, ENGRAM_CONSENSUS_CHILD, dir.path().c_str(),
            tag.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    auto* in = fdopen(fds[0], "r");
    char data[128];
    unsigned long long index = 0;
    size_t seen = 0;
    while (seen < 40u + 17u * static_cast<size_t>(cycle)
           && std::fscanf(in, "%llu %127s", &index, data) == 2) {
      acked[index] = data;
      ++seen;
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    std::fclose(in);
    BOOST_REQUIRE(seen > 0u);
    // Reopen: every acknowledged entry is there, unchanged.
    auto db = open_db(dir.path());
    auto log = open_log(db);
    auto [hs, cs] = log->initial_state();
    BOOST_TEST(hs.commit <= log->last_index());
    for (auto& [i, value] : acked) {
      std::vector<c::entry> got;
      BOOST_REQUIRE(
          (log->entries(i, i + 1, c::no_limit, got) == c::storage_error::none));
      BOOST_TEST(got.at(0).data == value);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_damaged_log_is_refused_naming_its_group) {
  test::temp_dir dir;
  {
    auto db = open_db(dir.path());
    auto log = open_log(db, "federation/f9");
    c::ready rd;
    rd.snap = bootstrap({1});
    rd.entries
        = {make_entry(2, 1, "a"), make_entry(3, 1, "b"), make_entry(4, 1, "c")};
    rd.hard = c::hard_state{1, 1, 4};
    BOOST_REQUIRE(log->save(rd).has_value());
  }
  // Entry 3 removed beneath the store: a gap below the commit.
  test::with_raw(dir.path(), [](rocksdb::DB* raw, auto family) {
    std::string key = "\xff"
                      "engram.raft/federation/f9/e";
    key += std::string(7, '\0');
    key += '\3';
    BOOST_REQUIRE(
        raw->Delete(rocksdb::WriteOptions{}, family("default"), key).ok());
  });
  auto db = open_db(dir.path());
  auto log = persistence::consensus_log::open(db, "federation/f9");
  BOOST_REQUIRE(!log.has_value());
  auto& msg = log.error_value().message;
  BOOST_TEST(msg.find("federation/f9") != std::string::npos);
  BOOST_TEST(msg.find("gap") != std::string::npos);
  // A value swapped under another key does not decode as the right entry.
  BOOST_TEST(!persistence::consensus_log::open(db, "").has_value());
}

BOOST_AUTO_TEST_CASE(an_encrypted_store_keeps_the_entries_sealed) {
  test::temp_dir dir;
  auto key = *crypto::key256::from_bytes(std::string(32, 'k'));
  {
    auto db = open_db(dir.path(), key);
    auto log = open_log(db);
    c::ready rd;
    rd.snap = bootstrap({1});
    rd.entries = {make_entry(2, 1, "secret-raft-payload-4711")};
    rd.hard = c::hard_state{1, 1, 2};
    BOOST_REQUIRE(log->save(rd).has_value());
  }
  BOOST_TEST(!test::any_file_contains(dir.path(), "secret-raft-payload-4711"));
  auto db = open_db(dir.path(), key);
  auto log = open_log(db);
  std::vector<c::entry> got;
  BOOST_TEST((log->entries(2, 3, c::no_limit, got) == c::storage_error::none));
  BOOST_TEST(got.at(0).data == "secret-raft-payload-4711");
}

BOOST_AUTO_TEST_SUITE_END()
