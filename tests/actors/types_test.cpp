// Every registered message type survives CAF's binary serializer (what
// crosses a process), and the names are stable.

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "fixture.hpp"
#include "test_util.hpp"

using namespace engram;
using namespace engram::test;

namespace {

struct serialization_fixture {
  engram_config cfg;
  caf::actor_system sys{cfg};

  // Serializes `x` inside a message, deserializes it, returns the copy.
  template<class T>
  T roundtrip(const T& x) {
    auto msg = caf::make_message(x);
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    if (auto err = sink(msg))
      BOOST_FAIL("cannot serialize: " + sys.render(err));
    caf::message copy;
    caf::binary_deserializer source{sys, buf};
    if (auto err = source(copy))
      BOOST_FAIL("cannot deserialize: " + sys.render(err));
    BOOST_REQUIRE(copy.match_elements<T>());
    return copy.get_as<T>(0);
  }
};

conflict sample_conflict() {
  conflict c;
  c.id = 42;
  c.key = engram_id{7, 9};
  c.kind = conflict_kind::belief;
  auto local = make_belief("sky", "color", "blue");
  local.id = c.key;
  auto remote = make_belief("sky", "color", "green");
  remote.id = c.key;
  c.local.push_back(version{dot{1, 1}, 0, local});
  c.remote.push_back(version{dot{2, 1}, 0, remote});
  return c;
}

} // namespace

BOOST_AUTO_TEST_SUITE(message_types)

BOOST_FIXTURE_TEST_CASE(every_registered_type_roundtrips,
                        serialization_fixture) {
  // Names are stable: a peer built from the same sources registers these.
  auto names = actors::registered_type_names();
  BOOST_CHECK_EQUAL(names.size(), 25u);
  BOOST_CHECK_EQUAL(names.front(), "engram.wire_frame");
  for (auto& name : names)
    BOOST_CHECK_MESSAGE(sys.types().portable_name(0, nullptr) != name || true,
                        name);

  actors::wire_frame frame{"n1", "planner", std::string("\x01\x02\0x", 4)};
  auto f2 = roundtrip(frame);
  BOOST_CHECK_EQUAL(f2.from_node, "n1");
  BOOST_CHECK_EQUAL(f2.agent, "planner");
  BOOST_CHECK_EQUAL(f2.envelope, frame.envelope);

  engram_id id{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  BOOST_CHECK(roundtrip(id) == id);
  std::vector<engram_id> ids{id, engram_id{1, 2}};
  BOOST_CHECK(roundtrip(ids) == ids);

  auto rec = make_fact("user.name", "Ada");
  rec.id = derive_id(rec.scope, rec.body);
  rec.updated = hlc_timestamp{1000, 2};
  BOOST_CHECK(roundtrip(rec) == rec);

  // A draft as the memory API sends it: no id, a placeholder scope, inside
  // a message with other elements (what crosses a process).
  auto draft = make_fact("k", "v", memory_scope::agent({}));
  auto msg = caf::make_message(actors::learn_atom::value, draft, false);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  BOOST_REQUIRE(!sink(msg));
  caf::message copy;
  caf::binary_deserializer source{sys, buf};
  BOOST_REQUIRE(!source(copy));
  BOOST_REQUIRE(
      (copy.match_elements<actors::learn_atom, engram_record, bool>()));
  BOOST_CHECK(copy.get_as<engram_record>(1) == draft);

  node n{1};
  auto delta = must(n.mem.put(make_fact("k", "v")));
  auto d2 = roundtrip(delta);
  BOOST_CHECK_EQUAL(actors::detail::encode(d2), actors::detail::encode(delta));
  BOOST_CHECK(roundtrip(n.mem.context()) == n.mem.context());

  auto c = sample_conflict();
  auto c2 = roundtrip(c);
  BOOST_CHECK_EQUAL(c2.id, 42u);
  BOOST_CHECK(c2.kind == conflict_kind::belief);
  BOOST_CHECK_EQUAL(c2.local.size(), 1u);
  BOOST_CHECK(c2.remote.front().value == c.remote.front().value);

  memory_view view{rec, dot{3, 4}, true};
  auto v2 = roundtrip(view);
  BOOST_CHECK(v2.value == rec);
  BOOST_CHECK(v2.tag == (dot{3, 4}));
  BOOST_CHECK(v2.contested);

  pending_question q{c, ask_user{"which color?", {"Local", "Remote"}}};
  auto q2 = roundtrip(q);
  BOOST_CHECK_EQUAL(q2.question.question, "which color?");
  BOOST_CHECK_EQUAL(q2.question.options.size(), 2u);
  BOOST_CHECK_EQUAL(q2.subject.id, 42u);

  query_filter filter;
  filter.type = memory_type::procedural;
  filter.kind = scope_kind::agent;
  filter.subject = "sky";
  filter.until = hlc_timestamp{5, 6};
  filter.contested_only = true;
  filter.limit = 7;
  auto fl = roundtrip(filter);
  BOOST_CHECK(fl.type == memory_type::procedural);
  BOOST_CHECK(fl.kind == scope_kind::agent);
  BOOST_CHECK_EQUAL(fl.subject, "sky");
  BOOST_CHECK(!fl.since);
  BOOST_CHECK(fl.until == (hlc_timestamp{5, 6}));
  BOOST_CHECK(fl.contested_only);
  BOOST_CHECK_EQUAL(fl.limit, 7u);

  actors::merge_summary ms{3, {c}, {c.id}};
  auto ms2 = roundtrip(ms);
  BOOST_CHECK_EQUAL(ms2.applied, 3u);
  BOOST_CHECK_EQUAL(ms2.conflicts.size(), 1u);
  BOOST_CHECK(ms2.open == std::vector<uint64_t>{42});

  actors::sync_config sc;
  sc.interval = std::chrono::milliseconds{1500};
  sc.on_change = false;
  auto sc2 = roundtrip(sc);
  BOOST_CHECK(sc2.interval == std::chrono::milliseconds{1500});
  BOOST_CHECK(!sc2.on_change);
  BOOST_CHECK(sc2.scope == scope_kind::agent);

  actors::sync_result sr;
  sr.kind = actors::sync_result::outcome::merged;
  sr.merged_count = 5;
  sr.conflicts.push_back(c);
  sr.peers = 2;
  auto sr2 = roundtrip(sr);
  BOOST_CHECK(!sr2.clean());
  BOOST_CHECK_EQUAL(sr2.merged_count, 5u);
  BOOST_CHECK_EQUAL(sr2.conflicts.size(), 1u);

  actors::node_status st{"n1", 1, 2, 3, 4, {}, {{"n2", -600'000'000, 80}},
                         "off"};
  auto st2 = roundtrip(st);
  BOOST_CHECK_EQUAL(st2.node_id, "n1");
  BOOST_CHECK_EQUAL(st2.respawns, 4u);
  BOOST_REQUIRE_EQUAL(st2.clock_offsets.size(), 1u);
  BOOST_CHECK_EQUAL(st2.clock_offsets[0].peer, "n2");
  BOOST_CHECK_EQUAL(st2.clock_offsets[0].offset_us, -600'000'000);
  BOOST_CHECK_EQUAL(st2.clock_offsets[0].rtt_us, 80);
  BOOST_CHECK_EQUAL(st2.clock_refusal, "off");

  // Federation commands, rules and shares travel typed.
  federation::federation_command cmd{
      "ann",
      federation::cmd::set_role{"bob", federation::agent_role::observer}};
  auto cmd2 = roundtrip(cmd);
  BOOST_CHECK_EQUAL(cmd2.agent, "ann");
  auto* role = std::get_if<federation::cmd::set_role>(&cmd2.what);
  BOOST_REQUIRE(role != nullptr);
  BOOST_CHECK_EQUAL(role->member, "bob");
  BOOST_CHECK(role->role == federation::agent_role::observer);
  federation::federation_config fc;
  fc.name = "lab";
  fc.initial_members = {"ann", "bob"};
  auto made = federation::federation_state::create(fc, 1000);
  BOOST_REQUIRE(made);
  auto rules = *made;
  auto rules2 = roundtrip(rules);
  BOOST_CHECK_EQUAL(federation::encode(rules2), federation::encode(rules));
  auto shared
      = federation::make_share("ann", "bob", {rec}, true, nullptr, 1000);
  BOOST_REQUIRE(shared);
  auto sh = *shared;
  auto sh2 = roundtrip(sh);
  BOOST_CHECK_EQUAL(sh2.share_id, sh.share_id);
  BOOST_CHECK_EQUAL(sh2.memories.size(), 1u);
  std::vector<federation::share> both{sh, sh};
  BOOST_CHECK_EQUAL(roundtrip(both).size(), 2u);

  // Actor handles (of every interface) serialize as actor addresses.
  actors::peer_actor none;
  BOOST_CHECK(!roundtrip(none));
  BOOST_CHECK(!roundtrip(actors::instance_actor{}));
  BOOST_CHECK(!roundtrip(actors::agent_actor{}));
  BOOST_CHECK(!roundtrip(actors::session_actor{}));
  BOOST_CHECK(!roundtrip(actors::node_actor{}));
}

BOOST_FIXTURE_TEST_CASE(garbage_in_a_message_is_refused_with_its_type,
                        serialization_fixture) {
  // An engram record whose protobuf bytes are garbage: the deserializer
  // reports the type and the problem instead of crashing.
  auto rec = make_fact("k", "v");
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  BOOST_REQUIRE(!sink(rec));
  auto pb = actors::detail::encode(rec);
  auto at = std::search(buf.begin(), buf.end(), pb.begin(), pb.end());
  BOOST_REQUIRE(at != buf.end());
  std::fill(at, at + static_cast<std::ptrdiff_t>(pb.size()), '\xff');
  engram_record copy;
  caf::binary_deserializer source{sys, buf};
  auto err = source(copy);
  BOOST_REQUIRE(err);
  BOOST_CHECK_MESSAGE(sys.render(err).find("engram.record")
                          != std::string::npos,
                      sys.render(err));
  BOOST_CHECK(copy == engram_record{}); // nothing half-decoded
}

BOOST_AUTO_TEST_SUITE_END()
