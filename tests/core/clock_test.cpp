#include "core/causal_context.hpp"
#include "core/hlc.hpp"
#include "core/vector_clock.hpp"

#include <boost/test/unit_test.hpp>

#include <random>

using namespace engram;

BOOST_AUTO_TEST_SUITE(vector_clock_tests)

BOOST_AUTO_TEST_CASE(missing_entries_count_as_zero) {
  vector_clock vc;
  BOOST_CHECK_EQUAL(vc.get(42), 0u);
  BOOST_CHECK_EQUAL(vc.increment(42), 1u);
  BOOST_CHECK_EQUAL(vc.increment(42), 2u);
  BOOST_CHECK_EQUAL(vc.get(42), 2u);
  BOOST_CHECK(vc.covers(dot{42, 2}));
  BOOST_CHECK(!vc.covers(dot{42, 3}));
}

BOOST_AUTO_TEST_CASE(compare_detects_equal_before_after_and_concurrent) {
  vector_clock a{{1, 2}, {2, 1}};
  vector_clock b{{1, 2}, {2, 1}};
  BOOST_CHECK(a.compare(b) == causal_order::equal);
  b.increment(2);
  BOOST_CHECK(a.compare(b) == causal_order::before);
  BOOST_CHECK(b.compare(a) == causal_order::after);
  a.increment(3);
  BOOST_CHECK(a.compare(b) == causal_order::concurrent);
  BOOST_CHECK(b.compare(a) == causal_order::concurrent);
  BOOST_CHECK(!a.dominates(b));
  a.merge(b);
  BOOST_CHECK(a.dominates(b));
  BOOST_CHECK(a.compare(b) == causal_order::after);
}

BOOST_AUTO_TEST_CASE(zero_entries_do_not_change_the_order) {
  vector_clock a{{1, 1}};
  vector_clock b{{1, 1}, {2, 0}};
  BOOST_CHECK(a.compare(b) == causal_order::equal);
  BOOST_CHECK(a == b); // zero entries are never stored
}

BOOST_AUTO_TEST_CASE(merge_is_the_pointwise_maximum_and_a_join) {
  std::mt19937_64 rng{7};
  auto random_clock = [&] {
    vector_clock vc;
    for (int i = 0; i < 5; ++i)
      vc.set(rng() % 8 + 1, rng() % 5);
    return vc;
  };
  for (int round = 0; round < 2000; ++round) {
    auto a = random_clock();
    auto b = random_clock();
    auto c = random_clock();
    auto ab = a;
    ab.merge(b);
    auto ba = b;
    ba.merge(a);
    BOOST_REQUIRE(ab == ba);
    BOOST_REQUIRE(ab.dominates(a) && ab.dominates(b));
    auto ab_c = ab;
    ab_c.merge(c);
    auto bc = b;
    bc.merge(c);
    auto a_bc = a;
    a_bc.merge(bc);
    BOOST_REQUIRE(ab_c == a_bc);
    auto aa = a;
    aa.merge(a);
    BOOST_REQUIRE(aa == a);
    for (auto& [r, n] : ab.entries())
      BOOST_REQUIRE_EQUAL(n, std::max(a.get(r), b.get(r)));
  }
}

BOOST_AUTO_TEST_CASE(compact_drops_retired_replicas_once_stable) {
  vector_clock vc{{1, 5}, {2, 3}, {3, 9}};
  // Replica 2 retired, every peer has seen its 3 events: its entry goes.
  auto removed = vc.compact(vector_clock{{2, 3}}, {2, 3});
  BOOST_CHECK_EQUAL(removed, 1u);
  BOOST_CHECK_EQUAL(vc.get(2), 0u);
  // Replica 3 retired but not yet stable everywhere: it stays.
  BOOST_CHECK_EQUAL(vc.get(3), 9u);
  BOOST_CHECK_EQUAL(vc.get(1), 5u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(causal_context_tests)

BOOST_AUTO_TEST_CASE(
    dots_beyond_the_prefix_stay_in_the_cloud_until_contiguous) {
  causal_context ctx;
  ctx.insert(dot{1, 3});
  ctx.insert(dot{1, 2});
  BOOST_CHECK(ctx.contains(dot{1, 3}));
  BOOST_CHECK(!ctx.contains(dot{1, 1}));
  BOOST_CHECK_EQUAL(ctx.cloud().size(), 2u);
  ctx.insert(dot{1, 1});
  BOOST_CHECK(ctx.cloud().empty());
  BOOST_CHECK_EQUAL(ctx.clock().get(1), 3u);
}

BOOST_AUTO_TEST_CASE(join_is_set_union) {
  std::mt19937_64 rng{11};
  for (int round = 0; round < 500; ++round) {
    std::vector<dot> xs;
    std::vector<dot> ys;
    for (int i = 0; i < 10; ++i) {
      xs.push_back(dot{rng() % 3 + 1, rng() % 8 + 1});
      ys.push_back(dot{rng() % 3 + 1, rng() % 8 + 1});
    }
    causal_context a{xs};
    causal_context b{ys};
    auto ab = a;
    ab.join(b);
    auto ba = b;
    ba.join(a);
    BOOST_REQUIRE(ab == ba);
    for (uint64_t r = 1; r <= 3; ++r)
      for (uint64_t n = 1; n <= 8; ++n) {
        dot d{r, n};
        BOOST_REQUIRE_EQUAL(ab.contains(d), a.contains(d) || b.contains(d));
      }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(hlc_tests)

BOOST_AUTO_TEST_CASE(
    timestamps_strictly_increase_when_the_wall_clock_jumps_back) {
  manual_clock wall{1'000'000};
  hybrid_logical_clock hlc{wall};
  auto t1 = hlc.now();
  wall.set(500'000); // the wall clock jumps back half a second
  auto t2 = hlc.now();
  auto t3 = hlc.now();
  BOOST_CHECK(t1 < t2);
  BOOST_CHECK(t2 < t3);
  BOOST_CHECK_EQUAL(t3.wall_us, 1'000'000u);
  wall.set(2'000'000);
  auto t4 = hlc.now();
  BOOST_CHECK(t3 < t4);
  BOOST_CHECK_EQUAL(t4.logical, 0u);
}

BOOST_AUTO_TEST_CASE(a_receive_is_after_the_send_it_observes) {
  manual_clock wall_a{1'000};
  manual_clock wall_b{900}; // b's wall clock lags behind a's
  hybrid_logical_clock a{wall_a};
  hybrid_logical_clock b{wall_b};
  auto sent = a.now();
  auto received = b.update(sent);
  BOOST_CHECK(sent < received);
  auto next = b.now();
  BOOST_CHECK(received < next);
}

BOOST_AUTO_TEST_CASE(monotonic_under_random_jumps_and_messages) {
  std::mt19937_64 rng{3};
  manual_clock wall{10'000};
  hybrid_logical_clock hlc{wall};
  hlc_timestamp last = hlc.now();
  for (int i = 0; i < 10'000; ++i) {
    // The wall clock moves forwards or backwards by up to 5 ms.
    auto jump = static_cast<int64_t>(rng() % 10'000) - 5'000;
    wall.set(static_cast<uint64_t>(
        std::max<int64_t>(0, static_cast<int64_t>(wall.now_us()) + jump)));
    hlc_timestamp next;
    if (rng() % 3 == 0) {
      hlc_timestamp remote{wall.now_us() + rng() % 2000, uint32_t(rng() % 4)};
      next = hlc.update(remote);
      BOOST_REQUIRE(remote < next);
    } else {
      next = hlc.now();
    }
    BOOST_REQUIRE(last < next);
    last = next;
  }
}

BOOST_AUTO_TEST_CASE(a_peer_far_in_the_future_cannot_drag_the_clock_along) {
  manual_clock wall{1'000'000};
  hybrid_logical_clock hlc{wall, 60'000'000};
  auto t = hlc.update(hlc_timestamp{1'000'000 + 3'600'000'000ULL, 0});
  BOOST_CHECK_LE(t.wall_us, 1'000'000u + 60'000'000u);
  BOOST_CHECK(hlc.now() > t);
}

BOOST_AUTO_TEST_SUITE_END()
