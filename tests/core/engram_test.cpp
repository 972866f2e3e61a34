#include "core/engram.hpp"
#include "core/replica.hpp"

#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>

#include "test_util.hpp"

using namespace engram;
using namespace engram::test;

BOOST_AUTO_TEST_SUITE(engram_model)

BOOST_AUTO_TEST_CASE(ids_round_trip_through_hex_and_refuse_garbage) {
  engram_id id{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  auto text = id.to_string();
  BOOST_CHECK_EQUAL(text, "0123456789abcdeffedcba9876543210");
  auto parsed = engram_id::parse(text);
  BOOST_REQUIRE(parsed);
  BOOST_CHECK(*parsed == id);
  auto short_id = engram_id::parse("abc");
  BOOST_REQUIRE(!short_id);
  BOOST_CHECK(short_id.error_value().code == errc::parse_error);
  auto bad = engram_id::parse("0123456789abcdeffedcba987654321g");
  BOOST_REQUIRE(!bad);
  BOOST_CHECK(bad.error_value().message.find("position 31")
              != std::string::npos);
}

BOOST_AUTO_TEST_CASE(keyed_content_derives_the_same_id_in_the_same_scope) {
  auto scope = memory_scope::agent("alpha");
  auto a = derive_id(scope, fact{"user.name", "Bob"});
  auto b = derive_id(scope, fact{"user.name", "Alice"});
  auto c = derive_id(memory_scope::agent("beta"), fact{"user.name", "Bob"});
  BOOST_CHECK(a == b); // same entity, whatever the value
  BOOST_CHECK(a != c); // other scope, other engram
  auto b1 = derive_id(scope, belief{"sky", "color", "blue"});
  auto b2 = derive_id(scope, belief{"sky", "color", "green"});
  BOOST_CHECK(b1 == b2);
  BOOST_CHECK(b1 != a);
}

BOOST_AUTO_TEST_CASE(scopes_validate_their_ids_and_members) {
  BOOST_CHECK(memory_scope::instance("conv-1").validate());
  BOOST_CHECK(memory_scope::universal().validate());
  auto empty_agent = memory_scope::agent("").validate();
  BOOST_REQUIRE(!empty_agent);
  BOOST_CHECK(empty_agent.error_value().code == errc::empty_id);
  auto lonely = memory_scope::collective("team", {}).validate();
  BOOST_REQUIRE(!lonely);
  BOOST_CHECK(lonely.error_value().code == errc::empty_collective);
  BOOST_CHECK(lonely.error_value().message.find("team") != std::string::npos);
  auto team = memory_scope::collective("team", {"b", "a", "b"});
  BOOST_REQUIRE(team.validate());
  BOOST_CHECK_EQUAL(team.members().size(), 2u);
  BOOST_CHECK_EQUAL(team.members().front(), "a");
  BOOST_CHECK_EQUAL(team.to_string(), "Collective{team, members=[a, b]}");
}

BOOST_AUTO_TEST_CASE(scope_defaults_follow_the_spec_and_can_be_overridden) {
  auto defaults = scope_defaults::spec();
  auto inst = defaults.resolve(memory_type::instant, "alpha", "conv-7");
  BOOST_REQUIRE(inst);
  BOOST_CHECK(*inst == memory_scope::instance("conv-7"));
  auto epi = defaults.resolve(memory_type::episodic, "alpha", "conv-7");
  BOOST_CHECK(*epi == memory_scope::instance("conv-7"));
  auto sem = defaults.resolve(memory_type::semantic, "alpha", "conv-7");
  BOOST_CHECK(*sem == memory_scope::agent("alpha"));
  auto proc = defaults.resolve(memory_type::procedural, "alpha", "conv-7");
  BOOST_CHECK(*proc == memory_scope::agent("alpha"));
  // The spec's override: share skills across an agent group.
  defaults.procedural = memory_scope::collective("project", {"alpha", "beta"});
  proc = defaults.resolve(memory_type::procedural, "alpha", "conv-7");
  BOOST_REQUIRE(proc);
  BOOST_CHECK(proc->kind() == scope_kind::collective);
  // A placeholder cannot resolve without the learner's id.
  auto bad = defaults.resolve(memory_type::semantic, "", "conv-7");
  BOOST_REQUIRE(!bad);
  BOOST_CHECK(bad.error_value().code == errc::empty_id);
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_with_a_clear_error) {
  manual_clock wall{1000};
  hybrid_logical_clock hlc{wall};
  replica r{1, hlc};
  auto check_refused = [&](engram_record e, errc code, const char* needle) {
    auto res = r.put(std::move(e));
    BOOST_REQUIRE(!res);
    BOOST_CHECK(res.error_value().code == code);
    BOOST_CHECK_MESSAGE(res.error_value().message.find(needle)
                            != std::string::npos,
                        res.error_value().to_string());
  };
  check_refused(make_fact("k", "v", memory_scope::agent("alpha"), 1.5),
                errc::invalid_confidence, "[0, 1]");
  check_refused(make_fact("k", "v", memory_scope::agent("alpha"), -0.1),
                errc::invalid_confidence, "[0, 1]");
  check_refused(make_fact("k", "v", memory_scope::agent("alpha"),
                          std::numeric_limits<double>::quiet_NaN()),
                errc::invalid_confidence, "confidence");
  check_refused(make_fact("", "v"), errc::empty_id, "fact key");
  check_refused(make_fact("k", "v", memory_scope::agent("")), errc::empty_id,
                "agent id");
  check_refused(make_fact("k", "v", memory_scope::collective("team", {})),
                errc::empty_collective, "no members");
  check_refused(make_belief("sky", "", "blue"), errc::empty_id,
                "belief relation");
  auto reported = make_fact("k", "v");
  reported.epistemic = epistemic_status::reported("beta", 2.0);
  check_refused(reported, errc::invalid_confidence, "trust");
  // Keys and texts are UTF-8; a fact's value is bytes.
  check_refused(make_fact("k\xff", "v"), errc::invalid_argument,
                "fact key is not valid UTF-8");
  check_refused(make_belief("sky", "color", "bl\xc3"), errc::invalid_argument,
                "belief object is not valid UTF-8");
  auto unknown = r.forget(engram_id{1, 2}, "why");
  BOOST_REQUIRE(!unknown);
  BOOST_CHECK(unknown.error_value().code == errc::unknown_engram);
  BOOST_CHECK_EQUAL(r.size(), 0u); // nothing was stored
}

BOOST_AUTO_TEST_CASE(content_hash_ignores_timestamps_but_not_content) {
  auto a = make_fact("k", "v");
  auto b = a;
  b.updated = {99, 1};
  b.origin.origin_agent = "someone";
  BOOST_CHECK_EQUAL(content_hash(a), content_hash(b));
  b.confidence = 0.5;
  BOOST_CHECK_NE(content_hash(a), content_hash(b));
  auto c = make_fact("k", "w");
  BOOST_CHECK_NE(content_hash(a), content_hash(c));
  // Length-prefixing: ("ab","c") and ("a","bc") differ.
  BOOST_CHECK_NE(content_hash(make_fact("ab", "c")),
                 content_hash(make_fact("a", "bc")));
}

BOOST_AUTO_TEST_CASE(a_facts_value_is_bytes) {
  manual_clock wall{1000};
  hybrid_logical_clock hlc{wall};
  replica r{1, hlc};
  auto put = r.put(make_fact("bytes", std::string{"\xff\x00\xfe", 3}));
  BOOST_REQUIRE(put);
  auto back = r.get(put->entries.front().id);
  BOOST_REQUIRE(back);
  BOOST_CHECK_EQUAL(std::get<fact>(back->body).value,
                    (std::string{"\xff\x00\xfe", 3}));
}

BOOST_AUTO_TEST_CASE(utf8_is_checked_strictly) {
  BOOST_CHECK(is_utf8(""));
  BOOST_CHECK(is_utf8("plain ascii"));
  BOOST_CHECK(is_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  BOOST_CHECK(!is_utf8("\xff"));
  BOOST_CHECK(!is_utf8("\xc3"));             // truncated
  BOOST_CHECK(!is_utf8("\xc0\xaf"));         // overlong '/'
  BOOST_CHECK(!is_utf8("\xed\xa0\x80"));     // a surrogate
  BOOST_CHECK(!is_utf8("\xf4\x90\x80\x80")); // beyond U+10FFFF
  BOOST_CHECK(!is_utf8("\x80"
                       "abc")); // a continuation first
}

BOOST_AUTO_TEST_CASE(names_have_a_documented_character_set) {
  for (auto* ok : {"n1", "node-1", "agent_7", "a.b:c@d", "fed-0123abcd", "X"})
    BOOST_CHECK_MESSAGE(validate_name(ok, "name"), ok);
  for (auto* bad : {"", "../../etc/passwd", "a/b", "-a", ".a", "a b", "a\\b",
                    "caf\xc3\xa9", "a\nb"})
    BOOST_CHECK_MESSAGE(!validate_name(bad, "name"), bad);
  BOOST_CHECK(!validate_name(std::string(129, 'a'), "name"));
  BOOST_CHECK(validate_name(std::string(128, 'a'), "name"));
}

BOOST_AUTO_TEST_SUITE_END()
