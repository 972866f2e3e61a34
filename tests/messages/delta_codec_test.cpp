#include "messages/codec.hpp"

#include <boost/test/unit_test.hpp>

#include <random>

#include "test_util.hpp"

using namespace engram;
using namespace engram::messages;
using namespace engram::test;

namespace {

// A replica with every content type, a forgotten and an archived engram,
// reported status, provenance, and a forked belief conflict.
struct populated {
  node a{1};
  node b{2};

  populated() {
    auto rich = make_fact("user.name", "Bob",
                          memory_scope::collective("team", {"alpha", "beta"}));
    rich.epistemic = epistemic_status::reported("beta", 0.7);
    rich.origin = provenance{"beta", "conv-9", {{"beta", 0.7, "redact_pii"}}};
    must(a.mem.put(rich));
    must(a.mem.put(make_episode("standup", {{{10, 1}, "greeted"}})));
    must(a.mem.put(make_skill("deploy", {{1, "canary"}, {2, "roll back"}})));
    auto gone = must(a.mem.put(make_fact("secret", "x")));
    must(a.mem.forget(gone.entries.front().id, "asked to"));
    auto kept = must(a.mem.put(make_fact("old", "y")));
    must(a.mem.archive(kept.entries.front().id));
    auto da = must(a.mem.put(make_belief("sky", "color", "blue")));
    auto db = must(b.mem.put(make_belief("sky", "color", "green")));
    must_join(a.mem, db); // forked: two versions of one engram
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(delta_codec)

BOOST_AUTO_TEST_CASE(a_full_state_round_trips_and_joins_identically) {
  populated p;
  auto bytes = encode_delta(p.a.mem.full_state());
  auto decoded = decode_delta(bytes);
  BOOST_REQUIRE_MESSAGE(decoded,
                        (decoded ? "" : decoded.error_value().to_string()));
  node c{3};
  must_join(c.mem, *decoded);
  BOOST_CHECK(c.mem.same_state(p.a.mem));
  // Re-encoding the decoded delta gives the same bytes.
  BOOST_CHECK_EQUAL(encode_delta(*decoded), bytes);
}

BOOST_AUTO_TEST_CASE(replicas_in_the_same_state_encode_byte_identically) {
  populated p;
  node c{3};
  node d{4};
  // c and d reach the same state by different paths.
  must_join(c.mem, p.a.mem.full_state());
  for (auto& entry : p.a.mem.full_state().entries) {
    replica_delta one;
    one.entries.push_back(entry);
    one.context = p.a.mem.context();
    must_join(d.mem, one);
  }
  BOOST_REQUIRE(c.mem.same_state(d.mem));
  BOOST_CHECK_EQUAL(encode_delta(c.mem.full_state()),
                    encode_delta(d.mem.full_state()));
}

BOOST_AUTO_TEST_CASE(a_mutation_delta_round_trips) {
  node a{1};
  node b{2};
  auto d = must(a.mem.put(make_fact("k", std::string(256, 'v'))));
  auto decoded = decode_delta(encode_delta(d));
  BOOST_REQUIRE(decoded);
  must_join(b.mem, *decoded);
  BOOST_CHECK(a.mem.same_state(b.mem));
}

namespace {

v1::DeltaBatch batch_of(const replica_delta& d) {
  v1::DeltaBatch batch;
  to_proto(d, batch);
  return batch;
}

void expect_refused(const v1::DeltaBatch& batch, errc code,
                    const std::string& needle, const limits& bounds = {}) {
  auto res = decode_delta(serialize(batch), bounds);
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == code);
  BOOST_CHECK_MESSAGE(res.error_value().message.find(needle)
                          != std::string::npos,
                      res.error_value().to_string());
}

} // namespace

BOOST_AUTO_TEST_CASE(malformed_deltas_are_refused_naming_the_problem) {
  node a{1};
  // A skill travels as a generic EngramDelta (only plain facts use columns).
  auto good = batch_of(must(a.mem.put(make_skill("k", {{1, "v"}}))));
  BOOST_REQUIRE_EQUAL(good.deltas_size(), 1);
  auto short_id = good;
  short_id.mutable_deltas(0)->set_id("0123456789abcde");
  expect_refused(short_id, errc::invalid_field, "15 bytes");
  auto zero_dot = good;
  zero_dot.mutable_deltas(0)->mutable_dot()->set_counter(0);
  expect_refused(zero_dot, errc::invalid_field, "invalid dot");
  auto bad_type = good;
  bad_type.mutable_deltas(0)->mutable_create()->mutable_full()->set_type(
      static_cast<v1::MemoryType>(42));
  expect_refused(bad_type, errc::invalid_field, "memory type 42");
  auto nan = good;
  nan.mutable_deltas(0)->mutable_create()->mutable_full()->set_confidence(
      std::nan(""));
  expect_refused(nan, errc::invalid_field, "confidence");
  auto no_content = good;
  no_content.mutable_deltas(0)->mutable_create()->mutable_full()->clear_skill();
  expect_refused(no_content, errc::invalid_field, "no content");
  auto update = good;
  update.mutable_deltas(0)->mutable_update()->add_changes()->add_path("fact");
  expect_refused(update, errc::invalid_field, "not a Create");
  auto twice = good;
  auto* clock = twice.mutable_context()->mutable_clock();
  *clock += std::string{"\x01\0\0\0\0\0\0\0\x01", 9};
  *clock += std::string{"\x01\0\0\0\0\0\0\0\x02", 9};
  expect_refused(twice, errc::invalid_field, "twice");
  auto zero = good;
  zero.mutable_context()->set_clock(std::string{"\x01\0\0\0\0\0\0\0\x00", 9});
  expect_refused(zero, errc::invalid_field, "zero counter");
  auto cut = good;
  cut.mutable_context()->set_clock(std::string(5, '\x01'));
  expect_refused(cut, errc::invalid_field, "truncated");
  limits small;
  small.max_elements = 0;
  expect_refused(good, errc::limit_exceeded, "limit", small);
}

BOOST_AUTO_TEST_CASE(plain_facts_travel_in_columns_without_ids) {
  node a{1};
  node b{2};
  replica_delta group;
  for (int i = 0; i < 64; ++i)
    join_deltas(group, must(a.mem.put(make_fact("key" + std::to_string(i),
                                                std::string(256, 'v')))));
  auto batch = batch_of(group);
  BOOST_CHECK_EQUAL(batch.deltas_size(), 0);
  BOOST_REQUIRE_EQUAL(batch.facts_size(), 1);
  BOOST_CHECK_EQUAL(batch.facts(0).key_prefix(), "key");
  BOOST_CHECK_EQUAL(batch.facts(0).value_length(), 256u);
  BOOST_CHECK(batch.facts(0).counter_deltas().empty()); // consecutive dots
  auto bytes = serialize(batch);
  BOOST_CHECK_LT(bytes.size(), 64u * 256u * 105u / 100u);
  auto decoded = decode_delta(bytes);
  BOOST_REQUIRE(decoded);
  must_join(b.mem, *decoded);
  BOOST_CHECK(a.mem.same_state(b.mem));
  BOOST_CHECK_EQUAL(encode_delta(*decoded), bytes);
}

BOOST_AUTO_TEST_CASE(facts_the_columns_cannot_hold_travel_generic) {
  node a{1};
  node b{2};
  a.wall.set(uint64_t{1} << 62); // a clock far beyond the column encoding
  auto far = must(a.mem.put(make_fact("far", "future")));
  auto reported = make_fact("told", "x");
  reported.epistemic = epistemic_status::reported("beta", 0.5);
  replica_delta group = far;
  join_deltas(group, must(a.mem.put(reported)));
  auto batch = batch_of(group);
  BOOST_CHECK_EQUAL(batch.deltas_size(), 2);
  BOOST_CHECK_EQUAL(batch.facts_size(), 0);
  auto decoded = decode_delta(serialize(batch));
  BOOST_REQUIRE(decoded);
  must_join(b.mem, *decoded);
  BOOST_CHECK(a.mem.same_state(b.mem));
}

BOOST_AUTO_TEST_CASE(malformed_fact_columns_are_refused) {
  node a{1};
  replica_delta group;
  for (int i = 0; i < 3; ++i)
    join_deltas(group, must(a.mem.put(make_fact("k" + std::to_string(i),
                                                "value" + std::to_string(i)))));
  auto good = batch_of(group);
  BOOST_REQUIRE_EQUAL(good.facts_size(), 1);
  BOOST_REQUIRE(decode_delta(serialize(good)));
  auto more = good;
  more.mutable_facts(0)->set_count(4);
  expect_refused(more, errc::invalid_field, "shorter than their count");
  auto fewer = good;
  fewer.mutable_facts(0)->set_count(2);
  expect_refused(fewer, errc::invalid_field, "more data than their count");
  auto overrun = good;
  overrun.mutable_facts(0)->set_value_length(1000);
  expect_refused(overrun, errc::invalid_field, "overrun");
  auto empty_key = good;
  empty_key.mutable_facts(0)->set_key_prefix("");
  empty_key.mutable_facts(0)->set_key_suffixes("");
  empty_key.mutable_facts(0)->set_key_suffix_lengths(std::string(3, '\0'));
  expect_refused(empty_key, errc::invalid_field, "fact key");
  auto confident = good;
  confident.mutable_facts(0)->set_confidence(1.5);
  expect_refused(confident, errc::invalid_field, "confidence");
  auto nan = good;
  nan.mutable_facts(0)->set_confidence(std::nan(""));
  expect_refused(nan, errc::invalid_field, "confidence");
  auto lonely = good;
  lonely.mutable_facts(0)->set_scope_kind(v1::SCOPE_KIND_COLLECTIVE);
  expect_refused(lonely, errc::invalid_field, "no members");
  auto no_writer = good;
  no_writer.mutable_facts(0)->set_replica(0);
  expect_refused(no_writer, errc::invalid_field, "replica 0");
  auto huge = good;
  huge.mutable_facts(0)->set_count(1'000'000);
  limits small;
  small.max_elements = 1000;
  expect_refused(huge, errc::limit_exceeded, "limit", small);
  auto bad_varint = good;
  bad_varint.mutable_facts(0)->set_updated(std::string(12, '\xff'));
  expect_refused(bad_varint, errc::invalid_field, "shorter than their count");
}

BOOST_AUTO_TEST_CASE(a_sync_response_carries_the_missing_deltas_once) {
  populated p;
  node c{3};
  must_join(c.mem, must(c.mem.put(make_fact("own", "x")))); // c has its own
  auto missing = p.a.mem.delta_since(c.mem.context());
  auto response = make_sync_response(missing, p.a.mem.context());
  BOOST_CHECK(!response.batch().has_context()); // the clock covers it
  v1::SyncResponse parsed;
  BOOST_REQUIRE(parse(serialize(response), parsed, {}, "SyncResponse"));
  auto delta = from_proto(parsed, limits{});
  BOOST_REQUIRE(delta);
  must_join(c.mem, *delta);
  // c now holds a's state plus its own engram.
  p.a.mem.for_each([&](const engram_id& id, const std::vector<version>& vs) {
    auto held = c.mem.versions(id);
    BOOST_REQUIRE(held);
    BOOST_CHECK_EQUAL(held->size(), vs.size());
  });
  BOOST_CHECK_EQUAL(c.mem.size(), p.a.mem.size() + 1);
  BOOST_CHECK(c.mem.context().clock().dominates(p.a.mem.context().clock()));
}

BOOST_AUTO_TEST_CASE(causal_contexts_round_trip_with_runs_and_gaps) {
  std::mt19937_64 rng{5};
  for (int round = 0; round < 500; ++round) {
    std::vector<dot> dots;
    for (int i = 0, n = int(rng() % 40); i < n; ++i)
      dots.push_back(dot{rng() % 3 + 1, rng() % 60 + 1});
    auto ctx = causal_context{dots};
    v1::CausalContext wire;
    to_proto(ctx, wire);
    auto back = from_proto(wire, limits{});
    BOOST_REQUIRE(back);
    BOOST_REQUIRE(*back == ctx);
  }
  v1::CausalContext hostile;
  hostile.add_cloud()->set_replica(1);
  hostile.mutable_cloud(0)->set_counters(
      std::string{"\x03\xff\xff\xff\x0f", 5});
  limits small;
  small.max_elements = 1000;
  auto refused = from_proto(hostile, small);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::limit_exceeded);
}

BOOST_AUTO_TEST_CASE(nesting_beyond_the_limit_is_refused) {
  node a{1};
  auto batch = batch_of(must(a.mem.put(make_skill("k", {{1, "v"}}))));
  limits shallow;
  shallow.max_nesting = 2; // a Create sits 3 messages deep
  expect_refused(batch, errc::decode_failed, "truncated or not valid", shallow);
}

BOOST_AUTO_TEST_CASE(a_refused_delta_never_reaches_the_replica) {
  node a{1};
  node b{2};
  must_join(b.mem, must(b.mem.put(make_fact("mine", "1"))));
  auto bytes = encode_delta(must(a.mem.put(make_fact("k", "v"))));
  for (size_t cut = 1; cut < bytes.size(); cut += 7) {
    auto res = decode_delta(bytes.substr(0, cut));
    if (res) // a cut at a field boundary can decode: the join must then
             // still refuse or apply it whole
      (void)b.mem.join(*res);
  }
  auto garbage = bytes;
  garbage[garbage.size() / 2] ^= 0x5a;
  if (auto res = decode_delta(garbage); res)
    (void)b.mem.join(*res);
  // b still holds its own engram, intact.
  auto mine = derive_id(memory_scope::agent("alpha"), fact{"mine", ""});
  BOOST_REQUIRE(b.mem.get(mine));
  BOOST_CHECK_EQUAL(std::get<fact>(b.mem.get(mine)->body).value, "1");
  // Whatever was accepted is valid: the store never holds a corrupt engram.
  b.mem.for_each([](const engram_id& id, const std::vector<version>& vs) {
    for (auto& v : vs) {
      BOOST_CHECK(v.value.id == id);
      BOOST_CHECK(validate(v.value));
    }
  });
}

BOOST_AUTO_TEST_SUITE_END()
