#include "core/blob_map.hpp"
#include "core/packed.hpp"
#include "core/replica.hpp"

#include <boost/test/unit_test.hpp>

#include <map>
#include <random>

#include "test_util.hpp"

using namespace engram;
using namespace engram::test;

namespace {

const engram_id some_id{0x1234567890abcdefULL, 0xfedcba0987654321ULL};

// Versions that between them set every field the packed form encodes.
std::vector<version> every_kind_of_version() {
  std::vector<version> result;
  auto add = [&](dot tag, engram_record e) {
    e.id = some_id;
    if (e.updated == hlc_timestamp{})
      e.updated = {1'700'000'000'000'000ULL + tag.counter, 0};
    if (e.created == hlc_timestamp{})
      e.created = e.updated;
    result.push_back(version{tag, 0, std::move(e)});
  };
  add({1, 7}, make_fact("user.name", "Bob")); // dot = context's counter
  auto b = engram_record{};
  b.type = memory_type::semantic;
  b.scope = memory_scope::collective("crew", {"a1", "a2"});
  b.body = belief{"sky", "color", "blue"};
  b.confidence = 1.0 / 3.0; // no short decimal: stored as a double
  b.epistemic = epistemic_status::reported("a2", 0.625);
  b.origin.origin_agent = "a2";
  b.origin.origin_instance = "a2/i1";
  b.origin.hops = {{"a3", 0.5, "summarized", true}, {"a4", 1.0, "", false}};
  b.updated = {1'700'000'000'000'500ULL, 3}; // a logical part
  b.created = {1'600'000'000'000'000ULL, 2};
  add({0xfeedfacecafebeefULL, 3}, b);
  auto ep = engram_record{};
  ep.type = memory_type::episodic;
  ep.scope = memory_scope::instance("a1/i1");
  ep.body = episode{"run-1", {{{10, 0}, "start"}, {{20, 1}, "stop"}}};
  ep.confidence = 0.0;
  ep.epistemic = epistemic_status::inferred();
  add({2, 1}, ep);
  auto sk = engram_record{};
  sk.type = memory_type::procedural;
  sk.scope = memory_scope::universal();
  sk.body = skill{"parse", {{1, "first"}, {2, std::string(300, 'x')}}};
  sk.confidence = 0.9; // a short decimal
  sk.archived = true;
  add({3, 1'000'000'000'000ULL}, sk);
  auto gone = engram_record{};
  gone.type = memory_type::instant;
  gone.scope = memory_scope::agent("a1");
  gone.body = fact{"k", ""};
  gone.tombstone = true;
  gone.forget_reason = "wrong";
  add({4, 2}, gone);
  result.back().resolves = 0xdeadbeefULL;
  return result;
}

vector_clock context_of(const std::vector<version>& versions) {
  vector_clock result;
  for (auto& v : versions)
    if (result.get(v.tag.replica) < v.tag.counter)
      result.set(v.tag.replica, v.tag.counter);
  result.set(5, 9); // a replica with no version held
  return result;
}

// A blob of `versions` under `context`, written with `dict`.
std::string encode(const std::vector<version>& versions,
                   const vector_clock& context, packed::dictionary& dict) {
  packed::writer out;
  out.begin(some_id, context, versions.size(), dict);
  for (auto& v : versions)
    out.add(v, dict);
  return out.bytes();
}

const uint8_t* bytes_of(const std::string& blob) {
  return reinterpret_cast<const uint8_t*>(blob.data());
}

} // namespace

BOOST_AUTO_TEST_SUITE(packed_form)

BOOST_AUTO_TEST_CASE(every_field_survives_encoding_and_decoding) {
  auto versions = every_kind_of_version();
  auto context = context_of(versions);
  packed::dictionary dict;
  auto bytes = encode(versions, context, dict);
  auto* blob = bytes_of(bytes);
  BOOST_CHECK(packed::blob_id(blob) == some_id);
  BOOST_CHECK_EQUAL(packed::blob_size(blob), bytes.size());
  packed::blob_view view;
  packed::parse(blob, dict, view);
  BOOST_CHECK(view.id == some_id);
  BOOST_CHECK(view.context == context);
  BOOST_CHECK_EQUAL(view.size, bytes.size());
  BOOST_REQUIRE_EQUAL(view.versions.size(), versions.size());
  auto decoded = packed::decode_all(view, dict);
  for (size_t i = 0; i < versions.size(); ++i) {
    BOOST_TEST_CONTEXT("version " << i) {
      BOOST_CHECK(view.versions[i].tag == versions[i].tag);
      BOOST_CHECK(decoded[i] == versions[i]);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_summary_says_what_the_decoded_version_says) {
  auto versions = every_kind_of_version();
  packed::dictionary dict;
  auto bytes = encode(versions, context_of(versions), dict);
  packed::blob_view view;
  packed::parse(bytes_of(bytes), dict, view);
  BOOST_REQUIRE_EQUAL(view.versions.size(), versions.size());
  for (size_t i = 0; i < versions.size(); ++i) {
    BOOST_TEST_CONTEXT("version " << i) {
      auto sum = packed::summarize(view.versions[i], dict);
      auto& e = versions[i].value;
      BOOST_CHECK(sum.type == e.type);
      BOOST_CHECK(sum.kind == e.scope.kind());
      BOOST_CHECK_EQUAL(sum.archived, e.archived);
      BOOST_CHECK_EQUAL(sum.tombstone, e.tombstone);
      BOOST_CHECK(sum.updated == e.updated);
      auto* b = std::get_if<belief>(&e.body);
      BOOST_CHECK_EQUAL(sum.is_belief, b != nullptr);
      if (b != nullptr) {
        BOOST_CHECK_EQUAL(sum.subject, b->subject);
        BOOST_CHECK_EQUAL(sum.relation, b->relation);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_copied_version_keeps_its_dot_under_a_new_context) {
  // The first version's counter is left out (it equals the context's);
  // copied under a context that moved on, it must be written out.
  auto versions = every_kind_of_version();
  packed::dictionary dict;
  auto old_context = context_of(versions);
  auto first = encode(versions, old_context, dict);
  packed::blob_view old_view;
  packed::parse(bytes_of(first), dict, old_view);
  for (uint64_t counter : {uint64_t{7}, uint64_t{8}, uint64_t{300}}) {
    auto context = old_context;
    context.set(1, counter);
    context.set(3, 1'000'000'000'001ULL); // the fourth moves the other way
    packed::writer second;
    second.begin(some_id, context, versions.size(), dict);
    for (auto& ref : old_view.versions)
      second.copy(ref, dict);
    packed::blob_view view;
    packed::parse(bytes_of(second.bytes()), dict, view);
    BOOST_CHECK(view.context == context);
    auto decoded = packed::decode_all(view, dict);
    BOOST_REQUIRE_EQUAL(decoded.size(), versions.size());
    for (size_t i = 0; i < versions.size(); ++i)
      BOOST_CHECK(decoded[i] == versions[i]);
  }
}

BOOST_AUTO_TEST_CASE(
    the_map_keeps_the_latest_blob_of_every_id_and_reuses_replaced_ones) {
  blob_map map;
  std::mt19937_64 rng{7};
  std::map<engram_id, std::string> expected;
  auto blob_of = [&](const engram_id& id, size_t n) {
    // A valid blob: the id, an empty context and one version of n bytes.
    std::string bytes(16, '\0');
    for (int i = 0; i < 8; ++i) {
      bytes[i] = static_cast<char>(id.hi >> (8 * i));
      bytes[8 + i] = static_cast<char>(id.lo >> (8 * i));
    }
    bytes.push_back(0); // no context entries
    bytes.push_back(1); // one version
    for (auto x = n;; x >>= 7) {
      bytes.push_back(static_cast<char>(x < 0x80 ? x : (x & 0x7f) | 0x80));
      if (x < 0x80)
        break;
    }
    for (size_t i = 0; i < n; ++i)
      bytes.push_back(static_cast<char>(rng()));
    return bytes;
  };
  std::vector<engram_id> ids;
  for (int i = 0; i < 5000; ++i)
    ids.push_back(engram_id{rng() | 1, rng()});
  for (int round = 0; round < 20; ++round) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (round > 0 && rng() % 3 != 0)
        continue; // some ids change, most stay where they are
      // One large blob (a chunk of its own) now and then.
      auto n = (i == 17 && round % 2 == 0) ? size_t{700'000} : rng() % 600;
      auto bytes = blob_of(ids[i], n);
      map.assign(ids[i], bytes);
      expected[ids[i]] = bytes;
    }
    BOOST_REQUIRE_EQUAL(map.size(), ids.size());
    size_t live = 0;
    for (auto& [id, bytes] : expected) {
      auto* blob = map.find(id);
      BOOST_REQUIRE(blob != nullptr);
      BOOST_REQUIRE_EQUAL(packed::blob_size(blob), bytes.size());
      BOOST_REQUIRE(std::equal(bytes.begin(), bytes.end(),
                               reinterpret_cast<const char*>(blob)));
      live += bytes.size();
    }
    BOOST_CHECK_EQUAL(map.live_bytes(), live);
    // Replaced blobs' blocks are reused: what is held stays within the
    // live bytes, their rounding, free blocks of the sizes that shrank and
    // the chunk being filled.
    BOOST_CHECK_LE(map.used_bytes(), map.reserved_bytes());
    BOOST_CHECK_LE(map.reserved_bytes(), 2 * live + (size_t{1} << 20));
  }
  BOOST_CHECK(map.find(engram_id{2, 2}) == nullptr);
}

BOOST_AUTO_TEST_CASE(
    a_replica_holds_an_engram_in_a_few_dozen_bytes_beyond_its_strings) {
  node n{1};
  size_t strings = 0;
  for (int i = 0; i < 20'000; ++i) {
    auto e = make_fact("key" + std::to_string(i), std::string(256, 'v'));
    e.confidence = 0.9;
    strings += 3 + std::to_string(i).size() + 256;
    must(n.mem.put(std::move(e)));
  }
  auto per_engram = static_cast<double>(n.mem.memory_bytes() - strings)
                    / static_cast<double>(n.mem.size());
  BOOST_TEST_MESSAGE(
      "packed bytes per engram beyond its strings: " << per_engram);
  BOOST_CHECK_LT(per_engram, 64.0);
  // And every engram reads back as written.
  auto e = make_fact("key123", std::string(256, 'v'));
  auto got = n.mem.get(derive_id(e.scope, e.body));
  BOOST_REQUIRE(got);
  BOOST_CHECK(std::get<fact>(got->body) == std::get<fact>(e.body));
  BOOST_CHECK_EQUAL(got->confidence, 0.9);
}

BOOST_AUTO_TEST_SUITE_END()
