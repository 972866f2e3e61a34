// The Universal scope on Raft: writes with consensus (learn_with_consensus)
// on in-process nodes connected as peers, read linearizably on every member
// and marked as such; a minority refuses writes (unavailable) or times
// out, never hangs; a node outside the group says it holds no Universal
// scope; the facts survive a restart of every member.
#include "actors/memory.hpp"

#include "fixture.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

struct group_fixture : test::runtime_fixture {
  actors::node_config member(const std::string& id) {
    auto c = node_cfg(id);
    c.consensus.members = {"n1", "n2", "n3"};
    c.consensus.election_timeout = 300ms;
    c.consensus.heartbeat_interval = 50ms;
    return c;
  }

  std::unique_ptr<actors::node> n1, n2, n3;

  void start_group() {
    n1 = start(member("n1"));
    n2 = start(member("n2"));
    n3 = start(member("n3"));
    actors::connect(*n1, *n2);
    actors::connect(*n1, *n3);
    actors::connect(*n2, *n3);
  }

  static query_filter universal() {
    query_filter f;
    f.kind = scope_kind::universal;
    return f;
  }

  /// Writes with consensus, retrying while no leader is elected yet
  /// (bounded).
  static engram_id write(actors::memory& m, const std::string& key,
                         const std::string& value) {
    expected<engram_id> id = make_error(errc::timeout, "not tried");
    test::eventually(
        [&] {
          id = m.learn_with_consensus(test::fact_of(key, value),
                                      memory_scope::universal(),
                                      actors::quorum_config{0, 2000ms});
          return id.has_value();
        },
        20s);
    if (!id)
      BOOST_FAIL("no write with consensus succeeded: "
                 + id.error_value().to_string());
    return *id;
  }

  static std::string value_of(actors::memory& m, const std::string& key) {
    auto seen = m.query(universal());
    if (!seen)
      return "error: " + seen.error_value().to_string();
    for (auto& v : *seen)
      if (auto* f = std::get_if<fact>(&v.value.body); f && f->key == key)
        return f->value;
    return "";
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(universal_consensus)

BOOST_FIXTURE_TEST_CASE(writes_with_consensus_are_read_linearizably_everywhere,
                        group_fixture) {
  start_group();
  auto a = test::ok(n1->open("planner", "c1"));
  auto b = test::ok(n2->open("critic", "c2"));
  auto c = test::ok(n3->open("scout", "c3"));
  write(a, "speed-of-light", "299792458 m/s");
  // A linearizable read on any member sees it at once, marked consensus.
  for (auto* m : {&a, &b, &c}) {
    auto seen = test::ok(m->query(universal()));
    BOOST_REQUIRE_EQUAL(seen.size(), 1u);
    BOOST_TEST((seen[0].consistency == guarantee::consensus));
    BOOST_TEST(seen[0].value.origin.origin_agent == "planner");
  }
  // A later write of the same key, from another member, replaces it for
  // everyone (one register per key, ordered by the log).
  write(c, "speed-of-light", "c");
  BOOST_TEST(value_of(a, "speed-of-light") == "c");
  BOOST_TEST(value_of(b, "speed-of-light") == "c");
  // learn_scoped to the Universal scope goes through consensus too.
  test::ok(
      b.learn_scoped(test::fact_of("g", "9.81"), memory_scope::universal()));
  BOOST_TEST(value_of(a, "g") == "9.81");
  // CRDT reads stay as they were: the agent's memory holds no Universal fact.
  BOOST_TEST(test::ok(a.query()).empty());
}

BOOST_FIXTURE_TEST_CASE(writes_that_cannot_be_decided_fail_clearly,
                        group_fixture) {
  start_group();
  auto a = test::ok(n1->open("planner", "c1"));
  write(a, "x", "1");
  // More members than the group has can never be reachable.
  auto too_many = a.learn_with_consensus(test::fact_of("x", "2"),
                                         memory_scope::universal(),
                                         actors::quorum_config{4, 1000ms});
  BOOST_REQUIRE(!too_many);
  BOOST_TEST((too_many.error_value().code == errc::unavailable));
  // Consensus is for the Universal scope.
  auto scoped = a.learn_with_consensus(test::fact_of("x", "3"),
                                       memory_scope::agent("planner"));
  BOOST_REQUIRE(!scoped);
  BOOST_TEST((scoped.error_value().code == errc::invalid_scope));
  // Alone, a member refuses at once (a majority is not reachable) ...
  n2->stop();
  n3->stop();
  BOOST_TEST(test::eventually([&] {
    auto r = a.learn_with_consensus(test::fact_of("x", "4"),
                                    memory_scope::universal(),
                                    actors::quorum_config{0, 500ms});
    return !r && r.error_value().code == errc::unavailable;
  }));
  // ... and, told to try with itself alone, times out instead of hanging.
  auto start = std::chrono::steady_clock::now();
  auto alone = a.learn_with_consensus(test::fact_of("x", "5"),
                                      memory_scope::universal(),
                                      actors::quorum_config{1, 500ms});
  BOOST_REQUIRE(!alone);
  BOOST_TEST((alone.error_value().code == errc::timeout
              || alone.error_value().code == errc::unavailable));
  bool prompt = std::chrono::steady_clock::now() - start < 5s;
  BOOST_TEST(prompt);
}

BOOST_FIXTURE_TEST_CASE(a_node_outside_the_group_holds_no_universal_scope,
                        group_fixture) {
  auto n4 = start("n4");
  auto d = test::ok(n4->open("planner", "c4"));
  auto r = d.learn_with_consensus(test::fact_of("x", "1"),
                                  memory_scope::universal());
  BOOST_REQUIRE(!r);
  BOOST_TEST((r.error_value().code == errc::invalid_scope));
  BOOST_TEST(r.error_value().message.find("n4") != std::string::npos);
  BOOST_TEST(!d.query(universal()).has_value());
}

BOOST_FIXTURE_TEST_CASE(the_universal_scope_survives_a_restart_of_every_member,
                        group_fixture) {
  start_group();
  {
    auto a = test::ok(n1->open("planner", "c1"));
    write(a, "kept", "yes");
  }
  n1->stop();
  n2->stop();
  n3->stop();
  n1.reset();
  n2.reset();
  n3.reset();
  start_group();
  auto b = test::ok(n2->open("critic", "c2"));
  // Readable once a leader is elected again (reads wait for it).
  BOOST_TEST(test::eventually(
      [&] {
        return value_of(b, "kept") == "yes";
      },
      20s));
  write(b, "after", "restart");
  auto c = test::ok(n3->open("scout", "c3"));
  BOOST_TEST(value_of(c, "after") == "restart");
}

BOOST_AUTO_TEST_SUITE_END()
