// Clock offsets between nodes (deterministic, simulated time): nodes
// measure each other's clocks; a node whose clock is off by more than
// max_clock_offset neither syncs with its peers nor takes writes, until
// the clocks agree again — it would win every newest-wins conflict.

#include <boost/test/unit_test.hpp>

#include "sim.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

// The simulation's wall clock, shifted by an adjustable skew.
class shifted_clock final : public physical_clock {
public:
  explicit shifted_clock(std::shared_ptr<manual_clock> base)
      : base_(std::move(base)) {
    // nop
  }

  uint64_t now_us() override {
    return static_cast<uint64_t>(static_cast<int64_t>(base_->now_us())
                                 + skew_us);
  }

  int64_t skew_us = 0;

private:
  std::shared_ptr<manual_clock> base_;
};

bool has_key(const std::vector<memory_view>& views, const std::string& key) {
  for (auto& v : views)
    if (auto* f = std::get_if<fact>(&v.value.body); f && f->key == key)
      return true;
  return false;
}

const actors::clock_offset* offset_of(const actors::node_status& st,
                                      const std::string& peer) {
  for (auto& c : st.clock_offsets)
    if (c.peer == peer)
      return &c;
  return nullptr;
}

} // namespace

BOOST_AUTO_TEST_SUITE(clock_offsets)

BOOST_FIXTURE_TEST_CASE(a_node_whose_clock_is_off_neither_syncs_nor_writes,
                        sim_fixture) {
  auto skewed = std::make_shared<shifted_clock>(wall);
  skewed->skew_us = 600'000'000; // ten minutes ahead
  auto& a = start("A");
  auto& b = start("B");
  auto& c = start("C", nullptr, [&](actors::node_config& x) {
    x.wall_clock = skewed;
  });
  auto ia = instance(a, "planner", "a1");
  auto ib = instance(b, "planner", "b1");
  auto ic = instance(c, "planner", "c1");
  link(a, b);
  link(a, c);
  link(b, c);
  advance(2s);
  // Measured on both sides, and reported.
  auto at_a = status(a);
  auto* c_from_a = offset_of(at_a, "C");
  BOOST_REQUIRE(c_from_a != nullptr);
  BOOST_CHECK_CLOSE(static_cast<double>(c_from_a->offset_us), 600e6, 0.01);
  BOOST_CHECK(at_a.clock_refusal.empty()); // A agrees with B
  auto at_c = status(c);
  BOOST_REQUIRE(offset_of(at_c, "A") != nullptr);
  BOOST_CHECK_LT(offset_of(at_c, "A")->offset_us, -599'000'000);
  BOOST_CHECK(at_c.clock_refusal.find("writes are refused")
              != std::string::npos);
  // C refuses writes; a write at A reaches B, not C.
  auto refused = learn(ic, fact_of("from-c", "x"));
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::clock_offset);
  ok(learn(ia, fact_of("from-a", "1")));
  advance(3s);
  BOOST_CHECK(has_key(query(ib), "from-a"));
  BOOST_CHECK(!has_key(query(ic), "from-a"));
  // The clocks agree again: C catches up and takes writes.
  skewed->skew_us = 0;
  advance(3s);
  BOOST_CHECK(has_key(query(ic), "from-a"));
  BOOST_CHECK(status(c).clock_refusal.empty());
  ok(learn(ic, fact_of("from-c", "2")));
  advance(1s);
  BOOST_CHECK(has_key(query(ia), "from-c"));
}

// With two nodes, neither knows which clock is wrong: both refuse writes
// and sync until they agree.
BOOST_FIXTURE_TEST_CASE(two_nodes_that_disagree_both_refuse, sim_fixture) {
  auto skewed = std::make_shared<shifted_clock>(wall);
  skewed->skew_us = -5'000'000; // five seconds behind
  auto& a = start("A");
  auto& b = start("B", nullptr, [&](actors::node_config& x) {
    x.wall_clock = skewed;
  });
  auto ia = instance(a, "planner", "a1");
  auto ib = instance(b, "planner", "b1");
  link(a, b);
  advance(2s);
  BOOST_CHECK(!learn(ia, fact_of("k", "a")));
  BOOST_CHECK(!learn(ib, fact_of("k", "b")));
  // Within the bound (500 ms): fine.
  skewed->skew_us = -200'000;
  advance(2s);
  ok(learn(ia, fact_of("k", "a")));
  advance(1s);
  BOOST_CHECK(has_key(query(ib), "k"));
}

BOOST_AUTO_TEST_SUITE_END()
