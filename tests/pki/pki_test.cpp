// The cluster's certificates: a CA issues node and client certificates
// that name their ids; a certificate is accepted only when the CA signed
// it, it is valid now, not revoked, of the expected role and names the id
// claimed; challenges signed with its key verify only with it; keys are
// written 0600 and never overwritten unless asked; garbage is refused with
// a clear error.

#include <boost/test/unit_test.hpp>
#include <sys/stat.h>

#include <ctime>

#include "pki/pki.hpp"
#include "temp_dir.hpp"

using namespace engram;
using namespace engram::pki;

namespace {

template<class T>
T ok(expected<T> x) {
  BOOST_REQUIRE_MESSAGE(x, (x ? "" : x.error_value().to_string()));
  return std::move(*x);
}

struct cluster_ca {
  private_key key = ok(private_key::generate());
  certificate cert = ok(make_ca(key, "test"));

  certificate node(const std::string& id, const private_key& k,
                   issue_options opts = {}) {
    return ok(issue(cert, key, role::node, id, k, opts));
  }
};

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string why(const expected<void>& r) {
  return r ? std::string{} : r.error_value().message;
}

} // namespace

BOOST_AUTO_TEST_SUITE(pki)

BOOST_AUTO_TEST_CASE(a_node_certificate_names_its_node_and_verifies) {
  cluster_ca ca;
  auto k = ok(private_key::generate());
  issue_options opts;
  opts.hosts = {"127.0.0.1", "n1.example"};
  auto n1 = ca.node("n1", k, opts);
  BOOST_CHECK_EQUAL(n1.id(), "n1");
  BOOST_CHECK(n1.role() == role::node);
  BOOST_CHECK(ca.cert.role() == role::ca);
  BOOST_CHECK(n1.hosts()
              == (std::vector<std::string>{"127.0.0.1", "n1.example"}));
  BOOST_CHECK(k.matches(n1));
  BOOST_CHECK(!ca.key.matches(n1));
  BOOST_CHECK(verify(n1, ca.cert, nullptr, now(), role::node, "n1"));
  // Round trip through PEM.
  auto again = ok(certificate::from_pem(n1.to_pem(), "n1"));
  BOOST_CHECK_EQUAL(again.fingerprint(), n1.fingerprint());
  auto k2 = ok(private_key::from_pem(k.to_pem(), "key"));
  BOOST_CHECK(k2.matches(n1));
}

BOOST_AUTO_TEST_CASE(every_reason_to_refuse_a_certificate_is_named) {
  cluster_ca ca;
  cluster_ca other;
  auto k = ok(private_key::generate());
  auto n1 = ca.node("n1", k);
  // A name that is not the one claimed.
  auto r = verify(n1, ca.cert, nullptr, now(), role::node, "n2");
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error_value().code == errc::unauthenticated);
  BOOST_CHECK_MESSAGE(why(r).find("not 'n2'") != std::string::npos, why(r));
  // Another cluster's CA.
  auto foreign = other.node("n1", k);
  r = verify(foreign, ca.cert, nullptr, now(), role::node, "n1");
  BOOST_REQUIRE(!r);
  BOOST_CHECK_MESSAGE(why(r).find("not issued by this cluster's CA")
                          != std::string::npos,
                      why(r));
  // Expired (valid two days ago for a day), and not valid yet.
  issue_options old;
  old.starts_in = std::chrono::hours{-48};
  old.lifetime = std::chrono::hours{24};
  r = verify(ca.node("n1", k, old), ca.cert, nullptr, now(), role::node, "n1");
  BOOST_REQUIRE(!r);
  BOOST_CHECK_MESSAGE(why(r).find("expired") != std::string::npos, why(r));
  issue_options later;
  later.starts_in = std::chrono::hours{48};
  r = verify(ca.node("n1", k, later), ca.cert, nullptr, now(), role::node,
             "n1");
  BOOST_REQUIRE(!r);
  BOOST_CHECK_MESSAGE(why(r).find("not valid yet") != std::string::npos,
                      why(r));
  // Revoked.
  auto n2 = ca.node("n2", k);
  auto crl = ok(revoke(ca.cert, ca.key, {n1}));
  BOOST_CHECK(crl.revokes(n1));
  BOOST_CHECK(!crl.revokes(n2));
  r = verify(n1, ca.cert, &crl, now(), role::node, "n1");
  BOOST_REQUIRE(!r);
  BOOST_CHECK_MESSAGE(why(r).find("revoked") != std::string::npos, why(r));
  BOOST_CHECK(verify(n2, ca.cert, &crl, now(), role::node, "n2"));
  // A later list keeps what an earlier one revoked.
  auto crl2 = ok(revoke(ca.cert, ca.key, {n2}, &crl));
  BOOST_CHECK(crl2.revokes(n1) && crl2.revokes(n2));
  BOOST_CHECK_EQUAL(crl2.size(), 2u);
  auto crl3 = ok(revocation_list::from_pem(crl2.to_pem(), "crl"));
  BOOST_CHECK(crl3.revokes(n1));
  // A client certificate is no node certificate (and the CA none either).
  auto client = ok(issue(ca.cert, ca.key, role::client, "agent-7", k));
  BOOST_CHECK(client.role() == role::client);
  BOOST_CHECK_EQUAL(client.id(), "agent-7");
  r = verify(client, ca.cert, nullptr, now(), role::node, "agent-7");
  BOOST_REQUIRE(!r);
  BOOST_CHECK_MESSAGE(why(r).find("client certificate") != std::string::npos,
                      why(r));
  BOOST_CHECK(verify(client, ca.cert, nullptr, now(), role::client));
  BOOST_CHECK(!verify(ca.cert, ca.cert, nullptr, now(), role::node));
  // No certificate at all.
  BOOST_CHECK(!verify(certificate{}, ca.cert, nullptr, now(), role::node));
}

// A revocation list counts only when the cluster's CA signed it.
BOOST_AUTO_TEST_CASE(a_revocation_list_is_checked_against_its_ca) {
  cluster_ca ca;
  cluster_ca other;
  auto k = ok(private_key::generate());
  auto n1 = ca.node("n1", k);
  auto crl = ok(revoke(ca.cert, ca.key, {n1}));
  BOOST_CHECK(crl.issued_by(ca.cert));
  BOOST_CHECK(!crl.issued_by(other.cert));
  // Another CA's list, even under our CA's name, does not verify.
  auto foreign = ok(revoke(other.cert, other.key, {n1}));
  BOOST_CHECK(!foreign.issued_by(ca.cert));
  auto renamed = ok(make_ca(other.key, "test"));
  auto posing = ok(revoke(renamed, other.key, {n1}));
  BOOST_CHECK(!posing.issued_by(ca.cert));
  BOOST_CHECK(!revocation_list{}.issued_by(ca.cert));
}

BOOST_AUTO_TEST_CASE(ids_and_hosts_are_checked_when_issuing) {
  cluster_ca ca;
  auto k = ok(private_key::generate());
  for (std::string bad :
       {std::string{}, std::string{"../etc"}, std::string{"a b"},
        std::string{"n1/x"}, std::string(200, 'a')})
    BOOST_CHECK_MESSAGE(!issue(ca.cert, ca.key, role::node, bad, k), bad);
  issue_options opts;
  opts.hosts = {"bad host"};
  BOOST_CHECK(!issue(ca.cert, ca.key, role::node, "n1", k, opts));
  // The CA key must be the CA's.
  auto stranger = ok(private_key::generate());
  auto r = issue(ca.cert, stranger, role::node, "n1", k);
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error_value().message.find("does not belong")
              != std::string::npos);
  BOOST_CHECK(!issue(ca.cert, ca.key, role::ca, "n1", k));
}

BOOST_AUTO_TEST_CASE(a_challenge_signed_with_the_key_verifies_with_it_only) {
  cluster_ca ca;
  auto k1 = ok(private_key::generate());
  auto k2 = ok(private_key::generate());
  auto n1 = ca.node("n1", k1);
  auto n2 = ca.node("n2", k2);
  auto challenge = random_bytes(32);
  BOOST_CHECK_EQUAL(challenge.size(), 32u);
  BOOST_CHECK(challenge != random_bytes(32));
  auto sig = ok(k1.sign(challenge));
  BOOST_CHECK(verify_signature(n1, challenge, sig));
  BOOST_CHECK(!verify_signature(n2, challenge, sig));
  auto tampered = challenge;
  tampered[0] = static_cast<char>(tampered[0] ^ 1);
  BOOST_CHECK(!verify_signature(n1, tampered, sig));
  BOOST_CHECK(!verify_signature(n1, challenge, "garbage"));
  BOOST_CHECK(!verify_signature(n1, challenge, ""));
  BOOST_CHECK(!verify_signature(certificate{}, challenge, sig));
}

BOOST_AUTO_TEST_CASE(garbage_is_refused_with_what_it_is) {
  for (std::string junk : {std::string{}, std::string{"hello"},
                           std::string{"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                       "-----END CERTIFICATE-----\n"},
                           std::string(5000, '\xff')}) {
    auto c = certificate::from_pem(junk, "the peer's certificate");
    BOOST_REQUIRE(!c);
    BOOST_CHECK(c.error_value().message.find("the peer's certificate")
                != std::string::npos);
    BOOST_CHECK(!private_key::from_pem(junk, "key"));
    BOOST_CHECK(!revocation_list::from_pem(junk, "crl"));
  }
}

BOOST_AUTO_TEST_CASE(keys_are_private_and_never_overwritten_silently) {
  test::temp_dir dir;
  auto k = ok(private_key::generate());
  auto path = dir.sub("node.key");
  BOOST_REQUIRE(write_file(path, k.to_pem(), 0600, false));
  struct stat st {};
  BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_CHECK_EQUAL(st.st_mode & 0777, 0600u);
  auto loaded = ok(load_private_key(path));
  // An existing file stays unless overwriting is asked for.
  auto again = write_file(path, "other", 0600, false);
  BOOST_REQUIRE(!again);
  BOOST_CHECK(again.error_value().message.find("--overwrite")
              != std::string::npos);
  BOOST_CHECK(ok(load_private_key(path)).to_pem() == k.to_pem());
  BOOST_CHECK(write_file(path, k.to_pem(), 0600, true));
  // A key others may read is refused, naming the mode.
  ::chmod(path.c_str(), 0644);
  auto open = load_private_key(path);
  BOOST_REQUIRE(!open);
  BOOST_CHECK(open.error_value().code == errc::permission_denied);
  BOOST_CHECK(open.error_value().message.find("644") != std::string::npos);
  // Missing files are named.
  auto missing = load_certificate(dir.sub("nope.crt"));
  BOOST_REQUIRE(!missing);
  BOOST_CHECK(missing.error_value().message.find("nope.crt")
              != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
