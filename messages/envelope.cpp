#include "messages/envelope.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>

#include <string>

namespace engram::messages {

namespace pb = google::protobuf;

std::string serialize(const pb::Message& msg) {
  // engram.v1 has no map fields (a test enforces it), and only map order can
  // make protobuf's encoding vary: the plain serializer is deterministic.
  std::string out;
  msg.SerializeToString(&out);
  return out;
}

v1::SyncMessage make_envelope(v1::MessageType type, std::string sender,
                              hlc_timestamp timestamp,
                              const pb::Message& payload) {
  v1::SyncMessage result;
  result.set_version(protocol_version);
  result.set_type(type);
  result.set_sender(std::move(sender));
  result.mutable_timestamp()->set_wall_us(timestamp.wall_us);
  result.mutable_timestamp()->set_logical(timestamp.logical);
  result.set_payload(serialize(payload));
  return result;
}

namespace {

// Walks a parsed message and checks every repeated field and string against
// the limits (the parser itself only bounds total size and nesting).
expected<void> check_bounds(const pb::Message& msg, const limits& bounds,
                            const std::string& path) {
  auto* reflection = msg.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(msg, &fields);
  for (auto* field : fields) {
    auto name = path + "." + field->name();
    if (field->is_repeated()) {
      auto n = static_cast<size_t>(reflection->FieldSize(msg, field));
      if (n > bounds.max_elements)
        return make_error(errc::limit_exceeded,
                          name + " has " + std::to_string(n)
                              + " elements, the limit is "
                              + std::to_string(bounds.max_elements));
      for (size_t i = 0; i < n; ++i) {
        auto idx = static_cast<int>(i);
        if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
          if (auto ok
              = check_bounds(reflection->GetRepeatedMessage(msg, field, idx),
                             bounds, name);
              !ok)
            return ok;
        } else if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING) {
          std::string scratch;
          auto& s = reflection->GetRepeatedStringReference(msg, field, idx,
                                                           &scratch);
          if (s.size() > bounds.max_string_bytes)
            return make_error(errc::limit_exceeded,
                              name + " holds a string of "
                                  + std::to_string(s.size()) + " bytes");
        }
      }
    } else if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (auto ok
          = check_bounds(reflection->GetMessage(msg, field), bounds, name);
          !ok)
        return ok;
    } else if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING) {
      std::string scratch;
      auto& s = reflection->GetStringReference(msg, field, &scratch);
      if (s.size() > bounds.max_string_bytes)
        return make_error(errc::limit_exceeded,
                          name + " holds " + std::to_string(s.size())
                              + " bytes, the limit is "
                              + std::to_string(bounds.max_string_bytes));
    }
  }
  return {};
}

} // namespace

expected<void> parse(std::string_view bytes, pb::Message& out,
                     const limits& bounds, const char* what,
                     bounds_check check) {
  // Refusals are reported as error values; protobuf's own stderr lines about
  // hostile input (e.g. invalid UTF-8) would only be noise.
  static const bool quiet = [] {
    pb::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (bytes.size() > bounds.max_frame_bytes)
    return make_error(errc::frame_too_large,
                      std::string{what} + " of " + std::to_string(bytes.size())
                          + " bytes exceeds the frame limit of "
                          + std::to_string(bounds.max_frame_bytes) + " bytes");
  pb::io::CodedInputStream input{reinterpret_cast<const uint8_t*>(bytes.data()),
                                 static_cast<int>(bytes.size())};
  input.SetRecursionLimit(bounds.max_nesting);
  if (!out.ParseFromCodedStream(&input) || !input.ConsumedEntireMessage())
    return make_error(errc::decode_failed,
                      std::string{what} + " is truncated or not valid "
                          + "protobuf (" + std::to_string(bytes.size())
                          + " bytes)");
  if (check == bounds_check::shallow)
    return {};
  return check_bounds(out, bounds, what);
}

expected<v1::SyncMessage> decode_envelope(std::string_view bytes,
                                          const limits& bounds) {
  v1::SyncMessage result;
  if (auto ok = parse(bytes, result, bounds, "SyncMessage"); !ok)
    return ok.error_value();
  if (result.version() == 0)
    return make_error(errc::unsupported_version,
                      "SyncMessage has no protocol version");
  if (result.version() != protocol_version)
    return make_error(errc::unsupported_version,
                      "SyncMessage speaks protocol version "
                          + std::to_string(result.version())
                          + ", this node speaks version "
                          + std::to_string(protocol_version));
  if (!v1::MessageType_IsValid(result.type())
      || result.type() == v1::MESSAGE_TYPE_UNSPECIFIED)
    return make_error(errc::unknown_message_type,
                      "SyncMessage has unknown message type "
                          + std::to_string(static_cast<int>(result.type())));
  return result;
}

namespace {

// Field 6 (signature), wire type 2, 64 bytes; field 7 (sequence), varint.
constexpr unsigned char signature_tag = (6 << 3) | 2;
constexpr unsigned char sequence_tag = (7 << 3) | 0;
constexpr size_t signature_trailer = 2 + crypto::ed25519_signature_bytes;

} // namespace

std::string route(std::string_view from, std::string_view to,
                  std::string_view agent) {
  std::string out;
  out.reserve(from.size() + to.size() + agent.size() + 2);
  out.append(from);
  out.push_back('\0');
  out.append(to);
  out.push_back('\0');
  out.append(agent);
  return out;
}

expected<void> sign_envelope(std::string& bytes, uint64_t sequence,
                             const crypto::signing_key& key,
                             std::string_view context) {
  if (sequence == 0)
    return make_error(errc::invalid_argument, "sequence numbers start at 1");
  bytes.push_back(static_cast<char>(sequence_tag));
  for (auto x = sequence;; x >>= 7) {
    if (x < 0x80) {
      bytes.push_back(static_cast<char>(x));
      break;
    }
    bytes.push_back(static_cast<char>((x & 0x7f) | 0x80));
  }
  auto sig = key.sign(crypto::signed_digest(context, bytes));
  if (!sig)
    return sig.error_value();
  bytes.push_back(static_cast<char>(signature_tag));
  bytes.push_back(static_cast<char>(crypto::ed25519_signature_bytes));
  bytes += *sig;
  return {};
}

expected<uint64_t> verify_envelope(std::string_view bytes,
                                   std::string_view public_key,
                                   std::string_view context) {
  auto refuse = [](const char* why) {
    return make_error(errc::unauthenticated, why);
  };
  if (bytes.size() < signature_trailer + 2
      || static_cast<unsigned char>(bytes[bytes.size() - signature_trailer])
             != signature_tag
      || static_cast<unsigned char>(bytes[bytes.size() - signature_trailer + 1])
             != crypto::ed25519_signature_bytes)
    return refuse("the envelope is not signed (no signature at its end)");
  auto signed_part = bytes.substr(0, bytes.size() - signature_trailer);
  auto sig = bytes.substr(bytes.size() - crypto::ed25519_signature_bytes);
  if (!crypto::verify_ed25519(public_key,
                              crypto::signed_digest(context, signed_part), sig))
    return refuse("the envelope's signature does not verify with its "
                  "sender's key");
  // Signed, so made by sign_envelope: the signed part ends with the
  // sequence number (field 7, a varint of up to 10 bytes).
  auto end = signed_part.size();
  auto last = static_cast<unsigned char>(signed_part[end - 1]);
  if (last & 0x80)
    return refuse("no sequence number signed");
  size_t start = end - 1;
  while (start > 0 && end - start < 10
         && (static_cast<unsigned char>(signed_part[start - 1]) & 0x80))
    --start;
  if (start == 0
      || static_cast<unsigned char>(signed_part[start - 1]) != sequence_tag)
    return refuse("no sequence number signed");
  uint64_t seq = 0;
  for (auto i = end; i > start; --i)
    seq = (seq << 7) | (static_cast<unsigned char>(signed_part[i - 1]) & 0x7f);
  if (seq == 0)
    return refuse("sequence number 0");
  return seq;
}

} // namespace engram::messages
