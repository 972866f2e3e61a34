#pragma once

// A simulated network link between two nodes of one process, for
// deterministic simulations (CAF's test coordinator, simulated time) and
// tests: frames are dropped, duplicated, held back and delayed with a
// seeded RNG, and the link can be cut (a partition). Whatever else a node
// asks its peer goes straight through while the link is up.

#include "actors/types.hpp"
#include "messages/envelope.hpp"

#include <caf/message_view.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace engram::sim {

using actors::peer_actor;
using actors::wire_frame;

/// What a link saw: every frame handed to it, by direction.
struct link_log {
  struct entry {
    std::string from;
    std::string agent;
    std::string type;
    uint64_t sequence = 0;
    bool delivered = true;
  };
  /// Every frame (off: only the counters, for long simulations).
  bool keep_entries = true;
  std::vector<entry> entries;
  /// Frames handed to the link, and those it dropped.
  uint64_t frames = 0;
  size_t dropped = 0;
  /// Envelope bytes handed to the link (dropped frames included).
  uint64_t bytes = 0;
  size_t duplicated = 0;
  /// While set, the link drops everything (a partition).
  bool partitioned = false;

  /// The message types sent by `from`, in order.
  std::vector<std::string> types_from(const std::string& from) const {
    std::vector<std::string> out;
    for (auto& e : entries)
      if (e.from == from)
        out.push_back(e.type);
    return out;
  }
};

struct link_params {
  double loss = 0;
  double duplication = 0;
  /// Probability that a frame is held back (delivered after later ones).
  double delay = 0;
  std::chrono::milliseconds max_delay{100};
  /// Every frame takes this long (a slow or distant peer).
  std::chrono::milliseconds latency{0};
  uint64_t seed = 1;
};

struct link_state {
  std::mt19937_64 rng;
  static inline const char* name = "engram.sim.link";
};

inline peer_actor::behavior_type
link_impl(peer_actor::stateful_pointer<link_state> self, peer_actor dest,
          link_params p, std::shared_ptr<link_log> log) {
  self->state.rng.seed(p.seed);
  // Whatever else a node asks its peer (an agent's handle, ...) goes
  // straight through while the link is up, and fails while partitioned.
  self->set_default_handler(
      [dest, log](caf::scheduled_actor* s,
                  caf::message_view& x) -> caf::result<caf::message> {
        if (log->partitioned)
          return caf::sec::request_receiver_down;
        auto rp = s->make_response_promise();
        rp.delegate(caf::actor_cast<caf::actor>(dest),
                    x.move_content_to_message());
        return caf::delegated<caf::message>{};
      });
  return {
      [=](wire_frame& frame) {
        auto& rng = self->state.rng;
        std::uniform_real_distribution<double> coin{0, 1};
        ++log->frames;
        log->bytes += frame.envelope.size();
        link_log::entry e;
        if (log->keep_entries) {
          e.from = frame.from_node;
          e.agent = frame.agent;
          if (auto env = messages::decode_envelope(frame.envelope)) {
            e.type = v1::MessageType_Name(env->type());
            if (env->type() == v1::SYNC_RESPONSE) {
              v1::SyncResponse r;
              if (r.ParseFromString(env->payload()))
                e.sequence = r.sequence();
            }
          }
        }
        if (log->partitioned || coin(rng) < p.loss) {
          e.delivered = false;
          if (log->keep_entries)
            log->entries.push_back(e);
          ++log->dropped;
          return;
        }
        if (log->keep_entries)
          log->entries.push_back(e);
        int copies = coin(rng) < p.duplication ? 2 : 1;
        if (copies == 2)
          ++log->duplicated;
        for (int i = 0; i < copies; ++i) {
          if (coin(rng) < p.delay) {
            std::uniform_int_distribution<int> ms{
                1, static_cast<int>(p.max_delay.count())};
            self->delayed_send(
                dest, p.latency + std::chrono::milliseconds{ms(rng)}, frame);
          } else if (p.latency.count() > 0) {
            self->delayed_send(dest, p.latency, frame);
          } else {
            self->send(dest, frame);
          }
        }
      },
  };
}

} // namespace engram::sim
