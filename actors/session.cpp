// The sync session actor: one peer node × one agent's memory. An adapter
// around the pure machine `sync::session` (sync/session.hpp holds the
// protocol and every rule): it feeds the machine the peer's frames, the
// time, the agent's changes and answers, and carries out what the machine
// asks — frames to the peer, requests to the agent, answers to the callers
// of `sync` and `replicate`, events for the node's log.

#include "sync/session.hpp"

#include "actors/internal/guards.hpp"
#include "actors/internal/spawn.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <map>
#include <stdexcept>
#include <utility>
#include <variant>

namespace engram::actors {

namespace {

struct session_state {
  node_context_ptr ctx;
  std::string agent_id;
  std::string peer_node;
  peer_actor peer;
  agent_actor agent;
  session_settings cfg;
  std::unique_ptr<hybrid_logical_clock> clock;
  std::unique_ptr<sync::session> machine;
  /// Callers of `sync` and `replicate`, by the machine's ids.
  uint64_t next_id = 1;
  std::map<uint64_t, caf::typed_response_promise<sync_result>> rounds;
  std::map<uint64_t, caf::typed_response_promise<bool>> waiters;

  static inline const char* name = "engram.session";
};

using session_ptr = session_actor::stateful_pointer<session_state>;

auto now(session_ptr self) { return self->clock().now(); }

sync::settings machine_settings(const session_settings& s) {
  sync::settings m;
  m.push_delay = s.push_delay;
  m.on_change = s.on_change;
  m.retransmit_after = s.retransmit_after;
  m.anti_entropy_interval = s.anti_entropy_interval;
  m.ping_interval = s.ping_interval;
  m.peer_timeout = s.peer_timeout;
  m.max_outstanding = s.max_outstanding;
  m.max_pending_versions = s.max_pending_versions;
  m.stream_piece = s.stream_piece;
  return m;
}

void drain(session_ptr self);

// Carries out one action of the machine.
struct perform {
  session_ptr self;

  void operator()(sync::act::send& x) const {
    auto& st = self->state;
    // Signed as this node's (when it signs); a frame whose signature
    // failed is not sent: the session's outbox resends.
    auto bytes = st.ctx->sign(std::move(x.bytes), st.peer_node, st.agent_id);
    if (bytes)
      self->send(st.peer, wire_frame{st.ctx->config.node_id, st.agent_id,
                                     std::move(*bytes)});
  }

  void operator()(sync::act::ask_digest& x) const {
    auto tag = x.tag;
    auto s = self;
    self->request(self->state.agent, caf::infinite, digest_atom::value,
                  self->state.peer_node)
        .then(
            [s, tag](uint64_t digest, causal_context& context) {
              s->state.machine->on_digest(tag, digest, std::move(context));
              drain(s);
            },
            [s, tag](caf::error&) {
              s->state.machine->on_failed(tag, now(s));
              drain(s);
            });
  }

  void operator()(sync::act::ask_since& x) const {
    auto tag = x.tag;
    auto s = self;
    self->request(self->state.agent, caf::infinite, since_atom::value,
                  std::move(x.peer), self->state.peer_node, x.first)
        .then(
            [s, tag](replica_delta& missing, std::vector<engram_id>& rest,
                     causal_context& context) {
              s->state.machine->on_since(tag, std::move(missing),
                                         std::move(rest), std::move(context),
                                         now(s));
              drain(s);
            },
            [s, tag](caf::error&) {
              s->state.machine->on_failed(tag, now(s));
              drain(s);
            });
  }

  void operator()(sync::act::ask_piece& x) const {
    auto tag = x.tag;
    auto s = self;
    self->request(self->state.agent, caf::infinite, since_atom::value,
                  std::move(x.ids), self->state.peer_node)
        .then(
            [s, tag](replica_delta& piece) {
              s->state.machine->on_piece(tag, std::move(piece), now(s));
              drain(s);
            },
            [s, tag](caf::error&) {
              s->state.machine->on_failed(tag, now(s));
              drain(s);
            });
  }

  void operator()(sync::act::ask_merge& x) const {
    auto tag = x.tag;
    auto s = self;
    self->request(self->state.agent, caf::infinite, merge_atom::value,
                  std::move(x.delta))
        .then(
            [s, tag](merge_summary& summary) {
              sync::merged m{summary.applied, std::move(summary.conflicts),
                             std::move(summary.open)};
              s->state.machine->on_merged(tag, std::move(m), now(s));
              drain(s);
            },
            [s, tag](caf::error&) {
              s->state.machine->on_failed(tag, now(s));
              drain(s);
            });
  }

  void operator()(sync::act::ask_caught_up&) const {
    auto s = self;
    self->request(self->state.agent, caf::infinite, caught_up_atom::value)
        .then(
            [s](bool counted) {
              s->state.machine->on_caught_up(counted);
              drain(s);
            },
            [s](caf::error&) {
              s->state.machine->on_caught_up(false);
              drain(s);
            });
  }

  void operator()(sync::act::flush_after& x) const {
    self->delayed_send(self, x.after, flush_atom::value);
  }

  void operator()(sync::act::rounds_done& x) const {
    sync_result result;
    result.kind = x.outcome.clean ? sync_result::outcome::clean
                                  : sync_result::outcome::merged;
    result.synced_count = x.outcome.synced_count;
    result.merged_count = x.outcome.merged_count;
    result.conflicts = std::move(x.outcome.conflicts);
    result.peers = 1;
    for (auto id : x.rounds)
      if (auto i = self->state.rounds.find(id); i != self->state.rounds.end()) {
        i->second.deliver(result);
        self->state.rounds.erase(i);
      }
  }

  void operator()(sync::act::round_failed& x) const {
    if (auto i = self->state.rounds.find(x.round);
        i != self->state.rounds.end()) {
      i->second.deliver(to_caf(x.reason));
      self->state.rounds.erase(i);
    }
  }

  void operator()(sync::act::replicated& x) const {
    if (auto i = self->state.waiters.find(x.waiter);
        i != self->state.waiters.end()) {
      i->second.deliver(true);
      self->state.waiters.erase(i);
    }
  }

  void operator()(sync::act::replication_failed& x) const {
    if (auto i = self->state.waiters.find(x.waiter);
        i != self->state.waiters.end()) {
      i->second.deliver(to_caf(x.reason));
      self->state.waiters.erase(i);
    }
  }

  void operator()(sync::act::report& x) const {
    if (auto& handler = self->state.ctx->config.on_event)
      handler(x.event, x.fields);
  }
};

// Carries out what the machine asked for, until it asks for nothing more.
void drain(session_ptr self) {
  for (;;) {
    auto actions = self->state.machine->take_actions();
    if (actions.empty())
      return;
    for (auto& a : actions)
      std::visit(perform{self}, a);
  }
}

session_actor::behavior_type
session_impl(session_ptr self, node_context_ptr ctx, std::string agent_id,
             std::string peer_node, peer_actor peer, agent_actor agent) {
  auto& st = self->state;
  st.ctx = ctx;
  st.agent_id = std::move(agent_id);
  st.peer_node = std::move(peer_node);
  st.peer = std::move(peer);
  st.agent = std::move(agent);
  st.cfg = ctx->config.sessions;
  st.clock = std::make_unique<hybrid_logical_clock>(*ctx->config.wall_clock);
  auto ts = st.clock->now();
  sync::identity who{ctx->config.node_id, st.peer_node, st.agent_id,
                     (ts.wall_us << 16) | (ts.logical & 0xffff)};
  // The node measures the peer's clock; before its first reading, a
  // greeting's wall time gives an estimate.
  auto cluster = ctx->cluster;
  auto wall = ctx->config.wall_clock;
  auto peer_id = st.peer_node;
  auto clock_ok = [cluster, wall, peer_id](uint64_t greeting_wall_us) {
    if (cluster->clock(peer_id) || greeting_wall_us == 0)
      return cluster->clock_ok(peer_id);
    auto mine = wall->now_us();
    auto off = greeting_wall_us > mine ? greeting_wall_us - mine
                                       : mine - greeting_wall_us;
    return off <= static_cast<uint64_t>(cluster->max_offset_us());
  };
  st.machine = std::make_unique<sync::session>(
      std::move(who), machine_settings(st.cfg), *st.clock,
      *ctx->config.wall_clock, std::move(clock_ok), now(self));
  if (ctx->signer && ctx->origin_binding) {
    // Proofs of origin: the agent's book proves what is sent and checks
    // what arrives; without a book (not loaded yet) nothing is taken.
    auto books = ctx->origins;
    auto agent_id = st.agent_id;
    sync::origin_hooks hooks;
    hooks.prove
        = [books, agent_id](const replica_delta& d, v1::DeltaBatch& batch) {
            if (auto b = books->get(agent_id))
              b->prove(d, batch);
          };
    hooks.check
        = [books, agent_id](
              const v1::DeltaBatch& batch,
              replica_delta& d) -> expected<sync::origin_hooks::dropped> {
      auto b = books->get(agent_id);
      if (!b)
        return make_error(errc::unavailable,
                          "the memory's proofs of origin are not loaded");
      auto checked = b->check(batch, d);
      if (!checked)
        return checked.error_value();
      std::string why;
      for (auto& r : checked->reasons)
        why += (why.empty() ? "" : "; ") + r;
      return sync::origin_hooks::dropped{checked->dropped, std::move(why)};
    };
    st.machine->set_origins(std::move(hooks));
  }
  // An error answer to a request without its own handler (the agent being
  // respawned) must not end the session: the next round retries.
  self->set_error_handler([](caf::error&) {});
  drain(self);
  self->delayed_send(self, st.cfg.tick, tick_atom::value);
  // A session takes orders from its own process only: frames and peers
  // from the node actor (which checked who sent them), the rest from the
  // agent's actors. A message from another process — a node that learned
  // this session's address from its frames — is dropped.
  auto from_node = [self] {
    return from_node_actor(self, self->state.ctx->node);
  };
  auto from_here = [self] {
    return from_this_process(self);
  };
  auto refused = [] {
    return to_caf(make_error(errc::unauthenticated,
                             "a session takes requests from its own process "
                             "only"));
  };
  // An exit message from another process is not an order either (CAF
  // handles exit messages outside the behaviour); the node's own
  // anon_send_exit has no source and ends the session.
  ignore_foreign_exits(self);
  return {
      [=](const wire_frame& frame) {
        if (!from_node())
          return;
        self->state.machine->on_frame(frame.envelope, now(self));
        drain(self);
      },
      [=](push_atom, replica_delta& delta) {
        if (!from_here())
          return;
        self->state.machine->on_push(std::move(delta), now(self));
        drain(self);
      },
      [=](replicate_atom, replica_delta& delta) -> caf::result<bool> {
        if (!from_here())
          return refused();
        auto& s = self->state;
        auto rp = self->make_response_promise<bool>();
        auto id = s.next_id++;
        s.waiters.emplace(id, rp);
        auto t = now(self);
        s.machine->on_replicate(
            id, std::move(delta), t,
            t + 2 * s.ctx->config.replication.write_timeout);
        drain(self);
        return rp;
      },
      [=](flush_atom) {
        if (!from_here())
          return;
        self->state.machine->on_flush(now(self));
        drain(self);
      },
      [=](tick_atom) {
        if (!from_here())
          return;
        auto& s = self->state;
        self->delayed_send(self, s.cfg.tick, tick_atom::value);
        s.machine->on_tick(now(self));
        drain(self);
      },
      [=](sync_atom, const sync_config& cfg) -> caf::result<sync_result> {
        if (!from_here())
          return refused();
        auto& s = self->state;
        auto rp = self->make_response_promise<sync_result>();
        auto id = s.next_id++;
        s.rounds.emplace(id, rp);
        auto t = now(self);
        s.machine->on_sync(id, t, t + cfg.timeout, cfg.interval, cfg.on_change);
        drain(self);
        return rp;
      },
      [=](attach_atom, agent_actor& agent) {
        if (!from_here())
          return;
        self->state.agent = std::move(agent);
        self->state.machine->on_agent_new();
        drain(self);
      },
      [=](peer_atom, peer_actor& peer) {
        if (!from_node())
          return;
        auto& s = self->state;
        if (!peer) { // the peer node was lost
          s.machine->on_peer_lost();
        } else { // it restarted (or was reached anew): greet it again
          s.peer = std::move(peer);
          s.machine->on_peer_new(now(self));
        }
        drain(self);
      },
      [=](status_atom) -> caf::result<session_stats> {
        if (!from_here())
          return refused();
        auto& s = self->state;
        auto& m = *s.machine;
        auto& f = m.stats();
        session_stats result;
        result.peer_node = s.peer_node;
        result.agent = s.agent_id;
        result.established = m.established();
        result.frames_in = f.frames_in;
        result.frames_out = f.frames_out;
        result.merged = f.merged;
        result.duplicates = f.duplicates;
        result.refused = f.refused;
        result.retransmits = f.retransmits;
        result.outstanding = m.outstanding();
        result.pending_versions = m.pending_versions();
        result.pending_overflows = f.pending_overflows;
        result.unread_engrams = m.unread_engrams();
        result.rounds = f.rounds;
        result.idle_rounds = f.idle_rounds;
        result.bytes_in = f.bytes_in;
        result.bytes_out = f.bytes_out;
        return result;
      },
      [=](fail_atom) {
        if (!from_here())
          return;
        throw std::runtime_error("session " + self->state.agent_id + "@"
                                 + self->state.peer_node + ": injected fault");
      },
  };
}

} // namespace

session_actor spawn_session(caf::local_actor* parent, node_context_ptr ctx,
                            const std::string& agent_id,
                            const std::string& peer_node, peer_actor peer,
                            agent_actor agent) {
  return parent->spawn<caf::monitored>(session_impl, std::move(ctx), agent_id,
                                       peer_node, std::move(peer),
                                       std::move(agent));
}

} // namespace engram::actors
