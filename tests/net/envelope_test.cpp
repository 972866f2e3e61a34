// Signed envelopes between real nodes: this test becomes a proven peer
// "n2" of a running engramd (its own actor system speaking TLS with n2's
// certificate, its envelope-signing key bound by its proof) and sends it
// pings. A signed ping is answered; one whose bytes were changed, one
// signed by another key or for another node, an unsigned one, and one sent
// again — before and after engramd restarts — are refused and logged, never
// answered.

#include "actors/net.hpp"
#include "actors/tls.hpp"
#include "core/replica.hpp"
#include "messages/codec.hpp"
#include "messages/envelope.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <boost/test/unit_test.hpp>

#include <csignal>
#include <memory>
#include <mutex>
#include <set>

#include "cluster.hpp"
#include "crypto/sign.hpp"
#include "origin/book.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

crypto::signing_key new_key() {
  auto k = crypto::signing_key::generate();
  if (!k)
    throw std::runtime_error(k.error_value().message);
  return std::move(*k);
}

// The pong nonces a peer actor received, and a session of the node that
// sent it frames (its address comes with them).
struct pongs {
  std::mutex mtx;
  std::set<uint64_t> nonces;
  caf::actor session;

  bool has(uint64_t n) {
    std::lock_guard<std::mutex> guard{mtx};
    return nonces.count(n) > 0;
  }

  bool any_from(uint64_t lo) {
    std::lock_guard<std::mutex> guard{mtx};
    return nonces.lower_bound(lo) != nonces.end();
  }
};

// "n2": an actor system speaking TLS as node n2, a peer actor recording
// pongs, and the key n2 signs its envelopes with.
struct fake_peer {
  client_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<pongs> got = std::make_shared<pongs>();
  caf::actor inbox;
  crypto::signing_key key = new_key();
  uint64_t sequence = 0;

  explicit fake_peer(const actors::tls_config& tls) : cfg(tls) {
    auto seen = got;
    inbox = sys.spawn([seen](caf::event_based_actor* self) -> caf::behavior {
      return {[seen, self](const actors::wire_frame& frame) {
        if (!frame.agent.empty()) {
          std::lock_guard<std::mutex> guard{seen->mtx};
          seen->session = caf::actor_cast<caf::actor>(self->current_sender());
        }
        auto env = messages::decode_envelope(frame.envelope);
        if (!env || env->type() != v1::PONG)
          return;
        auto pong = messages::decode_payload<v1::Pong>(*env, v1::PONG);
        if (pong) {
          std::lock_guard<std::mutex> guard{seen->mtx};
          seen->nonces.insert(pong->nonce());
        }
      }};
    });
  }

  ~fake_peer() { caf::anon_send_exit(inbox, caf::exit_reason::user_shutdown); }

  // Proves to be n2 to `node` (a node of the cluster at `port`) and asks to
  // be its peer; returns the node's handle.
  actors::node_actor join(uint16_t port, const pki::private_key& cert_key,
                          const std::string& cert_pem) {
    auto remote
        = actors::connect_remote(sys, actors::endpoint{"127.0.0.1", port}, 5s);
    if (!remote)
      BOOST_FAIL(remote.error_value().to_string());
    caf::scoped_actor self{sys};
    std::string nonce;
    self->request(remote->hdl, 5s, actors::challenge_atom::value)
        .receive(
            [&](std::string& n) {
              nonce = std::move(n);
            },
            [&](caf::error& e) {
              BOOST_FAIL(to_string(e));
            });
    auto sig = cert_key.sign(
        actors::proof_message("peer", nonce, "n2", "n1", key.public_key()));
    BOOST_REQUIRE(sig);
    self->send(remote->hdl, actors::peer_atom::value, std::string{"n2"},
               caf::actor_cast<actors::peer_actor>(inbox), cert_pem, nonce,
               *sig, key.public_key());
    return remote->hdl;
  }

  // A ping as n2 sends it: signed with `with` (n2's own key when null) for
  // node `to`.
  std::string ping(uint64_t nonce, const crypto::signing_key* with = nullptr,
                   const std::string& to = "n1") {
    v1::Ping p;
    p.set_nonce(nonce);
    p.set_wall_us(0);
    auto bytes = messages::serialize(
        messages::make_envelope(v1::PING, "n2", hlc_timestamp{1, 0}, p));
    BOOST_REQUIRE(messages::sign_envelope(bytes, ++sequence,
                                          with != nullptr ? *with : key,
                                          messages::route("n2", to, "")));
    return bytes;
  }

  void send(const actors::node_actor& to, std::string bytes,
            const std::string& agent = {}) {
    caf::scoped_actor self{sys};
    self->send(to, actors::wire_frame{"n2", agent, std::move(bytes)});
  }

  // A SyncResponse to agent `agent`'s session on n1 carrying `batch`,
  // signed as n2 signs its envelopes.
  std::string sync_response(const v1::DeltaBatch& batch,
                            const std::string& agent, uint64_t seq) {
    v1::SyncResponse resp;
    *resp.mutable_batch() = batch;
    resp.set_sequence(seq);
    resp.set_epoch(77);
    auto bytes = messages::serialize(messages::make_envelope(
        v1::SYNC_RESPONSE, "n2", hlc_timestamp{1, 0}, resp));
    BOOST_REQUIRE(messages::sign_envelope(bytes, ++sequence, key,
                                          messages::route("n2", "n1", agent)));
    return bytes;
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(signed_envelopes_net)

BOOST_AUTO_TEST_CASE(tampered_forged_and_replayed_envelopes_are_refused) {
  cluster c;
  auto n1 = c.start("n1", {});
  auto& d = c.pki.dir();
  c.pki.node("n2");
  auto cert_key = pki::load_private_key(d + "/node.n2.key");
  auto cert_pem = pki::load_certificate(d + "/node.n2.crt")->to_pem();
  BOOST_REQUIRE(cert_key);
  actors::tls_config tls;
  tls.certificate = d + "/node.n2.crt";
  tls.private_key = d + "/node.n2.key";
  tls.ca = d + "/ca.crt";
  fake_peer n2{tls};
  auto log_has = [&](const std::string& text) {
    return until(
        [&] {
          return c.nodes[0].proc.output().find(text) != std::string::npos;
        },
        5s);
  };
  auto node1 = n2.join(c.nodes[n1].port, *cert_key, cert_pem);
  // A signed ping is answered (n1 took n2 as its peer: retried until then).
  auto first = n2.ping(1);
  BOOST_REQUIRE(until(
      [&] {
        n2.send(node1, n2.ping(1000 + n2.sequence));
        return n2.got->any_from(1000);
      },
      10s));
  n2.send(node1, first); // an older number inside the window: once
  BOOST_CHECK(until(
      [&] {
        return n2.got->has(1);
      },
      5s));
  // The same bytes again: refused.
  n2.send(node1, first);
  BOOST_CHECK(log_has("event=envelope_refused node=n1 peer=n2"));
  BOOST_CHECK(log_has("reason=a replayed envelope (sequence 1"));
  // A changed byte (the nonce 7 becomes 6), another key, no signature.
  auto tampered = n2.ping(7);
  auto at = tampered.find(static_cast<char>(7));
  BOOST_REQUIRE(at != std::string::npos);
  tampered[at] = 6;
  n2.send(node1, tampered);
  auto other = new_key();
  n2.send(node1, n2.ping(8, &other));
  // Signed for another node (n3): moved to n1, refused.
  n2.send(node1, n2.ping(13, nullptr, "n3"));
  v1::Ping plain_ping;
  plain_ping.set_nonce(9);
  n2.send(node1, messages::serialize(messages::make_envelope(
                     v1::PING, "n2", hlc_timestamp{1, 0}, plain_ping)));
  // Then a good one: answered, and the refused ones never were.
  auto good = n2.ping(10);
  n2.send(node1, good);
  BOOST_CHECK(until(
      [&] {
        return n2.got->has(10);
      },
      5s));
  std::this_thread::sleep_for(1100ms); // one refusal line a second
  n2.send(node1, n2.ping(11, &other));
  BOOST_CHECK(log_has("does not verify with its sender's key"));
  BOOST_CHECK(!n2.got->has(6) && !n2.got->has(7));
  BOOST_CHECK(!n2.got->has(8) && !n2.got->has(9) && !n2.got->has(11));
  BOOST_CHECK(!n2.got->has(13));
  // n1 hosts an agent: its session with n2 sends n2 frames, and n2 learns
  // the session's address. Orders to it from n2's process — a fault, an
  // exit — are dropped: the session is not restarted.
  c.instance(n1, "ann", "main");
  caf::actor session;
  BOOST_REQUIRE(until([&] {
    std::lock_guard<std::mutex> guard{n2.got->mtx};
    session = n2.got->session;
    return static_cast<bool>(session);
  }));
  auto respawns = [&] {
    auto st = call<actors::node_status>(c.sys, c.node(n1), 5s,
                                        actors::status_atom::value);
    BOOST_REQUIRE(st);
    return st->respawns;
  };
  auto before = respawns();
  {
    caf::scoped_actor self{n2.sys};
    self->send(session, actors::fail_atom::value);
    self->send_exit(session, caf::exit_reason::user_shutdown);
  }
  std::this_thread::sleep_for(1s);
  BOOST_CHECK_EQUAL(respawns(), before);
  // n1 restarts; n2 (the same run, the same key) proves itself again. Its
  // old envelopes stay refused; new ones are answered.
  c.nodes[n1].proc.signal(SIGTERM);
  BOOST_REQUIRE(c.nodes[n1].proc.wait(10s));
  c.nodes.clear();
  auto port = c.start("n1", {});
  auto again = n2.join(c.nodes[port].port, *cert_key, cert_pem);
  BOOST_REQUIRE(until(
      [&] {
        n2.send(again, n2.ping(5000 + n2.sequence));
        return n2.got->any_from(5000);
      },
      10s));
  {
    std::lock_guard<std::mutex> guard{n2.got->mtx};
    n2.got->nonces.erase(10);
  }
  n2.send(again, good);
  BOOST_CHECK(log_has("reason=a replayed envelope (sequence"));
  n2.send(again, n2.ping(12));
  BOOST_CHECK(until(
      [&] {
        return n2.got->has(12);
      },
      5s));
  BOOST_CHECK(!n2.got->has(10)); // the replay of 10 was not answered
}

// A proven peer (n2) sends n1 versions: its own, with its proof of origin,
// are stored; versions naming n3's replica — without a proof, or with a
// proof n2 signed as n3 — are refused, logged, never stored.
BOOST_AUTO_TEST_CASE(versions_of_a_forged_origin_are_refused) {
  cluster c;
  auto n1 = c.start("n1", {});
  auto& d = c.pki.dir();
  c.pki.node("n2");
  auto cert_key = pki::load_private_key(d + "/node.n2.key");
  BOOST_REQUIRE(cert_key);
  auto cert_pem = pki::load_certificate(d + "/node.n2.crt")->to_pem();
  auto ca = pki::load_certificate(d + "/ca.crt");
  BOOST_REQUIRE(ca);
  actors::tls_config tls;
  tls.certificate = d + "/node.n2.crt";
  tls.private_key = d + "/node.n2.key";
  tls.ca = d + "/ca.crt";
  fake_peer n2{tls};
  auto node1 = n2.join(c.nodes[n1].port, *cert_key, cert_pem);
  BOOST_REQUIRE(until(
      [&] {
        n2.send(node1, n2.ping(1000 + n2.sequence));
        return n2.got->any_from(1000);
      },
      10s));
  auto inst = c.instance(n1, "ann", "main");
  // n2's proofs, signed with the key its greeting bound.
  auto n2_key = std::shared_ptr<const crypto::signing_key>(
      &n2.key, [](const crypto::signing_key*) {});
  auto book_as = [&](const std::string& node, const std::string& bound_to) {
    origin::book::config cfg;
    cfg.node = node;
    cfg.agent = "ann";
    cfg.key = n2_key;
    cfg.binding
        = *origin::bind(bound_to, cert_pem, *cert_key, n2.key.public_key());
    cfg.own = {replica_of(node, agent_partition("ann"))};
    cfg.trust = {&*ca, nullptr};
    return std::make_unique<origin::book>(std::move(cfg));
  };
  auto honest_book = book_as("n2", "n2");
  auto lying_book = book_as("n3", "n3");
  system_physical_clock wall;
  hybrid_logical_clock hlc{wall};
  replica mine{replica_of("n2", agent_partition("ann")), hlc};
  replica theirs{replica_of("n3", agent_partition("ann")), hlc};
  auto fact_of = [](const std::string& key) {
    return engram_record{
        {}, memory_type::semantic, memory_scope::agent("ann"), fact{key, "v"}};
  };
  auto frame = [](const origin::book& by, const replica_delta& delta) {
    v1::DeltaBatch batch;
    messages::to_proto(delta, batch);
    by.prove(delta, batch);
    return batch;
  };
  // One frame: n2's own version (proved) and one of n3's (no proof).
  auto both = *theirs.put(fact_of("origin.forged"));
  join_deltas(both, *mine.put(fact_of("origin.honest")));
  // Then n3's version with a proof n2 signed as n3.
  auto lie = *theirs.put(fact_of("origin.lie"));
  auto keys = [&] {
    std::set<std::string> out;
    for (auto& v : c.read(inst, consistency_level::one))
      if (auto* f = std::get_if<fact>(&v.value.body))
        out.insert(f->key);
    return out;
  };
  // Sent again (new numbers) until taken: a session takes sync frames
  // only once it knows the peer's clock agrees.
  uint64_t seq = 0;
  BOOST_CHECK(until(
      [&] {
        n2.send(node1,
                n2.sync_response(frame(*honest_book, both), "ann", ++seq),
                "ann");
        n2.send(node1, n2.sync_response(frame(*lying_book, lie), "ann", ++seq),
                "ann");
        return keys().count("origin.honest") > 0;
      },
      15s));
  auto log_has = [&](const std::string& text) {
    return until(
        [&] {
          return c.nodes[n1].proc.output().find(text) != std::string::npos;
        },
        5s);
  };
  BOOST_CHECK(log_has("event=origin_refused"));
  BOOST_CHECK(log_has("versions came without a proof of origin"));
  BOOST_CHECK(log_has("the certificate names node 'n2', not 'n3'"));
  auto held = keys();
  BOOST_CHECK(held.count("origin.forged") == 0);
  BOOST_CHECK(held.count("origin.lie") == 0);
}

// n1's write reaches n3 only through n2, after n1 stopped and n2
// restarted: n2 relays it with n1's own proof, restored from its store.
BOOST_AUTO_TEST_CASE(relayed_versions_keep_their_proof_of_origin) {
  cluster c;
  auto a = c.start("n1", {});
  auto b = c.start("n2", {c.nodes[a].port});
  auto on_a = c.instance(a, "ann", "main");
  auto on_b = c.instance(b, "ann", "main");
  c.learn(on_a, engram_record{{},
                              memory_type::semantic,
                              memory_scope::agent("ann"),
                              fact{"relayed.key", "from n1"}});
  BOOST_REQUIRE(until([&] {
    return c.count(on_b) == 1;
  }));
  for (auto i : {a, b}) {
    c.nodes[i].proc.signal(SIGTERM);
    BOOST_REQUIRE(c.nodes[i].proc.wait(10s));
  }
  b = c.start("n2", {});
  c.instance(b, "ann", "main");
  auto n3 = c.start("n3", {c.nodes[b].port});
  auto on_n3 = c.instance(n3, "ann", "main");
  BOOST_CHECK(until([&] {
    return c.count(on_n3) == 1;
  }));
  BOOST_CHECK(c.nodes[n3].proc.output().find("origin_refused")
              == std::string::npos);
  BOOST_CHECK(c.nodes[b].proc.output().find("origin_refused")
              == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
