// The memory API against the real scheduler: scopes, queries, forgetting,
// sharing between instances, sync between nodes, supervision.

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <atomic>

#include "fixture.hpp"
#include "test_util.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

engram_record episode_of(const std::string& id) {
  engram_record e;
  e.type = memory_type::episodic;
  e.body = episode{id, {event{hlc_timestamp{1, 0}, "started " + id}}};
  return e;
}

// "k1=v1,k2=v2": the facts of a query result, sorted.
std::string values(const std::vector<memory_view>& views) {
  std::vector<std::string> out;
  for (auto& v : views)
    if (auto f = std::get_if<fact>(&v.value.body))
      out.push_back(f->key + "=" + f->value);
  std::sort(out.begin(), out.end());
  std::string joined;
  for (auto& x : out)
    joined += (joined.empty() ? "" : ",") + x;
  return joined;
}

size_t count_facts(actors::memory& mem, const std::string& key) {
  auto views = mem.query();
  if (!views)
    return 0;
  size_t n = 0;
  for (auto& v : *views)
    if (auto f = std::get_if<fact>(&v.value.body); f && f->key == key)
      ++n;
  return n;
}

} // namespace

BOOST_AUTO_TEST_SUITE(memory_api)

BOOST_FIXTURE_TEST_CASE(learn_uses_the_default_scope_per_memory_type,
                        runtime_fixture) {
  auto n = start("n1");
  auto mem = ok(n->open("planner", "chat-1"));
  ok(mem.learn(fact_of("user.name", "Ada")));  // semantic → Agent
  ok(mem.learn(episode_of("conversation-1"))); // episodic → Instance
  auto all = ok(mem.query());
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  actors::memory& m = mem;
  query_filter agent_only;
  agent_only.kind = scope_kind::agent;
  auto shared = ok(m.query(agent_only));
  BOOST_REQUIRE_EQUAL(shared.size(), 1u);
  BOOST_CHECK(shared.front().value.scope == memory_scope::agent("planner"));
  query_filter episodic;
  episodic.type = memory_type::episodic;
  auto own = ok(m.query(episodic));
  BOOST_REQUIRE_EQUAL(own.size(), 1u);
  BOOST_CHECK(own.front().value.scope == memory_scope::instance("chat-1"));
}

BOOST_FIXTURE_TEST_CASE(instances_share_agent_memory_but_not_their_own,
                        runtime_fixture) {
  auto n = start("n1");
  auto a = ok(n->open("planner", "chat-1"));
  auto b = ok(n->open("planner", "chat-2"));
  ok(a.learn(fact_of("shared", "yes")));
  ok(a.learn_scoped(fact_of("private", "a"), memory_scope::instance({})));
  BOOST_CHECK_EQUAL(values(ok(b.query())), "shared=yes");
  BOOST_CHECK_EQUAL(values(ok(a.query())), ("private=a,shared=yes"));
  // An instance cannot write another instance's memory.
  auto other
      = a.learn_scoped(fact_of("x", "y"), memory_scope::instance("chat-2"));
  BOOST_REQUIRE(!other);
  BOOST_CHECK(other.error_value().code == errc::invalid_scope);
  // A Collective scope is a federation's; Universal is a consensus
  // group's, and this node holds none: both refused with a clear error, not
  // silently ignored.
  auto collective = a.learn_scoped(
      fact_of("x", "y"), memory_scope::collective("team", {"planner"}));
  BOOST_REQUIRE(!collective);
  BOOST_CHECK(collective.error_value().message.find("names no federation")
              != std::string::npos);
  auto universal = a.learn_scoped(fact_of("x", "y"), memory_scope::universal());
  BOOST_REQUIRE(!universal);
  BOOST_CHECK(universal.error_value().message.find("holds no Universal scope")
              != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(forget_and_archive_hide_memories, runtime_fixture) {
  auto n = start("n1");
  auto mem = ok(n->open("planner", "chat-1"));
  auto gone = ok(mem.learn(fact_of("gone", "1")));
  auto old = ok(mem.learn(fact_of("old", "2")));
  ok(mem.learn(fact_of("kept", "3")));
  ok(mem.forget(gone, "user asked"));
  ok(mem.archive(old));
  BOOST_CHECK_EQUAL(values(ok(mem.query())), "kept=3");
  query_filter archived;
  archived.include_archived = true;
  BOOST_CHECK_EQUAL(values(ok(mem.query(archived))), ("kept=3,old=2"));
  auto unknown = mem.forget(engram_id{1, 2}, "nope");
  BOOST_REQUIRE(!unknown);
  BOOST_CHECK(unknown.error_value().code == errc::unknown_engram);
}

BOOST_FIXTURE_TEST_CASE(an_unknown_instance_or_bad_id_is_a_clear_error,
                        runtime_fixture) {
  auto n = start("n1");
  auto bad = n->open("", "chat");
  BOOST_REQUIRE(!bad);
  BOOST_CHECK(bad.error_value().message.find("agent id") != std::string::npos);
  actors::memory stray{sys, n->dir(), "nobody", "nothing", 1000ms};
  auto res = stray.learn(fact_of("k", "v"));
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == errc::unknown_agent);
}

BOOST_FIXTURE_TEST_CASE(an_agent_written_as_an_actor_uses_the_async_api,
                        runtime_fixture) {
  auto n = start("n1");
  auto mem = std::make_shared<actors::memory>(ok(n->open("scout", "i1")));
  // The agent program: learns what it is told, answers with what it knows.
  auto scout = sys.spawn([mem](caf::event_based_actor* self) -> caf::behavior {
    return {
        [=](const std::string& key, const std::string& value) {
          auto rp = self->make_response_promise();
          mem->learn_async(
              self, fact_of(key, value), [=](expected<engram_id> id) mutable {
                if (!id) {
                  rp.deliver(actors::to_caf(id.error_value()));
                  return;
                }
                mem->query_async(
                    self, query_filter{},
                    [=](expected<std::vector<memory_view>> all) mutable {
                      rp.deliver(all ? all->size() : size_t{0});
                    });
              });
          return rp;
        },
    };
  });
  caf::scoped_actor self{sys};
  size_t known = 0;
  self->request(scout, 5s, std::string{"k1"}, std::string{"v1"})
      .receive(
          [&](size_t n) {
            known = n;
          },
          [&](caf::error& e) {
            BOOST_FAIL(to_string(e));
          });
  BOOST_CHECK_EQUAL(known, 1u);
  self->send_exit(scout, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(sync_between_nodes)

BOOST_FIXTURE_TEST_CASE(changes_are_pushed_and_sync_reports_clean,
                        runtime_fixture) {
  auto n1 = start("n1");
  auto n2 = start("n2");
  auto a = ok(n1->open("planner", "chat-1"));
  auto b = ok(n2->open("planner", "chat-2"));
  actors::connect(*n1, *n2);
  ok(a.learn(fact_of("plan", "ship friday")));
  ok(a.learn(episode_of("only-here"))); // Instance scope: never leaves
  BOOST_CHECK(eventually([&] {
    return count_facts(b, "plan") == 1;
  }));
  auto res = ok(b.sync());
  BOOST_CHECK(res.clean());
  BOOST_CHECK_EQUAL(res.peers, 1u);
  query_filter episodic;
  episodic.type = memory_type::episodic;
  BOOST_CHECK(ok(b.query(episodic)).empty());
  // Both nodes stay in sync both ways.
  ok(b.learn(fact_of("reply", "ok")));
  BOOST_CHECK(eventually([&] {
    return count_facts(a, "reply") == 1;
  }));
}

BOOST_FIXTURE_TEST_CASE(concurrent_writes_merge_with_conflicts_reported,
                        runtime_fixture) {
  auto n1 = start("n1");
  auto n2 = start("n2");
  auto a = ok(n1->open("planner", "chat-1"));
  auto b = ok(n2->open("planner", "chat-2"));
  // Written before the nodes know each other: concurrent.
  ok(a.learn(fact_of("deadline", "friday")));
  ok(b.learn(fact_of("deadline", "monday")));
  actors::connect(*n1, *n2);
  BOOST_CHECK(eventually([&] {
    auto x = a.query();
    auto y = b.query();
    return x && y && values(*x) == values(*y) && x->size() == 1;
  }));
  // TakeNewest (the spec's default for value conflicts) kept one value on
  // both sides.
  BOOST_CHECK_EQUAL(ok(a.query()).size(), 1u);
}

BOOST_FIXTURE_TEST_CASE(an_escalated_conflict_reaches_the_agents_handler,
                        runtime_fixture) {
  // The agent's config: value conflicts go to a handler, which keeps the
  // remote value and counts its calls (it runs in the agent actor).
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto configure = [&](actors::node_config c) {
    c.agent_defaults = [calls](const std::string&) {
      actors::agent_config a;
      conflict_handler h;
      h.on_conflict = [calls](const conflict&) -> resolution {
        ++*calls;
        return take_newest{};
      };
      a.replication.resolution.value_conflict = escalate{h};
      return a;
    };
    return c;
  };
  auto n1 = start(configure(node_cfg("n1")));
  auto n2 = start(configure(node_cfg("n2")));
  auto a = ok(n1->open("planner", "chat-1"));
  auto b = ok(n2->open("planner", "chat-2"));
  ok(a.learn(fact_of("owner", "ada")));
  ok(b.learn(fact_of("owner", "grace")));
  actors::connect(*n1, *n2);
  BOOST_CHECK(eventually([&] {
    auto x = a.query();
    auto y = b.query();
    return x && y && x->size() == 1 && values(*x) == values(*y);
  }));
  BOOST_CHECK_GE(calls->load(), 1);
}

BOOST_FIXTURE_TEST_CASE(a_node_that_was_down_catches_up, runtime_fixture) {
  auto cfg2 = node_cfg("n2");
  auto n1 = start("n1");
  auto a = ok(n1->open("planner", "chat-1"));
  {
    auto n2 = start(cfg2);
    auto b = ok(n2->open("planner", "chat-2"));
    actors::connect(*n1, *n2);
    ok(a.learn(fact_of("before", "1")));
    BOOST_CHECK(eventually([&] { // in n2's own replica (a Local read)
      auto views = b.query({}, consistency_level::local);
      return views && views->size() == 1;
    }));
  }
  // n2 is gone; n1 keeps learning.
  for (int i = 0; i < 20; ++i)
    ok(a.learn(fact_of("while-down-" + std::to_string(i), "x")));
  auto n2 = start(cfg2);
  auto b = ok(n2->open("planner", "chat-2"));
  BOOST_CHECK_EQUAL(count_facts(b, "before"), 1u); // from its own store
  actors::connect(*n1, *n2);
  BOOST_CHECK(eventually([&] {
    auto all = b.query();
    return all && all->size() == 21;
  }));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(supervision)

BOOST_FIXTURE_TEST_CASE(failed_actors_are_respawned_from_the_store,
                        runtime_fixture) {
  auto n = start("n1");
  auto mem = ok(n->open("planner", "chat-1"));
  ok(mem.learn(fact_of("shared", "1")));
  ok(mem.learn_scoped(fact_of("mine", "2"), memory_scope::instance({})));
  // Inject a fault into the instance actor, then into the agent actor.
  auto inst = ok(mem.actor());
  caf::anon_send(inst, actors::fail_atom::value);
  BOOST_CHECK(eventually([&] {
    auto now = mem.actor();
    return now && *now != inst;
  }));
  BOOST_CHECK_EQUAL(values(ok(mem.query())), ("mine=2,shared=1"));
  auto agent = ok(n->agent("planner"));
  caf::anon_send(agent, actors::fail_atom::value);
  BOOST_CHECK(eventually([&] {
    auto now = n->agent("planner");
    return now && *now != agent;
  }));
  // The same handle keeps working; nothing acknowledged was lost.
  ok(mem.learn(fact_of("after", "3")));
  BOOST_CHECK_EQUAL(values(ok(mem.query())), ("after=3,mine=2,shared=1"));
  BOOST_CHECK_EQUAL(ok(n->status()).respawns, 2u);
}

BOOST_FIXTURE_TEST_CASE(a_respawned_agent_keeps_syncing, runtime_fixture) {
  auto n1 = start("n1");
  auto n2 = start("n2");
  auto a = ok(n1->open("planner", "chat-1"));
  auto b = ok(n2->open("planner", "chat-2"));
  actors::connect(*n1, *n2);
  ok(a.learn(fact_of("one", "1")));
  BOOST_CHECK(eventually([&] {
    return count_facts(b, "one") == 1;
  }));
  auto agent = ok(n1->agent("planner"));
  caf::anon_send(agent, actors::fail_atom::value);
  BOOST_CHECK(eventually([&] {
    auto now = n1->agent("planner");
    return now && *now != agent;
  }));
  ok(a.learn(fact_of("two", "2")));
  BOOST_CHECK(eventually([&] {
    return count_facts(b, "two") == 1;
  }));
}

BOOST_AUTO_TEST_SUITE_END()
