// Federations on nodes of one process: a leader, a member and an observer
// on three nodes; Collective memory syncs to every member; roles are
// enforced at every entry point (a refused operation changes nothing);
// join and leave; a member that left stops receiving.

#include "federation/membership.hpp"

#include "e2e/e2e.hpp"
#include "fixture.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;
using federation::agent_role;

namespace {

struct federation_fixture : runtime_fixture {
  std::vector<std::unique_ptr<actors::node>> nodes;

  federation_fixture() {
    for (auto id : {"n1", "n2", "n3"})
      nodes.push_back(start(id));
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = i + 1; j < 3; ++j)
        actors::connect(*nodes[i], *nodes[j]);
  }

  size_t visible(actors::memory& m, const std::string& fed) {
    auto views = m.query_federation(fed);
    return views ? views->size() : 0;
  }
};

bool denied(const expected<engram_id>& r) {
  return !r && r.error_value().code == errc::permission_denied;
}

} // namespace

BOOST_AUTO_TEST_SUITE(federations)

BOOST_FIXTURE_TEST_CASE(collective_memory_syncs_and_roles_are_enforced,
                        federation_fixture) {
  auto lead = ok(nodes[0]->open("lead", "main"));
  auto ana = ok(nodes[1]->open("ana", "main"));
  auto otto = ok(nodes[2]->open("otto", "main"));
  federation::federation_config cfg;
  cfg.name = "Project Alpha";
  cfg.initial_members = {"ana"};
  cfg.trust = federation::uniform_trust{0.8};
  auto created = ok(lead.create_federation(cfg));
  auto fed = created.id();
  BOOST_CHECK_EQUAL(created.leader(), "lead");
  // ana is an initial member: joining on her node starts the sync there;
  // otto joins as an observer once invited (his node learns the federation
  // from n1).
  BOOST_REQUIRE(eventually([&] {
    return ana.join_federation(fed).has_value();
  }));
  // otto is not invited: refused; the leader invites him as an observer.
  auto uninvited = otto.join_federation(fed, agent_role::observer);
  BOOST_REQUIRE(!uninvited);
  BOOST_CHECK(uninvited.error_value().code == errc::permission_denied);
  BOOST_CHECK(!ana.invite_to_federation(fed, "otto")); // a member may not
  ok(lead.invite_to_federation(fed, "otto", agent_role::observer));
  BOOST_CHECK(!otto.join_federation(fed, agent_role::member)); // not granted
  auto joined = ok(otto.join_federation(fed, agent_role::observer));
  BOOST_CHECK(joined.find("otto")->role == agent_role::observer);
  // Leader and member write; everyone sees both.
  ok(lead.learn_collective(fed, fact_of("deadline", "friday")));
  ok(ana.learn_collective(fed, fact_of("owner", "ana")));
  for (auto* m : {&lead, &ana, &otto})
    BOOST_CHECK(eventually([&] {
      return visible(*m, fed) == 2;
    }));
  auto views = ok(otto.query_federation(fed));
  for (auto& v : views)
    BOOST_CHECK(v.value.scope.kind() == scope_kind::collective);
  // The observer cannot write: refused with a clear error, nothing stored
  // anywhere.
  auto refused = otto.learn_collective(fed, fact_of("sneaky", "x"));
  BOOST_REQUIRE(denied(refused));
  BOOST_CHECK(refused.error_value().message.find("observer")
              != std::string::npos);
  std::this_thread::sleep_for(200ms);
  for (auto* m : {&lead, &ana, &otto})
    BOOST_CHECK_EQUAL(visible(*m, fed), 2u);
  // A member cannot change the rules; the leader can.
  auto rule = ana.set_trust(fed, federation::uniform_trust{0.1});
  BOOST_REQUIRE(!rule);
  BOOST_CHECK(rule.error_value().code == errc::permission_denied);
  ok(lead.set_role(fed, "otto", agent_role::member));
  BOOST_REQUIRE(eventually([&] {
    auto st = otto.federation_state(fed);
    return st && st->find("otto")->role == agent_role::member;
  }));
  BOOST_REQUIRE(eventually([&] {
    return otto.learn_collective(fed, fact_of("promoted", "yes")).has_value();
  }));
  BOOST_CHECK(eventually([&] {
    return visible(lead, fed) == 3;
  }));
}

BOOST_FIXTURE_TEST_CASE(a_member_that_leaves_stops_receiving,
                        federation_fixture) {
  auto lead = ok(nodes[0]->open("lead", "main"));
  auto ana = ok(nodes[1]->open("ana", "main"));
  federation::federation_config cfg;
  cfg.name = "Beta";
  cfg.initial_members = {"ana"};
  auto fed = ok(lead.create_federation(cfg)).id();
  BOOST_REQUIRE(eventually([&] {
    return ana.join_federation(fed).has_value();
  }));
  ok(lead.learn_collective(fed, fact_of("one", "1")));
  BOOST_REQUIRE(eventually([&] {
    return visible(ana, fed) == 1;
  }));
  auto left = ok(ana.leave_federation(fed));
  BOOST_CHECK(left.find("ana") == nullptr);
  // n2 no longer holds the federation: ana cannot read it, and what the
  // leader learns next does not reach n2.
  BOOST_REQUIRE(eventually([&] {
    auto where = nodes[0]->locate(fed);
    return where && *where == std::vector<std::string>{"n1"};
  }));
  ok(lead.learn_collective(fed, fact_of("two", "2")));
  auto after = ana.query_federation(fed);
  BOOST_REQUIRE(!after);
  BOOST_CHECK(after.error_value().code == errc::unknown_agent);
  // A non-member cannot write either.
  auto eve = ok(nodes[2]->open("eve", "main"));
  BOOST_CHECK(!eve.learn_collective(fed, fact_of("x", "y")));
  BOOST_CHECK_EQUAL(visible(lead, fed), 2u);
}

BOOST_FIXTURE_TEST_CASE(trust_models_scale_what_other_members_report,
                        federation_fixture) {
  auto lead = ok(nodes[0]->open("lead", "main"));
  auto ana = ok(nodes[1]->open("ana", "main"));
  federation::federation_config cfg;
  cfg.name = "Gamma";
  cfg.initial_members = {"ana"};
  cfg.trust = federation::per_agent_trust{{{"ana", 0.5}, {"lead", 1.0}}, 0.0};
  auto fed = ok(lead.create_federation(cfg)).id();
  BOOST_REQUIRE(eventually([&] {
    return ana.join_federation(fed).has_value();
  }));
  auto claim = fact_of("eta", "tuesday");
  claim.confidence = 0.9;
  ok(ana.learn_collective(fed, claim));
  auto read_by = [&](actors::memory& m) {
    std::optional<memory_view> found;
    eventually([&] {
      auto views = m.query_federation(fed);
      if (views && views->size() == 1)
        found = views->front();
      return found.has_value();
    });
    BOOST_REQUIRE(found);
    return *found;
  };
  // The leader reads ana's claim as reported, at half confidence, with the
  // hop in its provenance; ana reads her own as she wrote it.
  auto at_lead = read_by(lead).value;
  BOOST_CHECK(at_lead.epistemic == epistemic_status::reported("ana", 0.5));
  BOOST_CHECK_CLOSE(at_lead.confidence, 0.45, 1e-9);
  BOOST_CHECK_EQUAL(at_lead.origin.origin_agent, "ana");
  BOOST_REQUIRE_EQUAL(at_lead.origin.hops.size(), 1u);
  BOOST_CHECK_CLOSE(at_lead.origin.hops[0].trust, 0.5, 1e-9);
  auto at_ana = read_by(ana).value;
  BOOST_CHECK(at_ana.epistemic.kind == epistemic_kind::observed);
  BOOST_CHECK_CLOSE(at_ana.confidence, 0.9, 1e-9);
  // Reputation: verifications raise the trust in ana, contradictions lower
  // it.
  federation::reputation_trust rep;
  rep.initial = 0.5;
  rep.boost_on_verification = 0.2;
  rep.penalty_on_contradiction = 0.4;
  rep.decay = 0.0;
  ok(lead.set_trust(fed, rep));
  ok(lead.verify_member(fed, "ana"));
  BOOST_CHECK_CLOSE(read_by(lead).value.confidence, 0.9 * 0.7, 1e-6);
  ok(lead.contradict_member(fed, "ana"));
  BOOST_CHECK_CLOSE(read_by(lead).value.confidence, 0.9 * 0.3, 1e-6);
}

BOOST_FIXTURE_TEST_CASE(losing_the_leaders_node_hands_leadership_on,
                        federation_fixture) {
  auto lead = ok(nodes[0]->open("lead", "main"));
  auto ana = ok(nodes[1]->open("ana", "main"));
  auto ben = ok(nodes[2]->open("ben", "main"));
  federation::federation_config cfg;
  cfg.name = "Delta";
  cfg.initial_members = {"ana", "ben"};
  auto fed = ok(lead.create_federation(cfg)).id();
  for (auto* m : {&ana, &ben})
    BOOST_REQUIRE(eventually([&] {
      return m->join_federation(fed).has_value();
    }));
  BOOST_REQUIRE(eventually([&] {
    auto where = nodes[2]->locate("ana");
    return where && !where->empty();
  }));
  nodes[0]->stop(); // the leader's node is lost
  // ana and ben joined together: the succession rule picks "ana" (the
  // smaller id) on every node, and ana's node writes it.
  BOOST_REQUIRE(eventually([&] {
    auto st = ben.federation_state(fed);
    return st && st->leader() == "ana";
  }));
  ok(ana.set_role(fed, "ben", agent_role::observer));
  BOOST_CHECK(eventually([&] {
    auto st = ben.federation_state(fed);
    return st && st->find("ben")->role == agent_role::observer;
  }));
  BOOST_CHECK(!ben.learn_collective(fed, fact_of("x", "y")));
}

BOOST_AUTO_TEST_SUITE_END()

// A federation sealed end to end: its leader makes its key, sealed to each
// member's published key; nodes take only facts sealed with the current
// key, and none while the key is sealed to other members than the current
// ones. A member removed cannot read what is written after: the next key
// was never sealed to it, and its old keys do not open the new values.
BOOST_AUTO_TEST_SUITE(e2e_federations)

BOOST_FIXTURE_TEST_CASE(a_removed_member_cannot_read_what_is_written_after,
                        federation_fixture) {
  auto lead = ok(nodes[0]->open("lead", "main"));
  auto ana = ok(nodes[1]->open("ana", "main"));
  auto carol = ok(nodes[2]->open("carol", "main"));
  // No TLS in these tests: the keys are published unvouched.
  e2e::trust t{nullptr, nullptr, true};
  auto lead_keys = e2e::key_pair::generate();
  auto ana_keys = e2e::key_pair::generate();
  auto carol_keys = e2e::key_pair::generate();
  ok(lead.publish_key(lead_keys.public_key()));
  ok(ana.publish_key(ana_keys.public_key()));
  ok(carol.publish_key(carol_keys.public_key()));
  federation::federation_config cfg;
  cfg.name = "Sealed Circle";
  cfg.initial_members = {"ana", "carol"};
  cfg.e2e = true;
  auto fed = ok(lead.create_federation(cfg)).id();
  for (auto* m : {&ana, &carol})
    BOOST_REQUIRE(eventually([&] {
      return m->join_federation(fed).has_value();
    }));
  // No key made yet: nothing is written, sealed or not.
  auto early = ana.learn_collective(fed, fact_of("plan", "in the clear"));
  BOOST_REQUIRE(!early);
  BOOST_CHECK(early.error_value().message.find("has not made its key yet")
              != std::string::npos);
  // Only the leader makes keys.
  BOOST_REQUIRE(eventually([&] {
    return lead.agent_key("ana").has_value()
           && lead.agent_key("carol").has_value();
  }));
  BOOST_CHECK(!ana.rotate_federation_key(fed, ana_keys, t));
  BOOST_CHECK_EQUAL(ok(lead.rotate_federation_key(fed, lead_keys, t)), 1u);
  // ana writes sealed; carol reads it; no node holds it in the clear.
  BOOST_REQUIRE(eventually([&] {
    return ana
        .learn_collective_sealed(fed, "plan", "launch at dawn", ana_keys, t)
        .has_value();
  }));
  auto read_by = [&](actors::memory& m, const e2e::key_pair& k,
                     const std::string& key) -> std::string {
    auto facts = m.query_federation_opened(fed, k, t);
    if (!facts)
      return "";
    for (auto& f : *facts)
      if (f.key == key && f.value)
        return *f.value;
    return "";
  };
  BOOST_CHECK(eventually([&] {
    return read_by(carol, carol_keys, "plan") == "launch at dawn";
  }));
  for (auto* m : {&lead, &ana, &carol}) {
    auto raw = ok(m->query_federation(fed));
    for (auto& v : raw)
      BOOST_CHECK(std::get<fact>(v.value.body).value.find("dawn")
                  == std::string::npos);
  }
  auto plain = ana.learn_collective(fed, fact_of("note", "in the clear"));
  BOOST_REQUIRE(!plain);
  BOOST_CHECK(plain.error_value().message.find("not sealed with its key")
              != std::string::npos);
  auto epoch1 = ok(lead.federation_state(fed));
  // carol is removed: nothing is written until the leader makes a key
  // sealed to the members left.
  ok(lead.remove_member(fed, "carol"));
  BOOST_REQUIRE(eventually([&] {
    auto st = ana.federation_state(fed);
    return st && st->find("carol") == nullptr;
  }));
  auto stale = ana.learn_collective_sealed(fed, "after", "x", ana_keys, t);
  BOOST_REQUIRE(!stale);
  BOOST_CHECK(stale.error_value().message.find("no longer a member")
              != std::string::npos);
  BOOST_CHECK_EQUAL(ok(lead.rotate_federation_key(fed, lead_keys, t)), 2u);
  BOOST_REQUIRE(eventually([&] {
    return ana
        .learn_collective_sealed(fed, "after", "moved to noon", ana_keys, t)
        .has_value();
  }));
  // ana reads the new value and, through the chain of keys, the old one.
  BOOST_CHECK(eventually([&] {
    return read_by(ana, ana_keys, "after") == "moved to noon"
           && read_by(ana, ana_keys, "plan") == "launch at dawn";
  }));
  // carol: no member (refused), no key of epoch 2; her key of epoch 1
  // does not open the new value.
  BOOST_CHECK(!carol.query_federation(fed));
  auto epoch2 = ok(lead.federation_state(fed));
  BOOST_CHECK_EQUAL(epoch2.keys().epoch, 2u);
  BOOST_CHECK(epoch2.keys().sealed.count("carol") == 0);
  auto now_s = static_cast<int64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  auto old = ok(e2e::open(epoch1.keys().sealed.at("carol"), "lead", "carol",
                          carol_keys, t, now_s, "fedkey"));
  auto carols_key = old.text.substr(old.text.size() - 32);
  // What the leader's node holds of it: the sealed value.
  auto raw = [&](const std::string& key) {
    std::string out;
    if (auto views = lead.query_federation(fed))
      for (auto& v : *views)
        if (std::get<fact>(v.value.body).key == key)
          out = std::get<fact>(v.value.body).value;
    return out;
  };
  std::string raw_after;
  BOOST_REQUIRE(eventually([&] {
    raw_after = raw("after");
    return !raw_after.empty();
  }));
  BOOST_CHECK_EQUAL(ok(e2e::value_epoch(raw_after)), 2u);
  auto opened = e2e::open_value(carols_key, raw_after, "after");
  BOOST_REQUIRE(!opened);
  BOOST_CHECK(opened.error_value().code == errc::unauthenticated);
  // Her epoch-1 key still opens what was written while she was a member.
  BOOST_CHECK_EQUAL(ok(e2e::open_value(carols_key, raw("plan"), "plan")),
                    "launch at dawn");
}

BOOST_AUTO_TEST_SUITE_END()
