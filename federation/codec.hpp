#pragma once

// Federation state ↔ protobuf (engram.v1.FederationState): how a
// federation's rules are stored in its Collective memory and synced.

#include "federation/membership.hpp"

#include <string>
#include <string_view>

namespace engram::federation {

/// Deterministic bytes of `state`.
std::string encode(const federation_state& state);

/// Decodes untrusted bytes; refuses malformed input with an error naming
/// what is wrong (unknown role, a trust value out of range, ...).
expected<federation_state> decode_state(std::string_view bytes);

/// A trust model's bytes (engram.v1.TrustModel), and back (checked).
std::string encode_trust(const trust_model& model);
expected<trust_model> decode_trust(std::string_view bytes);

/// A federation key's bytes (engram.v1.FederationKeys), and back.
std::string encode_keys(const group_keys& keys);
expected<group_keys> decode_keys(std::string_view bytes);

/// The key of the fact holding a federation's state in its Collective
/// memory (reserved: queries do not show it).
inline const std::string& state_key() {
  static const std::string key = "_federation.state";
  return key;
}

} // namespace engram::federation
