#pragma once

// engramd's transport security settings: mutual TLS unless plaintext is
// asked for, plaintext beyond loopback only when asked twice, every TLS key
// and connection limit checked (called by validate()).

#include "apps/engramd/config.hpp"

namespace engram::engramd {

/// Fills `v`'s TLS, insecure flag and connection limits from `s`; the error
/// names the key.
expected<void> check_security(const settings& s, daemon_config& v);

} // namespace engram::engramd
