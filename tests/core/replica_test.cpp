#include "core/replica.hpp"

#include <boost/test/unit_test.hpp>

#include <random>

#include "test_util.hpp"

using namespace engram;
using namespace engram::test;

namespace {

// Two replicas that each wrote `a` and `b` to the same engram concurrently,
// then exchanged their deltas. Returns the join reports (on a, on b).
struct concurrent_pair {
  node a;
  node b;
  join_report on_a;
  join_report on_b;

  concurrent_pair(engram_record x, engram_record y, replica_config cfg = {})
      : a(1, cfg), b(2, cfg) {
    auto da = must(a.mem.put(std::move(x)));
    b.wall.advance(10); // b writes a little later (by its wall clock)
    auto db = must(b.mem.put(std::move(y)));
    on_a = must_join(a.mem, db);
    on_b = must_join(b.mem, da);
    // Exchange the resolutions each side wrote.
    auto ra = on_a.resolutions;
    auto rb = on_b.resolutions;
    if (!rb.empty())
      must_join(a.mem, rb);
    if (!ra.empty())
      must_join(b.mem, ra);
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(replica_basics)

BOOST_AUTO_TEST_CASE(a_write_ships_as_a_delta_and_reads_back_everywhere) {
  node a{1};
  node b{2};
  auto delta = must(a.mem.put(make_fact("user.name", "Bob")));
  BOOST_CHECK_EQUAL(delta.version_count(), 1u);
  auto id = delta.entries.front().id;
  auto report = must_join(b.mem, delta);
  BOOST_CHECK_EQUAL(report.applied, 1u);
  BOOST_CHECK(report.conflicts.empty());
  auto got = b.mem.get(id);
  BOOST_REQUIRE(got);
  BOOST_CHECK(std::get<fact>(got->body).value == "Bob");
  BOOST_CHECK(a.mem.same_state(b.mem));
  // Joining the same delta again changes nothing.
  auto again = must_join(b.mem, delta);
  BOOST_CHECK_EQUAL(again.applied, 0u);
  BOOST_CHECK(a.mem.same_state(b.mem));
}

BOOST_AUTO_TEST_CASE(an_update_supersedes_the_version_it_has_seen) {
  node a{1};
  node b{2};
  auto d1 = must(a.mem.put(make_fact("k", "1")));
  auto d2 = must(a.mem.put(make_fact("k", "2")));
  // Delivered out of order: the newer one first.
  must_join(b.mem, d2);
  auto late = must_join(b.mem, d1);
  BOOST_CHECK_EQUAL(late.applied, 0u);
  auto id = d1.entries.front().id;
  BOOST_CHECK_EQUAL(b.mem.versions(id)->size(), 1u);
  BOOST_CHECK(std::get<fact>(b.mem.get(id)->body).value == "2");
  BOOST_CHECK(b.mem.get(id)->created == a.mem.get(id)->created);
}

BOOST_AUTO_TEST_CASE(forget_leaves_a_tombstone_and_archive_a_flag) {
  node a{1};
  node b{2};
  auto d1 = must(a.mem.put(make_fact("secret", "hunter2")));
  auto id = d1.entries.front().id;
  auto d2 = must(a.mem.archive(id));
  BOOST_CHECK(a.mem.get(id)->archived);
  auto d3 = must(a.mem.forget(id, "user asked"));
  for (auto* d : {&d3, &d1, &d2})
    must_join(b.mem, *d);
  auto got = b.mem.get(id);
  BOOST_REQUIRE(got);
  BOOST_CHECK(got->tombstone);
  BOOST_CHECK_EQUAL(got->forget_reason, "user asked");
  BOOST_CHECK(std::get<fact>(got->body).value.empty());
  BOOST_CHECK(a.mem.same_state(b.mem));
  auto archived_again = a.mem.archive(id);
  BOOST_CHECK(!archived_again);
}

BOOST_AUTO_TEST_CASE(a_malformed_delta_is_refused_whole_and_changes_nothing) {
  node a{1};
  node b{2};
  must_join(b.mem, must(b.mem.put(make_fact("keep", "me"))));
  auto good = must(a.mem.put(make_fact("k", "v")));
  auto digest = b.mem.digest();
  auto expect_refused = [&](replica_delta d, const char* needle) {
    auto res = b.mem.join(d);
    BOOST_REQUIRE(!res);
    BOOST_CHECK(res.error_value().code == errc::malformed_delta);
    BOOST_CHECK_MESSAGE(res.error_value().message.find(needle)
                            != std::string::npos,
                        res.error_value().to_string());
    BOOST_CHECK_EQUAL(b.mem.digest(), digest);
    BOOST_CHECK_EQUAL(b.mem.size(), 1u);
  };
  auto outside = good;
  outside.context = causal_context{};
  expect_refused(outside, "outside the delta's causal context");
  auto mismatch = good;
  mismatch.entries.front().versions.front().value.id = engram_id{7, 7};
  expect_refused(mismatch, "carries engram");
  auto twice = good;
  twice.entries.push_back(twice.entries.front());
  expect_refused(twice, "twice");
  auto bad_conf = good;
  bad_conf.entries.front().versions.front().value.confidence = 7;
  expect_refused(bad_conf, "confidence");
  auto zero_dot = good;
  zero_dot.entries.front().versions.front().tag = dot{0, 0};
  expect_refused(zero_dot, "invalid dot");
  // The good delta still applies afterwards.
  BOOST_CHECK(b.mem.join(good));
  BOOST_CHECK_EQUAL(b.mem.size(), 2u);
}

BOOST_AUTO_TEST_CASE(delta_since_ships_only_what_the_peer_lacks) {
  node a{1};
  node b{2};
  for (int i = 0; i < 10; ++i)
    must(a.mem.put(make_fact("k" + std::to_string(i), "v")));
  must_join(b.mem, a.mem.full_state());
  BOOST_CHECK(a.mem.same_state(b.mem));
  must(a.mem.put(make_fact("k3", "changed")));
  auto missing = a.mem.delta_since(b.mem.context());
  BOOST_CHECK_EQUAL(missing.entries.size(), 1u);
  must_join(b.mem, missing);
  BOOST_CHECK(a.mem.same_state(b.mem));
  BOOST_CHECK(a.mem.delta_since(b.mem.context()).entries.empty());
}

BOOST_AUTO_TEST_CASE(a_delta_group_joins_like_its_deltas_one_by_one) {
  // Small groups (scanned) and large ones (indexed) alike.
  for (size_t keys : {10u, 6000u}) {
    node a{1};
    node one_by_one{2};
    node grouped{3};
    replica_delta group;
    std::mt19937_64 rng{keys};
    for (size_t i = 0; i < keys + 200; ++i) {
      auto key = i < keys ? i : rng() % keys; // then updates of old keys
      auto d = must(
          a.mem.put(make_fact("k" + std::to_string(key), std::to_string(i))));
      must_join(one_by_one.mem, d);
      join_deltas(group, d);
    }
    BOOST_CHECK_EQUAL(group.entries.size(), keys);
    must_join(grouped.mem, group);
    BOOST_CHECK(grouped.mem.same_state(one_by_one.mem));
    BOOST_CHECK(grouped.mem.same_state(a.mem));
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(conflict_resolution)

BOOST_AUTO_TEST_CASE(concurrent_facts_are_a_value_conflict_resolved_by_newest) {
  concurrent_pair p{make_fact("user.name", "Bob"),
                    make_fact("user.name", "Alice")};
  BOOST_REQUIRE_EQUAL(p.on_a.conflicts.size(), 1u);
  auto& c = p.on_a.conflicts.front();
  BOOST_CHECK(c.kind == conflict_kind::value);
  auto view = as_value_conflict(c);
  BOOST_REQUIRE(view);
  BOOST_CHECK_EQUAL(view->local, "Bob");
  BOOST_CHECK_EQUAL(view->remote, "Alice");
  BOOST_REQUIRE_EQUAL(p.on_a.resolved.size(), 1u);
  BOOST_CHECK_EQUAL(to_string(p.on_a.resolved.front().applied), "TakeNewest");
  // Both sides saw the same conflict (same id) and converge on Alice.
  BOOST_CHECK_EQUAL(p.on_b.conflicts.front().id, c.id);
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto got = p.a.mem.get(c.key);
  BOOST_CHECK_EQUAL(std::get<fact>(got->body).value, "Alice");
  BOOST_CHECK_EQUAL(p.a.mem.read(c.key).size(), 1u);
  BOOST_CHECK(!p.a.mem.read(c.key).front().contested);
}

BOOST_AUTO_TEST_CASE(contradicting_beliefs_fork_and_are_marked_contested) {
  concurrent_pair p{make_belief("sky", "color", "blue"),
                    make_belief("sky", "color", "green")};
  BOOST_REQUIRE_EQUAL(p.on_a.conflicts.size(), 1u);
  auto view = as_belief_conflict(p.on_a.conflicts.front());
  BOOST_REQUIRE(view);
  BOOST_CHECK_EQUAL(view->subject, "sky");
  BOOST_CHECK_EQUAL(view->relation, "color");
  BOOST_CHECK_EQUAL(view->local_object, "blue");
  BOOST_CHECK_EQUAL(view->remote_object, "green");
  BOOST_CHECK_EQUAL(p.on_a.forked.size(), 1u);
  BOOST_CHECK(p.on_a.resolutions.empty());
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto alternatives = p.b.mem.read(p.on_a.conflicts.front().key);
  BOOST_REQUIRE_EQUAL(alternatives.size(), 2u);
  BOOST_CHECK(alternatives[0].contested && alternatives[1].contested);
}

BOOST_AUTO_TEST_CASE(diverging_episodes_merge_their_events) {
  concurrent_pair p{make_episode("standup", {{{10, 0}, "greeted"},
                                             {{20, 0}, "asked status"}}),
                    make_episode("standup", {{{10, 0}, "greeted"},
                                             {{30, 0}, "heard blocker"}})};
  BOOST_REQUIRE_EQUAL(p.on_a.conflicts.size(), 1u);
  auto view = as_episodic_conflict(p.on_a.conflicts.front());
  BOOST_REQUIRE(view);
  BOOST_CHECK_EQUAL(view->episode_id, "standup");
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto got = p.a.mem.get(p.on_a.conflicts.front().key);
  auto& events = std::get<episode>(got->body).events;
  BOOST_REQUIRE_EQUAL(events.size(), 3u);
  BOOST_CHECK_EQUAL(events[0].description, "greeted");
  BOOST_CHECK_EQUAL(events[1].description, "asked status");
  BOOST_CHECK_EQUAL(events[2].description, "heard blocker");
}

BOOST_AUTO_TEST_CASE(skill_conflicts_keep_the_most_confident_version) {
  concurrent_pair p{make_skill("deploy", {{1, "use blue-green"}}, 0.9),
                    make_skill("deploy", {{1, "ssh and pray"}}, 0.3)};
  BOOST_REQUIRE_EQUAL(p.on_a.conflicts.size(), 1u);
  auto view = as_skill_conflict(p.on_a.conflicts.front());
  BOOST_REQUIRE(view);
  BOOST_CHECK_EQUAL(view->skill_id, "deploy");
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto got = p.b.mem.get(p.on_a.conflicts.front().key);
  BOOST_CHECK_EQUAL(std::get<skill>(got->body).refinements.front().description,
                    "use blue-green");
}

BOOST_AUTO_TEST_CASE(take_local_on_both_sides_still_converges) {
  replica_config cfg;
  cfg.resolution.value_conflict = take_local{};
  concurrent_pair p{make_fact("k", "from-a"), make_fact("k", "from-b"), cfg};
  // Each side resolved to its own value...
  BOOST_CHECK_EQUAL(p.on_a.resolved.size(), 1u);
  BOOST_CHECK_EQUAL(p.on_b.resolved.size(), 1u);
  // ...and the two resolutions of the same conflict collapse identically.
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto key = p.on_a.conflicts.front().key;
  BOOST_CHECK(p.a.mem.get(key) == p.b.mem.get(key));
  BOOST_CHECK_EQUAL(p.a.mem.read(key).size(), 1u);
}

BOOST_AUTO_TEST_CASE(take_remote_on_both_sides_still_converges) {
  replica_config cfg;
  cfg.resolution.value_conflict = take_remote{};
  concurrent_pair p{make_fact("k", "from-a"), make_fact("k", "from-b"), cfg};
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto key = p.on_a.conflicts.front().key;
  BOOST_CHECK(p.a.mem.get(key) == p.b.mem.get(key));
}

BOOST_AUTO_TEST_CASE(escalation_with_ask_user_stays_pending_until_answered) {
  int resolved_calls = 0;
  replica_config cfg;
  conflict_handler handler;
  handler.on_conflict = [](const conflict& c) -> resolution {
    if (c.is_critical())
      return ask_user{"Conflict detected: " + c.to_string()
                          + ". Which version?",
                      {"Local", "Remote", "Both"}};
    return merge{};
  };
  handler.on_resolved = [&](const conflict&, const resolution&) {
    ++resolved_calls;
  };
  cfg.resolution.value_conflict = escalate{handler};
  node a{1, cfg};
  node b{2, cfg};
  auto da = must(a.mem.put(
      make_fact("policy", "deny", memory_scope::agent("alpha"), 0.95)));
  auto db = must(b.mem.put(
      make_fact("policy", "allow", memory_scope::agent("alpha"), 0.95)));
  auto on_a = must_join(a.mem, db);
  auto on_b = must_join(b.mem, da);
  BOOST_REQUIRE_EQUAL(on_a.pending.size(), 1u);
  BOOST_REQUIRE_EQUAL(on_b.pending.size(), 1u);
  BOOST_CHECK(on_a.resolutions.empty());
  auto key = on_a.conflicts.front().key;
  BOOST_CHECK(a.mem.read(key).front().contested);
  auto question = a.mem.pending_questions().front();
  BOOST_CHECK(question.question.question.find("Which version?")
              != std::string::npos);
  // An option that was not offered is refused.
  auto wrong = a.mem.answer(question.subject.id, std::string{"Maybe"});
  BOOST_REQUIRE(!wrong);
  BOOST_CHECK(wrong.error_value().code == errc::unknown_option);
  // The user on a answers "Remote"; b receives the resolution.
  auto answer = must(a.mem.answer(question.subject.id, std::string{"Remote"}));
  BOOST_CHECK_EQUAL(resolved_calls, 1);
  BOOST_CHECK(a.mem.pending_questions().empty());
  must_join(b.mem, answer);
  BOOST_CHECK(b.mem.pending_questions().empty()); // resolved elsewhere
  BOOST_CHECK(a.mem.same_state(b.mem));
  BOOST_CHECK_EQUAL(std::get<fact>(b.mem.get(key)->body).value, "allow");
  BOOST_CHECK(!b.mem.read(key).front().contested);
  auto stale = b.mem.answer(question.subject.id, std::string{"Local"});
  BOOST_CHECK(!stale);
}

BOOST_AUTO_TEST_CASE(a_custom_resolver_can_supply_its_own_value) {
  replica_config cfg;
  cfg.resolution.value_conflict = custom{[](const conflict& c) -> resolution {
    auto v = c.newest_local().value;
    auto& f = std::get<fact>(v.body);
    std::vector<std::string> values;
    for (auto& x : c.versions())
      values.push_back(std::get<fact>(x.value.body).value);
    std::sort(values.begin(), values.end());
    f.value = values.front() + "+" + values.back();
    return use_value{v};
  }};
  concurrent_pair p{make_fact("k", "x"), make_fact("k", "y"), cfg};
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto key = p.on_a.conflicts.front().key;
  BOOST_CHECK_EQUAL(std::get<fact>(p.a.mem.get(key)->body).value, "x+y");
}

BOOST_AUTO_TEST_CASE(lww_strategy_collapses_without_reporting_a_conflict) {
  replica_config cfg;
  cfg.strategy[static_cast<size_t>(memory_type::semantic)] = crdt_strategy::lww;
  concurrent_pair p{make_fact("k", "old"), make_fact("k", "new"), cfg};
  BOOST_CHECK(p.on_a.conflicts.empty());
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto id = derive_id(memory_scope::agent("alpha"), fact{"k", ""});
  BOOST_CHECK_EQUAL(std::get<fact>(p.a.mem.get(id)->body).value, "new");
  BOOST_CHECK_EQUAL(p.a.mem.versions(id)->size(), 1u);
}

BOOST_AUTO_TEST_CASE(a_custom_merge_function_is_used_per_memory_type) {
  replica_config cfg;
  cfg.strategy[static_cast<size_t>(memory_type::semantic)]
      = crdt_strategy::custom;
  cfg.merge[static_cast<size_t>(memory_type::semantic)]
      = [](const engram_record& l, const engram_record& r) {
          auto result = l;
          auto lv = std::get<fact>(l.body).value;
          auto rv = std::get<fact>(r.body).value;
          std::get<fact>(result.body).value
              = std::min(lv, rv) + "|" + std::max(lv, rv);
          return result;
        };
  concurrent_pair p{make_fact("tags", "red"), make_fact("tags", "blue"), cfg};
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto id = p.on_a.conflicts.front().key;
  BOOST_CHECK_EQUAL(std::get<fact>(p.a.mem.get(id)->body).value, "blue|red");
}

BOOST_AUTO_TEST_CASE(
    aw_set_strategy_unites_concurrent_events_without_conflict) {
  replica_config cfg;
  cfg.strategy[static_cast<size_t>(memory_type::episodic)]
      = crdt_strategy::aw_set;
  concurrent_pair p{make_episode("e", {{{1, 0}, "a"}}),
                    make_episode("e", {{{2, 0}, "b"}}), cfg};
  BOOST_CHECK(p.on_a.conflicts.empty());
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  auto id = derive_id(memory_scope::agent("alpha"), episode{"e", {}});
  auto views = p.a.mem.read(id);
  BOOST_REQUIRE_EQUAL(views.size(), 1u);
  BOOST_CHECK_EQUAL(std::get<episode>(views.front().value.body).events.size(),
                    2u);
}

BOOST_AUTO_TEST_CASE(identical_concurrent_writes_are_not_a_conflict) {
  concurrent_pair p{make_fact("k", "same"), make_fact("k", "same")};
  BOOST_CHECK(p.on_a.conflicts.empty());
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
}

BOOST_AUTO_TEST_SUITE_END()
