// End-to-end encryption: what a node vouches for is checked against the
// cluster's CA, a sealed text opens only for its recipient and only as
// its sender sealed it, and nothing a relaying node could change or swap
// goes unnoticed.

#include <boost/test/unit_test.hpp>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <random>

#include "e2e/e2e.hpp"
#include "engram/v1/e2e.pb.h"
#include "pki/pki.hpp"
#include "temp_dir.hpp"

using namespace engram;
using engram::test::temp_dir;

namespace {

template<class T>
T must(expected<T> x) {
  if (!x)
    BOOST_FAIL(x.error_value().to_string());
  return std::move(*x);
}

uint64_t now_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

int64_t now_s() { return static_cast<int64_t>(now_us() / 1'000'000); }

/// A cluster's CA and one node certificate per id.
struct cluster {
  pki::private_key ca_key = must(pki::private_key::generate());
  pki::certificate ca = must(pki::make_ca(ca_key, "test"));

  struct node_keys {
    pki::certificate cert;
    pki::private_key key;
  };

  node_keys node(const std::string& id, pki::role r = pki::role::node,
                 pki::issue_options opts = {}) {
    auto key = must(pki::private_key::generate());
    auto cert = must(pki::issue(ca, ca_key, r, id, key, opts));
    return {std::move(cert), std::move(key)};
  }

  e2e::key_binding vouch(const std::string& agent, const e2e::key_pair& k,
                         const std::string& node_id = "n1") {
    auto n = node(node_id);
    return must(
        e2e::vouch(agent, k.public_key(), node_id, n.cert, n.key, now_us()));
  }

  e2e::trust trust() const { return {&ca, nullptr, false}; }
};

bool refused(const expected<void>& x, errc code, const std::string& words) {
  if (x) {
    BOOST_TEST_MESSAGE("accepted; expected: " << words);
    return false;
  }
  BOOST_TEST_MESSAGE(x.error_value().message);
  return x.error_value().code == code
         && x.error_value().message.find(words) != std::string::npos;
}

bool ok(const expected<void>& x) {
  if (!x)
    BOOST_TEST_MESSAGE(x.error_value().message);
  return static_cast<bool>(x);
}

template<class T>
expected<void> status(const expected<T>& x) {
  if (!x)
    return x.error_value();
  return {};
}

} // namespace

BOOST_AUTO_TEST_SUITE(e2e_keys)

BOOST_AUTO_TEST_CASE(a_key_pair_comes_back_from_its_secret_and_its_file) {
  auto k = e2e::key_pair::generate();
  BOOST_TEST(k.public_key().size() == 32u);
  BOOST_TEST(k.secret_key().size() == 32u);
  BOOST_TEST(e2e::key_pair::generate().public_key() != k.public_key());
  auto again = must(e2e::key_pair::from_secret(k.secret_key()));
  BOOST_TEST(again.public_key() == k.public_key());
  BOOST_TEST(!e2e::key_pair::from_secret("short"));
  temp_dir dir;
  auto path = dir.sub("agent.key");
  BOOST_REQUIRE(ok(e2e::save_key(path, k)));
  struct stat st {};
  BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_TEST(must(e2e::load_key(path)).public_key() == k.public_key());
  // Never overwritten unless asked.
  BOOST_TEST(refused(e2e::save_key(path, e2e::key_pair::generate()),
                     errc::invalid_argument, path));
  BOOST_TEST(must(e2e::load_key(path)).public_key() == k.public_key());
}

BOOST_AUTO_TEST_CASE(a_key_file_others_may_read_or_not_a_key_is_refused) {
  temp_dir dir;
  auto path = dir.sub("agent.key");
  auto k = e2e::key_pair::generate();
  BOOST_REQUIRE(ok(e2e::save_key(path, k)));
  ::chmod(path.c_str(), 0644);
  auto loose = e2e::load_key(path);
  BOOST_TEST(refused(status(loose), errc::permission_denied, "chmod 600"));
  for (auto text : {std::string{"engram-e2e-secret-key-v1\nzz\n"},
                    std::string{"hello"}, std::string(10000, 'a'),
                    std::string{"engram-e2e-secret-key-v1\n"}
                        + std::string(64, 'g') + "\n"}) {
    auto bad = dir.sub("bad.key");
    {
      std::ofstream out{bad, std::ios::trunc};
      out << text;
    }
    ::chmod(bad.c_str(), 0600);
    BOOST_TEST(refused(status(e2e::load_key(bad)), errc::invalid_argument,
                       "is not a key file"));
  }
  BOOST_TEST(refused(status(e2e::load_key(dir.sub("missing"))),
                     errc::invalid_argument, "cannot read"));
  BOOST_TEST(refused(status(e2e::load_key(dir.path())), errc::invalid_argument,
                     "is not a key file"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(e2e_bindings)

BOOST_AUTO_TEST_CASE(a_vouched_key_verifies_against_the_ca) {
  cluster c;
  auto k = e2e::key_pair::generate();
  auto b = c.vouch("alice", k);
  BOOST_TEST(b.vouched());
  BOOST_TEST(ok(e2e::verify(b, "alice", c.trust(), now_s())));
  auto back = must(e2e::decode_binding(e2e::encode(b)));
  BOOST_TEST(ok(e2e::verify(back, "alice", c.trust(), now_s())));
  BOOST_TEST(!e2e::decode_binding("\xff\xff\xff"));
}

BOOST_AUTO_TEST_CASE(every_changed_or_foreign_binding_is_refused) {
  cluster c;
  auto k = e2e::key_pair::generate();
  auto b = c.vouch("alice", k);
  // For another agent.
  BOOST_TEST(refused(e2e::verify(b, "bob", c.trust(), now_s()),
                     errc::unauthenticated, "not bob's"));
  // A relaying node swaps in a key of its own.
  auto swapped = b;
  swapped.public_key = e2e::key_pair::generate().public_key();
  BOOST_TEST(refused(e2e::verify(swapped, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "does not verify"));
  // Renamed, re-dated or claimed by another node.
  auto renamed = b;
  renamed.agent = "mallory";
  BOOST_TEST(refused(e2e::verify(renamed, "mallory", c.trust(), now_s()),
                     errc::unauthenticated, "does not verify"));
  auto redated = b;
  redated.issued_us += 1;
  BOOST_TEST(refused(e2e::verify(redated, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "does not verify"));
  auto moved = b;
  moved.node = "n2";
  BOOST_TEST(refused(e2e::verify(moved, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "not trusted"));
  // Vouched by a node of another cluster.
  cluster other;
  BOOST_TEST(
      refused(e2e::verify(other.vouch("alice", k), "alice", c.trust(), now_s()),
              errc::unauthenticated, "not trusted"));
  // By a client certificate (an agent vouching for itself), or an expired
  // node certificate.
  auto client = c.node("alice", pki::role::client);
  auto self_vouched = must(e2e::vouch("alice", k.public_key(), "alice",
                                      client.cert, client.key, now_us()));
  BOOST_TEST(refused(e2e::verify(self_vouched, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "not trusted"));
  pki::issue_options expired;
  expired.starts_in = -std::chrono::hours{48};
  expired.lifetime = std::chrono::hours{24};
  auto old = c.node("n1", pki::role::node, expired);
  auto stale = must(
      e2e::vouch("alice", k.public_key(), "n1", old.cert, old.key, now_us()));
  BOOST_TEST(refused(e2e::verify(stale, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "not trusted"));
  // A revoked node.
  auto n1 = c.node("n1");
  auto revoked_binding = must(
      e2e::vouch("alice", k.public_key(), "n1", n1.cert, n1.key, now_us()));
  auto crl = must(pki::revoke(c.ca, c.ca_key, {n1.cert}));
  e2e::trust with_crl{&c.ca, &crl, false};
  BOOST_TEST(refused(e2e::verify(revoked_binding, "alice", with_crl, now_s()),
                     errc::unauthenticated, "not trusted"));
  // No CA to check against.
  BOOST_TEST(refused(e2e::verify(b, "alice", e2e::trust{}, now_s()),
                     errc::unauthenticated, "no CA"));
  // A malformed key or agent name is refused before anything is signed.
  BOOST_TEST(!e2e::vouch("alice", "short", "n1", n1.cert, n1.key, now_us()));
  BOOST_TEST(
      !e2e::vouch("../alice", k.public_key(), "n1", n1.cert, n1.key, now_us()));
}

// An agent signs its own key with its client certificate: no node can make
// such a binding, and a client may trust only those.
BOOST_AUTO_TEST_CASE(an_agent_signed_key_needs_no_node_to_be_trusted) {
  cluster c;
  auto k = e2e::key_pair::generate();
  auto alice_cert = c.node("alice", pki::role::client);
  auto own = must(e2e::self_signed("alice", k.public_key(), alice_cert.cert,
                                   alice_cert.key, now_us()));
  BOOST_TEST(own.agent_signed());
  BOOST_TEST(own.node.empty());
  auto only_agents = c.trust();
  only_agents.agent_signed_only = true;
  BOOST_TEST(ok(e2e::verify(own, "alice", c.trust(), now_s())));
  BOOST_TEST(ok(e2e::verify(own, "alice", only_agents, now_s())));
  auto back = must(e2e::decode_binding(e2e::encode(own)));
  BOOST_TEST(ok(e2e::verify(back, "alice", only_agents, now_s())));
  // A node vouching — even honestly — is not enough then.
  auto by_node = c.vouch("alice", k);
  BOOST_TEST(refused(e2e::verify(by_node, "alice", only_agents, now_s()),
                     errc::unauthenticated, "not signed by the agent"));
  // Another agent's certificate, or a node's posing as the agent's: never.
  auto bob_cert = c.node("bob", pki::role::client);
  BOOST_TEST(!e2e::self_signed("alice", k.public_key(), bob_cert.cert,
                               bob_cert.key, now_us()));
  auto forged = own;
  forged.certificate = bob_cert.cert.to_pem();
  forged.signature = must(bob_cert.key.sign(e2e::binding_message(forged)));
  BOOST_TEST(refused(e2e::verify(forged, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "not trusted"));
  auto n1 = c.node("n1");
  auto node_posing = own;
  node_posing.certificate = n1.cert.to_pem();
  node_posing.signature = must(n1.key.sign(e2e::binding_message(node_posing)));
  BOOST_TEST(refused(e2e::verify(node_posing, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "not trusted"));
  // Another key under alice's signature.
  auto swapped = own;
  swapped.public_key = e2e::key_pair::generate().public_key();
  BOOST_TEST(refused(e2e::verify(swapped, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "does not verify"));
}

BOOST_AUTO_TEST_CASE(an_unvouched_key_passes_only_when_asked_for) {
  cluster c;
  auto k = e2e::key_pair::generate();
  auto b = must(e2e::unvouched("alice", k.public_key(), "n1", now_us()));
  BOOST_TEST(!b.vouched());
  BOOST_TEST(refused(e2e::verify(b, "alice", c.trust(), now_s()),
                     errc::unauthenticated, "vouched by no node"));
  e2e::trust insecure{nullptr, nullptr, true};
  BOOST_TEST(ok(e2e::verify(b, "alice", insecure, now_s())));
  // Trusting only agents' signatures wins over taking unvouched keys.
  e2e::trust strict_insecure{nullptr, nullptr, true, true};
  BOOST_TEST(refused(e2e::verify(b, "alice", strict_insecure, now_s()),
                     errc::unauthenticated, "vouched by no node"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(e2e_sealing)

struct pair_of_agents {
  cluster c;
  e2e::key_pair alice = e2e::key_pair::generate();
  e2e::key_pair bob = e2e::key_pair::generate();
  e2e::key_binding alice_key = c.vouch("alice", alice, "n1");
  e2e::key_binding bob_key = c.vouch("bob", bob, "n2");

  std::string sealed(const std::string& text) {
    return must(e2e::seal(text, alice, alice_key, bob_key, now_us()));
  }
};

BOOST_FIXTURE_TEST_CASE(only_the_recipient_opens_what_the_sender_sealed,
                        pair_of_agents) {
  std::string secret = "canary-7f3e: the launch code is 0000";
  auto s = sealed(secret);
  BOOST_TEST(e2e::is_sealed(s));
  BOOST_TEST(e2e::well_formed(s));
  BOOST_TEST(!e2e::is_sealed(secret));
  BOOST_TEST(!e2e::well_formed(std::string{"\0e2e\x02", 5} + secret));
  BOOST_TEST(s.find("canary-7f3e") == std::string::npos);
  BOOST_TEST(s.find("launch") == std::string::npos);
  // Two seals of one text differ (a fresh nonce each).
  BOOST_TEST(sealed(secret) != s);
  auto o = must(e2e::open(s, "alice", "bob", bob, c.trust(), now_s()));
  BOOST_TEST(o.text == secret);
  BOOST_TEST(o.sender.agent == "alice");
  BOOST_TEST(o.sender.node == "n1");
  // Bytes, not only text.
  std::string bytes{"\0\xff\x80 binary", 10};
  BOOST_TEST(
      must(e2e::open(sealed(bytes), "alice", "bob", bob, c.trust(), now_s()))
          .text
      == bytes);
  // Alice herself cannot open what she sealed for bob, nor can carol.
  BOOST_TEST(
      refused(status(e2e::open(s, "alice", "alice", alice, c.trust(), now_s())),
              errc::unauthenticated, "another key"));
  auto carol = e2e::key_pair::generate();
  BOOST_TEST(
      refused(status(e2e::open(s, "alice", "carol", carol, c.trust(), now_s())),
              errc::unauthenticated, "another key"));
}

BOOST_FIXTURE_TEST_CASE(a_changed_sealed_text_or_a_forged_sender_is_refused,
                        pair_of_agents) {
  auto s = sealed("meet at noon");
  // Every single flipped byte after the prefix: refused or unreadable,
  // never a different text.
  for (size_t i = 5; i < s.size(); ++i) {
    auto t = s;
    t[i] = static_cast<char>(t[i] ^ 0x01);
    auto o = e2e::open(t, "alice", "bob", bob, c.trust(), now_s());
    BOOST_TEST(!o, "flipping byte " << i << " went unnoticed");
  }
  // The node delivering it names another sender.
  BOOST_TEST(
      refused(status(e2e::open(s, "mallory", "bob", bob, c.trust(), now_s())),
              errc::unauthenticated, "not mallory's"));
  // Mallory, holding a vouched key of her own, cannot pass her box off as
  // alice's: with alice's binding it does not open.
  auto mallory = e2e::key_pair::generate();
  auto mallory_key = c.vouch("mallory", mallory);
  auto forged
      = must(e2e::seal("from alice", mallory, mallory_key, bob_key, now_us()));
  BOOST_TEST(
      must(e2e::open(forged, "mallory", "bob", bob, c.trust(), now_s())).text
      == "from alice");
  BOOST_TEST(!e2e::seal("x", mallory, alice_key, bob_key, now_us()));
  // Nor by swapping alice's binding into her sealed text: the box was not
  // made with alice's key.
  v1::SealedMessage m;
  BOOST_REQUIRE(m.ParseFromString(forged.substr(5)));
  v1::AgentKey alice_proto;
  BOOST_REQUIRE(alice_proto.ParseFromString(e2e::encode(alice_key)));
  *m.mutable_sender() = alice_proto;
  auto swapped = forged.substr(0, 5) + m.SerializeAsString();
  BOOST_TEST(e2e::well_formed(swapped));
  BOOST_TEST(refused(
      status(e2e::open(swapped, "alice", "bob", bob, c.trust(), now_s())),
      errc::unauthenticated, "does not open"));
  // Mallory has a node vouch for alice's public key as hers, and swaps that
  // binding into a text alice sealed: the box opens, but says who sealed it.
  auto stolen = c.vouch("mallory", alice);
  v1::SealedMessage rewrapped;
  BOOST_REQUIRE(rewrapped.ParseFromString(sealed("from alice").substr(5)));
  v1::AgentKey stolen_proto;
  BOOST_REQUIRE(stolen_proto.ParseFromString(e2e::encode(stolen)));
  *rewrapped.mutable_sender() = stolen_proto;
  BOOST_TEST(
      refused(status(e2e::open(std::string{"\0e2e\x02", 5}
                                   + rewrapped.SerializeAsString(),
                               "mallory", "bob", bob, c.trust(), now_s())),
              errc::unauthenticated, "was sealed by agent alice"));
  // A text sealed as one kind is not taken for another.
  auto share_kind
      = must(e2e::seal("x", alice, alice_key, bob_key, now_us(), "share"));
  BOOST_TEST(refused(
      status(e2e::open(share_kind, "alice", "bob", bob, c.trust(), now_s())),
      errc::unauthenticated, "is a share, not a tell"));
  BOOST_TEST(must(e2e::open(share_kind, "alice", "bob", bob, c.trust(), now_s(),
                            "share"))
                 .text
             == "x");
  // A text sealed to bob's key but addressed to carol (bob's key reused).
  auto to_carol = bob_key;
  to_carol.agent = "carol";
  auto misaddressed
      = must(e2e::seal("hi", alice, alice_key, to_carol, now_us()));
  BOOST_TEST(refused(
      status(e2e::open(misaddressed, "alice", "bob", bob, c.trust(), now_s())),
      errc::unauthenticated, "addressed to agent carol"));
  // Not sealed at all.
  BOOST_TEST(refused(
      status(e2e::open("plain", "alice", "bob", bob, c.trust(), now_s())),
      errc::invalid_argument, "not a sealed text"));
}

BOOST_FIXTURE_TEST_CASE(random_bytes_never_open_nor_crash, pair_of_agents) {
  std::mt19937_64 rng{7};
  auto s = sealed("fuzzed");
  for (int round = 0; round < 2000; ++round) {
    auto t = s;
    auto cuts = rng() % 4;
    for (uint64_t i = 0; i < cuts; ++i)
      t[5 + rng() % (t.size() - 5)] = static_cast<char>(rng());
    if (rng() % 3 == 0)
      t.resize(5 + rng() % (t.size() - 5));
    auto o = e2e::open(t, "alice", "bob", bob, c.trust(), now_s());
    if (o)
      BOOST_TEST(o->text == "fuzzed");
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(e2e_group_keys)

BOOST_AUTO_TEST_CASE(sealed_values_open_only_with_their_key_and_fact) {
  auto k1 = e2e::new_group_key();
  auto k2 = e2e::new_group_key();
  BOOST_CHECK_EQUAL(k1.size(), 32u);
  BOOST_CHECK(k1 != k2);
  auto v = *e2e::seal_value(k1, 7, "plan", "launch at dawn");
  BOOST_CHECK(e2e::is_sealed_value(v));
  BOOST_CHECK(v.find("dawn") == std::string::npos);
  BOOST_CHECK_EQUAL(*e2e::value_epoch(v), 7u);
  BOOST_CHECK_EQUAL(*e2e::open_value(k1, v, "plan"), "launch at dawn");
  // Another key, another fact, a changed byte, the wrong shape.
  auto other_key = e2e::open_value(k2, v, "plan");
  BOOST_REQUIRE(!other_key);
  BOOST_CHECK(other_key.error_value().code == errc::unauthenticated);
  BOOST_CHECK(!e2e::open_value(k1, v, "other"));
  auto changed = v;
  changed[changed.size() - 3] = changed[changed.size() - 3] == 'A' ? 'B' : 'A';
  BOOST_CHECK(!e2e::open_value(k1, changed, "plan"));
  for (auto bad : {"", "e2e1:", "e2e1::abc", "e2e1:0:abc", "e2e1:x:abc",
                   "e2e1:99999999999999999999:abc", "e2e1:1:!!!", "plain"}) {
    BOOST_CHECK(!e2e::is_sealed_value(bad));
    BOOST_CHECK(!e2e::open_value(k1, bad, "plan"));
  }
  BOOST_CHECK(!e2e::seal_value("short", 1, "plan", "x"));
  BOOST_CHECK(!e2e::seal_value(k1, 0, "plan", "x"));
}

BOOST_AUTO_TEST_CASE(a_chain_gives_the_earlier_keys_to_the_newest_holder) {
  std::map<uint64_t, std::string> older{{1, e2e::new_group_key()},
                                        {2, e2e::new_group_key()}};
  auto k3 = e2e::new_group_key();
  auto chain = *e2e::seal_chain(k3, older);
  BOOST_CHECK(*e2e::open_chain(k3, chain) == older);
  BOOST_CHECK(!e2e::open_chain(older[1], chain)); // an older key: no
  BOOST_CHECK(e2e::open_chain(k3, "")->empty());
  BOOST_CHECK(!e2e::seal_chain(k3, {{1, "short"}}));
}

BOOST_AUTO_TEST_SUITE_END()
