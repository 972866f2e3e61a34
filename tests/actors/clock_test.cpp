// Clock offsets between nodes (deterministic, simulated time): nodes
// measure each other's clocks; a node whose clock is off by more than
// max_clock_offset neither syncs with its peers nor takes writes, until
// the clocks agree again — it would win every newest-wins conflict.

#include "actors/internal/context.hpp"

#include <boost/test/unit_test.hpp>

#include <limits>

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

// A replica whose clock is off cannot confirm a write: a write that needs
// it is refused before anything is stored (not stored and "not confirmed").
BOOST_FIXTURE_TEST_CASE(
    a_write_that_needs_a_replica_whose_clock_is_off_is_refused, sim_fixture) {
  auto skewed = std::make_shared<shifted_clock>(wall);
  skewed->skew_us = 600'000'000;
  auto all = [](actors::node_config& x) {
    x.members = {"A", "B", "C"};
    x.replication.consistency = consistency_level::all;
  };
  auto& a = start("A", nullptr, all);
  auto& b = start("B", nullptr, all);
  auto& c = start("C", nullptr, [&](actors::node_config& x) {
    all(x);
    x.wall_clock = skewed;
  });
  auto ia = instance(a, "planner", "a1");
  instance(b, "planner", "b1");
  instance(c, "planner", "c1");
  link(a, b);
  link(a, c);
  link(b, c);
  advance(2s);
  auto refused = learn(ia, fact_of("k", "v"));
  BOOST_REQUIRE(!refused);
  BOOST_CHECK_MESSAGE(refused.error_value().code == errc::unavailable,
                      refused.error_value().to_string());
  BOOST_CHECK(!has_key(query(ia), "k")); // nothing stored
}

// The majority that decides whether this node's clock is off counts every
// peer it knows, reachable or not: a peer that is down does not make a
// healthy node refuse writes because its one other peer is off.
BOOST_AUTO_TEST_CASE(the_majority_counts_every_known_peer) {
  actors::cluster_view a{500ms};
  a.up("B", actors::peer_actor{});
  a.up("C", actors::peer_actor{});
  a.set_clock("B", {1'000, 100});
  BOOST_CHECK(a.set_clock("C", {600'000'000, 100})); // now beyond the bound
  BOOST_CHECK(a.clock_ok("B"));
  BOOST_CHECK(!a.clock_ok("C"));
  BOOST_CHECK(a.clock_refusal().empty()); // 1 of 2 peers
  a.down("B");
  BOOST_CHECK(a.clock_refusal().empty()); // still 1 of 2
  // C's view: both its peers are off.
  actors::cluster_view c{500ms};
  c.up("A", actors::peer_actor{});
  c.up("B", actors::peer_actor{});
  c.set_clock("A", {-600'000'000, 100});
  c.set_clock("B", {-600'000'000, 100});
  BOOST_CHECK(!c.clock_refusal().empty());
  // Readings at the extremes neither overflow nor pass.
  c.set_clock("A", {std::numeric_limits<int64_t>::min(), 0});
  BOOST_CHECK(!c.clock_ok("A"));
  c.set_clock("B", {std::numeric_limits<int64_t>::max(), -5});
  BOOST_CHECK(!c.clock_ok("B"));
  // Within the bound once the round trip's error is counted.
  c.set_clock("A", {700'000, 400'000});
  BOOST_CHECK(c.clock_ok("A"));
}

BOOST_AUTO_TEST_SUITE_END()

// Messages are part of the agent's replicated memory (deterministic).
BOOST_AUTO_TEST_SUITE(inbox_replication)

BOOST_FIXTURE_TEST_CASE(a_message_is_read_once_across_nodes_and_reads,
                        sim_fixture) {
  auto& a = start("A");
  auto& b = start("B");
  auto bob_a = instance(a, "bob", "on-a");
  auto bob_b = instance(b, "bob", "on-b");
  auto alice = instance(a, "alice", "main");
  link(a, b);
  advance(200ms);
  ok(ask<bool>(alice, actors::tell_atom::value, std::string{"bob"},
               std::string{"hello"}));
  advance(200ms);
  // Two reads on B at once: the message comes out of one of them.
  using texts = std::vector<std::string>;
  auto results = std::make_shared<std::vector<texts>>();
  auto reader = sys.spawn([=](caf::event_based_actor* self) {
    for (int i = 0; i < 2; ++i)
      self->request(bob_b, caf::infinite, actors::inbox_atom::value)
          .then(
              [=](texts& x) {
                results->push_back(std::move(x));
              },
              [=](caf::error&) {
                results->push_back({"error"});
              });
  });
  others.push_back(reader);
  for (int i = 0; i < 100 && results->size() < 2; ++i)
    advance(10ms);
  BOOST_REQUIRE_EQUAL(results->size(), 2u);
  auto total = (*results)[0].size() + (*results)[1].size();
  BOOST_CHECK_EQUAL(total, 2u); // one message: sender and text
  // The read mark reached A: nothing to read there.
  advance(2s);
  auto on_a = ok(ask<texts>(bob_a, actors::inbox_atom::value));
  BOOST_CHECK(on_a.empty());
}

// A replica that holds nothing and has not caught up answers a read at the
// configured level (One) from a node that holds the agent's memory — here
// long before sync (500 ms each way) could bring it.
BOOST_FIXTURE_TEST_CASE(an_empty_replica_consults_a_host, sim_fixture) {
  auto& a = start("A");
  auto ia = instance(a, "planner", "a1");
  for (int i = 0; i < 3; ++i)
    ok(learn(ia, fact_of("k" + std::to_string(i), "v")));
  auto& b = start("B");
  link_params slow;
  slow.latency = 500ms;
  link(a, b, slow);
  advance(700ms); // the directory arrived: B knows A hosts planner
  auto ib = instance(b, "planner", "b1");
  auto local = ok(ask<std::vector<memory_view>>(
      ib, actors::query_atom::value, query_filter{},
      actors::code_of(consistency_level::local)));
  BOOST_CHECK(local.empty());
  auto views = ok(ask<std::vector<memory_view>>(ib, actors::query_atom::value,
                                                query_filter{}));
  BOOST_CHECK_EQUAL(views.size(), 3u);
  BOOST_CHECK_LT(query(ib).size(), 3u); // B's own replica: not synced yet
}

BOOST_AUTO_TEST_SUITE_END()
