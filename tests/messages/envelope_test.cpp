#include "messages/envelope.hpp"

#include <boost/test/unit_test.hpp>

#include <random>

using namespace engram;
using namespace engram::messages;

namespace {

v1::SyncMessage hello_envelope() {
  v1::Hello hello;
  hello.add_capabilities("crdt-sync");
  hello.add_capabilities("delta-batch");
  hello.set_node_id("node-1");
  return make_envelope(v1::HELLO, "agent-alpha", hlc_timestamp{1234, 5}, hello);
}

bool mentions(const error& e, const std::string& needle) {
  return e.message.find(needle) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_SUITE(envelope_codec)

BOOST_AUTO_TEST_CASE(an_envelope_round_trips_with_its_payload) {
  auto env = hello_envelope();
  auto bytes = serialize(env);
  auto decoded = decode_envelope(bytes);
  BOOST_REQUIRE_MESSAGE(decoded,
                        (decoded ? "" : decoded.error_value().to_string()));
  BOOST_CHECK_EQUAL(decoded->version(), protocol_version);
  BOOST_CHECK_EQUAL(decoded->sender(), "agent-alpha");
  BOOST_CHECK_EQUAL(decoded->timestamp().logical(), 5u);
  auto hello = decode_payload<v1::Hello>(*decoded, v1::HELLO);
  BOOST_REQUIRE(hello);
  BOOST_CHECK_EQUAL(hello->capabilities_size(), 2);
  BOOST_CHECK_EQUAL(hello->node_id(), "node-1");
  // Asking for another payload type is refused.
  auto wrong = decode_payload<v1::SyncRequest>(*decoded, v1::SYNC_REQUEST);
  BOOST_REQUIRE(!wrong);
  BOOST_CHECK(wrong.error_value().code == errc::unknown_message_type);
}

BOOST_AUTO_TEST_CASE(every_message_type_round_trips) {
  std::vector<
      std::pair<v1::MessageType, std::unique_ptr<google::protobuf::Message>>>
      xs;
  auto add = [&](v1::MessageType t, google::protobuf::Message* m) {
    xs.emplace_back(t, std::unique_ptr<google::protobuf::Message>(m));
  };
  auto* ack = new v1::HelloAck;
  ack->add_accepted_capabilities("crdt-sync");
  add(v1::HELLO_ACK, ack);
  auto* req = new v1::SyncRequest;
  req->mutable_scope()->set_kind(v1::SCOPE_KIND_AGENT);
  req->mutable_scope()->set_id("alpha");
  req->set_digest(42);
  add(v1::SYNC_REQUEST, req);
  add(v1::SYNC_RESPONSE, new v1::SyncResponse);
  add(v1::SYNC_ACK, new v1::SyncAck);
  add(v1::CONFLICT_NOTIFICATION, new v1::ConflictNotification);
  add(v1::CONFLICT_RESOLUTION, new v1::ConflictResolution);
  auto* join = new v1::JoinRequest;
  join->set_agent("beta");
  join->set_role(v1::ROLE_OBSERVER);
  add(v1::JOIN_REQUEST, join);
  auto* jr = new v1::JoinResponse;
  jr->set_reason("full");
  add(v1::JOIN_RESPONSE, jr);
  add(v1::LEAVE_NOTIFICATION, new v1::LeaveNotification);
  auto* ping = new v1::Ping;
  ping->set_nonce(7);
  add(v1::PING, ping);
  add(v1::PONG, new v1::Pong);
  add(v1::TELL, new v1::Tell);
  add(v1::ASK, new v1::Ask);
  add(v1::ANSWER, new v1::Answer);
  add(v1::BROADCAST, new v1::Broadcast);
  add(v1::SHARE, new v1::Share);
  add(v1::ACCEPT_SHARE, new v1::AcceptShare);
  add(v1::DECLINE_SHARE, new v1::DeclineShare);
  for (auto& [type, payload] : xs) {
    BOOST_TEST_CONTEXT(v1::MessageType_Name(type)) {
      auto bytes = serialize(make_envelope(type, "s", {}, *payload));
      auto env = decode_envelope(bytes);
      BOOST_REQUIRE(env);
      BOOST_CHECK_EQUAL(env->type(), type);
      BOOST_CHECK_EQUAL(env->payload(), serialize(*payload));
    }
  }
}

BOOST_AUTO_TEST_CASE(the_schema_has_no_map_fields_so_encodings_are_stable) {
  // Only map fields make protobuf's encoding order-dependent; serialize()
  // relies on their absence.
  std::vector<const google::protobuf::Descriptor*> pending;
  for (auto* file : {v1::SyncMessage::descriptor()->file(),
                     v1::Engram::descriptor()->file()})
    for (int i = 0; i < file->message_type_count(); ++i)
      pending.push_back(file->message_type(i));
  size_t checked = 0;
  while (!pending.empty()) {
    auto* d = pending.back();
    pending.pop_back();
    ++checked;
    for (int i = 0; i < d->field_count(); ++i)
      BOOST_CHECK_MESSAGE(!d->field(i)->is_map(), d->field(i)->full_name());
    for (int i = 0; i < d->nested_type_count(); ++i)
      pending.push_back(d->nested_type(i));
  }
  BOOST_CHECK_GT(checked, 30u);
}

BOOST_AUTO_TEST_CASE(serialization_is_deterministic) {
  BOOST_CHECK_EQUAL(serialize(hello_envelope()), serialize(hello_envelope()));
}

BOOST_AUTO_TEST_CASE(unknown_fields_survive_a_decode_encode_round_trip) {
  auto bytes = serialize(hello_envelope());
  // Field 99, varint 1 (tag = 99 << 3 | 0 = 792 = 0x98 0x06): from a newer
  // minor version of the protocol.
  auto extended = bytes + std::string{"\x98\x06\x01", 3};
  auto decoded = decode_envelope(extended);
  BOOST_REQUIRE(decoded);
  BOOST_CHECK_EQUAL(serialize(*decoded), extended);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(hostile_input)

BOOST_AUTO_TEST_CASE(an_oversize_frame_is_refused_before_parsing) {
  limits small;
  small.max_frame_bytes = 64;
  std::string big(65, '\0');
  auto res = decode_envelope(big, small);
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == errc::frame_too_large);
  BOOST_CHECK(mentions(res.error_value(), "65 bytes"));
}

BOOST_AUTO_TEST_CASE(truncated_bytes_are_refused) {
  auto bytes = serialize(hello_envelope());
  // Cut inside the payload (a length-delimited field): always invalid.
  auto cut = bytes.substr(0, bytes.size() - 3);
  auto res = decode_envelope(cut);
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == errc::decode_failed);
  BOOST_CHECK(mentions(res.error_value(), "truncated"));
}

BOOST_AUTO_TEST_CASE(garbage_never_crashes_and_is_mostly_refused) {
  std::mt19937_64 rng{2026};
  size_t refused = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string junk(rng() % 64, '\0');
    for (auto& c : junk)
      c = static_cast<char>(rng());
    auto res = decode_envelope(junk);
    if (!res)
      ++refused;
    else
      BOOST_REQUIRE_EQUAL(res->version(), protocol_version);
  }
  BOOST_CHECK_GT(refused, 19'000u);
}

BOOST_AUTO_TEST_CASE(a_missing_or_newer_major_version_is_refused) {
  auto env = hello_envelope();
  env.set_version(0);
  auto res = decode_envelope(serialize(env));
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == errc::unsupported_version);
  env.set_version(2);
  res = decode_envelope(serialize(env));
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == errc::unsupported_version);
  BOOST_CHECK(mentions(res.error_value(), "version 2"));
}

BOOST_AUTO_TEST_CASE(an_unknown_message_type_is_refused) {
  auto env = hello_envelope();
  env.set_type(static_cast<v1::MessageType>(99));
  auto res = decode_envelope(serialize(env));
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == errc::unknown_message_type);
  BOOST_CHECK(mentions(res.error_value(), "99"));
  env.set_type(v1::MESSAGE_TYPE_UNSPECIFIED);
  BOOST_CHECK(!decode_envelope(serialize(env)));
}

BOOST_AUTO_TEST_CASE(oversize_repeated_fields_and_strings_are_refused) {
  limits small;
  small.max_elements = 3;
  small.max_string_bytes = 16;
  v1::Hello hello;
  for (int i = 0; i < 4; ++i)
    hello.add_capabilities("c");
  auto env = make_envelope(v1::HELLO, "s", {}, hello);
  auto decoded = decode_envelope(serialize(env), small);
  BOOST_REQUIRE(decoded);
  auto res = decode_payload<v1::Hello>(*decoded, v1::HELLO, small);
  BOOST_REQUIRE(!res);
  BOOST_CHECK(res.error_value().code == errc::limit_exceeded);
  BOOST_CHECK(mentions(res.error_value(), "capabilities"));
  auto long_sender
      = make_envelope(v1::PING, std::string(17, 'x'), {}, v1::Ping{});
  auto refused = decode_envelope(serialize(long_sender), small);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(mentions(refused.error_value(), "sender"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(signed_envelopes)

// A signed envelope decodes as before (sequence and signature included),
// verifies with its sender's key only, and any change of its bytes — the
// payload, the sequence, the signature, bytes added or cut — is refused.
BOOST_AUTO_TEST_CASE(a_signature_covers_every_byte_and_the_sequence) {
  auto key = crypto::signing_key::generate();
  auto other = crypto::signing_key::generate();
  BOOST_REQUIRE(key && other);
  v1::Ping ping;
  ping.set_nonce(7);
  for (uint64_t seq : {uint64_t{1}, uint64_t{127}, uint64_t{128},
                       uint64_t{300'000}, ~uint64_t{0}}) {
    auto bytes = messages::serialize(
        messages::make_envelope(v1::PING, "n1", hlc_timestamp{5, 1}, ping));
    auto ctx = messages::route("n1", "n2", "alice");
    BOOST_REQUIRE(messages::sign_envelope(bytes, seq, *key, ctx));
    auto got = messages::verify_envelope(bytes, key->public_key(), ctx);
    BOOST_REQUIRE_MESSAGE(got, (got ? "" : got.error_value().message));
    BOOST_CHECK_EQUAL(*got, seq);
    auto env = messages::decode_envelope(bytes);
    BOOST_REQUIRE(env);
    BOOST_CHECK_EQUAL(env->sequence(), seq);
    BOOST_CHECK_EQUAL(env->signature().size(), 64u);
    BOOST_CHECK_EQUAL(env->sender(), "n1");
    BOOST_CHECK(!messages::verify_envelope(bytes, other->public_key(), ctx));
    // Moved to another agent, another receiver, another sender: refused.
    for (auto& moved : {messages::route("n1", "n2", "bob"),
                        messages::route("n1", "n3", "alice"),
                        messages::route("n9", "n2", "alice"),
                        messages::route("n1", "n2", "")})
      BOOST_CHECK(!messages::verify_envelope(bytes, key->public_key(), moved));
    for (size_t i = 0; i < bytes.size(); ++i) {
      auto bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ 0x01);
      BOOST_CHECK_MESSAGE(
          !messages::verify_envelope(bad, key->public_key(), ctx),
          "byte " << i << " of sequence " << seq);
    }
    BOOST_CHECK(
        !messages::verify_envelope(bytes + "x", key->public_key(), ctx));
    BOOST_CHECK(
        !messages::verify_envelope(bytes.substr(1), key->public_key(), ctx));
  }
  // Unsigned, or signed by nobody: refused with a reason.
  auto plain = messages::serialize(
      messages::make_envelope(v1::PING, "n1", hlc_timestamp{5, 1}, ping));
  auto refused = messages::verify_envelope(plain, key->public_key(), "");
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::unauthenticated);
  BOOST_CHECK(refused.error_value().message.find("not signed")
              != std::string::npos);
  BOOST_CHECK(!messages::verify_envelope("", key->public_key(), ""));
  BOOST_CHECK(!messages::sign_envelope(plain, 0, *key, ""));
}

BOOST_AUTO_TEST_SUITE_END()
