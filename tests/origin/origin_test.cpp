// Proofs of origin: Merkle trees give the signer's root from any subset
// of leaves and the siblings beside them (also narrowed again by a relay);
// a version's hash covers every field; a book proves its node's versions,
// keeps what it checked and relays it with the origin's own proof; forged,
// tampered, unproven, revoked and out-of-validity versions are dropped.

#include "core/hlc.hpp"
#include "core/replica.hpp"
#include "messages/codec.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <random>

#include "crypto/sign.hpp"
#include "origin/book.hpp"
#include "origin/origin.hpp"
#include "pki/pki.hpp"

using namespace engram;

namespace {

template<class T>
T must(expected<T> x) {
  if (!x)
    throw std::runtime_error(x.error_value().message);
  return std::move(*x);
}

uint64_t now_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

origin::digest digest_of(int i) {
  origin::digest d{};
  d[0] = static_cast<unsigned char>(i);
  d[1] = static_cast<unsigned char>(i >> 8);
  d[15] = 0x5a;
  return d;
}

std::vector<uint32_t> subset(std::mt19937& rng, uint32_t n,
                             const std::vector<uint32_t>& from) {
  std::vector<uint32_t> out;
  for (auto p : from)
    if (rng() % 3 != 0)
      out.push_back(p);
  if (out.empty())
    out.push_back(from[rng() % from.size()]);
  (void)n;
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(origin_trees)

BOOST_AUTO_TEST_CASE(any_subset_and_its_siblings_give_the_signers_root) {
  std::mt19937 rng{7};
  for (uint32_t n = 1; n <= 40; ++n) {
    std::vector<origin::digest> leaves;
    for (uint32_t i = 0; i < n; ++i)
      leaves.push_back(digest_of(static_cast<int>(i)));
    auto full = origin::tree::of(leaves);
    std::vector<uint32_t> all(n);
    for (uint32_t i = 0; i < n; ++i)
      all[i] = i;
    for (int round = 0; round < 5; ++round) {
      auto s = subset(rng, n, all);
      auto sib = must(full.siblings(s));
      std::vector<origin::digest> known;
      for (auto p : s)
        known.push_back(leaves[p]);
      auto part = must(origin::tree::partial(n, s, known, sib));
      BOOST_TEST(part.root() == full.root());
      // A relay narrows what it holds again.
      auto s2 = subset(rng, n, s);
      auto sib2 = must(part.siblings(s2));
      std::vector<origin::digest> known2;
      for (auto p : s2)
        known2.push_back(leaves[p]);
      auto part2 = must(origin::tree::partial(n, s2, known2, sib2));
      BOOST_TEST(part2.root() == full.root());
      if (!sib.empty()) {
        auto changed = sib;
        changed[rng() % changed.size()] ^= 0x01;
        auto other = must(origin::tree::partial(n, s, known, changed));
        BOOST_TEST(!(other.root() == full.root()));
        BOOST_TEST(!origin::tree::partial(n, s, known, sib.substr(16)));
      }
      BOOST_TEST(
          !origin::tree::partial(n, s, known, sib + std::string(16, 'x')));
      auto moved = known;
      moved.front()[3] ^= 0x80;
      BOOST_TEST(!(must(origin::tree::partial(n, s, moved, sib)).root()
                   == full.root()));
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_shapes_are_refused) {
  std::vector<origin::digest> one{digest_of(1)};
  BOOST_TEST(!origin::tree::partial(0, {0}, one, ""));
  BOOST_TEST(!origin::tree::partial(4, {}, {}, ""));
  BOOST_TEST(!origin::tree::partial(4, {4}, one, std::string(32, 'a')));
  BOOST_TEST(!origin::tree::partial(4, {2, 1}, {digest_of(1), digest_of(2)},
                                    std::string(16, 'a')));
  BOOST_TEST(!origin::tree::partial(4, {1, 1}, {digest_of(1), digest_of(2)},
                                    std::string(16, 'a')));
  BOOST_TEST(!origin::tree::partial(4, {1}, one, std::string(17, 'a')));
  BOOST_TEST(!origin::tree::partial(origin::max_leaves + 1, {1}, one, ""));
  auto t = origin::tree::of({digest_of(1), digest_of(2), digest_of(3)});
  auto part = must(
      origin::tree::partial(3, {0}, {digest_of(1)}, must(t.siblings({0}))));
  BOOST_TEST(!part.siblings({2})); // not known to this tree
}

BOOST_AUTO_TEST_CASE(a_versions_hash_covers_every_field) {
  version base;
  base.tag = dot{11, 3};
  base.value.id = engram_id{1, 2};
  base.value.scope = memory_scope::collective("fed", {"a", "b"});
  base.value.body = fact{"k", "v"};
  base.value.origin.origin_agent = "alpha";
  base.value.origin.hops.push_back({"beta", 0.5, "summary", false});
  base.value.created = {100, 1};
  base.value.updated = {200, 2};
  std::vector<std::function<void(version&)>> changes = {
      [](version& v) {
        v.tag.replica = 12;
      },
      [](version& v) {
        v.tag.counter = 4;
      },
      [](version& v) {
        v.resolves = 9;
      },
      [](version& v) {
        v.value.id.lo = 3;
      },
      [](version& v) {
        v.value.type = memory_type::episodic;
      },
      [](version& v) {
        v.value.scope = memory_scope::collective("fed", {"a"});
      },
      [](version& v) {
        v.value.scope = memory_scope::agent("fed");
      },
      [](version& v) {
        v.value.body = fact{"k", "w"};
      },
      [](version& v) {
        v.value.body = fact{"kv", ""};
      },
      [](version& v) {
        v.value.body = belief{"k", "v", ""};
      },
      [](version& v) {
        v.value.confidence = 0.5;
      },
      [](version& v) {
        v.value.epistemic = epistemic_status::inferred();
      },
      [](version& v) {
        v.value.epistemic.source = "x";
      },
      [](version& v) {
        v.value.epistemic.trust = 0.9;
      },
      [](version& v) {
        v.value.origin.origin_agent = "alphb";
      },
      [](version& v) {
        v.value.origin.origin_instance = "i";
      },
      [](version& v) {
        v.value.origin.hops[0].trust = 0.6;
      },
      [](version& v) {
        v.value.origin.hops[0].transform = "";
      },
      [](version& v) {
        v.value.origin.hops[0].read_only = true;
      },
      [](version& v) {
        v.value.origin.hops.clear();
      },
      [](version& v) {
        v.value.created.logical = 2;
      },
      [](version& v) {
        v.value.updated.wall_us = 201;
      },
      [](version& v) {
        v.value.archived = true;
      },
      [](version& v) {
        v.value.tombstone = true;
      },
      [](version& v) {
        v.value.forget_reason = "r";
      },
  };
  std::set<origin::digest> seen{origin::leaf(base)};
  for (auto& change : changes) {
    auto v = base;
    change(v);
    BOOST_TEST(seen.insert(origin::leaf(v)).second);
  }
  BOOST_TEST(origin::leaf(base) == origin::leaf(base));
}

BOOST_AUTO_TEST_SUITE_END()

// -- books
// ----------------------------------------------------------------------

namespace {

struct cluster {
  pki::private_key ca_key = must(pki::private_key::generate());
  pki::certificate ca = must(pki::make_ca(ca_key, "test"));
  manual_clock wall{now_us()};
  hybrid_logical_clock hlc{wall};

  struct node_keys {
    std::string id;
    pki::certificate cert;
    pki::private_key key;
    std::shared_ptr<const crypto::signing_key> signer;
  };

  node_keys node(const std::string& id, pki::issue_options opts = {}) {
    auto key = must(pki::private_key::generate());
    auto cert = must(pki::issue(ca, ca_key, pki::role::node, id, key, opts));
    auto signer = std::make_shared<const crypto::signing_key>(
        must(crypto::signing_key::generate()));
    return {id, std::move(cert), std::move(key), std::move(signer)};
  }

  std::unique_ptr<origin::book>
  book_of(const node_keys& n, const pki::revocation_list* crl = nullptr) {
    origin::book::config cfg;
    cfg.node = n.id;
    cfg.agent = "alpha";
    cfg.key = n.signer;
    cfg.binding = must(
        origin::bind(n.id, n.cert.to_pem(), n.key, n.signer->public_key()));
    cfg.own = {replica_of(n.id, agent_partition("alpha"))};
    cfg.trust = {&ca, crl};
    return std::make_unique<origin::book>(std::move(cfg));
  }
};

replica_id replica_of_node(const std::string& node) {
  return replica_of(node, agent_partition("alpha"));
}

// What a receiver decodes from a frame carrying `delta` proved by `by`.
struct frame {
  v1::DeltaBatch batch;
  replica_delta decoded;
};

frame send(const origin::book& by, const replica_delta& delta,
           size_t expect_unproven = 0) {
  frame f;
  messages::to_proto(delta, f.batch);
  BOOST_TEST(by.prove(delta, f.batch) == expect_unproven);
  // Through the bytes, as the wire carries it.
  v1::DeltaBatch wire;
  BOOST_REQUIRE(wire.ParseFromString(messages::serialize(f.batch)));
  f.batch = wire;
  f.decoded = must(messages::from_proto(wire, messages::limits{}));
  return f;
}

size_t versions(const replica_delta& d) { return d.version_count(); }

replica_delta writes(replica& r, int n, const std::string& prefix = "k") {
  replica_delta all;
  for (int i = 0; i < n; ++i)
    join_deltas(
        all, must(r.put(engram_record{{},
                                      memory_type::semantic,
                                      memory_scope::agent("alpha"),
                                      fact{prefix + std::to_string(i), "v"}})));
  return all;
}

} // namespace

BOOST_AUTO_TEST_SUITE(origin_books)

BOOST_AUTO_TEST_CASE(versions_are_proved_relayed_and_restored) {
  cluster c;
  auto n1 = c.node("n1");
  auto n2 = c.node("n2");
  auto n3 = c.node("n3");
  auto b1 = c.book_of(n1);
  auto b2 = c.book_of(n2);
  auto b3 = c.book_of(n3);
  replica r1{replica_of_node("n1"), c.hlc};
  auto delta = writes(r1, 5);
  auto direct = send(*b1, delta);
  BOOST_TEST(direct.batch.origins_size() == 1);
  BOOST_TEST(direct.batch.origin_keys_size() == 1);
  auto got = must(b2->check(direct.batch, direct.decoded));
  BOOST_TEST(got.dropped == 0u);
  BOOST_TEST(versions(direct.decoded) == 5u);
  BOOST_TEST(b2->held() == 5u);
  // n2 relays all of it, then two of the versions, with n1's proof.
  auto relayed = send(*b2, direct.decoded);
  BOOST_TEST(relayed.batch.origins(0).node() == "n1");
  BOOST_TEST(must(b3->check(relayed.batch, relayed.decoded)).dropped == 0u);
  replica_delta two;
  two.entries = {direct.decoded.entries[1], direct.decoded.entries[3]};
  two.context = own_dots(two);
  auto narrowed = send(*b2, two);
  BOOST_TEST(!narrowed.batch.origins(0).siblings().empty());
  auto b4 = c.book_of(c.node("n4"));
  BOOST_TEST(must(b4->check(narrowed.batch, narrowed.decoded)).dropped == 0u);
  BOOST_TEST(b4->held() == 2u);
  // What n2 stored restores its proofs: it relays them after a restart.
  auto stored = b2->take_unsaved();
  BOOST_TEST(stored.size() == 2u); // the proof and n1's key
  BOOST_TEST(b2->take_unsaved().empty());
  auto restarted = c.book_of(n2);
  BOOST_TEST(restarted->restore(stored).empty());
  auto again = send(*restarted, direct.decoded);
  BOOST_TEST(must(b3->check(again.batch, again.decoded)).dropped == 0u);
  // A node's own versions, sent back to it, are taken (and proved afresh).
  auto back = send(*b2, direct.decoded);
  BOOST_TEST(must(b1->check(back.batch, back.decoded)).dropped == 0u);
  BOOST_TEST(b1->held() == 0u);
}

BOOST_AUTO_TEST_CASE(forged_origins_are_dropped) {
  cluster c;
  auto n1 = c.node("n1");
  auto n2 = c.node("n2");
  auto n3 = c.node("n3");
  auto b2 = c.book_of(n2);
  auto b3 = c.book_of(n3);
  // n2 writes under n1's replica id: it has no proof of it.
  replica fake1{replica_of_node("n1"), c.hlc};
  replica r2{replica_of_node("n2"), c.hlc};
  auto forged = writes(fake1, 2, "forged");
  auto honest = writes(r2, 1, "honest");
  join_deltas(forged, honest);
  auto f = send(*b2, forged, 2);
  auto got = must(b3->check(f.batch, f.decoded));
  BOOST_TEST(got.dropped == 2u);
  BOOST_TEST(!got.reasons.empty());
  BOOST_TEST(versions(f.decoded) == 1u);
  BOOST_TEST(!f.decoded.context.contains(dot{replica_of_node("n1"), 1}));
  BOOST_TEST(f.decoded.context.contains(dot{replica_of_node("n2"), 1}));

  // n2 signs a tree of n1's versions with its own key, as n1.
  auto as_n1 = writes(fake1, 1, "as-n1");
  origin::book::config cfg;
  cfg.node = "n1";
  cfg.agent = "alpha";
  cfg.key = n2.signer;
  cfg.own = {replica_of_node("n1")};
  cfg.trust = {&c.ca, nullptr};
  // ... its binding made with its own certificate: it names n2.
  cfg.binding = must(
      origin::bind("n1", n2.cert.to_pem(), n2.key, n2.signer->public_key()));
  origin::book liar{cfg};
  auto lie = send(liar, as_n1);
  got = must(b3->check(lie.batch, lie.decoded));
  BOOST_TEST(got.dropped == 1u);
  BOOST_TEST(got.reasons.front().find("names node 'n2'") != std::string::npos,
             got.reasons.front());
  // ... or bound to n2, the proof naming n1's replica as n2's.
  cfg.node = "n2";
  cfg.binding = must(
      origin::bind("n2", n2.cert.to_pem(), n2.key, n2.signer->public_key()));
  origin::book liar2{cfg};
  lie = send(liar2, as_n1);
  got = must(b3->check(lie.batch, lie.decoded));
  BOOST_TEST(got.dropped == 1u);
  BOOST_TEST(got.reasons.front().find("is not one of n2's")
                 != std::string::npos,
             got.reasons.front());
}

BOOST_AUTO_TEST_CASE(tampered_revoked_and_foreign_proofs_are_dropped) {
  cluster c;
  auto n1 = c.node("n1");
  auto n2 = c.node("n2");
  auto b1 = c.book_of(n1);
  auto b2 = c.book_of(n2);
  replica r1{replica_of_node("n1"), c.hlc};
  auto delta = writes(r1, 3);
  // A value changed after it was proved.
  auto f = send(*b1, delta);
  auto& body = std::get<fact>(f.decoded.entries[1].versions[0].value.body);
  body.value = "changed";
  auto got = must(b2->check(f.batch, f.decoded));
  BOOST_TEST(got.dropped == 3u); // the tree's root no longer verifies
  BOOST_TEST(got.reasons.front().find("signature does not verify")
             != std::string::npos);
  // A signature byte flipped.
  f = send(*b1, delta);
  (*f.batch.mutable_origins(0)->mutable_signature())[5] ^= 1;
  BOOST_TEST(must(b2->check(f.batch, f.decoded)).dropped == 3u);
  // n1's certificate revoked.
  auto crl = must(pki::revoke(c.ca, c.ca_key, {n1.cert}));
  auto b3 = c.book_of(c.node("n3"), &crl);
  f = send(*b1, delta);
  got = must(b3->check(f.batch, f.decoded));
  BOOST_TEST(got.dropped == 3u);
  BOOST_TEST(got.reasons.front().find("revoked") != std::string::npos,
             got.reasons.front());
  // A node of another cluster's CA.
  cluster other;
  auto stranger = other.node("n1");
  auto bs = other.book_of(stranger);
  f = send(*bs, delta);
  BOOST_TEST(must(b2->check(f.batch, f.decoded)).dropped == 3u);
  // Written after its certificate expired (a stolen key of the past).
  pki::issue_options short_lived;
  short_lived.lifetime = std::chrono::hours{1};
  auto n5 = c.node("n5", short_lived);
  auto b5 = c.book_of(n5);
  c.wall.advance(uint64_t{2} * 3600 * 1'000'000);
  replica r5{replica_of_node("n5"), c.hlc};
  f = send(*b5, writes(r5, 1));
  got = must(b2->check(f.batch, f.decoded));
  BOOST_TEST(got.dropped == 1u);
  BOOST_TEST(got.reasons.front().find("after its certificate's validity")
                 != std::string::npos,
             got.reasons.front());
}

BOOST_AUTO_TEST_CASE(proofs_of_superseded_versions_are_pruned) {
  cluster c;
  auto n1 = c.node("n1");
  auto b1 = c.book_of(n1);
  auto b2 = c.book_of(c.node("n2"));
  replica r1{replica_of_node("n1"), c.hlc};
  auto first = send(*b1, writes(r1, 2, "a"));
  auto second = send(*b1, writes(r1, 2, "b"));
  must(b2->check(first.batch, first.decoded));
  must(b2->check(second.batch, second.decoded));
  BOOST_TEST(b2->held() == 4u);
  BOOST_TEST(b2->take_unsaved().size() == 3u); // two proofs, one key
  std::vector<dot> live;
  for (auto& e : second.decoded.entries)
    for (auto& v : e.versions)
      live.push_back(v.tag);
  auto all_live = [&](const std::function<void(const dot&)>& f) {
    for (auto& d : live)
      f(d);
  };
  // Not merged yet (not in the replica's context): nothing goes.
  BOOST_TEST(b2->prune(all_live, causal_context{}).empty());
  BOOST_TEST(b2->held() == 4u);
  // Merged, the first frame's superseded: its proof goes.
  auto seen = first.decoded.context;
  seen.join(second.decoded.context);
  auto gone = b2->prune(all_live, seen);
  BOOST_TEST(gone.size() == 1u);
  BOOST_TEST(b2->held() == 2u);
  BOOST_TEST(!b2->prune_due(2));
}

BOOST_AUTO_TEST_CASE(a_dot_carried_twice_or_named_twice_is_not_taken) {
  cluster c;
  auto n1 = c.node("n1");
  auto b1 = c.book_of(n1);
  auto b2 = c.book_of(c.node("n2"));
  auto b3 = c.book_of(c.node("n3"));
  replica r1{replica_of_node("n1"), c.hlc};
  auto genuine = send(*b1, writes(r1, 1, "real"));
  must(b2->check(genuine.batch, genuine.decoded));
  // n2 relays the genuine version with n1's proof, and a forged version of
  // another engram under the same dot.
  replica fake{replica_of_node("n1"), c.hlc};
  auto forged = writes(fake, 1, "forged");
  auto both = genuine.decoded;
  join_deltas(both, forged);
  BOOST_REQUIRE(both.version_count() == 2u);
  auto f = send(*b2, both, 2); // n2 cannot prove a dot twice either
  auto got = must(b3->check(f.batch, f.decoded));
  BOOST_TEST(got.dropped == 2u, "both versions of the dot are dropped");
  BOOST_TEST(f.decoded.version_count() == 0u);
  // The writer itself is not fooled into signing the forgery as its own.
  auto back = send(*b2, both, 2);
  BOOST_TEST(must(b1->check(back.batch, back.decoded)).dropped == 2u);
  // A proof naming one version twice.
  auto two = send(*b1, writes(r1, 2, "twice"));
  auto& p = *two.batch.mutable_origins(0);
  p.set_counters(1, p.counters(0));
  got = must(b3->check(two.batch, two.decoded));
  BOOST_TEST(got.dropped == 2u);
}

BOOST_AUTO_TEST_CASE(a_narrowed_delta_still_joins) {
  cluster c;
  auto n1 = c.node("n1");
  auto b1 = c.book_of(n1);
  auto b3 = c.book_of(c.node("n3"));
  // n1's proven versions of two engrams, and an unproven later one of a
  // third from the same replica: only the unproven one goes, the rest
  // joins a replica (its contexts still cover what it carries).
  replica r1{replica_of_node("n1"), c.hlc};
  auto proven = writes(r1, 2, "ok");
  auto f = send(*b1, proven);
  auto extra = writes(r1, 1, "unproven");
  v1::DeltaBatch more;
  messages::to_proto(extra, more);
  for (auto& d : more.deltas())
    *f.batch.add_deltas() = d;
  for (auto& cols : more.facts())
    *f.batch.add_facts() = cols;
  auto all = f.decoded;
  join_deltas(all, extra);
  auto got = must(b3->check(f.batch, all));
  BOOST_TEST(got.dropped == 1u);
  BOOST_TEST(all.version_count() == 2u);
  replica r3{replica_of_node("n3"), c.hlc};
  BOOST_TEST(r3.join(all).has_value());
  BOOST_TEST(r3.size() == 2u);
}

BOOST_AUTO_TEST_CASE(frames_that_cannot_be_narrowed_and_bad_records) {
  cluster c;
  auto b2 = c.book_of(c.node("n2"));
  // An unproven version deep inside a long contiguous context: refused as
  // a whole rather than a context of 100 000 loose dots.
  replica fake{replica_of_node("n1"), c.hlc};
  auto delta = writes(fake, 1);
  vector_clock long_run;
  long_run.set(replica_of_node("n1"), 100'000);
  delta.context = causal_context::from_parts(long_run, {});
  v1::DeltaBatch batch;
  messages::to_proto(delta, batch);
  auto decoded = must(messages::from_proto(batch, messages::limits{}));
  BOOST_TEST(!b2->check(batch, decoded));
  // Stored records that do not decode are named for deletion.
  auto bad = b2->restore(
      {{"p/00", "not a proof"}, {"k/00", "not a key"}, {"x/00", ""}});
  BOOST_TEST(bad.size() == 3u);
  BOOST_TEST(b2->held() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
