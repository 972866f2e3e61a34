#pragma once

// Who may talk to an actor whose address peers learn (it sends them frames
// itself): frames only from the node actor, which checked who sent them and
// their signatures; requests only from this process; and exit messages from
// another process are no orders. Not installed.

#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

namespace engram::actors {

/// Whether the current message comes from the node actor `node`.
template<class Self>
bool from_node_actor(Self* self, const caf::actor_addr& node) {
  return caf::actor_cast<caf::actor_addr>(self->current_sender()) == node;
}

/// Whether the current message comes from an actor of this process.
template<class Self>
bool from_this_process(Self* self) {
  auto& sender = self->current_sender();
  return sender && sender->node() == self->node();
}

/// Exit messages from another process are ignored (CAF handles exits
/// outside the behaviour); the node's own anon_send_exit has no source and
/// ends the actor.
template<class Self>
void ignore_foreign_exits(Self* self) {
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (msg.source && msg.source.node() != self->node())
      return;
    if (msg.reason)
      self->quit(msg.reason);
  });
}

} // namespace engram::actors
