#pragma once

// Who a client API request acts as (the spec's Authentication): every
// request names one agent, proven by one of
//   * SharedKey — a bearer token "egk1.<claims>.<mac>", HMAC-SHA256 over
//     the claims with the cluster's shared key (`engramd token issue`);
//   * MTLS — a client certificate of the cluster's CA naming the agent
//     (urn:engram:agent:<id>), verified in the TLS handshake;
//   * OAuth/OIDC — a JWT (RS256 or ES256) verified offline against a JWKS
//     file: issuer, audience, expiry and not-before checked; `alg: none`,
//     HMAC algorithms (key confusion) and unknown `kid`s refused.
// Lifetimes are bounded by `token_ttl`: a token valid for longer than that
// is refused, whatever it says. Pure: OpenSSL EVP only, no I/O but reading
// key files.

#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace engram::api {

/// What a capability token lets its bearer do (its grants, or one caveat
/// added when it was delegated): every limit of a principal must cover a
/// request. An empty list puts no bound of that kind.
struct capability_limit {
  /// Permissions "operation:scope_kind" ('*' for any).
  std::vector<std::string> allow;
  /// Memory types a request may name ("semantic", ...).
  std::vector<std::string> memory_types;
  /// Client addresses (CIDRs or addresses) a request may come from.
  std::vector<std::string> sources;
  /// Federations a request must concern (their Collective memory, rules,
  /// broadcasts): nothing else.
  std::vector<std::string> federations;
};

/// The authenticated party a request acts for.
struct principal {
  /// The agent the request acts as: never another.
  std::string agent;
  /// "shared_key", "mtls" or "jwt".
  std::string method;
  /// Roles the credential carries (JWT "roles" claim, token roles); the
  /// access policy may add roles by agent.
  std::vector<std::string> roles;
  /// When the credential expires (seconds since the epoch; 0: with the
  /// certificate).
  int64_t expires_at = 0;
  /// A capability token's grants and caveats ("capability" only): the
  /// request must fit every one, whatever the access model allows.
  std::vector<capability_limit> limits{};
  /// The token's id (shared-key and capability tokens): what revoking it
  /// names. Empty for other credentials.
  std::string token_id{};
};

// -- base64url ----------------------------------------------------------------

/// Base64url without padding (RFC 4648 §5).
std::string base64url_encode(std::string_view bytes);

/// Decodes base64url (padding optional). Error: parse_error.
expected<std::string> base64url_decode(std::string_view text);

/// Decodes standard base64 (RFC 4648 §4; padding as the length needs it).
/// Error: parse_error.
expected<std::string> base64_decode(std::string_view text);

/// A fresh random token id (16 hex digits).
std::string new_token_id();

/// The id a token (shared-key or capability) carries, read without
/// checking its MAC (for revoking it). Error: no id in it.
expected<std::string> token_id_of(std::string_view token);

/// The ids of revoked tokens, from a file of one id per line ('#'
/// comments), read again when it changes (checked at most once a second).
class revocation_list {
public:
  /// Reads `path` (empty: nothing is revoked). Error: it cannot be read.
  static expected<revocation_list> load(std::string path);

  /// Whether `id` is revoked (re-reading the file if it changed; a file
  /// gone or unreadable keeps the last list).
  bool revoked(const std::string& id);

  size_t size() const noexcept { return ids_.size(); }

private:
  void reload();

  std::string path_;
  std::vector<std::string> ids_; // sorted
  int64_t mtime_ns_ = -1;
  int64_t size_ = -1;
  std::chrono::steady_clock::time_point checked_{};
};

/// Appends `id` to the revocation file `path` (created 0600, synced).
expected<void> revoke_token_id(const std::string& path, const std::string& id);

/// HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256(std::string_view key, std::string_view data);

/// Constant-time equality of two byte strings.
bool equal_constant_time(std::string_view a, std::string_view b);

// -- SharedKey tokens ---------------------------------------------------------

/// What a shared-key token says.
struct token_claims {
  std::string agent;
  int64_t issued_at = 0;
  int64_t expires_at = 0;
  std::vector<std::string> roles;
  /// A random id (issue_token makes one when empty): what revoking it
  /// names.
  std::string id{};
};

/// Reads the cluster's shared key: a file of at least 32 bytes that only
/// its owner may read (0600). Errors name the file and what is wrong.
expected<std::string> load_shared_key(const std::string& path);

/// Writes a fresh random 32-byte key to `path` (0600; never over an
/// existing file).
expected<void> create_shared_key(const std::string& path);

/// A token for `claims`, signed with `key`.
std::string issue_token(std::string_view key, const token_claims& claims);

/// Checks a token: its MAC (constant time), its claims, that it is valid
/// at `now` (seconds since the epoch) and was issued for no longer than
/// `max_ttl`. Errors (unauthenticated) say which check failed.
expected<token_claims> verify_token(std::string_view key,
                                    std::string_view token, int64_t now,
                                    std::chrono::seconds max_ttl);

// -- JWT (OAuth/OIDC) ---------------------------------------------------------

/// The public keys of an identity provider (a JWKS document: RSA and EC
/// P-256 keys with a `kid`).
class jwks {
public:
  jwks();
  ~jwks();
  jwks(jwks&&) noexcept;
  jwks& operator=(jwks&&) noexcept;

  /// Parses a JWKS document. Errors name the key that is unusable.
  static expected<jwks> parse(std::string_view json);

  /// Reads and parses a JWKS file.
  static expected<jwks> load(const std::string& path);

  /// How many keys it holds.
  size_t size() const;

  struct key;

  /// The key with this kid, or nullptr.
  const key* find(const std::string& kid) const;

private:
  std::map<std::string, std::unique_ptr<key>> keys_;
};

/// What a JWT must satisfy.
struct jwt_policy {
  std::string issuer;
  std::string audience;
  /// The claim naming the agent ("sub" by default).
  std::string agent_claim = "sub";
  /// Clock skew tolerated on exp / nbf / iat.
  std::chrono::seconds leeway{30};
};

/// Verifies a compact JWT: the header's alg (RS256 or ES256 only) must
/// match the key its kid names; the signature; iss, aud, exp, nbf; a
/// lifetime (exp - iat, or exp - now without iat) of at most `max_ttl`.
/// Errors (unauthenticated) say which check failed.
expected<principal> verify_jwt(const jwks& keys, const jwt_policy& policy,
                               std::string_view token, int64_t now,
                               std::chrono::seconds max_ttl);

// -- client certificates ------------------------------------------------------

/// The agent a client certificate (PEM, already verified against the CA
/// by the TLS handshake) names. Refused: a node's certificate, one without
/// an agent name, an expired one.
expected<principal> principal_of_certificate(std::string_view pem, int64_t now);

} // namespace engram::api
