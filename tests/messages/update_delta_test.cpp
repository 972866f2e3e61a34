#include "messages/codec.hpp"

#include <boost/test/unit_test.hpp>

#include "test_util.hpp"

using namespace engram;
using namespace engram::messages;
using namespace engram::test;

namespace {

// a and b hold the same fact; a then writes `next` (a change to it).
struct pair_with_change {
  node a{1};
  node b{2};
  engram_id id;
  version before;
  version after;
  vector_clock context;

  explicit pair_with_change(
      const std::function<expected<replica_delta>(replica&, engram_id)>& next) {
    auto first = must(a.mem.put(make_fact("plan", "ship friday")));
    id = first.entries.front().id;
    must_join(b.mem, first);
    before = a.mem.versions(id)->front();
    auto d = must(next(a.mem, id));
    after = d.entries.front().versions.front();
    context = d.entries.front().context;
  }

  v1::DeltaBatch batch(v1::EngramDelta delta) const {
    v1::DeltaBatch out;
    *out.add_deltas() = std::move(delta);
    to_proto(causal_context{{after.tag, before.tag}}, *out.mutable_context());
    return out;
  }
};

auto put_value(std::string value, double confidence = 0.8) {
  return [value, confidence](replica& r, engram_id) {
    return r.put(
        make_fact("plan", value, memory_scope::agent("alpha"), confidence));
  };
}

} // namespace

BOOST_AUTO_TEST_SUITE(update_deltas)

BOOST_AUTO_TEST_CASE(an_update_applies_when_the_old_value_matches) {
  pair_with_change p{put_value("ship monday", 0.6)};
  auto update = make_update(p.before, p.after, p.context);
  BOOST_REQUIRE(update);
  BOOST_CHECK_EQUAL(update->update().changes_size(), 2); // value, confidence
  auto bytes = serialize(p.batch(*update));
  v1::DeltaBatch parsed;
  BOOST_REQUIRE(parse(bytes, parsed, {}, "DeltaBatch"));
  auto decoded = decode_against(parsed, p.b.mem);
  BOOST_REQUIRE(decoded);
  BOOST_CHECK(decoded->rejected.empty());
  must_join(p.b.mem, decoded->delta);
  BOOST_CHECK(p.a.mem.same_state(p.b.mem));
  BOOST_CHECK_EQUAL(std::get<fact>(p.b.mem.get(p.id)->body).value,
                    "ship monday");
}

BOOST_AUTO_TEST_CASE(an_update_of_one_field_is_smaller_than_the_full_engram) {
  std::string long_value(1024, 'x');
  node a{1};
  auto first = must(a.mem.put(make_fact("doc", long_value)));
  auto id = first.entries.front().id;
  auto before = a.mem.versions(id)->front();
  auto d = must(a.mem.put(
      make_fact("doc", long_value, memory_scope::agent("alpha"), 0.3)));
  auto after = d.entries.front().versions.front();
  auto update = make_update(before, after, d.entries.front().context);
  BOOST_REQUIRE(update);
  BOOST_CHECK_EQUAL(update->update().changes_size(), 1); // confidence only
  v1::EngramDelta full;
  to_proto(after.value, *full.mutable_create()->mutable_full());
  BOOST_CHECK_LT(update->ByteSizeLong() * 10, full.ByteSizeLong());
}

BOOST_AUTO_TEST_CASE(a_stale_update_is_reported_as_a_conflict_not_applied) {
  pair_with_change p{put_value("ship monday")};
  // b moved on concurrently: its value is no longer the update's old value.
  must(p.b.mem.put(make_fact("plan", "ship never")));
  auto digest = p.b.mem.digest();
  auto update = make_update(p.before, p.after, p.context);
  BOOST_REQUIRE(update);
  auto decoded = decode_against(p.batch(*update), p.b.mem);
  BOOST_REQUIRE(decoded);
  BOOST_REQUIRE_EQUAL(decoded->rejected.size(), 1u);
  BOOST_CHECK(decoded->rejected.front().id == p.id);
  BOOST_CHECK(decoded->rejected.front().reason.find("old value")
              != std::string::npos);
  BOOST_CHECK(decoded->delta.entries.empty());
  BOOST_CHECK_EQUAL(p.b.mem.digest(), digest);
}

BOOST_AUTO_TEST_CASE(delete_and_archive_deltas_rebuild_the_version) {
  pair_with_change forgot{[](replica& r, engram_id id) {
    return r.forget(id, "obsolete");
  }};
  auto decoded = decode_against(
      forgot.batch(make_delete(forgot.after, forgot.context)), forgot.b.mem);
  BOOST_REQUIRE(decoded);
  must_join(forgot.b.mem, decoded->delta);
  BOOST_CHECK(forgot.a.mem.same_state(forgot.b.mem));
  BOOST_CHECK(forgot.b.mem.get(forgot.id)->tombstone);
  BOOST_CHECK_EQUAL(forgot.b.mem.get(forgot.id)->forget_reason, "obsolete");

  pair_with_change archived{[](replica& r, engram_id id) {
    return r.archive(id);
  }};
  decoded = decode_against(
      archived.batch(make_archive(archived.after, archived.context)),
      archived.b.mem);
  BOOST_REQUIRE(decoded);
  must_join(archived.b.mem, decoded->delta);
  BOOST_CHECK(archived.a.mem.same_state(archived.b.mem));
}

BOOST_AUTO_TEST_CASE(updates_for_unknown_engrams_or_fields_are_refused) {
  pair_with_change p{put_value("ship monday")};
  auto update = make_update(p.before, p.after, p.context);
  BOOST_REQUIRE(update);
  node empty{3};
  auto decoded = decode_against(p.batch(*update), empty.mem);
  BOOST_REQUIRE(decoded);
  BOOST_CHECK_EQUAL(decoded->rejected.size(), 1u);
  auto bad_path = *update;
  bad_path.mutable_update()->mutable_changes(0)->set_path(1, "secret");
  auto refused = decode_against(p.batch(bad_path), p.b.mem);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::invalid_field);
  BOOST_CHECK(refused.error_value().message.find("fact.secret")
              != std::string::npos);
  // Without a replica, non-Create deltas cannot be decoded.
  BOOST_CHECK(!from_proto(p.batch(*update), limits{}));
}

BOOST_AUTO_TEST_CASE(make_update_refuses_versions_that_differ_elsewhere) {
  pair_with_change p{[](replica& r, engram_id) {
    auto e = make_fact("plan", "ship monday");
    e.origin.origin_agent = "someone else";
    return r.put(e);
  }};
  auto update = make_update(p.before, p.after, p.context);
  BOOST_REQUIRE(!update);
  BOOST_CHECK(update.error_value().message.find("send a Create")
              != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
