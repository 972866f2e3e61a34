#pragma once

// The master key from a PKCS#11 token (an HSM, a smart card, SoftHSM): the
// token holds a secret key that never leaves it, and the master key is
// derived inside the token as HMAC-SHA256 (CKM_SHA256_HMAC) under that key
// of a fixed label. Without the token and its PIN there is no master key;
// rotating means a new token key (another label) and `engramd rekey`.
//
// The token, key and module are named by an RFC 7512 PKCS#11 URI:
//
//   pkcs11:token=<label>;object=<key label>?module-path=<module .so>
//          &pin-source=file:<path>      (owner-only, as key files)
//          &pin-source=env:<NAME>       (an environment variable)
//
// Errors name the module, token and key and the PKCS#11 return code
// (CKR_PIN_INCORRECT, ...) — never the PIN.

#include <string>

#include "crypto/aead.hpp"

namespace engram::crypto {

struct pkcs11_source {
  /// The module (shared library) that speaks to the token.
  std::string module;
  /// The token's label and the secret key's label (CKA_LABEL).
  std::string token;
  std::string object;
  /// Where the user PIN comes from: "file:PATH" or "env:NAME".
  std::string pin_source;
};

/// Parses a "pkcs11:" URI (values percent-decoded). Errors name what is
/// missing or malformed.
expected<pkcs11_source> parse_pkcs11_uri(const std::string& uri);

/// The master key derived in the token.
expected<key256> load_pkcs11_key(const pkcs11_source& src);

/// Creates the token's secret key — a 256-bit generic secret, sensitive
/// and never extractable, usable only to sign (HMAC) — unless the token
/// holds one with that label already. Returns true when it created one.
expected<bool> generate_pkcs11_key(const pkcs11_source& src);

} // namespace engram::crypto
