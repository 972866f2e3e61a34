#pragma once

// The master key of encryption at rest from HashiCorp Vault's KV version 2
// secrets engine (its HTTP API): GET <url>/v1/<mount>/data/<path> with the
// token in X-Vault-Token; the key is the secret's field (hex or base64).
// Over HTTPS (the server's certificate checked against `ca`, or the
// system's CAs), or plain HTTP to a Vault agent on loopback only. Errors
// name the URL and what went wrong — never the token nor the key.

#include "core/error.hpp"

#include <chrono>
#include <optional>
#include <string>

#include "crypto/aead.hpp"

namespace engram::engramd {

struct vault_source {
  /// Vault's address, e.g. "https://vault:8200".
  std::string url;
  /// The KV v2 mount and the secret's path in it.
  std::string mount = "secret";
  std::string path = "engram/master";
  /// The field of the secret that holds the key.
  std::string field = "key";
  /// The environment variable holding the token (Vault's own default).
  std::string token_env = "VAULT_TOKEN";
  /// A file holding the token instead (owner-only).
  std::string token_file;
  /// The CA of Vault's certificate (empty: $VAULT_CACERT, else the
  /// system's).
  std::string ca;
  std::chrono::milliseconds timeout{10000};
};

/// A source written as a --master-key value: "vault:<url>/v1/<mount>/data/
/// <path>[#field]" (the token from $VAULT_TOKEN, the CA from
/// $VAULT_CACERT).
expected<vault_source> parse_vault_spec(const std::string& spec);

/// Reads the key.
expected<crypto::key256> load_vault_key(const vault_source& src);

} // namespace engram::engramd
