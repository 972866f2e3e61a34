#include "core/crdt/aw_set.hpp"
#include "core/crdt/lww_register.hpp"
#include "core/crdt/mv_register.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <random>
#include <string>

using namespace engram;

namespace {

constexpr uint64_t seeds[] = {1, 2, 3, 42, 1337};

// Runs random operations on `n` replicas of a delta-state CRDT, then checks
// the join laws on the states and that delivering every delta to every
// replica in random order, with duplicates, converges.
template<class Crdt, class Op>
void check_laws(uint64_t seed, Op random_op, int ops = 1500) {
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 rng{seed};
    constexpr size_t n = 4;
    std::vector<Crdt> replicas(n);
    std::vector<std::pair<size_t, Crdt>> deltas; // (origin, delta)
    for (int i = 0; i < ops; ++i) {
      auto r = rng() % n;
      deltas.emplace_back(r, random_op(rng, replicas[r], r + 1));
      // Occasionally let a replica see another's delta early.
      if (rng() % 4 == 0) {
        auto k = rng() % deltas.size();
        replicas[rng() % n].join(deltas[k].second);
      }
    }
    // Join laws on states.
    auto& a = replicas[0];
    auto& b = replicas[1];
    auto& c = replicas[2];
    auto ab = a;
    ab.join(b);
    auto ba = b;
    ba.join(a);
    BOOST_REQUIRE(ab == ba);
    auto ab_c = ab;
    ab_c.join(c);
    auto bc = b;
    bc.join(c);
    auto a_bc = a;
    a_bc.join(bc);
    BOOST_REQUIRE(ab_c == a_bc);
    auto aa = a;
    aa.join(a);
    BOOST_REQUIRE(aa == a);
    // Deltas in random order, each delivered once or twice.
    for (auto& replica : replicas) {
      auto order = deltas;
      for (size_t i = 0; i < deltas.size() / 4; ++i)
        order.push_back(deltas[rng() % deltas.size()]);
      std::shuffle(order.begin(), order.end(), rng);
      for (auto& [origin, delta] : order)
        replica.join(delta);
    }
    for (size_t i = 1; i < n; ++i)
      BOOST_REQUIRE(replicas[i] == replicas[0]);
  }
}

} // namespace

BOOST_AUTO_TEST_SUITE(crdt_laws)

BOOST_AUTO_TEST_CASE(lww_register_picks_the_same_winner_everywhere) {
  for (auto seed : seeds) {
    std::mt19937_64 rng{seed};
    std::vector<lww_register<std::string>> deltas;
    lww_register<std::string> reg;
    for (int i = 0; i < 2000; ++i) {
      // Few distinct timestamps, so ties between writers happen often.
      hlc_timestamp ts{rng() % 50, uint32_t(rng() % 2)};
      deltas.push_back(
          reg.assign("v" + std::to_string(rng() % 7), ts, rng() % 4 + 1));
    }
    for (int trial = 0; trial < 5; ++trial) {
      auto order = deltas;
      std::shuffle(order.begin(), order.end(), rng);
      lww_register<std::string> other;
      for (auto& d : order)
        other.join(d);
      BOOST_REQUIRE(other == reg);
    }
  }
}

BOOST_AUTO_TEST_CASE(lww_register_ties_break_by_writer) {
  lww_register<std::string> a;
  hlc_timestamp ts{100, 0};
  auto d1 = a.assign("from-1", ts, 1);
  auto d2 = a.assign("from-2", ts, 2);
  lww_register<std::string> b;
  b.join(d2);
  b.join(d1);
  BOOST_CHECK_EQUAL(a.value(), "from-2");
  BOOST_CHECK_EQUAL(b.value(), "from-2");
}

BOOST_AUTO_TEST_CASE(mv_register_obeys_the_join_laws) {
  for (auto seed : seeds)
    check_laws<mv_register<int>>(
        seed, [](auto& rng, auto& reg, replica_id self) {
          if (rng() % 10 == 0)
            return reg.reset();
          return reg.write(self, static_cast<int>(rng() % 100));
        });
}

BOOST_AUTO_TEST_CASE(mv_register_keeps_every_concurrent_value) {
  mv_register<std::string> a;
  mv_register<std::string> b;
  auto da = a.write(1, "blue");
  auto db = b.write(2, "green");
  a.join(db);
  b.join(da);
  BOOST_CHECK(a == b);
  BOOST_CHECK_EQUAL(a.values().size(), 2u);
  // A write that has seen both supersedes both.
  auto dc = a.write(1, "teal");
  b.join(dc);
  BOOST_REQUIRE_EQUAL(b.values().size(), 1u);
  BOOST_CHECK_EQUAL(b.values().front(), "teal");
}

BOOST_AUTO_TEST_CASE(aw_set_obeys_the_join_laws) {
  for (auto seed : seeds)
    check_laws<aw_set<int>>(seed, [](auto& rng, auto& set, replica_id self) {
      auto value = static_cast<int>(rng() % 20);
      if (rng() % 3 == 0)
        return set.remove(value);
      return set.add(self, value);
    });
}

BOOST_AUTO_TEST_CASE(aw_set_add_wins_over_a_concurrent_remove) {
  aw_set<std::string> a;
  aw_set<std::string> b;
  auto add = a.add(1, "x");
  b.join(add);
  auto removed = b.remove("x"); // b removes what it has seen
  auto readd = a.add(1, "x");   // concurrently a adds again
  a.join(removed);
  b.join(readd);
  BOOST_CHECK(a.contains("x"));
  BOOST_CHECK(b.contains("x"));
  BOOST_CHECK(a == b);
  // A remove that has seen every add removes.
  auto gone = a.remove("x");
  b.join(gone);
  BOOST_CHECK(!b.contains("x"));
}

BOOST_AUTO_TEST_SUITE_END()
