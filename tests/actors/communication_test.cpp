// Agent communication on nodes of one process: tell leaves a message in the
// recipient's inbox (on any node), ask gets the recipient's answer or a
// timeout error (never a hang), broadcast tells every other member of a
// federation, and a member whose node is down gets it when it is back.

#include "federation/membership.hpp"

#include <caf/scoped_actor.hpp>

#include "fixture.hpp"
#include "pki/pki.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

// A CA of the test's own, for client certificates.
template<class T>
T take(expected<T> x) {
  BOOST_REQUIRE(x);
  return std::move(*x);
}

struct cluster_ca {
  pki::private_key key = take(pki::private_key::generate());
  pki::certificate cert = take(pki::make_ca(key, "test"));

  std::pair<pki::certificate, pki::private_key> client(const std::string& id) {
    auto k = take(pki::private_key::generate());
    auto c = take(pki::issue(cert, key, pki::role::client, id, k));
    return {std::move(c), std::move(k)};
  }
};

using inbox_t = std::vector<std::pair<std::string, std::string>>;

// Configures `who` (on this node) to answer asks with `answer(question)`.
template<class F>
actors::node_config answering(actors::node_config c, std::string who,
                              F answer) {
  c.agent_defaults = [who, answer](const std::string& agent_id) {
    actors::agent_config a;
    if (agent_id == who)
      a.on_ask = [answer](const std::string& from, const std::string& q) {
        return answer(from, q);
      };
    return a;
  };
  return c;
}

inbox_t one(const std::string& from, const std::string& text) {
  return inbox_t{{from, text}};
}

// Drains `m`'s inbox until it holds `n` messages (bounded).
inbox_t read_inbox(actors::memory& m, size_t n) {
  inbox_t all;
  eventually([&] {
    auto got = m.inbox();
    if (got)
      all.insert(all.end(), got->begin(), got->end());
    return all.size() >= n;
  });
  return all;
}

} // namespace

BOOST_AUTO_TEST_SUITE(communication)

BOOST_FIXTURE_TEST_CASE(tell_and_ask_reach_agents_on_other_nodes,
                        runtime_fixture) {
  auto n1 = start("n1");
  auto n2 = start(answering(node_cfg("n2"), "oracle",
                            [](const std::string& from, const std::string& q) {
                              return from + " asked: " + q;
                            }));
  actors::connect(*n1, *n2);
  auto alice = ok(n1->open("alice", "main"));
  auto oracle = ok(n2->open("oracle", "main"));
  auto mute = ok(n2->open("mute", "main"));
  // The directory tells n1 where oracle runs.
  BOOST_REQUIRE(eventually([&] {
    return alice.tell("oracle", "hello").has_value();
  }));
  ok(alice.tell("oracle", "second"));
  auto got = read_inbox(oracle, 2);
  BOOST_REQUIRE_EQUAL(got.size(), 2u);
  BOOST_CHECK(got[0]
              == std::make_pair(std::string{"alice"}, std::string{"hello"}));
  BOOST_CHECK(got[1]
              == std::make_pair(std::string{"alice"}, std::string{"second"}));
  BOOST_CHECK(ok(oracle.inbox()).empty()); // reading drains it
  // Ask across nodes: the handler's answer comes back.
  BOOST_CHECK_EQUAL(ok(alice.ask("oracle", "status?", 2000ms)),
                    "alice asked: status?");
  // An agent without a handler refuses at once, naming why.
  auto refused = alice.ask("mute", "anyone?", 2000ms);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::invalid_argument);
  BOOST_CHECK(refused.error_value().message.find("answers no questions")
              != std::string::npos);
  // An unknown recipient is a clear error, not a hang.
  auto nobody = alice.tell("nobody", "hi");
  BOOST_REQUIRE(!nobody);
  BOOST_CHECK(nobody.error_value().code == errc::unknown_agent);
}

BOOST_FIXTURE_TEST_CASE(ask_times_out_instead_of_hanging, runtime_fixture) {
  auto n1 = start("n1");
  auto n2 = start(answering(node_cfg("n2"), "sleepy",
                            [](const std::string&, const std::string&) {
                              std::this_thread::sleep_for(1500ms);
                              return std::string{"too late"};
                            }));
  actors::connect(*n1, *n2);
  auto alice = ok(n1->open("alice", "main"));
  auto sleepy = ok(n2->open("sleepy", "main"));
  BOOST_REQUIRE(eventually([&] {
    return alice.tell("sleepy", "are you there").has_value();
  }));
  auto start_at = std::chrono::steady_clock::now();
  auto late = alice.ask("sleepy", "quick?", 200ms);
  auto took = std::chrono::steady_clock::now() - start_at;
  BOOST_REQUIRE(!late);
  BOOST_CHECK(late.error_value().code == errc::timeout);
  BOOST_CHECK(late.error_value().message.find("did not answer within 200 ms")
              != std::string::npos);
  BOOST_CHECK(took < 1500ms); // the timeout, not the handler, decided
  // With a long enough timeout the same question is answered.
  BOOST_CHECK_EQUAL(ok(alice.ask("sleepy", "slow?", 4000ms)), "too late");
}

BOOST_FIXTURE_TEST_CASE(a_full_inbox_refuses_tells, runtime_fixture) {
  auto c = node_cfg("n1");
  c.agent_defaults = [](const std::string&) {
    actors::agent_config a;
    a.inbox_capacity = 3;
    return a;
  };
  auto n1 = start(std::move(c));
  auto alice = ok(n1->open("alice", "main"));
  auto bob = ok(n1->open("bob", "main"));
  for (int i = 0; i < 3; ++i)
    ok(alice.tell("bob", "m" + std::to_string(i)));
  auto full = alice.tell("bob", "one too many");
  BOOST_REQUIRE(!full);
  BOOST_CHECK(full.error_value().code == errc::limit_exceeded);
  BOOST_CHECK(full.error_value().message.find("inbox of agent bob is full")
              != std::string::npos);
  BOOST_CHECK_EQUAL(ok(bob.inbox()).size(), 3u); // nothing lost or replaced
  ok(alice.tell("bob", "room again"));
}

BOOST_FIXTURE_TEST_CASE(a_retried_message_is_delivered_once, runtime_fixture) {
  auto n1 = start("n1");
  auto bob = ok(n1->open("bob", "main"));
  auto agent = ok(n1->agent("bob"));
  caf::scoped_actor self{sys};
  auto tell = [&](uint64_t id) {
    bool done = false;
    self->request(agent, 5s, actors::tell_atom::value, std::string{"alice"},
                  std::string{"once"}, id)
        .receive(
            [&](bool x) {
              done = x;
            },
            [&](caf::error& e) {
              BOOST_ERROR(to_string(e));
            });
    return done;
  };
  // The same message id again (a retry whose first attempt arrived) is
  // acknowledged but not added; another id is another message.
  BOOST_CHECK(tell(42));
  BOOST_CHECK(tell(42));
  BOOST_CHECK(tell(43));
  BOOST_CHECK_EQUAL(ok(bob.inbox()).size(), 2u);
  // Two tells of the same text through the API are two messages.
  auto alice = ok(n1->open("alice", "main"));
  ok(alice.tell("bob", "same"));
  ok(alice.tell("bob", "same"));
  BOOST_CHECK_EQUAL(ok(bob.inbox()).size(), 2u);
}

BOOST_FIXTURE_TEST_CASE(broadcast_reaches_every_member_even_after_an_outage,
                        runtime_fixture) {
  auto n1 = start("n1");
  auto n2 = start("n2");
  auto n3 = start("n3");
  actors::connect(*n1, *n2);
  actors::connect(*n1, *n3);
  actors::connect(*n2, *n3);
  auto lead = ok(n1->open("lead", "main"));
  auto ana = ok(n2->open("ana", "main"));
  federation::federation_config cfg;
  cfg.name = "Crew";
  cfg.initial_members = {"ana", "otto"};
  auto fed = ok(lead.create_federation(cfg)).id();
  BOOST_REQUIRE(eventually([&] {
    return ana.join_federation(fed).has_value();
  }));
  {
    auto otto = ok(n3->open("otto", "main"));
    BOOST_REQUIRE(eventually([&] {
      return otto.join_federation(fed).has_value();
    }));
    BOOST_REQUIRE(eventually([&] {
      auto n = lead.broadcast(fed, "standup at 9");
      return n && *n == 2;
    }));
    BOOST_CHECK(read_inbox(otto, 1) == one("lead", "standup at 9"));
  }
  BOOST_CHECK(read_inbox(ana, 1) == one("lead", "standup at 9"));
  // A federation takes broadcasts, not asks.
  auto asked = lead.ask(fed, "anyone?", 1000ms);
  BOOST_REQUIRE(!asked);
  BOOST_CHECK(asked.error_value().code == errc::invalid_argument);
  // A non-member cannot broadcast.
  auto eve = ok(n2->open("eve", "main"));
  auto refused = eve.broadcast(fed, "spam");
  BOOST_REQUIRE(!refused);
  // otto's node goes down: lead gets ana's broadcast now, otto's waits on
  // ana's node (bounded queue).
  n3->stop();
  n3.reset();
  BOOST_CHECK_EQUAL(ok(ana.broadcast(fed, "moved to 10")), 1u);
  BOOST_CHECK(read_inbox(lead, 1) == one("ana", "moved to 10"));
  // otto's node comes back (same store): the queued broadcast arrives.
  n3 = start("n3");
  actors::connect(*n1, *n3);
  actors::connect(*n2, *n3);
  auto otto = ok(n3->open("otto", "main"));
  BOOST_CHECK(read_inbox(otto, 1) == one("ana", "moved to 10"));
}

BOOST_FIXTURE_TEST_CASE(unread_messages_survive_a_restart_of_the_node,
                        runtime_fixture) {
  auto n1 = start("n1");
  {
    auto alice = ok(n1->open("alice", "main"));
    auto bob = ok(n1->open("bob", "main"));
    ok(alice.tell("bob", "first"));
    ok(alice.tell("bob", "second"));
  }
  n1->stop();
  n1.reset();
  // The same store: both messages are still unread, in order.
  n1 = start("n1");
  {
    auto bob = ok(n1->open("bob", "main"));
    auto got = read_inbox(bob, 2);
    BOOST_REQUIRE_EQUAL(got.size(), 2u);
    BOOST_CHECK(got[0]
                == std::make_pair(std::string{"alice"}, std::string{"first"}));
    BOOST_CHECK(got[1]
                == std::make_pair(std::string{"alice"}, std::string{"second"}));
  }
  n1->stop();
  n1.reset();
  // Read before the restart: gone after it.
  n1 = start("n1");
  auto bob = ok(n1->open("bob", "main"));
  BOOST_CHECK(ok(bob.inbox()).empty());
}

BOOST_AUTO_TEST_SUITE_END()

// End-to-end encryption through the memory API, on nodes without TLS (so
// their bindings are unvouched, accepted here only because the trust says
// so): the public keys travel with the agents' memories, a sealed tell
// reaches the recipient's inbox as ciphertext and opens with its key; a
// node requiring e2e refuses plaintext tells, broadcasts and shares; and
// clients cannot write the reserved fact holding a key.
BOOST_AUTO_TEST_SUITE(e2e_memory)

BOOST_FIXTURE_TEST_CASE(sealed_tells_open_only_for_their_recipient,
                        runtime_fixture) {
  auto cfg1 = node_cfg("n1");
  cfg1.e2e_required = true;
  auto n1 = start(std::move(cfg1));
  auto n2 = start("n2");
  actors::connect(*n1, *n2);
  auto alice = ok(n1->open("alice", "main"));
  auto bob = ok(n2->open("bob", "main"));
  auto alice_keys = e2e::key_pair::generate();
  auto bob_keys = e2e::key_pair::generate();
  e2e::trust insecure{nullptr, nullptr, true};
  auto published = ok(alice.publish_key(alice_keys.public_key()));
  BOOST_CHECK_EQUAL(published.agent, "alice");
  BOOST_CHECK_EQUAL(published.node, "n1");
  BOOST_CHECK(!published.vouched()); // no TLS: nothing to sign with
  ok(bob.publish_key(bob_keys.public_key()));
  // A key of the wrong length is refused; no key yet is a clear error.
  BOOST_CHECK(!alice.publish_key("short"));
  auto carol = ok(n2->open("carol", "main"));
  auto none = alice.agent_key("carol");
  BOOST_REQUIRE(eventually([&] {
    none = alice.agent_key("carol");
    return !none && none.error_value().code == errc::unknown_engram;
  }));
  BOOST_CHECK(none.error_value().message.find("published no key")
              != std::string::npos);
  // Without accepting unvouched keys, nothing is sealed to bob.
  BOOST_REQUIRE(eventually([&] {
    return alice.agent_key("bob").has_value();
  }));
  auto strict = alice.tell_sealed("bob", "x", alice_keys, e2e::trust{});
  BOOST_REQUIRE(!strict);
  BOOST_CHECK(strict.error_value().code == errc::unauthenticated);
  // n1 requires e2e: plaintext tells, asks, broadcasts and shares do not
  // leave it.
  auto plain = alice.tell("bob", "in the clear");
  BOOST_REQUIRE(!plain);
  BOOST_CHECK(plain.error_value().code == errc::permission_denied);
  // Only the prefix of a sealed text is not enough.
  auto shaped = alice.tell("bob", std::string{"\0e2e\x02", 5} + "plaintext");
  BOOST_REQUIRE(!shaped);
  BOOST_CHECK(shaped.error_value().code == errc::permission_denied);
  auto broadcast = alice.broadcast("fed-any", "hi all");
  BOOST_REQUIRE(!broadcast);
  BOOST_CHECK(broadcast.error_value().message.find("broadcasts are not sealed")
              != std::string::npos);
  auto asked = alice.ask("bob", "anyone?", 1000ms);
  BOOST_REQUIRE(!asked);
  BOOST_CHECK(asked.error_value().message.find("asks are not sealed")
              != std::string::npos);
  engram_record note;
  note.type = memory_type::semantic;
  note.body = fact{"plan", "sealed plan"};
  ok(alice.learn(note));
  auto mine = ok(alice.query(query_filter{}));
  BOOST_REQUIRE_EQUAL(mine.size(), 1u);
  auto unsealed = alice.share(mine, "bob");
  BOOST_REQUIRE(!unsealed);
  BOOST_CHECK(
      unsealed.error_value().message.find("end-to-end encryption is required")
      != std::string::npos);
  ok(alice.tell_sealed("bob", "sealed hello", alice_keys, insecure));
  // bob opens it with his key.
  std::vector<actors::memory::opened_message> got;
  BOOST_REQUIRE(eventually([&] {
    auto r = bob.inbox_opened(bob_keys, insecure);
    if (r)
      for (auto& m : *r)
        got.push_back(std::move(m));
    return !got.empty();
  }));
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_CHECK_EQUAL(got[0].from, "alice");
  BOOST_CHECK(got[0].sealed);
  BOOST_CHECK(got[0].sealed_us > 0);
  BOOST_REQUIRE(got[0].text);
  BOOST_CHECK_EQUAL(*got[0].text, "sealed hello");
  // bob (n2 requires nothing) tells alice in plaintext and sealed; read
  // with carol's key (not alice's), the sealed one says why it is closed.
  ok(bob.tell("alice", "plain reply"));
  ok(bob.tell_sealed("alice", "sealed reply", bob_keys, insecure));
  std::vector<actors::memory::opened_message> replies;
  BOOST_REQUIRE(eventually([&] {
    auto r = alice.inbox_opened(e2e::key_pair::generate(), insecure);
    if (r)
      for (auto& m : *r)
        replies.push_back(std::move(m));
    return replies.size() >= 2;
  }));
  BOOST_REQUIRE_EQUAL(replies.size(), 2u);
  BOOST_REQUIRE(replies[0].text);
  BOOST_CHECK_EQUAL(*replies[0].text, "plain reply");
  BOOST_CHECK(!replies[0].sealed);
  BOOST_CHECK(replies[1].sealed);
  BOOST_CHECK(e2e::is_sealed(replies[1].raw)); // kept, not lost
  BOOST_REQUIRE(!replies[1].text);
  BOOST_CHECK(replies[1].text.error_value().message.find("another key")
              != std::string::npos);
  // A sealed share: pending at bob's as a sealed blob, accepted only with
  // what bob's keys open from it — and only that very share.
  auto share_id = ok(alice.share_sealed(mine, "bob", alice_keys, insecure));
  std::vector<federation::share> pending;
  BOOST_REQUIRE(eventually([&] {
    auto p = bob.pending_shares();
    pending = p ? *p : std::vector<federation::share>{};
    return !pending.empty();
  }));
  BOOST_CHECK_EQUAL(pending[0].share_id, share_id);
  BOOST_CHECK(pending[0].memories.empty());
  BOOST_CHECK(e2e::is_sealed(pending[0].sealed));
  auto blind = bob.accept_share("alice", share_id, 0.5);
  BOOST_REQUIRE(!blind);
  BOOST_CHECK(blind.error_value().message.find("sealed end to end")
              != std::string::npos);
  BOOST_CHECK(!bob.accept_sealed("alice", share_id, 0.5,
                                 e2e::key_pair::generate(), insecure));
  auto opened
      = ok(federation::open_share(pending[0], "bob", bob_keys, insecure, 0));
  auto forged_share = opened;
  forged_share.share_id = "sh-forged";
  {
    caf::scoped_actor self{sys};
    auto bob_actor = ok(bob.actor());
    bool refused_forgery = false;
    self->request(bob_actor, 5s, actors::accept_atom::value,
                  std::string{"alice"}, share_id, 0.5, forged_share)
        .receive([&](uint64_t) {},
                 [&](caf::error& err) {
                   refused_forgery
                       = actors::from_caf(err).message.find("is not share")
                         != std::string::npos;
                 });
    BOOST_CHECK(refused_forgery);
  }
  BOOST_CHECK_EQUAL(
      ok(bob.accept_sealed("alice", share_id, 0.5, bob_keys, insecure)), 1u);
  auto kept = ok(bob.query(query_filter{}));
  BOOST_REQUIRE_EQUAL(kept.size(), 1u);
  BOOST_CHECK(std::get<fact>(kept[0].value.body).value == "sealed plan");
  BOOST_CHECK_CLOSE(kept[0].value.confidence, 0.5, 1e-9);
  // A share never plants the runtime's own facts: a key fact in it is
  // dropped, and bob's key stays his.
  memory_view planted;
  planted.value = note;
  planted.value.body = fact{"_e2e.key", "garbage"};
  planted.value.scope = memory_scope::agent("alice");
  planted.value.id = derive_id(planted.value.scope, planted.value.body);
  auto planted_id
      = ok(alice.share_sealed({planted}, "bob", alice_keys, insecure));
  BOOST_REQUIRE(eventually([&] {
    auto p = bob.pending_shares();
    return p && !p->empty() && p->front().share_id == planted_id;
  }));
  BOOST_CHECK_EQUAL(
      ok(bob.accept_sealed("alice", planted_id, 1.0, bob_keys, insecure)), 0u);
  BOOST_CHECK(ok(bob.agent_key("bob")).public_key == bob_keys.public_key());
  // A node without TLS has no CA to check a binding an agent signed.
  cluster_ca ca;
  auto carol_cert = ca.client("carol");
  auto carol_keys = e2e::key_pair::generate();
  auto self_signed = e2e::self_signed("carol", carol_keys.public_key(),
                                      carol_cert.first, carol_cert.second, 1);
  BOOST_REQUIRE(self_signed);
  auto unchecked = carol.publish_key(*self_signed);
  BOOST_REQUIRE(!unchecked);
  BOOST_CHECK(unchecked.error_value().message.find("runs without TLS")
              != std::string::npos);
  // Nor does n1 (e2e required) answer a question from elsewhere.
  auto unanswered = bob.ask("alice", "what do you know?", 2000ms);
  BOOST_REQUIRE(!unanswered);
  BOOST_CHECK(unanswered.error_value().message.find("answers no unsealed")
              != std::string::npos);
  // The key fact is the runtime's own.
  engram_record forged;
  forged.type = memory_type::semantic;
  forged.body = fact{"_e2e.key", "forged"};
  auto refused = carol.learn(forged);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().message.find("reserved")
              != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
