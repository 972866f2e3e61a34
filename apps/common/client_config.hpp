#pragma once

// The actor system of a command-line client of engramd (engram,
// engram-swarm --real): Engram's types, CAF's network layer, CAF's own
// logging silenced (the tools print their own output).

#include "actors/net.hpp"
#include "actors/tls.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>

namespace engram::apps {

struct client_config : caf::actor_system_config {
  /// Mutual TLS with `tls` (plaintext when it is empty).
  explicit client_config(const actors::tls_config& tls = {}) {
    actors::register_types(*this);
    actors::configure_network(*this);
    if (tls.enabled())
      actors::configure_tls(*this, tls);
    set("logger.console", caf::atom("none"));
    set("logger.file-verbosity", caf::atom("quiet"));
  }
};

} // namespace engram::apps
