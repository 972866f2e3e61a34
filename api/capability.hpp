#pragma once

// Capability tokens (the spec's Access Control: Capability): a bearer token
// granting operations on one agent's memory (or only on some federations'),
// signed by the node's shared key, that its holder may attenuate — narrow
// the operations, memory types, client addresses, federations or lifetime —
// before delegating it, without the key:
//
//   egc1.<grant>.<caveat>….<mac>
//
// Each part is base64url JSON. The MAC is a chain (as macaroons do it):
// m0 = HMAC-SHA256(K, "egc1." + grant), m(i) = HMAC-SHA256(m(i-1), caveat i),
// with K derived from the shared key for capabilities alone. Whoever holds
// m(n) can append a caveat and compute m(n+1); nobody can take one away,
// since m(n-1) cannot be had from m(n). Unknown caveat fields are refused:
// a verifier never ignores a limit it does not understand.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth.hpp"

namespace engram::api {

/// What an issuer grants.
struct capability_grant {
  /// The agent whose memory (and name) the bearer acts as.
  std::string agent;
  /// What it may do: permissions "operation:scope_kind" ('*' for any).
  std::vector<std::string> allow;
  /// The federations it is for (empty: not limited to federations).
  std::vector<std::string> federations;
  int64_t issued_at = 0;
  int64_t expires_at = 0;
};

/// A caveat a holder adds: every non-empty field narrows.
struct capability_caveat {
  std::vector<std::string> allow;
  std::vector<std::string> memory_types;
  std::vector<std::string> sources;
  std::vector<std::string> federations;
  /// An earlier expiry (0: unchanged).
  int64_t expires_at = 0;
};

/// The most caveats a token may carry, and its longest form.
inline constexpr size_t max_caveats = 16;
inline constexpr size_t max_capability_bytes = 8192;

/// Whether a bearer token is a capability token (by its prefix).
bool is_capability_token(std::string_view token) noexcept;

/// A capability token for `grant`, signed with the shared key. Errors: a
/// grant that names no agent or no permission, or an unknown permission.
expected<std::string> issue_capability(std::string_view shared_key,
                                       const capability_grant& grant);

/// `token` with `caveat` appended (no key needed). Errors: not a capability
/// token, an empty or unknown caveat, too many caveats.
expected<std::string> attenuate_capability(std::string_view token,
                                           const capability_caveat& caveat);

/// Checks a token: the MAC chain (constant time), the grant (valid at
/// `now`, issued for no longer than `max_ttl`), every caveat (known fields
/// only, valid values). The principal acts as the grant's agent, method
/// "capability", with one limit per grant and caveat and the earliest
/// expiry. Errors (unauthenticated) say which check failed.
expected<principal> verify_capability(std::string_view shared_key,
                                      std::string_view token, int64_t now,
                                      std::chrono::seconds max_ttl);

} // namespace engram::api
