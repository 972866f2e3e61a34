// Replication, consistency levels and partitioning on nodes of one process
// (the multi-process versions are in tests/net): each partition strategy
// and Sharded place data where configured and nowhere else; writes are
// acknowledged after as many replicas as their level needs stored them;
// reads at Local / One / All see what the level promises; too few
// reachable replicas fail fast; PrimarySecondary fails over.

#include <caf/scoped_actor.hpp>

#include <map>
#include <set>

#include "fixture.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> three{"n1", "n2", "n3"};
const std::string agent_id = "scribe";

// Three connected nodes sharing one replication configuration.
struct cluster_fixture : runtime_fixture {
  std::vector<std::unique_ptr<actors::node>> nodes;

  void start_all(const replication_config& repl,
                 const partition_config& part = {},
                 actors::session_settings sessions = fast_sessions()) {
    for (auto& id : three) {
      auto c = node_cfg(id);
      c.members = three;
      c.replication = repl;
      c.partitioning = part;
      c.sessions = sessions;
      nodes.push_back(start(std::move(c)));
    }
    for (size_t i = 0; i < nodes.size(); ++i)
      for (size_t j = i + 1; j < nodes.size(); ++j)
        actors::connect(*nodes[i], *nodes[j]);
    // Every node hosts the agent, its sessions are established, and their
    // first anti-entropy rounds (at greeting) are over: a write made while
    // one was still in flight could ride on it to the peers.
    for (auto& n : nodes)
      ok(n->agent(agent_id));
    BOOST_REQUIRE(eventually([&] {
      for (auto& n : nodes) {
        auto st = n->status();
        if (!st || st->session_details.size() != 2)
          return false;
        for (auto& s : st->session_details)
          if (!s.established || s.idle_rounds == 0)
            return false;
      }
      return true;
    }));
  }

  actors::memory mem(size_t i) { return ok(nodes[i]->open(agent_id, "chat")); }

  // The ids of the agent's memories node `i` holds in its own replica.
  std::set<engram_id> held(size_t i) {
    std::set<engram_id> result;
    auto views = ok(mem(i).query({}, consistency_level::local));
    for (auto& v : views)
      result.insert(v.value.id);
    return result;
  }
};

// The agent-scoped record `learn` stores (its id derived as the replica
// does), for computing placements in the test.
engram_record stored_form(engram_record e) {
  e.scope = memory_scope::agent(agent_id);
  e.id = derive_id(e.scope, e.body);
  return e;
}

engram_record episode_of(const std::string& id) {
  engram_record e;
  e.type = memory_type::episodic;
  e.body = episode{id, {event{{}, "happened"}}};
  e.confidence = 0.8;
  return e;
}

// Writes `records` through node 0 at consistency All, then checks that
// every engram is held exactly by the nodes `p` places it on.
void check_placement(cluster_fixture& f, const placement& p,
                     const std::vector<engram_record>& records) {
  auto m = f.mem(0);
  for (auto& r : records)
    ok(m.learn_scoped(r, memory_scope::agent({})));
  // Anti-entropy rounds pass: nothing may move to a node not placed.
  std::this_thread::sleep_for(300ms);
  std::vector<std::set<engram_id>> held;
  for (size_t i = 0; i < f.nodes.size(); ++i)
    held.push_back(f.held(i));
  size_t total = 0;
  for (auto& r : records) {
    auto e = stored_form(r);
    for (size_t i = 0; i < three.size(); ++i) {
      bool expected = p.holds(three[i], e);
      bool actual = held[i].count(e.id) > 0;
      if (expected != actual)
        BOOST_ERROR(std::get<fact>(e.body).key
                    << " on " << three[i] << ": expected "
                    << (expected ? "held" : "absent") << ", got "
                    << (actual ? "held" : "absent"));
      total += actual ? 1 : 0;
    }
  }
  BOOST_TEST_MESSAGE("copies held: " << total);
}

std::vector<engram_record> facts(size_t n, const std::string& prefix = "k") {
  std::vector<engram_record> result;
  for (size_t i = 0; i < n; ++i)
    result.push_back(fact_of(prefix + std::to_string(i), "v"));
  return result;
}

} // namespace

BOOST_AUTO_TEST_SUITE(partitioning)

BOOST_FIXTURE_TEST_CASE(hash_partitions_hold_each_engram_on_its_replicas_only,
                        cluster_fixture) {
  replication_config repl;
  repl.factor = 2;
  repl.consistency = consistency_level::all;
  partition_config part;
  part.partition_count = 8;
  start_all(repl, part);
  auto p = *placement::make(repl, part, three, agent_id);
  check_placement(*this, p, facts(30));
  // And every node reads all of them at One (covering every partition).
  for (size_t i = 0; i < 3; ++i)
    BOOST_CHECK_EQUAL(ok(mem(i).query({}, consistency_level::one)).size(), 30u);
}

BOOST_FIXTURE_TEST_CASE(type_partitions_put_each_memory_type_on_its_node,
                        cluster_fixture) {
  replication_config repl;
  repl.factor = 1;
  repl.consistency = consistency_level::all;
  partition_config part;
  part.strategy = partition_strategy::type;
  part.partition_count = 4;
  start_all(repl, part);
  auto p = *placement::make(repl, part, three, agent_id);
  auto records = facts(5);
  for (int i = 0; i < 5; ++i)
    records.push_back(episode_of("ep" + std::to_string(i)));
  auto m = mem(0);
  for (auto& r : records)
    ok(m.learn_scoped(r, memory_scope::agent({})));
  auto semantic_home
      = p.replicas(static_cast<uint32_t>(memory_type::semantic)).front();
  auto episodic_home
      = p.replicas(static_cast<uint32_t>(memory_type::episodic)).front();
  for (size_t i = 0; i < 3; ++i) {
    auto views = ok(mem(i).query({}, consistency_level::local));
    size_t semantic = 0;
    size_t episodic = 0;
    for (auto& v : views)
      (v.value.type == memory_type::semantic ? semantic : episodic) += 1;
    BOOST_CHECK_EQUAL(semantic, three[i] == semantic_home ? 5u : 0u);
    BOOST_CHECK_EQUAL(episodic, three[i] == episodic_home ? 5u : 0u);
  }
}

BOOST_FIXTURE_TEST_CASE(scope_time_and_custom_partitions_place_as_configured,
                        cluster_fixture) {
  // One cluster per strategy would cost three startups: the strategies are
  // checked one after the other on fresh agents of one cluster instead.
  replication_config repl;
  repl.factor = 1;
  repl.consistency = consistency_level::all;
  partition_config part;
  part.strategy = partition_strategy::custom;
  part.partition_count = 3;
  // Keys ending in a digit d go to partition d % 3.
  part.partitioner = [](const engram_record& e) {
    auto* f = std::get_if<fact>(&e.body);
    return f ? static_cast<uint32_t>(f->key.back() - '0') : 0u;
  };
  start_all(repl, part);
  auto p = *placement::make(repl, part, three, agent_id);
  check_placement(*this, p, facts(9));
  // Partition 0, 1 and 2 each hold their three keys.
  std::map<std::string, size_t> per_node;
  for (size_t i = 0; i < 3; ++i)
    per_node[three[i]] = held(i).size();
  for (uint32_t q = 0; q < 3; ++q)
    BOOST_CHECK_GE(per_node[p.replicas(q).front()], 3u);
}

BOOST_FIXTURE_TEST_CASE(scope_partitions_keep_an_agents_memory_together,
                        cluster_fixture) {
  replication_config repl;
  repl.factor = 2;
  repl.consistency = consistency_level::all;
  partition_config part;
  part.strategy = partition_strategy::scope;
  part.partition_count = 16;
  start_all(repl, part);
  auto p = *placement::make(repl, part, three, agent_id);
  check_placement(*this, p, facts(12));
  size_t holders = 0;
  for (size_t i = 0; i < 3; ++i)
    holders += held(i).size() == 12 ? 1 : 0;
  BOOST_CHECK_EQUAL(holders, 2u); // one partition: the same two nodes
}

BOOST_FIXTURE_TEST_CASE(time_partitions_place_by_creation_bucket,
                        cluster_fixture) {
  replication_config repl;
  repl.factor = 1;
  repl.consistency = consistency_level::all;
  partition_config part;
  part.strategy = partition_strategy::time;
  part.partition_count = 3;
  part.bucket_size = 1h;
  start_all(repl, part);
  auto p = *placement::make(repl, part, three, agent_id);
  std::vector<engram_record> records;
  for (int hour = 0; hour < 6; ++hour) {
    auto e = episode_of("hour" + std::to_string(hour));
    e.created.wall_us = 1'700'000'000'000'000ULL
                        + static_cast<uint64_t>(hour) * 3'600'000'000ULL;
    records.push_back(e);
  }
  auto m = mem(0);
  for (auto& r : records)
    ok(m.learn_scoped(r, memory_scope::agent({})));
  for (auto& r : records) {
    auto e = stored_form(r);
    auto home = p.replicas(p.partition_of(e)).front();
    for (size_t i = 0; i < 3; ++i)
      BOOST_CHECK_EQUAL(held(i).count(e.id) > 0, three[i] == home);
  }
}

BOOST_FIXTURE_TEST_CASE(sharded_keeps_each_shard_on_its_listed_nodes,
                        cluster_fixture) {
  replication_config repl;
  repl.strategy = replication_strategy::sharded;
  repl.shard_key = *make_shard_key("type");
  repl.shards = {{static_cast<uint32_t>(memory_type::semantic), {"n2", "n3"}},
                 {static_cast<uint32_t>(memory_type::episodic), {"n1"}}};
  repl.consistency = consistency_level::all;
  start_all(repl);
  auto m = mem(0);
  for (auto& r : facts(4))
    ok(m.learn_scoped(r, memory_scope::agent({})));
  ok(m.learn_scoped(episode_of("e"), memory_scope::agent({})));
  std::this_thread::sleep_for(300ms);
  BOOST_CHECK_EQUAL(held(0).size(), 1u); // n1: the episode only
  BOOST_CHECK_EQUAL(held(1).size(), 4u); // n2, n3: the facts
  BOOST_CHECK_EQUAL(held(2).size(), 4u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(quorum)

BOOST_FIXTURE_TEST_CASE(write_levels_wait_for_that_many_durable_replicas,
                        cluster_fixture) {
  // Pushes and anti-entropy are slow here: only a write's level moves
  // data to other replicas before the checks.
  auto slow = fast_sessions();
  slow.push_delay = 20s;
  slow.anti_entropy_interval = 20s;
  slow.ping_interval = 20s; // no re-greeting (and its first round) either
  slow.peer_timeout = 60s;
  replication_config repl;
  repl.factor = 3;
  repl.consistency = consistency_level::one;
  start_all(repl, {}, slow);
  auto writer = mem(0);
  auto id = ok(writer.learn(fact_of("one", "x")));
  BOOST_CHECK_EQUAL(held(1).count(id) + held(2).count(id), 0u);
  // A read at Local sees only its node; at All it consults every replica.
  BOOST_CHECK(ok(mem(1).query({}, consistency_level::local)).empty());
  auto all = ok(mem(1).query({}, consistency_level::all));
  BOOST_REQUIRE_EQUAL(all.size(), 1u);
  BOOST_CHECK(all.front().value.id == id);
}

BOOST_FIXTURE_TEST_CASE(quorum_and_all_writes_are_durable_where_they_promise,
                        cluster_fixture) {
  auto slow = fast_sessions();
  slow.push_delay = 20s;
  slow.anti_entropy_interval = 20s;
  slow.ping_interval = 20s; // no re-greeting (and its first round) either
  slow.peer_timeout = 60s;
  replication_config repl;
  repl.factor = 3;
  repl.consistency = consistency_level::quorum;
  start_all(repl, {}, slow);
  auto writer = mem(0);
  for (int i = 0; i < 10; ++i) {
    auto id = ok(writer.learn(fact_of("q" + std::to_string(i), "x")));
    size_t copies = 0;
    for (size_t n = 0; n < 3; ++n)
      copies += held(n).count(id);
    BOOST_CHECK_GE(copies, 2u);
    // Quorum read from another node: W + R > N, so it sees the write.
    auto seen = ok(mem(2).query({}, consistency_level::quorum));
    BOOST_CHECK(std::any_of(seen.begin(), seen.end(), [&](auto& v) {
      return v.value.id == id;
    }));
  }
}

BOOST_FIXTURE_TEST_CASE(too_few_replicas_fail_fast_and_store_nothing,
                        cluster_fixture) {
  replication_config repl;
  repl.factor = 3;
  repl.consistency = consistency_level::all;
  start_all(repl);
  auto writer = mem(0);
  ok(writer.learn(fact_of("before", "x")));
  for (size_t n = 0; n < 3; ++n)
    BOOST_CHECK_EQUAL(held(n).size(), 1u);
  nodes[2]->stop(); // n3 is gone
  BOOST_REQUIRE(eventually([&] {
    auto r = writer.learn(fact_of("after", "x"));
    return !r && r.error_value().code == errc::unavailable;
  }));
  auto r = writer.learn(fact_of("after", "x"));
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error_value().message.find("write at all needs 3")
              != std::string::npos);
  BOOST_CHECK_EQUAL(held(0).size(), 1u); // nothing written
  auto read = mem(0).query({}, consistency_level::all);
  BOOST_REQUIRE(!read);
  BOOST_CHECK(read.error_value().code == errc::unavailable);
  // Quorum still works with two of three.
  BOOST_CHECK_EQUAL(ok(mem(1).query({}, consistency_level::quorum)).size(), 1u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(failover)

BOOST_FIXTURE_TEST_CASE(primary_secondary_fails_over_to_the_next_replica,
                        cluster_fixture) {
  replication_config repl;
  repl.factor = 3;
  repl.strategy = replication_strategy::primary_secondary;
  repl.consistency = consistency_level::quorum;
  start_all(repl);
  auto p = *placement::make(repl, {}, three, agent_id);
  auto order = p.replicas(0);
  auto index_of = [&](const std::string& node) {
    return static_cast<size_t>(std::find(three.begin(), three.end(), node)
                               - three.begin());
  };
  auto primary = index_of(order[0]);
  auto secondary = index_of(order[1]);
  auto writer = mem(index_of(order[2])); // a secondary, writing
  auto partition = actors::agent_partition(agent_id);
  auto writer_of = [&](const engram_id& id) {
    auto views = ok(writer.query({}, consistency_level::all));
    for (auto& v : views)
      if (v.value.id == id)
        return v.tag.replica;
    return replica_id{};
  };
  auto first = ok(writer.learn(fact_of("first", "x")));
  BOOST_CHECK(writer_of(first) == actors::replica_of(order[0], partition));
  nodes[primary]->stop();
  // Writers are redirected to the promoted secondary.
  engram_id second;
  BOOST_REQUIRE(eventually([&] {
    auto r = writer.learn(fact_of("second", "x"));
    if (r)
      second = *r;
    return static_cast<bool>(r);
  }));
  auto views = ok(mem(secondary).query({}, consistency_level::local));
  bool found = false;
  for (auto& v : views)
    if (v.value.id == second) {
      found = true;
      BOOST_CHECK(v.tag.replica == actors::replica_of(order[1], partition));
    }
  BOOST_CHECK(found);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(directory)

BOOST_FIXTURE_TEST_CASE(any_node_finds_an_agent_hosted_elsewhere_by_id,
                        cluster_fixture) {
  start_all({}); // every node hosts "scribe"
  // "oracle" lives on n3 only.
  auto oracle = ok(nodes[2]->open("oracle", "main"));
  ok(oracle.learn(fact_of("answer", "42")));
  BOOST_REQUIRE(eventually([&] {
    auto where = nodes[0]->locate("oracle");
    return where && *where == std::vector<std::string>{"n3"};
  }));
  auto scribe = ok(nodes[0]->locate(agent_id));
  BOOST_CHECK_EQUAL(scribe.size(), 3u);
  BOOST_CHECK_EQUAL(scribe.front(), "n1"); // this node first
  // Ask it through the handle n1 found, like a local actor.
  auto hdl = ok(nodes[0]->find("oracle"));
  caf::scoped_actor self{sys};
  size_t seen = 0;
  self->request(hdl, 5s, actors::query_atom::value, query_filter{},
                actors::code_of(consistency_level::local))
      .receive(
          [&](std::vector<memory_view>& views) {
            seen = views.size();
          },
          [&](caf::error& err) {
            BOOST_ERROR(to_string(err));
          });
  BOOST_CHECK_EQUAL(seen, 1u);
  // n1 never hosted it: asking did not make n1 a host.
  BOOST_CHECK_EQUAL(ok(nodes[0]->locate("oracle")).size(), 1u);
  // Unknown agents and lost nodes are clear errors.
  auto nobody = nodes[0]->find("nobody");
  BOOST_REQUIRE(!nobody);
  BOOST_CHECK(nobody.error_value().code == errc::unknown_agent);
  nodes[2]->stop();
  BOOST_REQUIRE(eventually([&] {
    auto where = nodes[0]->locate("oracle");
    return where && where->empty();
  }));
  auto gone = nodes[0]->find("oracle");
  BOOST_REQUIRE(!gone);
  BOOST_CHECK(gone.error_value().code == errc::unknown_agent);
}

BOOST_AUTO_TEST_SUITE_END()
