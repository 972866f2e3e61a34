// Federation commands as typed values: the pure function that decides each
// (roles at every step, refusals that change nothing), and their encoding.

#include "federation/codec.hpp"
#include "federation/command.hpp"
#include "federation/sealed.hpp"

#include <boost/test/unit_test.hpp>

#include "e2e/e2e.hpp"

using namespace engram;
using namespace engram::federation;

namespace {

federation_state research() {
  federation_config cfg;
  cfg.name = "Research";
  cfg.initial_members = {"lead", "ana"};
  auto st = federation_state::create(cfg, 1000);
  BOOST_REQUIRE(st);
  return *st;
}

federation_state must(expected<federation_state> x) {
  BOOST_REQUIRE_MESSAGE(x, (x ? "" : x.error_value().to_string()));
  return std::move(*x);
}

} // namespace

BOOST_AUTO_TEST_SUITE(federation_commands)

BOOST_AUTO_TEST_CASE(roles_decide_every_command) {
  auto st = research();
  // Nobody joins uninvited; the leader's invitation lets one in, as no
  // more than it grants; joining again changes nothing.
  auto uninvited = apply(st, {"otto", cmd::join{agent_role::observer}}, 2000);
  BOOST_REQUIRE(!uninvited);
  BOOST_CHECK(uninvited.error_value().code == errc::permission_denied);
  BOOST_CHECK(!apply(st, {"ana", cmd::invite{"otto", agent_role::member, 0}},
                     1000)); // members do not invite
  st = must(
      apply(st, {"lead", cmd::invite{"otto", agent_role::observer, 0}}, 1000));
  BOOST_CHECK(!apply(st, {"otto", cmd::join{agent_role::member}}, 2000));
  st = must(apply(st, {"otto", cmd::join{agent_role::observer}}, 2000));
  BOOST_REQUIRE(st.find("otto"));
  BOOST_CHECK(st.find("otto")->role == agent_role::observer);
  auto again = must(apply(st, {"otto", cmd::join{agent_role::observer}}, 3000));
  BOOST_CHECK_EQUAL(again.version(), st.version());
  // Leader only: roles, trust, belief policy, removal.
  auto refused
      = apply(st, {"ana", cmd::set_role{"otto", agent_role::member}}, 0);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::permission_denied);
  st = must(apply(st, {"lead", cmd::set_role{"otto", agent_role::member}}, 0));
  BOOST_CHECK(st.find("otto")->role == agent_role::member);
  st = must(apply(st, {"lead", cmd::set_trust{uniform_trust{0.7}}}, 0));
  BOOST_CHECK_EQUAL(model_name(st.trust()), std::string{"uniform"});
  st = must(
      apply(st, {"lead", cmd::set_belief_policy{belief_policy::ask_user}}, 0));
  BOOST_CHECK(st.belief_conflicts() == belief_policy::ask_user);
  BOOST_CHECK(!apply(st, {"ana", cmd::remove{"otto"}}, 0));
  st = must(apply(st, {"lead", cmd::remove{"otto"}}, 0));
  BOOST_CHECK(!st.find("otto"));
  BOOST_CHECK(st.has_departed("otto"));
  // Reads: members only; a read changes nothing.
  auto read = must(apply(st, {"ana", cmd::read_state{}}, 0));
  BOOST_CHECK_EQUAL(read.version(), st.version());
  BOOST_CHECK(!apply(st, {"stranger", cmd::read_state{}}, 0));
  // A leaving leader hands over.
  st = must(apply(st, {"lead", cmd::leave{}}, 0));
  BOOST_CHECK_EQUAL(st.leader(), "ana");
}

BOOST_AUTO_TEST_CASE(what_is_not_a_rule_change_is_not_applied) {
  auto st = research();
  for (auto what : std::vector<command_kind>{
           cmd::verify{"ana"}, cmd::contradict{"ana"}, cmd::create{st}}) {
    federation_command c{"lead", what};
    BOOST_CHECK(!changes_rules(c));
    auto r = apply(st, c, 0);
    BOOST_REQUIRE(!r);
    BOOST_CHECK(r.error_value().message.find("is not a change of the rules")
                != std::string::npos);
  }
  BOOST_CHECK(changes_rules({"x", cmd::join{}}));
}

BOOST_AUTO_TEST_CASE(commands_round_trip_and_hostile_bytes_are_refused) {
  auto st = research();
  std::vector<federation_command> all{
      {"lead", cmd::read_state{}},
      {"lead", cmd::create{st}},
      {"otto", cmd::join{agent_role::observer}},
      {"ana", cmd::leave{}},
      {"lead", cmd::remove{"ana"}},
      {"lead", cmd::set_role{"ana", agent_role::leader}},
      {"lead", cmd::set_trust{per_agent_trust{{{"ana", 0.5}}, 0.1}}},
      {"lead", cmd::set_belief_policy{belief_policy::escalate}},
      {"ana", cmd::verify{"lead"}},
      {"ana", cmd::contradict{"lead"}},
      {"lead", cmd::invite{"otto", agent_role::observer, 12345}},
      {"lead", cmd::uninvite{"otto"}},
      {"otto", cmd::join{agent_role::observer}, true},
  };
  for (auto& c : all) {
    auto back = decode_command(encode(c));
    BOOST_REQUIRE_MESSAGE(back, describe(c));
    BOOST_CHECK_EQUAL(back->agent, c.agent);
    BOOST_CHECK_EQUAL(back->what.index(), c.what.index());
    BOOST_CHECK_EQUAL(back->relayed, c.relayed);
    BOOST_CHECK_EQUAL(describe(*back), describe(c));
  }
  BOOST_CHECK(!decode_command("\xff\xff\xff"));
  BOOST_CHECK(!decode_command("")); // no agent, no operation
  federation_command bad{"lead", cmd::remove{"a\nb"}};
  BOOST_CHECK(!decode_command(encode(bad))); // a control character
  federation_command leader{"lead", cmd::invite{"ana", agent_role::leader, 0}};
  BOOST_CHECK(!decode_command(encode(leader))); // never as leader
  federation_command nobody{"", cmd::leave{}};
  BOOST_CHECK(!decode_command(encode(nobody)));
}

BOOST_AUTO_TEST_CASE(sealed_federations_take_keys_from_their_leader_only) {
  federation_config cfg;
  cfg.name = "Sealed";
  cfg.initial_members = {"lead", "ana"};
  cfg.e2e = true;
  auto st = must(federation_state::create(cfg, 1000));
  BOOST_CHECK(!st.keys_stale().empty()); // no key yet
  auto lead_keys = e2e::key_pair::generate();
  auto ana_keys = e2e::key_pair::generate();
  auto lead_b = *e2e::unvouched("lead", lead_keys.public_key(), "n1", 1);
  auto ana_b = *e2e::unvouched("ana", ana_keys.public_key(), "n1", 1);
  auto sealed_to = [&](const e2e::key_binding& to) {
    return *e2e::seal("k", lead_keys, lead_b, to, 1, "fedkey");
  };
  group_keys k;
  k.epoch = 1;
  k.sealed_by = "lead";
  k.sealed = {{"lead", sealed_to(lead_b)}, {"ana", sealed_to(ana_b)}};
  // Not the leader; the wrong epoch; a member left out; a non-member in;
  // a key that is no sealed text; signed for someone else.
  BOOST_CHECK(!apply(st, {"ana", cmd::rotate_keys{k}}, 2000));
  auto wrong_epoch = k;
  wrong_epoch.epoch = 2;
  BOOST_CHECK(!apply(st, {"lead", cmd::rotate_keys{wrong_epoch}}, 2000));
  auto missing = k;
  missing.sealed.erase("ana");
  BOOST_CHECK(!apply(st, {"lead", cmd::rotate_keys{missing}}, 2000));
  auto extra = k;
  extra.sealed["eve"] = sealed_to(ana_b);
  BOOST_CHECK(!apply(st, {"lead", cmd::rotate_keys{extra}}, 2000));
  auto junk = k;
  junk.sealed["ana"] = "plaintext key";
  BOOST_CHECK(!apply(st, {"lead", cmd::rotate_keys{junk}}, 2000));
  auto other_sealer = k;
  other_sealer.sealed_by = "ana";
  BOOST_CHECK(!apply(st, {"lead", cmd::rotate_keys{other_sealer}}, 2000));
  auto next = must(apply(st, {"lead", cmd::rotate_keys{k}}, 2000));
  BOOST_CHECK(next.keys() == k);
  BOOST_CHECK(next.keys_stale().empty());
  BOOST_CHECK_GT(next.version(), st.version());
  // The command and the state carry the keys through their bytes.
  auto back
      = decode_command(encode(federation_command{"lead", cmd::rotate_keys{k}}));
  BOOST_REQUIRE(back);
  BOOST_CHECK(std::get<cmd::rotate_keys>(back->what).keys == k);
  auto decoded = decode_state(encode(next));
  BOOST_REQUIRE(decoded);
  BOOST_CHECK(decoded->e2e());
  BOOST_CHECK(decoded->keys() == k);
  // A member removed makes the key stale until the next one.
  auto removed = must(apply(next, {"lead", cmd::remove{"ana"}}, 3000));
  BOOST_CHECK(removed.keys_stale().find("no longer a member")
              != std::string::npos);
  // Not sealed end to end: no keys taken.
  BOOST_CHECK(!apply(research(), {"lead", cmd::rotate_keys{k}}, 2000));
  // Copies another agent sealed (in the leader's name) are refused.
  auto by_ana = k;
  by_ana.sealed["ana"] = *e2e::seal("k", ana_keys, ana_b, ana_b, 1, "fedkey");
  BOOST_CHECK(!apply(st, {"lead", cmd::rotate_keys{by_ana}}, 2000));
  // Replicated states that weaken the sealing are not taken: turned off,
  // an earlier key, a new key sealed by a non-member.
  BOOST_CHECK(!weakens_sealing(&st, next));
  BOOST_CHECK(weakens_sealing(&next, st)); // back to no key
  auto off = next;
  off.restore_keys(false, {});
  BOOST_CHECK(weakens_sealing(&next, off));
  auto outsider = k;
  outsider.epoch = 2;
  outsider.sealed_by = "eve";
  auto foreign = next;
  foreign.restore_keys(true, outsider);
  BOOST_CHECK(weakens_sealing(&next, foreign));
  BOOST_CHECK(weakens_sealing(nullptr, foreign));
  // Succession prefers a member holding the key: "aaron" (no copy) would
  // win the tie by name.
  federation_config three = cfg;
  three.initial_members = {"lead", "aaron", "ana"};
  auto st3 = must(federation_state::create(three, 1000));
  st3.restore_keys(true, k); // sealed to lead and ana only
  BOOST_REQUIRE(st3.leave("lead"));
  BOOST_CHECK_EQUAL(st3.leader(), "ana");
}

BOOST_AUTO_TEST_CASE(a_members_copy_opens_only_for_its_federation_and_epoch) {
  auto lead_keys = e2e::key_pair::generate();
  auto ana_keys = e2e::key_pair::generate();
  auto lead_b = *e2e::unvouched("lead", lead_keys.public_key(), "n1", 1);
  auto ana_b = *e2e::unvouched("ana", ana_keys.public_key(), "n1", 1);
  e2e::trust t{nullptr, nullptr, true};
  std::map<std::string, e2e::key_binding> members{{"lead", lead_b},
                                                  {"ana", ana_b}};
  auto k1
      = *next_group_keys("fed-a", 0, "lead", lead_keys, lead_b, members, {}, 1);
  auto held = open_group_keys("fed-a", k1, "ana", ana_keys, t, 1);
  BOOST_REQUIRE(held);
  BOOST_CHECK_EQUAL(held->size(), 1u);
  // The same copies presented as another federation's, or another epoch's.
  BOOST_CHECK(!open_group_keys("fed-b", k1, "ana", ana_keys, t, 1));
  auto moved = k1;
  moved.epoch = 2;
  BOOST_CHECK(!open_group_keys("fed-a", moved, "ana", ana_keys, t, 1));
  // Someone else's copy, or none.
  BOOST_CHECK(!open_group_keys("fed-a", k1, "ana", lead_keys, t, 1));
  BOOST_CHECK(!open_group_keys("fed-a", k1, "eve", ana_keys, t, 1));
  // The next key chains the first: ana reads both epochs with it.
  auto k2 = *next_group_keys("fed-a", 1, "lead", lead_keys, lead_b, members,
                             *held, 2);
  auto both = open_group_keys("fed-a", k2, "ana", ana_keys, t, 1);
  BOOST_REQUIRE(both);
  BOOST_CHECK_EQUAL(both->size(), 2u);
  BOOST_CHECK(both->at(1) == held->at(1));
  // A damaged or dropped chain is refused, not taken as "no earlier keys".
  auto damaged = k2;
  damaged.chain[5] ^= 1;
  BOOST_CHECK(!open_group_keys("fed-a", damaged, "ana", ana_keys, t, 1));
  auto dropped = k2;
  dropped.chain.clear();
  BOOST_CHECK(!open_group_keys("fed-a", dropped, "ana", ana_keys, t, 1));
}

BOOST_AUTO_TEST_SUITE_END()
