#include "federation/codec.hpp"
#include "federation/membership.hpp"

#include <boost/test/unit_test.hpp>

#include <set>

using namespace engram;
using namespace engram::federation;

namespace {

federation_state alpha() {
  federation_config cfg;
  cfg.name = "Project Alpha Agents";
  cfg.initial_members = {"lead", "ana", "ben"};
  cfg.trust = uniform_trust{0.8};
  auto f = federation_state::create(cfg, 100);
  BOOST_REQUIRE(f);
  return *f;
}

bool refused(const expected<void>& r, const std::string& words) {
  return !r && r.error_value().code == errc::permission_denied
         && r.error_value().message.find(words) != std::string::npos;
}

// Refused for any reason, saying `words`.
bool said(const expected<void>& r, const std::string& words) {
  return !r && r.error_value().message.find(words) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_SUITE(federation_membership)

BOOST_AUTO_TEST_CASE(create_makes_the_first_member_leader) {
  auto f = alpha();
  BOOST_CHECK_EQUAL(f.leader(), "lead");
  BOOST_CHECK(f.find("ana")->role == agent_role::member);
  BOOST_CHECK(f.shared_scope().kind() == scope_kind::collective);
  BOOST_CHECK_EQUAL(f.shared_scope().id(), f.id());
  BOOST_CHECK_EQUAL(f.shared_scope().members().size(), 3u);
  BOOST_CHECK_CLOSE(f.find("ben")->trust_level, 0.8, 1e-9);
  // The id is the same wherever the federation is created.
  BOOST_CHECK_EQUAL(alpha().id(), f.id());
  federation_config bad;
  bad.name = "x";
  BOOST_CHECK(!federation_state::create(bad, 0)); // no members
  bad.initial_members = {"a", "a"};
  BOOST_CHECK(!federation_state::create(bad, 0));
}

BOOST_AUTO_TEST_CASE(roles_are_enforced_with_clear_errors) {
  auto f = alpha();
  BOOST_REQUIRE(f.invite("lead", "otto", agent_role::observer, 0, 150));
  BOOST_REQUIRE(f.join("otto", agent_role::observer, 200));
  BOOST_CHECK(f.check("otto", operation::read));
  BOOST_CHECK(refused(f.check("otto", operation::write),
                      "otto is observer of federation Project Alpha Agents: "
                      "it may read only, not write it"));
  BOOST_CHECK(f.check("ana", operation::write));
  BOOST_CHECK(refused(f.check("ana", operation::change_rules), "member"));
  BOOST_CHECK(f.check("lead", operation::change_rules));
  BOOST_CHECK(refused(f.check("eve", operation::read), "not a member"));
  // A refused change changes nothing.
  auto v = f.version();
  BOOST_CHECK(!f.set_trust("ana", uniform_trust{0.1}));
  BOOST_CHECK(!f.remove("ana", "ben"));
  BOOST_CHECK(!f.set_role("otto", "otto", agent_role::leader));
  BOOST_CHECK_EQUAL(f.version(), v);
  BOOST_CHECK(f.find("ben") != nullptr);
  // The leader may.
  BOOST_CHECK(f.set_trust("lead", per_agent_trust{{{"ana", 0.9}}, 0.2}));
  BOOST_CHECK(f.remove("lead", "ben"));
  BOOST_CHECK(f.find("ben") == nullptr);
  BOOST_CHECK_GT(f.version(), v);
}

BOOST_AUTO_TEST_CASE(departed_members_are_remembered_until_they_rejoin) {
  auto f = alpha();
  BOOST_CHECK(f.departed().empty());
  BOOST_REQUIRE(f.leave("ana"));
  BOOST_REQUIRE(f.remove("lead", "ben"));
  BOOST_CHECK((f.departed() == std::vector<std::string>{"ana", "ben"}));
  BOOST_CHECK(f.has_departed("ana"));
  // Leaving spends membership: coming back takes a new invitation.
  BOOST_CHECK(refused(f.join("ana", agent_role::member, 300),
                      "no standing invitation"));
  BOOST_REQUIRE(f.invite("lead", "ana", agent_role::member, 0, 300));
  BOOST_REQUIRE(f.join("ana", agent_role::member, 300));
  BOOST_CHECK(!f.has_departed("ana"));
  BOOST_CHECK(f.has_departed("ben"));
  auto back = decode_state(encode(f));
  BOOST_REQUIRE(back);
  BOOST_CHECK(back->departed() == f.departed());
}

BOOST_AUTO_TEST_CASE(only_the_leader_sets_the_belief_policy) {
  auto f = alpha();
  BOOST_CHECK(f.belief_conflicts() == belief_policy::fork); // the default
  auto v = f.version();
  BOOST_CHECK(refused(f.set_belief_conflicts("ana", belief_policy::ask_user),
                      "member"));
  BOOST_CHECK(f.belief_conflicts() == belief_policy::fork);
  BOOST_CHECK_EQUAL(f.version(), v);
  BOOST_CHECK(f.set_belief_conflicts("lead", belief_policy::escalate));
  BOOST_CHECK(f.belief_conflicts() == belief_policy::escalate);
  BOOST_CHECK_GT(f.version(), v);
  for (auto name : {"fork", "escalate", "ask_user", "take_newest",
                    "take_highest_confidence"})
    BOOST_CHECK_EQUAL(to_string(*parse_belief_policy(name)), name);
  auto bad = parse_belief_policy("coin_flip");
  BOOST_REQUIRE(!bad);
  BOOST_CHECK(bad.error_value().message.find("coin_flip") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(joining_as_leader_needs_the_leader) {
  auto f = alpha();
  auto r = f.join("mallory", agent_role::leader, 200);
  BOOST_CHECK(refused(r, "only the leader grants that role"));
  BOOST_CHECK(f.find("mallory") == nullptr);
  BOOST_CHECK(!f.join("ana", agent_role::member, 200)); // already in
  BOOST_REQUIRE(f.set_role("lead", "ana", agent_role::leader));
  BOOST_CHECK_EQUAL(f.leader(), "ana");
  BOOST_CHECK(f.find("lead")->role == agent_role::member);
}

BOOST_AUTO_TEST_CASE(nobody_joins_uninvited) {
  auto f = alpha();
  auto v = f.version();
  BOOST_CHECK(refused(f.join("mallory", agent_role::member, 100),
                      "mallory may not join federation Project Alpha Agents: "
                      "it has no standing invitation"));
  BOOST_CHECK(refused(f.join("mallory", agent_role::observer, 100),
                      "no standing invitation"));
  // Only the leader invites, and not as leader.
  BOOST_CHECK(refused(f.invite("ana", "mallory", agent_role::member, 0, 100),
                      "member"));
  BOOST_CHECK(
      refused(f.invite("mallory", "mallory", agent_role::member, 0, 100),
              "not a member"));
  BOOST_CHECK(said(f.invite("lead", "otto", agent_role::leader, 0, 100),
                   "member or observer"));
  BOOST_CHECK(said(f.invite("lead", "ana", agent_role::member, 0, 100),
                   "already a member"));
  BOOST_CHECK(said(f.invite("lead", "otto", agent_role::member, 90, 100),
                   "lapse at once"));
  BOOST_CHECK_EQUAL(f.version(), v);
  BOOST_CHECK(f.invitations().empty());

  // An observer's invitation does not let it join as member; it spends
  // once; a revoked or lapsed one lets nobody in.
  BOOST_REQUIRE(f.invite("lead", "otto", agent_role::observer, 0, 100));
  BOOST_REQUIRE(f.invite("lead", "cleo", agent_role::member, 500, 100));
  BOOST_REQUIRE(f.invite("lead", "dan", agent_role::member, 0, 100));
  BOOST_CHECK_EQUAL(f.invitations().size(), 3u);
  BOOST_CHECK(refused(f.join("otto", agent_role::member, 200),
                      "invited to federation Project Alpha Agents as "
                      "observer, not as member"));
  BOOST_REQUIRE(f.join("otto", agent_role::observer, 200));
  BOOST_CHECK(f.find_invitation("otto", 200) == nullptr);
  BOOST_REQUIRE(f.leave("otto"));
  BOOST_CHECK(refused(f.join("otto", agent_role::observer, 250),
                      "no standing invitation"));
  BOOST_CHECK(refused(f.join("cleo", agent_role::member, 500),
                      "no standing invitation")); // lapsed at 500
  BOOST_REQUIRE(f.uninvite("lead", "dan"));
  BOOST_CHECK(refused(f.join("dan", agent_role::member, 300),
                      "no standing invitation"));
  BOOST_CHECK(said(f.uninvite("lead", "dan"), "no invitation"));
  BOOST_CHECK(refused(f.uninvite("ana", "cleo"), "member"));

  // A member's invitation may be taken as observer; invitations survive
  // the codec and a lapsed one is dropped when the list next changes.
  BOOST_REQUIRE(f.invite("lead", "erin", agent_role::member, 0, 600));
  auto back = decode_state(encode(f));
  BOOST_REQUIRE(back);
  BOOST_CHECK_EQUAL(back->invitations().size(), f.invitations().size());
  BOOST_CHECK(back->find_invitation("erin", 700) != nullptr);
  BOOST_CHECK(f.find_invitation("cleo", 600) == nullptr);
  BOOST_CHECK_EQUAL(f.invitations().size(), 1u); // cleo's lapsed one went
  BOOST_REQUIRE(f.join("erin", agent_role::observer, 700));
  BOOST_CHECK(f.find("erin")->role == agent_role::observer);
}

BOOST_AUTO_TEST_CASE(invitations_are_bounded) {
  auto f = alpha();
  for (size_t i = 0; i < max_invitations; ++i)
    BOOST_REQUIRE(f.invite("lead", "a" + std::to_string(i), agent_role::member,
                           1000, 100));
  BOOST_CHECK(said(f.invite("lead", "one-more", agent_role::member, 0, 100),
                   "open invitations"));
  // Re-inviting one already invited replaces it; lapsed ones make room.
  BOOST_CHECK(f.invite("lead", "a7", agent_role::observer, 0, 100));
  BOOST_CHECK(f.invite("lead", "one-more", agent_role::member, 0, 2000));
  BOOST_CHECK_EQUAL(f.invitations().size(), 2u); // a7 (no expiry), one-more
}

BOOST_AUTO_TEST_CASE(succession_is_deterministic) {
  auto f = alpha();
  BOOST_REQUIRE(f.invite("lead", "otto", agent_role::observer, 0, 40));
  BOOST_REQUIRE(f.invite("lead", "cleo", agent_role::member, 0, 40));
  BOOST_REQUIRE(f.join("otto", agent_role::observer, 50)); // earliest, but
                                                           // an observer
  BOOST_REQUIRE(f.join("cleo", agent_role::member, 300));
  auto all_but = [](std::set<std::string> down) {
    return [down](const std::string& a) {
      return down.count(a) == 0;
    };
  };
  // The leader is live: nothing changes.
  BOOST_CHECK(!f.succeed(all_but({})));
  // Lost: the Member that joined first takes over (ana and ben joined at the
  // same time: the smaller id).
  auto next = f.succeed(all_but({"lead"}));
  BOOST_REQUIRE(next);
  BOOST_CHECK_EQUAL(*next, "ana");
  BOOST_CHECK_EQUAL(f.leader(), "ana");
  // Every replica computing it gets the same answer.
  auto g = alpha();
  BOOST_REQUIRE(g.invite("lead", "otto", agent_role::observer, 0, 40));
  BOOST_REQUIRE(g.invite("lead", "cleo", agent_role::member, 0, 40));
  BOOST_REQUIRE(g.join("otto", agent_role::observer, 50));
  BOOST_REQUIRE(g.join("cleo", agent_role::member, 300));
  BOOST_CHECK_EQUAL(*g.successor(all_but({"lead"})), "ana");
  // Only observers live: an observer leads rather than nobody.
  BOOST_CHECK_EQUAL(*g.successor(all_but({"lead", "ana", "ben", "cleo"})),
                    "otto");
  BOOST_CHECK(!g.successor(all_but({"lead", "ana", "ben", "cleo", "otto"})));
  // A leaving leader hands over by the same rule.
  auto h = alpha();
  BOOST_REQUIRE(h.leave("lead"));
  BOOST_CHECK_EQUAL(h.leader(), "ana");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(federation_codec)

BOOST_AUTO_TEST_CASE(states_round_trip_byte_identically) {
  for (trust_model model :
       {trust_model{uniform_trust{0.7}},
        trust_model{per_agent_trust{{{"ana", 0.9}, {"ben", 0.4}}, 0.1}},
        trust_model{reputation_trust{0.5, 0.1, 0.2, 0.3}},
        trust_model{transitive_trust{{{"ana", 0.9}}, 0.7, 4}}}) {
    federation_config cfg;
    cfg.name = "alpha";
    cfg.initial_members = {"lead", "ana"};
    cfg.trust = model;
    cfg.sync_interval_ms = 5000;
    cfg.belief_conflicts = belief_policy::ask_user;
    auto f = federation_state::create(cfg, 7);
    BOOST_REQUIRE(f);
    BOOST_REQUIRE(f->invite("lead", "otto", agent_role::observer, 0, 8));
    BOOST_REQUIRE(f->invite("lead", "zed", agent_role::member, 99, 8));
    BOOST_REQUIRE(f->join("otto", agent_role::observer, 9));
    auto bytes = encode(*f);
    auto back = decode_state(bytes);
    BOOST_REQUIRE(back);
    BOOST_CHECK_EQUAL(encode(*back), bytes);
    BOOST_CHECK_EQUAL(back->leader(), "lead");
    BOOST_CHECK(back->find("otto")->role == agent_role::observer);
    BOOST_REQUIRE_EQUAL(back->invitations().size(), 1u);
    BOOST_CHECK_EQUAL(back->invitations()[0].expires_at_us, 99u);
    BOOST_CHECK_EQUAL(back->version(), f->version());
    BOOST_CHECK_EQUAL(back->sync_interval_ms(), 5000u);
    BOOST_CHECK(back->belief_conflicts() == belief_policy::ask_user);
    BOOST_CHECK_EQUAL(model_name(back->trust()), model_name(model));
  }
}

BOOST_AUTO_TEST_CASE(malformed_states_are_refused) {
  BOOST_CHECK(!decode_state("\xff\xff garbage"));
  federation_config cfg;
  cfg.name = "alpha";
  cfg.initial_members = {"lead"};
  auto bytes = encode(*federation_state::create(cfg, 1));
  // Truncated.
  BOOST_CHECK(
      !decode_state(std::string_view{bytes}.substr(0, bytes.size() / 2)));
  BOOST_CHECK(!decode_state("")); // no id, no members
  // A departed agent with an empty id (field 8, length 0).
  auto empty_departed = decode_state(bytes + std::string{"\x42\x00", 2});
  BOOST_REQUIRE(!empty_departed);
  BOOST_CHECK(empty_departed.error_value().message.find("departed agent id")
              != std::string::npos);
  // A belief policy this build does not know (field 7, varint 9).
  auto unknown = decode_state(bytes + std::string{"\x38\x09", 2});
  BOOST_REQUIRE(!unknown);
  BOOST_CHECK(unknown.error_value().message.find("belief conflict policy")
              != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
