#pragma once

// The actor system of a command-line client of engramd (engram,
// engram-swarm --real): Engram's types, CAF's network layer, CAF's own
// logging silenced (the tools print their own output).

#include "actors/net.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>

namespace engram::apps {

struct client_config : caf::actor_system_config {
  client_config() {
    actors::register_types(*this);
    actors::configure_network(*this);
    set("logger.console", caf::atom("none"));
    set("logger.file-verbosity", caf::atom("quiet"));
  }
};

} // namespace engram::apps
