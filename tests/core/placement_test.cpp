#include "core/placement.hpp"

#include <boost/test/unit_test.hpp>

#include <map>
#include <set>

using namespace engram;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> five{"n1", "n2", "n3", "n4", "n5"};

engram_record fact_record(const std::string& key,
                          memory_type type = memory_type::semantic) {
  engram_record e;
  e.scope = memory_scope::agent("a");
  e.type = type;
  e.body = fact{key, "v"};
  e.id = derive_id(e.scope, e.body);
  return e;
}

auto everyone_live = [](const std::string&) {
  return true;
};

} // namespace

BOOST_AUTO_TEST_SUITE(placements)

BOOST_AUTO_TEST_CASE(the_default_places_everything_everywhere) {
  auto p = placement::make({}, {}, five);
  BOOST_REQUIRE(p);
  BOOST_CHECK(p->everywhere());
  BOOST_CHECK(p->holds("n4", fact_record("k")));
  BOOST_CHECK_EQUAL(*p->coordinator(0, "n2", everyone_live), "n2");
}

BOOST_AUTO_TEST_CASE(levels_need_one_a_majority_or_all) {
  BOOST_CHECK_EQUAL(required_replicas(consistency_level::one, 3), 1u);
  BOOST_CHECK_EQUAL(required_replicas(consistency_level::quorum, 3), 2u);
  BOOST_CHECK_EQUAL(required_replicas(consistency_level::quorum, 4), 3u);
  BOOST_CHECK_EQUAL(required_replicas(consistency_level::all, 5), 5u);
  BOOST_CHECK_EQUAL(required_replicas(consistency_level::local, 5), 1u);
  BOOST_CHECK(*parse_consistency("QUORUM") == consistency_level::quorum);
  auto bad = parse_consistency("most");
  BOOST_REQUIRE(!bad);
  BOOST_CHECK(bad.error_value().message.find("'most'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(hash_partitions_spread_factor_replicas_deterministically) {
  replication_config repl;
  repl.factor = 2;
  partition_config part;
  part.partition_count = 16;
  auto p = placement::make(repl, part, five, "agent-x");
  BOOST_REQUIRE(p);
  BOOST_CHECK(!p->everywhere());
  // The member order given does not matter.
  auto shuffled
      = placement::make(repl, part, {"n5", "n3", "n1", "n4", "n2"}, "agent-x");
  std::map<std::string, size_t> load;
  for (uint32_t i = 0; i < 16; ++i) {
    auto& list = p->replicas(i);
    BOOST_REQUIRE_EQUAL(list.size(), 2u);
    BOOST_CHECK(list[0] != list[1]);
    BOOST_CHECK(list == shuffled->replicas(i));
    for (auto& n : list)
      ++load[n];
  }
  BOOST_CHECK_EQUAL(load.size(), 5u); // every node holds something
  // Engrams land in different partitions; each on exactly its replicas.
  std::set<uint32_t> used;
  for (int i = 0; i < 200; ++i) {
    auto e = fact_record("k" + std::to_string(i));
    auto part_of = p->partition_of(e);
    used.insert(part_of);
    size_t holders = 0;
    for (auto& n : five)
      holders += p->holds(n, e) ? 1 : 0;
    BOOST_CHECK_EQUAL(holders, 2u);
  }
  BOOST_CHECK_GT(used.size(), 12u);
  // Another agent (salt) gets another layout.
  auto other = placement::make(repl, part, five, "agent-y");
  size_t same = 0;
  for (uint32_t i = 0; i < 16; ++i)
    same += other->replicas(i) == p->replicas(i) ? 1 : 0;
  BOOST_CHECK_LT(same, 16u);
}

BOOST_AUTO_TEST_CASE(a_member_leaving_moves_only_its_share) {
  replication_config repl;
  repl.factor = 1;
  partition_config part;
  part.partition_count = 64;
  auto before = placement::make(repl, part, five);
  auto after = placement::make(repl, part, {"n1", "n2", "n3", "n4"});
  for (uint32_t i = 0; i < 64; ++i)
    if (before->replicas(i)[0] != "n5")
      BOOST_CHECK_EQUAL(before->replicas(i)[0], after->replicas(i)[0]);
}

BOOST_AUTO_TEST_CASE(scope_type_time_and_custom_strategies) {
  replication_config repl;
  repl.factor = 1;
  partition_config part;
  part.partition_count = 4;
  part.strategy = partition_strategy::type;
  auto by_type = placement::make(repl, part, five);
  BOOST_CHECK_EQUAL(by_type->partition_of(fact_record("a")),
                    static_cast<uint32_t>(memory_type::semantic));
  BOOST_CHECK_EQUAL(
      by_type->partition_of(fact_record("b", memory_type::episodic)),
      static_cast<uint32_t>(memory_type::episodic));
  part.strategy = partition_strategy::scope;
  auto by_scope = placement::make(repl, part, five);
  auto x = fact_record("a");
  auto y = fact_record("b");
  BOOST_CHECK_EQUAL(by_scope->partition_of(x), by_scope->partition_of(y));
  part.strategy = partition_strategy::time;
  part.bucket_size = 1h;
  auto by_time = placement::make(repl, part, five);
  x.created.wall_us = 0;
  y.created.wall_us = 3'600'000'000ULL; // the next hour
  BOOST_CHECK_EQUAL(by_time->partition_of(x), 0u);
  BOOST_CHECK_EQUAL(by_time->partition_of(y), 1u);
  part.strategy = partition_strategy::custom;
  BOOST_CHECK(!placement::make(repl, part, five)); // no function
  part.partitioner = [](const engram_record& e) {
    return std::get<fact>(e.body).key == "a" ? 3u : 6u;
  };
  auto custom = placement::make(repl, part, five);
  BOOST_CHECK_EQUAL(custom->partition_of(x), 3u);
  BOOST_CHECK_EQUAL(custom->partition_of(y), 2u); // modulo the count
}

BOOST_AUTO_TEST_CASE(sharded_places_each_shard_on_its_nodes) {
  replication_config repl;
  repl.strategy = replication_strategy::sharded;
  BOOST_CHECK(!placement::make(repl, {}, five)); // no shards
  repl.shard_key = *make_shard_key("type");
  repl.shards = {{static_cast<uint32_t>(memory_type::semantic), {"n1", "n2"}},
                 {static_cast<uint32_t>(memory_type::episodic), {"n3"}}};
  auto p = placement::make(repl, {}, {});
  BOOST_REQUIRE(p);
  auto facts = fact_record("a");
  auto episodes = fact_record("b", memory_type::episodic);
  BOOST_CHECK(p->holds("n1", facts) && p->holds("n2", facts));
  BOOST_CHECK(!p->holds("n3", facts));
  BOOST_CHECK(p->holds("n3", episodes) && !p->holds("n1", episodes));
  repl.shards.push_back({1, {}});
  auto bad = placement::make(repl, {}, {});
  BOOST_REQUIRE(!bad);
  BOOST_CHECK(bad.error_value().message.find("shard 1 lists no nodes")
              != std::string::npos);
  BOOST_CHECK(!make_shard_key("colour"));
}

BOOST_AUTO_TEST_CASE(the_primary_is_the_first_live_replica) {
  replication_config repl;
  repl.factor = 3;
  repl.strategy = replication_strategy::primary_secondary;
  auto p = placement::make(repl, {}, five);
  BOOST_REQUIRE(p);
  auto& list = p->replicas(0);
  BOOST_REQUIRE_EQUAL(list.size(), 3u);
  // Even a secondary forwards its writes to the primary.
  BOOST_CHECK_EQUAL(*p->coordinator(0, list[1], everyone_live), list[0]);
  auto primary_down = [&](const std::string& n) {
    return n != list[0];
  };
  BOOST_CHECK_EQUAL(*p->coordinator(0, "elsewhere", primary_down), list[1]);
  auto none = [](const std::string&) {
    return false;
  };
  BOOST_CHECK(!p->coordinator(0, "elsewhere", none));
  // Symmetric: a replica coordinates its own writes.
  repl.strategy = replication_strategy::symmetric;
  auto sym = placement::make(repl, {}, five);
  BOOST_CHECK_EQUAL(*sym->coordinator(0, sym->replicas(0)[2], everyone_live),
                    sym->replicas(0)[2]);
}

BOOST_AUTO_TEST_CASE(read_sets_cover_every_partition_at_the_level) {
  replication_config repl;
  repl.factor = 3;
  partition_config part;
  part.partition_count = 8;
  auto p = placement::make(repl, part, five);
  BOOST_REQUIRE(p);
  for (auto level : {consistency_level::one, consistency_level::quorum,
                     consistency_level::all}) {
    auto set = p->read_set(level, "n1", everyone_live);
    BOOST_REQUIRE(set);
    BOOST_CHECK_EQUAL(set->front(), "n1");
    for (uint32_t i = 0; i < 8; ++i) {
      size_t covered = 0;
      for (auto& n : p->replicas(i))
        covered += std::count(set->begin(), set->end(), n);
      BOOST_CHECK_GE(covered, required_replicas(level, 3));
    }
  }
  BOOST_CHECK_EQUAL(
      p->read_set(consistency_level::local, "n1", everyone_live)->size(), 1u);
  // One of five down: every partition still has a quorum of its three...
  auto one_down = [](const std::string& n) {
    return n != "n5";
  };
  BOOST_CHECK(p->read_set(consistency_level::quorum, "n1", one_down));
  // ...but not all of them.
  auto all = p->read_set(consistency_level::all, "n1", one_down);
  BOOST_REQUIRE(!all);
  BOOST_CHECK(all.error_value().code == errc::unavailable);
}

BOOST_AUTO_TEST_SUITE_END()
