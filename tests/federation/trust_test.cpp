#include "federation/trust.hpp"

#include <boost/test/unit_test.hpp>

using namespace engram;
using namespace engram::federation;

namespace {

constexpr uint64_t hour = 3'600'000'000ULL;

} // namespace

BOOST_AUTO_TEST_SUITE(trust_models)

BOOST_AUTO_TEST_CASE(uniform_and_per_agent) {
  trust_book uniform{uniform_trust{0.8}};
  BOOST_CHECK_CLOSE(uniform.trust("anyone", 0), 0.8, 1e-9);
  trust_book per{per_agent_trust{{{"alice", 0.9}, {"bob", 0.3}}, 0.1}};
  BOOST_CHECK_CLOSE(per.trust("alice", 0), 0.9, 1e-9);
  BOOST_CHECK_CLOSE(per.trust("bob", 0), 0.3, 1e-9);
  BOOST_CHECK_CLOSE(per.trust("mallory", 0), 0.1, 1e-9); // fallback
}

BOOST_AUTO_TEST_CASE(reputation_rises_falls_and_decays_back) {
  reputation_trust m;
  m.initial = 0.5;
  m.decay = 0.5; // half the distance to `initial` per hour
  m.boost_on_verification = 0.2;
  m.penalty_on_contradiction = 0.3;
  trust_book book{m};
  BOOST_CHECK_CLOSE(book.trust("alice", 0), 0.5, 1e-9);
  book.verified("alice", 0);
  book.verified("alice", 0);
  BOOST_CHECK_CLOSE(book.trust("alice", 0), 0.9, 1e-9);
  // An hour later half of the gain is gone, two hours later three quarters.
  BOOST_CHECK_CLOSE(book.trust("alice", hour), 0.7, 1e-6);
  BOOST_CHECK_CLOSE(book.trust("alice", 2 * hour), 0.6, 1e-6);
  book.contradicted("bob", 0);
  book.contradicted("bob", 0);
  BOOST_CHECK_SMALL(book.trust("bob", 0), 1e-9); // clamped at 0
  BOOST_CHECK_CLOSE(book.trust("bob", hour), 0.25, 1e-6);
  // Verification after decay starts from the decayed value.
  book.verified("alice", hour);
  BOOST_CHECK_CLOSE(book.trust("alice", hour), 0.9, 1e-6);
}

BOOST_AUTO_TEST_CASE(transitive_trust_follows_the_best_path_within_max_hops) {
  transitive_trust m;
  m.direct_trust = {{"bob", 0.9}, {"carol", 0.5}};
  m.trust_decay_per_hop = 0.8;
  m.max_hops = 2;
  trust_book book{m};
  book.declare("bob", {{"dave", 0.5}});
  book.declare("carol", {{"dave", 1.0}, {"erin", 0.9}});
  book.declare("dave", {{"frank", 1.0}});
  BOOST_CHECK_CLOSE(book.trust("bob", 0), 0.9, 1e-9);
  // dave: via bob 0.9 × 0.5 × 0.8 = 0.36, via carol 0.5 × 1 × 0.8 = 0.4.
  BOOST_CHECK_CLOSE(book.trust("dave", 0), 0.4, 1e-9);
  BOOST_CHECK_CLOSE(book.trust("erin", 0), 0.36, 1e-9);
  // frank is three hops away: beyond max_hops.
  BOOST_CHECK_SMALL(book.trust("frank", 0), 1e-12);
  m.max_hops = 3;
  trust_book farther{m};
  farther.declare("bob", {{"dave", 0.5}});
  farther.declare("carol", {{"dave", 1.0}});
  farther.declare("dave", {{"frank", 1.0}});
  BOOST_CHECK_CLOSE(farther.trust("frank", 0), 0.4 * 0.8, 1e-9);
  BOOST_CHECK_SMALL(farther.trust("stranger", 0), 1e-12);
}

BOOST_AUTO_TEST_CASE(bad_models_name_the_field) {
  auto bad = validate(uniform_trust{1.5});
  BOOST_REQUIRE(!bad);
  BOOST_CHECK(bad.error_value().message.find("uniform level")
              != std::string::npos);
  reputation_trust r;
  r.penalty_on_contradiction = -1;
  BOOST_CHECK(!validate(r));
  transitive_trust t;
  t.max_hops = 0;
  BOOST_CHECK(!validate(t));
  BOOST_CHECK(validate(per_agent_trust{{{"a", 0.5}}, 0.0}));
}

BOOST_AUTO_TEST_CASE(apply_trust_reports_scales_and_records_the_hop) {
  engram_record e;
  e.body = fact{"k", "v"};
  e.confidence = 0.9;
  apply_trust(e, "alice", 0.5);
  BOOST_CHECK(e.epistemic == epistemic_status::reported("alice", 0.5));
  BOOST_CHECK_CLOSE(e.confidence, 0.45, 1e-9);
  BOOST_CHECK_EQUAL(e.origin.origin_agent, "alice");
  BOOST_REQUIRE_EQUAL(e.origin.hops.size(), 1u);
  // Passed on again, through a transform: the chain grows, the origin
  // stays.
  apply_trust(e, "bob", 0.8, "redact_pii");
  BOOST_CHECK_EQUAL(e.origin.origin_agent, "alice");
  BOOST_REQUIRE_EQUAL(e.origin.hops.size(), 2u);
  BOOST_CHECK_EQUAL(e.origin.hops[1].agent, "bob");
  BOOST_CHECK_EQUAL(e.origin.hops[1].transform, "redact_pii");
  BOOST_CHECK_CLOSE(e.confidence, 0.36, 1e-9);
}

BOOST_AUTO_TEST_SUITE_END()
