// Who may do what: RBAC roles grant operations on scope kinds, ABAC
// policies allow and deny on attributes with deny overriding, capabilities
// grant per agent; with the default policy deny, nothing else gets
// through; policy files with mistakes are refused naming the mistake.

#include <boost/test/unit_test.hpp>

#include <fstream>

#include "api/access.hpp"
#include "temp_dir.hpp"

using namespace engram;
using namespace engram::api;

namespace {

access_request req(const std::string& agent, operation op, scope_kind k,
                   std::vector<std::string> roles = {}) {
  access_request r;
  r.who.agent = agent;
  r.who.method = "shared_key";
  r.who.roles = std::move(roles);
  r.op = op;
  r.scope = k;
  r.source = "127.0.0.1";
  r.now = 1'800'000'000 - 1'800'000'000 % 86400 + 12 * 3600; // 12:00 UTC
  return r;
}

permission perm(const std::string& text) {
  auto p = permission::parse(text);
  BOOST_REQUIRE_MESSAGE(p, (p ? "" : p.error_value().message));
  return *p;
}

} // namespace

BOOST_AUTO_TEST_SUITE(access_control)

BOOST_AUTO_TEST_CASE(operations_and_scope_kinds_have_names) {
  for (auto op : all_operations()) {
    auto back = parse_operation(to_string(op));
    BOOST_REQUIRE(back);
    BOOST_CHECK(*back == op);
  }
  BOOST_CHECK(!parse_operation("learnn"));
  BOOST_CHECK(!parse_scope_kind("universe"));
  BOOST_CHECK(!permission::parse("learn:galaxy"));
  BOOST_CHECK(!permission::parse("fly:*"));
  BOOST_CHECK(perm("*").covers(operation::forget, scope_kind::collective));
  BOOST_CHECK(perm("query").covers(operation::query, scope_kind::instance));
  BOOST_CHECK(
      !perm("query:agent").covers(operation::query, scope_kind::collective));
}

BOOST_AUTO_TEST_CASE(rbac_allows_what_a_role_grants_and_nothing_else) {
  rbac_model m;
  m.roles["reader"] = {perm("query:*"), perm("inbox"), perm("status")};
  m.roles["writer"] = {perm("learn:agent"), perm("forget:agent")};
  m.assignments["alice"] = {"reader", "writer"};
  m.assignments["bob"] = {"reader"};
  auto p = access_policy::rbac(m);
  BOOST_CHECK(
      p.decide(req("alice", operation::learn, scope_kind::agent)).allowed);
  BOOST_CHECK(
      p.decide(req("bob", operation::query, scope_kind::collective)).allowed);
  auto d = p.decide(req("bob", operation::learn, scope_kind::agent));
  BOOST_CHECK(!d.allowed);
  BOOST_CHECK(d.reason.find("no role of agent 'bob' allows learn")
              != std::string::npos);
  // Not assigned at all; a role from the credential.
  BOOST_CHECK(
      !p.decide(req("carol", operation::query, scope_kind::agent)).allowed);
  BOOST_CHECK(
      p.decide(req("carol", operation::query, scope_kind::agent, {"reader"}))
          .allowed);
  BOOST_CHECK(!p.decide(req("alice", operation::learn, scope_kind::collective))
                   .allowed);
  // The default for engramd: every agent on its own memory, all operations.
  auto own = access_policy::agents_on_their_own();
  BOOST_CHECK(own.decide(req("anyone", operation::federation_admin,
                             scope_kind::collective))
                  .allowed);
  // default allow lets what no role covers through.
  BOOST_CHECK(access_policy::rbac(m, true)
                  .decide(req("carol", operation::tell, scope_kind::agent))
                  .allowed);
}

BOOST_AUTO_TEST_CASE(abac_deny_overrides_allow_and_conditions_combine) {
  abac_model m;
  m.policies.push_back({"agents use their memory",
                        true,
                        {{"operation", {"learn", "query", "forget"}},
                         {"scope_kind", {"agent", "instance"}}}});
  m.policies.push_back(
      {"office hours only for forgetting",
       false,
       {{"operation", {"forget"}}, {"hours", {"18:00-08:00"}}}});
  m.policies.push_back(
      {"no episodes from outside",
       false,
       {{"memory_type", {"episodic"}}, {"source", {"10.0.0.0/8"}}}});
  m.policies.push_back({"auditors read collectives",
                        true,
                        {{"role", {"auditor"}},
                         {"operation", {"query"}},
                         {"scope_kind", {"collective"}}}});
  m.policies.push_back({"mallory is out", false, {{"principal", {"mallory"}}}});
  BOOST_REQUIRE(access_policy::check(m));
  auto p = access_policy::abac(m);
  BOOST_CHECK(
      p.decide(req("alice", operation::learn, scope_kind::agent)).allowed);
  // Deny overrides: mallory matches the allow too.
  auto d = p.decide(req("mallory", operation::learn, scope_kind::agent));
  BOOST_CHECK(!d.allowed);
  BOOST_CHECK_EQUAL(d.reason, "policy 'mallory is out' denies it");
  // Time of day: 12:00 is inside office hours, 20:00 and 03:00 are not.
  auto r = req("alice", operation::forget, scope_kind::agent);
  BOOST_CHECK(p.decide(r).allowed);
  r.now += 8 * 3600;
  BOOST_CHECK(!p.decide(r).allowed);
  r.now += 7 * 3600;
  BOOST_CHECK(!p.decide(r).allowed);
  // Memory type and source together.
  r = req("alice", operation::learn, scope_kind::agent);
  r.memory_type = "episodic";
  BOOST_CHECK(p.decide(r).allowed);
  r.source = "10.1.2.3";
  BOOST_CHECK(!p.decide(r).allowed);
  r.source = "::ffff:10.1.2.3";
  BOOST_CHECK(!p.decide(r).allowed);
  // Roles; and what no policy allows falls to the default.
  BOOST_CHECK(
      !p.decide(req("bob", operation::query, scope_kind::collective)).allowed);
  BOOST_CHECK(p.decide(req("bob", operation::query, scope_kind::collective,
                           {"auditor"}))
                  .allowed);
  d = p.decide(req("alice", operation::tell, scope_kind::agent));
  BOOST_CHECK(!d.allowed);
  BOOST_CHECK(d.reason.find("default policy: deny") != std::string::npos);
  BOOST_CHECK(access_policy::abac(m, true)
                  .decide(req("alice", operation::tell, scope_kind::agent))
                  .allowed);
}

BOOST_AUTO_TEST_CASE(capabilities_grant_per_agent) {
  capability_model m;
  m.grants["alice"] = {perm("learn:agent"), perm("query:*")};
  m.grants["*"] = {perm("status")};
  auto p = access_policy::capability(m);
  BOOST_CHECK(
      p.decide(req("alice", operation::learn, scope_kind::agent)).allowed);
  BOOST_CHECK(
      p.decide(req("bob", operation::status, scope_kind::node)).allowed);
  auto d = p.decide(req("bob", operation::learn, scope_kind::agent));
  BOOST_CHECK(!d.allowed);
  BOOST_CHECK(d.reason.find("holds no capability") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(addresses_match_cidr_blocks) {
  BOOST_CHECK(address_in("10.1.2.3", "10.0.0.0/8"));
  BOOST_CHECK(!address_in("11.1.2.3", "10.0.0.0/8"));
  BOOST_CHECK(address_in("127.0.0.1", "127.0.0.1"));
  BOOST_CHECK(address_in("::1", "::1/128"));
  BOOST_CHECK(address_in("::ffff:192.168.1.9", "192.168.0.0/16"));
  BOOST_CHECK(address_in("fd00::5", "fd00::/8"));
  BOOST_CHECK(!address_in("fe80::1", "fd00::/8"));
  BOOST_CHECK(address_in("1.2.3.4", "0.0.0.0/0"));
  for (auto bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "nonsense",
                   "10.0.0.0/-1", "::/129"})
    BOOST_CHECK_MESSAGE(!address_in("10.0.0.1", bad), bad);
  BOOST_CHECK(!address_in("garbage", "10.0.0.0/8"));
}

BOOST_AUTO_TEST_CASE(policy_files_load_or_say_what_is_wrong) {
  engram::test::temp_dir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream{dir.sub(name)} << text;
    return dir.sub(name);
  };
  auto good = write("good.toml", R"(
[[policy]]
name = "agents use their memory"
effect = "allow"
operation = ["learn", "query"]
scope_kind = "agent"

[[policy]]
name = "nothing from the guest network"
effect = "deny"
source = ["192.168.77.0/24"]
)");
  auto m = access_policy::load_abac(good);
  BOOST_REQUIRE_MESSAGE(m, (m ? "" : m.error_value().message));
  BOOST_CHECK_EQUAL(m->policies.size(), 2u);
  auto bad = [&](const std::string& text, const std::string& why) {
    auto r = access_policy::load_abac(write("bad.toml", text));
    BOOST_CHECK_MESSAGE(
        !r && r.error_value().message.find(why) != std::string::npos,
        (r ? std::string{"accepted"} : r.error_value().message)
            << " (expected: " << why << ")");
  };
  bad("[[policy]]\nname = \"x\"\neffect = \"maybe\"\n", "not allow or deny");
  bad("[[policy]]\nname = \"x\"\n", "has no effect");
  bad("[[policy]]\neffect = \"allow\"\n", "has no name");
  bad("[[policy]]\nname = \"x\"\neffect = \"allow\"\ncolour = \"red\"\n",
      "'colour' is not a condition");
  bad("[[policy]]\nname = \"x\"\neffect = \"allow\"\noperation = \"fly\"\n",
      "'fly' is not an operation");
  bad("[[policy]]\nname = \"x\"\neffect = \"allow\"\nhours = \"9-5\"\n",
      "not HH:MM-HH:MM");
  bad("[[policy]]\nname = \"x\"\neffect = \"allow\"\nsource = "
      "\"10.0.0.0/40\"\n",
      "not an address or CIDR");
  bad("[[policy]]\nname = \"x\"\neffect = \"allow\"\noperation = []\n",
      "no values");
  bad("[[policy]]\nname = \"x\"\neffect = \"deny\"\nmemory_type = \"fact\"\n",
      "'fact' is not a memory type");
  bad("not toml at all [[[", "bad.toml");
  bad("", "no [[policy]] tables");
  BOOST_CHECK(!access_policy::load_abac(dir.sub("missing.toml")));
}

// The policies shipped with the high-security example load, and decide as
// their comments say.
BOOST_AUTO_TEST_CASE(the_shipped_policies_load) {
  auto m = access_policy::load_abac(std::string{ENGRAM_CONFIG_DIR}
                                    + "/security_policies.toml");
  BOOST_REQUIRE_MESSAGE(m, (m ? "" : m.error_value().message));
  auto p = access_policy::abac(*m);
  auto r = req("alice", operation::learn, scope_kind::agent);
  r.who.method = "mtls";
  BOOST_CHECK(p.decide(r).allowed);
  r.who.method = "shared_key";
  BOOST_CHECK(!p.decide(r).allowed);
  r = req("alice", operation::federation_create, scope_kind::collective);
  r.who.method = "mtls";
  BOOST_CHECK(!p.decide(r).allowed);
  r.who.roles = {"coordinator"};
  BOOST_CHECK(p.decide(r).allowed);
  r = req("alice", operation::query, scope_kind::agent);
  r.who.method = "mtls";
  r.source = "192.168.77.5";
  BOOST_CHECK(!p.decide(r).allowed);
}

BOOST_AUTO_TEST_SUITE_END()
