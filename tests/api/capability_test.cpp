// Capability tokens: a grant signed with the shared key acts as one agent
// for what it allows; a holder narrows it with caveats (no key needed) and
// nobody widens it again — not by dropping, reordering, editing or
// inventing a caveat. Every refusal says which check failed.

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "api/access.hpp"
#include "api/auth.hpp"
#include "api/capability.hpp"

using namespace engram;
using namespace engram::api;
using namespace std::chrono_literals;

namespace {

const std::string key(32, 'k');
constexpr int64_t now = 1'800'000'000;

std::string grant(std::vector<std::string> allow = {"query:*", "learn:agent"},
                  int64_t ttl = 3600, std::string agent = "alice") {
  auto t = issue_capability(
      key,
      capability_grant{std::move(agent), std::move(allow), {}, now, now + ttl});
  BOOST_REQUIRE_MESSAGE(t, (t ? "" : t.error_value().message));
  return *t;
}

principal verified(const std::string& token) {
  auto p = verify_capability(key, token, now + 10, 24h);
  BOOST_REQUIRE_MESSAGE(p, (p ? "" : p.error_value().message));
  return *p;
}

bool refused_with(const expected<principal>& x, const std::string& text) {
  return !x && x.error_value().code == errc::unauthenticated
         && x.error_value().message.find(text) != std::string::npos;
}

// What the policy says to `who` doing `op` on `kind` memory.
bool allows(const principal& who, operation op, scope_kind kind,
            std::string type = {}, std::string source = "10.0.0.5") {
  access_request r;
  r.who = who;
  r.op = op;
  r.scope = kind;
  r.memory_type = std::move(type);
  r.source = std::move(source);
  r.now = now;
  return access_policy::capability({}).decide(r).allowed;
}

// The parts of a token (prefix stripped), the MAC last.
std::vector<std::string> parts_of(const std::string& token) {
  std::vector<std::string> out;
  size_t start = 5;
  while (true) {
    auto dot = token.find('.', start);
    out.push_back(token.substr(start, dot - start));
    if (dot == std::string::npos)
      return out;
    start = dot + 1;
  }
}

std::string join(const std::vector<std::string>& parts) {
  std::string out = "egc1";
  for (auto& p : parts)
    out += "." + p;
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(capabilities)

BOOST_AUTO_TEST_CASE(a_grant_acts_as_its_agent_for_what_it_allows) {
  auto token = grant();
  BOOST_CHECK(is_capability_token(token));
  auto p = verified(token);
  BOOST_CHECK_EQUAL(p.agent, "alice");
  BOOST_CHECK_EQUAL(p.method, "capability");
  BOOST_CHECK_EQUAL(p.expires_at, now + 3600);
  BOOST_CHECK(allows(p, operation::query, scope_kind::agent));
  BOOST_CHECK(allows(p, operation::query, scope_kind::collective));
  BOOST_CHECK(allows(p, operation::learn, scope_kind::agent));
  BOOST_CHECK(!allows(p, operation::learn, scope_kind::instance));
  BOOST_CHECK(!allows(p, operation::forget, scope_kind::agent));
  BOOST_CHECK(!allows(p, operation::federation_admin, scope_kind::collective));
  // Its grant bounds every model: RBAC's all-allowing default too.
  access_request r;
  r.who = p;
  r.op = operation::forget;
  r.scope = scope_kind::agent;
  auto d = access_policy::agents_on_their_own().decide(r);
  BOOST_CHECK(!d.allowed);
  BOOST_CHECK(d.reason.find("capability token does not allow forget")
              != std::string::npos);
  r.op = operation::query;
  BOOST_CHECK(access_policy::agents_on_their_own().decide(r).allowed);
  // Without a token, the capability model allows nothing by default.
  principal plain{"alice", "shared_key", {}, now + 60};
  BOOST_CHECK(!allows(plain, operation::query, scope_kind::agent));
}

BOOST_AUTO_TEST_CASE(a_holder_narrows_and_nobody_widens) {
  auto token = grant();
  capability_caveat read_only;
  read_only.allow = {"query:agent"};
  read_only.expires_at = now + 600;
  auto narrowed = attenuate_capability(token, read_only);
  BOOST_REQUIRE(narrowed);
  capability_caveat semantic_here;
  semantic_here.memory_types = {"semantic"};
  semantic_here.sources = {"10.0.0.0/8"};
  auto narrower = attenuate_capability(*narrowed, semantic_here);
  BOOST_REQUIRE(narrower);
  auto p = verified(*narrower);
  BOOST_CHECK_EQUAL(p.agent, "alice");
  BOOST_CHECK_EQUAL(p.expires_at, now + 600); // the earlier expiry
  BOOST_CHECK(allows(p, operation::query, scope_kind::agent, "semantic"));
  BOOST_CHECK(allows(p, operation::query, scope_kind::agent)); // per result
  // A request that names no type (a forget by id) is refused.
  capability_caveat semantic_only;
  semantic_only.memory_types = {"semantic"};
  auto typed = verified(*attenuate_capability(grant({"*:*"}), semantic_only));
  BOOST_CHECK(!allows(typed, operation::forget, scope_kind::agent));
  BOOST_CHECK(allows(typed, operation::forget, scope_kind::agent, "semantic"));
  BOOST_CHECK(allows(typed, operation::learn, scope_kind::agent, "semantic"));
  BOOST_CHECK(!allows(typed, operation::learn, scope_kind::agent, "episodic"));
  BOOST_CHECK(!allows(p, operation::query, scope_kind::agent, "episodic"));
  BOOST_CHECK(!allows(p, operation::query, scope_kind::collective));
  BOOST_CHECK(!allows(p, operation::learn, scope_kind::agent, "semantic"));
  BOOST_CHECK(
      !allows(p, operation::query, scope_kind::agent, "semantic", "192.0.2.1"));
  // A caveat that "allows" more than the grant still allows no more.
  capability_caveat wider;
  wider.allow = {"*:*"};
  auto widened = verified(*attenuate_capability(token, wider));
  BOOST_CHECK(!allows(widened, operation::forget, scope_kind::agent));
  // Dropping the last caveat, or both, or swapping them: the MAC fails.
  auto parts = parts_of(*narrower);
  BOOST_REQUIRE_EQUAL(parts.size(), 4u); // grant, two caveats, MAC
  auto drop_last = join({parts[0], parts[1], parts[3]});
  BOOST_CHECK(refused_with(verify_capability(key, drop_last, now, 24h),
                           "signature does not verify"));
  auto only_grant = join({parts[0], parts[3]});
  BOOST_CHECK(refused_with(verify_capability(key, only_grant, now, 24h),
                           "signature does not verify"));
  auto swapped = join({parts[0], parts[2], parts[1], parts[3]});
  BOOST_CHECK(refused_with(verify_capability(key, swapped, now, 24h),
                           "signature does not verify"));
  // Editing the grant (another agent, more operations) or a caveat.
  auto forged_grant = parts;
  forged_grant[0] = base64url_encode(
      R"({"agent":"bob","allow":["*:*"],"iat":1800000000,"exp":1800003600})");
  BOOST_CHECK(refused_with(verify_capability(key, join(forged_grant), now, 24h),
                           "signature does not verify"));
  auto forged_caveat = parts;
  forged_caveat[1] = base64url_encode(R"({"allow":["*:*"]})");
  BOOST_CHECK(
      refused_with(verify_capability(key, join(forged_caveat), now, 24h),
                   "signature does not verify"));
  // Another key; a shared-key token's MAC is no capability's.
  BOOST_CHECK(
      refused_with(verify_capability(std::string(32, 'x'), *narrower, now, 24h),
                   "signature does not verify"));
  auto body = "egc1." + parts[0];
  auto with_shared_mac = body + "." + base64url_encode(hmac_sha256(key, body));
  BOOST_CHECK(refused_with(verify_capability(key, with_shared_mac, now, 24h),
                           "signature does not verify"));
}

BOOST_AUTO_TEST_CASE(a_capability_for_a_federation_concerns_it_only) {
  auto for_fed = issue_capability(
      key, capability_grant{"alice", {"*:*"}, {"fed-0123"}, now, now + 60});
  BOOST_REQUIRE(for_fed);
  auto p = verified(*for_fed);
  auto allows_fed = [&](const principal& who, operation op, scope_kind kind,
                        std::string fed) {
    access_request r;
    r.who = who;
    r.op = op;
    r.scope = kind;
    r.federation = std::move(fed);
    r.source = "10.0.0.5";
    return access_policy::capability({}).decide(r).allowed;
  };
  BOOST_CHECK(
      allows_fed(p, operation::learn, scope_kind::collective, "fed-0123"));
  BOOST_CHECK(
      allows_fed(p, operation::broadcast, scope_kind::collective, "fed-0123"));
  BOOST_CHECK(
      !allows_fed(p, operation::learn, scope_kind::collective, "fed-9999"));
  BOOST_CHECK(!allows_fed(p, operation::learn, scope_kind::agent, ""));
  BOOST_CHECK(!allows_fed(p, operation::query, scope_kind::agent, ""));
  // A holder narrows an agent-wide token to one federation.
  capability_caveat one;
  one.federations = {"fed-0123"};
  auto narrowed = verified(*attenuate_capability(grant({"*:*"}), one));
  BOOST_CHECK(allows_fed(narrowed, operation::query, scope_kind::collective,
                         "fed-0123"));
  BOOST_CHECK(!allows_fed(narrowed, operation::query, scope_kind::agent, ""));
  // Not federation ids: refused.
  capability_caveat bad;
  bad.federations = {"alice"};
  BOOST_CHECK(!attenuate_capability(grant(), bad));
  BOOST_CHECK(!issue_capability(
      key, capability_grant{"alice", {"*:*"}, {"x\ny"}, now, now + 60}));
}

BOOST_AUTO_TEST_CASE(a_caveat_the_verifier_does_not_know_is_refused) {
  // A holder may append anything it can MAC: an unknown field, an empty
  // list (which would read as no limit), a bad value — all refused.
  auto token = grant();
  auto parts = parts_of(token);
  auto mac = *base64url_decode(parts.back());
  for (auto caveat : {R"({"until_revoked":true})", R"({"allow":[]})",
                      R"({"allow":"query:agent"})", R"({"allow":[7]})",
                      R"({"types":["dreams"]})", R"({"sources":["nowhere"]})",
                      R"({"federations":["alice"]})", R"({"federations":[]})",
                      R"({"exp":-5})", R"({})", R"([1,2])", "not json"}) {
    auto segment = base64url_encode(caveat);
    auto forged = join(
        {parts[0], segment, base64url_encode(hmac_sha256(mac, segment))});
    auto r = verify_capability(key, forged, now, 24h);
    BOOST_CHECK_MESSAGE(!r && r.error_value().code == errc::unauthenticated,
                        caveat);
    capability_caveat none;
    BOOST_CHECK(!attenuate_capability(token, none)); // nothing to narrow
  }
  capability_caveat bad;
  bad.allow = {"fly:agent"};
  auto r = attenuate_capability(token, bad);
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error_value().message.find("fly") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(lifetimes_and_sizes_are_bounded) {
  BOOST_CHECK(refused_with(verify_capability(key, grant(), now + 3600, 24h),
                           "expired"));
  BOOST_CHECK(
      refused_with(verify_capability(key, grant({"query:*"}, 7200), now, 1h),
                   "longer than token_ttl"));
  capability_caveat soon;
  soon.expires_at = now + 5;
  auto t = attenuate_capability(grant(), soon);
  BOOST_REQUIRE(t);
  BOOST_CHECK(
      refused_with(verify_capability(key, *t, now + 5, 24h), "expired"));
  // At most max_caveats caveats.
  auto many = grant();
  capability_caveat c;
  c.allow = {"query:*"};
  for (size_t i = 0; i < max_caveats; ++i) {
    auto next = attenuate_capability(many, c);
    BOOST_REQUIRE(next);
    many = *next;
  }
  BOOST_CHECK(verify_capability(key, many, now, 24h));
  BOOST_CHECK(!attenuate_capability(many, c));
  // Hostile shapes.
  for (std::string bad : std::vector<std::string>{
           "egc1.", "egc1..", "egc1.x", "egc1.!!!.???", "egk1.abc.def",
           "egc1." + std::string(9000, 'A') + ".AAAA"})
    BOOST_CHECK_MESSAGE(!verify_capability(key, bad, now, 24h), bad);
  // A grant must allow something, and only known permissions.
  BOOST_CHECK(!issue_capability(key, {"alice", {}, {}, now, now + 60}));
  BOOST_CHECK(!issue_capability(key, {"alice", {"fly:*"}, {}, now, now + 60}));
  BOOST_CHECK(!issue_capability(key, {"", {"query:*"}, {}, now, now + 60}));
  BOOST_CHECK(!issue_capability(key, {"alice", {"query:*"}, {}, now, now}));
}

BOOST_AUTO_TEST_SUITE_END()
