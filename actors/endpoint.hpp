#pragma once

// Addresses of nodes: parsing "host:port", resolving seeds (DNS
// discovery), checking that a node could listen. No CAF: the daemon's
// configuration is validated with these alone.

#include "core/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace engram::actors {

/// A host and a TCP port.
struct endpoint {
  std::string host;
  uint16_t port = 0;

  /// "host:port" ("[v6]:port" for IPv6 literals).
  std::string to_string() const;
};

/// Parses "host:port" or "[v6]:port"; errors name what is wrong.
expected<endpoint> parse_endpoint(std::string_view text);

/// Resolves a seed: "host:port" as given, or "dns:name:port" to one endpoint
/// per A/AAAA record of `name` (DNS discovery).
expected<std::vector<endpoint>> resolve_seed(std::string_view text);

/// Whether a node could listen at `at` now (the address is local and the
/// port free; port 0 always is): what `engramd --check-config` checks.
expected<void> check_listen(const endpoint& at);

} // namespace engram::actors
