#pragma once

#include "core/error.hpp"
#include "core/hlc.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/sign.hpp"
#include "engram/v1/sync.pb.h"

namespace engram::messages {

/// The protocol's major version. A receiver refuses any other major version.
constexpr uint32_t protocol_version = 1;

/// Bounds every decoder applies to untrusted bytes.
struct limits {
  /// Largest frame (envelope) accepted, in bytes.
  size_t max_frame_bytes = 16 * 1024 * 1024;
  /// Most elements of any repeated field.
  size_t max_elements = 100'000;
  /// Longest string or bytes field, in bytes.
  size_t max_string_bytes = 4 * 1024 * 1024;
  /// Deepest message nesting.
  int max_nesting = 32;
};

/// Serializes deterministically: equal messages give byte-identical output
/// (map order fixed; unknown fields kept in place), as signatures and tests
/// of convergence need.
std::string serialize(const google::protobuf::Message& msg);

/// Wraps a payload in an envelope of the current protocol version.
v1::SyncMessage make_envelope(v1::MessageType type, std::string sender,
                              hlc_timestamp timestamp,
                              const google::protobuf::Message& payload);

/// Decodes an envelope from untrusted bytes. Refuses, with an error naming
/// the problem: frames over the size limit, truncated or garbage bytes, a
/// missing or newer major version, an unknown message type, an oversize
/// sender or payload. Unknown fields are kept (and survive re-encoding).
expected<v1::SyncMessage> decode_envelope(std::string_view bytes,
                                          const limits& bounds = {});

/// Signs a serialized envelope as its sender: appends `sequence` (field 7)
/// and then the Ed25519 signature (field 6) of every byte before it, and of
/// `context` — what travels beside the envelope and must not be changed:
/// the sending node, the receiving node and the agent (`route`) — so the
/// signature covers the exact bytes sent and is the last field.
expected<void> sign_envelope(std::string& bytes, uint64_t sequence,
                             const crypto::signing_key& key,
                             std::string_view context);

/// Checks that `bytes` end with `public_key`'s signature of every byte
/// before it and of `context` (as `sign_envelope` makes it) and returns the
/// sequence number signed with it. Errors (unauthenticated): no signature
/// at the end, one that does not verify (another context too: a frame
/// moved to another agent or node), no sequence number signed.
expected<uint64_t> verify_envelope(std::string_view bytes,
                                   std::string_view public_key,
                                   std::string_view context);

/// The context of an envelope from node `from` to node `to` for `agent`
/// (empty: the node itself).
std::string route(std::string_view from, std::string_view to,
                  std::string_view agent);

/// How thoroughly `parse` checks a message against the limits.
enum class bounds_check : uint8_t {
  /// Size and nesting while parsing, then every repeated field and string by
  /// reflection (any message type).
  deep,
  /// Size and nesting only: for messages whose decoder checks its repeated
  /// fields and strings itself (the delta codec), on the hot path.
  shallow,
};

/// Parses untrusted bytes into `out` within `bounds`. `what` names the
/// message in errors.
expected<void> parse(std::string_view bytes, google::protobuf::Message& out,
                     const limits& bounds, const char* what,
                     bounds_check check = bounds_check::deep);

/// Decodes the payload of an envelope of type `type` into a `Payload`.
template<class Payload>
expected<Payload> decode_payload(const v1::SyncMessage& envelope,
                                 v1::MessageType type,
                                 const limits& bounds = {}) {
  if (envelope.type() != type)
    return make_error(errc::unknown_message_type,
                      "expected a " + v1::MessageType_Name(type)
                          + " payload, the envelope says "
                          + v1::MessageType_Name(envelope.type()));
  Payload result;
  if (auto ok = parse(envelope.payload(), result, bounds,
                      v1::MessageType_Name(type).c_str());
      !ok)
    return ok.error_value();
  return result;
}

} // namespace engram::messages
