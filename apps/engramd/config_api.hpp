#pragma once

// engramd's client API settings: [api], the clients' part of
// [distribution.auth] (token_ttl, shared_key, oauth, client_certificates)
// and [distribution.access_control] — read from the TOML file, then checked
// (the files they name are read: the shared key, the JWKS, the ABAC
// policies). Every error names its key.

#include "apps/engramd/config.hpp"

#include <toml.hpp>

namespace engram::engramd {

/// Reads [api] of config `path` into `a`.
expected<void> read_api_table(const toml::value& v, const std::string& path,
                              api_settings& a);

/// Reads key `k` of [distribution.auth] when it is about clients; false
/// when it is not one of theirs.
expected<bool> read_client_auth(const std::string& k, const toml::value& v,
                                const std::string& path, api_settings& a);

/// Reads [distribution.access_control].
expected<void> read_access_control(const toml::value& v,
                                   const std::string& path, api_settings& a);

/// Checks the client API's settings of `s` into `v` (after the transport
/// security's: the API speaks the node's TLS).
expected<void> check_api(const settings& s, daemon_config& v);

} // namespace engram::engramd
