// Who a request acts as: a shared-key token is accepted only with its MAC,
// within its lifetime and token_ttl; a JWT only with RS256/ES256 by a key
// of the JWKS it names, from the configured issuer for the configured
// audience, in time; a client certificate only when it names an agent.
// Every refusal says which check failed.

#include <boost/test/unit_test.hpp>
#include <sys/stat.h>

#include <ctime>
#include <fstream>

#include "api/auth.hpp"
#include "jwt_maker.hpp"
#include "pki/pki.hpp"
#include "temp_dir.hpp"

using namespace engram;
using namespace engram::api;
using namespace std::chrono_literals;

namespace {

const std::string key(32, 'k');

bool refused_with(const expected<token_claims>& x, const std::string& text) {
  return !x && x.error_value().code == errc::unauthenticated
         && x.error_value().message.find(text) != std::string::npos;
}

bool refused_with(const expected<principal>& x, const std::string& text) {
  return !x && x.error_value().code == errc::unauthenticated
         && x.error_value().message.find(text) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_SUITE(auth)

BOOST_AUTO_TEST_CASE(base64url_round_trips_every_length) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    auto back = base64url_decode(base64url_encode(bytes));
    BOOST_REQUIRE(back);
    BOOST_CHECK(*back == bytes);
    bytes += static_cast<char>(i * 37);
  }
  BOOST_CHECK(!base64url_decode("a+b/"));
  BOOST_CHECK(!base64url_decode("abcde"));
}

BOOST_AUTO_TEST_CASE(a_shared_key_token_holds_only_as_issued) {
  int64_t now = 1'800'000'000;
  token_claims c{"alice", now, now + 3600, {"reader"}};
  auto token = issue_token(key, c);
  auto ok = verify_token(key, token, now + 10, 1h);
  BOOST_REQUIRE_MESSAGE(ok, (ok ? "" : ok.error_value().message));
  BOOST_CHECK_EQUAL(ok->agent, "alice");
  BOOST_CHECK(ok->roles == std::vector<std::string>{"reader"});
  // Another key, a changed MAC, changed claims.
  BOOST_CHECK(refused_with(verify_token(std::string(32, 'x'), token, now, 1h),
                           "signature does not verify"));
  // A character of the MAC changed (in its middle: every bit counts), and
  // a non-canonical encoding of the same MAC (the last character's unused
  // bits set).
  auto flipped = token;
  auto mid = token.rfind('.') + 10;
  flipped[mid] = flipped[mid] == 'A' ? 'B' : 'A';
  BOOST_CHECK(refused_with(verify_token(key, flipped, now, 1h),
                           "signature does not verify"));
  static const std::string alphabet
      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto loose = token;
  auto& last = loose.back(); // 43 characters: the last one's 2 low bits unused
  last = alphabet[alphabet.find(last) ^ 1];
  BOOST_CHECK(refused_with(verify_token(key, loose, now, 1h),
                           "signature does not verify"));
  auto forged = issue_token(key, {"mallory", now, now + 60, {}});
  auto dot = forged.rfind('.');
  auto spliced = forged.substr(0, dot) + token.substr(token.rfind('.'));
  BOOST_CHECK(refused_with(verify_token(key, spliced, now, 1h),
                           "signature does not verify"));
  // Expired, from the future, longer than token_ttl.
  BOOST_CHECK(
      refused_with(verify_token(key, token, now + 3600, 1h), "expired"));
  auto future = issue_token(key, {"alice", now + 600, now + 900, {}});
  BOOST_CHECK(refused_with(verify_token(key, future, now, 1h), "future"));
  BOOST_CHECK(refused_with(verify_token(key, token, now, 30min),
                           "longer than token_ttl"));
  // Garbage.
  for (auto bad :
       {"", "egk1.", "egk1..", "Bearer x", "egk1.!!!.???", "egk1.e30.AAAA"})
    BOOST_CHECK(!verify_token(key, bad, now, 1h));
  // A bad agent name.
  auto weird = issue_token(key, {std::string{"a\nb"}, now, now + 60, {}});
  BOOST_CHECK(refused_with(verify_token(key, weird, now, 1h), "agent"));
}

BOOST_AUTO_TEST_CASE(the_shared_key_file_is_private_and_long_enough) {
  engram::test::temp_dir dir;
  auto path = dir.sub("key");
  BOOST_REQUIRE(create_shared_key(path));
  struct stat st {};
  BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_CHECK_EQUAL(st.st_mode & 0777, 0600);
  auto k = load_shared_key(path);
  BOOST_REQUIRE(k);
  BOOST_CHECK_EQUAL(k->size(), 32u);
  BOOST_CHECK(!create_shared_key(path)); // never over an existing key
  ::chmod(path.c_str(), 0644);
  auto open = load_shared_key(path);
  BOOST_REQUIRE(!open);
  BOOST_CHECK(open.error_value().message.find("0600") != std::string::npos);
  std::ofstream{dir.sub("short")} << "short";
  ::chmod(dir.sub("short").c_str(), 0600);
  BOOST_CHECK(!load_shared_key(dir.sub("short")));
  BOOST_CHECK(!load_shared_key(dir.sub("missing")));
}

BOOST_AUTO_TEST_CASE(a_jwt_holds_only_from_the_issuer_for_the_audience) {
  engram::testing::identity_provider idp;
  auto keys = jwks::parse(idp.jwks());
  BOOST_REQUIRE_MESSAGE(keys, (keys ? "" : keys.error_value().message));
  BOOST_CHECK_EQUAL(keys->size(), 2u);
  jwt_policy policy{"https://idp.test", "engram"};
  int64_t now = std::time(nullptr);
  auto claims = engram::testing::identity_provider::claims("alice", now);
  for (auto [alg, kid] : {std::pair{"RS256", "rsa-1"}, {"ES256", "ec-1"}}) {
    auto p = verify_jwt(*keys, policy, idp.sign(claims, alg, kid), now, 1h);
    BOOST_REQUIRE_MESSAGE(p, alg << ": " << (p ? "" : p.error_value().message));
    BOOST_CHECK_EQUAL(p->agent, "alice");
    BOOST_CHECK_EQUAL(p->method, "jwt");
  }
  auto check = [&](const nlohmann::json& c, const char* alg, const char* kid,
                   const std::string& why) {
    auto p = verify_jwt(*keys, policy, idp.sign(c, alg, kid), now, 1h);
    BOOST_CHECK_MESSAGE(refused_with(p, why),
                        alg << " " << c.dump() << ": "
                            << (p ? "accepted" : p.error_value().message));
  };
  // The attacks: alg none, HS256 keyed with the public key, an unknown kid,
  // an algorithm that does not fit the key.
  check(claims, "none", "rsa-1", "alg 'none' is not accepted");
  check(claims, "HS256", "rsa-1", "alg 'HS256' is not accepted");
  check(claims, "RS256", "rsa-9", "not in the JWKS");
  check(claims, "ES256", "rsa-1", "does not fit key");
  // Wrong issuer, audience, expired, not yet valid, too long.
  auto c = claims;
  c["iss"] = "https://evil.test";
  check(c, "RS256", "rsa-1", "issuer");
  c = claims;
  c["aud"] = "other";
  check(c, "RS256", "rsa-1", "audience");
  c = claims;
  c["aud"] = nlohmann::json::array({"x", "engram"});
  BOOST_CHECK(verify_jwt(*keys, policy, idp.sign(c, "ES256", "ec-1"), now, 1h));
  c = claims;
  c["exp"] = now - 120;
  check(c, "RS256", "rsa-1", "expired");
  c = claims;
  c["nbf"] = now + 600;
  check(c, "ES256", "ec-1", "not valid yet");
  c = claims;
  c["exp"] = now + 7200;
  check(c, "ES256", "ec-1", "longer than token_ttl");
  c = claims;
  c.erase("exp");
  check(c, "ES256", "ec-1", "no expiry");
  c = claims;
  c.erase("sub");
  check(c, "ES256", "ec-1", "'sub'");
  // A valid token with a changed claim: the signature no longer holds.
  auto good = idp.sign(claims, "RS256", "rsa-1");
  auto d1 = good.find('.');
  auto d2 = good.find('.', d1 + 1);
  auto other
      = idp.sign(engram::testing::identity_provider::claims("mallory", now),
                 "RS256", "rsa-1");
  auto o1 = other.find('.');
  auto o2 = other.find('.', o1 + 1);
  auto spliced
      = good.substr(0, d1) + other.substr(o1, o2 - o1) + good.substr(d2);
  BOOST_CHECK(refused_with(verify_jwt(*keys, policy, spliced, now, 1h),
                           "signature does not verify"));
  for (auto bad : {"", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.e30"})
    BOOST_CHECK(!verify_jwt(*keys, policy, bad, now, 1h));
  // Unusable JWKS documents.
  BOOST_CHECK(!jwks::parse("[]"));
  BOOST_CHECK(!jwks::parse(
      R"({"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]})"));
  BOOST_CHECK(!jwks::parse(
      R"({"keys":[{"kty":"EC","kid":"k","crv":"P-384","x":"","y":""}]})"));
  BOOST_CHECK(
      !jwks::parse(R"({"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]})"));
  BOOST_CHECK(!jwks::parse(
      R"({"keys":[{"kty":"EC","kid":"k","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]})"));
}

BOOST_AUTO_TEST_CASE(a_client_certificate_names_its_agent) {
  auto ca_key = pki::private_key::generate();
  auto ca = pki::make_ca(*ca_key, "test");
  auto alice_key = pki::private_key::generate();
  auto now = static_cast<int64_t>(std::time(nullptr));
  pki::issue_options day;
  day.lifetime = std::chrono::hours{24};
  auto alice
      = pki::issue(*ca, *ca_key, pki::role::client, "alice", *alice_key, day);
  BOOST_REQUIRE(alice);
  auto p = principal_of_certificate(alice->to_pem(), now);
  BOOST_REQUIRE(p);
  BOOST_CHECK_EQUAL(p->agent, "alice");
  BOOST_CHECK_EQUAL(p->method, "mtls");
  auto node = pki::issue(*ca, *ca_key, pki::role::node, "n1", *alice_key, day);
  BOOST_REQUIRE(node);
  BOOST_CHECK(refused_with(principal_of_certificate(node->to_pem(), now),
                           "node certificate"));
  BOOST_CHECK(
      refused_with(principal_of_certificate(alice->to_pem(), now + 3 * 86400),
                   "not valid now"));
  BOOST_CHECK(!principal_of_certificate("garbage", now));
}

BOOST_AUTO_TEST_CASE(tokens_carry_ids_that_a_revocation_list_names) {
  auto now = static_cast<int64_t>(std::time(nullptr));
  auto a = issue_token(key, {"alice", now, now + 60, {}});
  auto b = issue_token(key, {"alice", now, now + 60, {}});
  auto ida = token_id_of(a);
  auto idb = token_id_of(b);
  BOOST_REQUIRE(ida && idb);
  BOOST_CHECK_EQUAL(ida->size(), 16u);
  BOOST_CHECK(*ida != *idb);
  BOOST_CHECK_EQUAL(verify_token(key, a, now, 1h)->id, *ida);
  BOOST_CHECK(!token_id_of("nonsense"));
  BOOST_CHECK(!token_id_of("egk1.!!!.x"));
  engram::test::temp_dir dir;
  auto path = dir.sub("revoked.txt");
  BOOST_CHECK(!revocation_list::load(path)); // named, but not there
  BOOST_REQUIRE(revoke_token_id(path, *ida));
  BOOST_CHECK(!revoke_token_id(path, "two\nlines"));
  struct stat st {};
  BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_CHECK_EQUAL(st.st_mode & 0777, 0600u);
  {
    std::ofstream out{path, std::ios::app};
    out << "  # a comment\n\n   deadbeefdeadbeef   # trailing\n";
  }
  auto list = revocation_list::load(path);
  BOOST_REQUIRE(list);
  BOOST_CHECK_EQUAL(list->size(), 2u);
  BOOST_CHECK(list->revoked(*ida));
  BOOST_CHECK(list->revoked("deadbeefdeadbeef"));
  BOOST_CHECK(!list->revoked(*idb));
  BOOST_CHECK(!list->revoked(""));
  auto none = revocation_list::load("");
  BOOST_REQUIRE(none);
  BOOST_CHECK(!none->revoked(*ida));
}

BOOST_AUTO_TEST_SUITE_END()
