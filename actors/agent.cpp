// The agent actor: one node's replica of an agent's Agent-scope memory.
// Every change is recorded durably (one synced RocksDB batch) before it is
// acknowledged, then pushed to the agent's sync sessions. This file is the
// dispatch: each message's work is in agent_writes.cpp, agent_reads.cpp,
// agent_sync.cpp, agent_inbox.cpp or agent_sharing.cpp. A federation's
// replica is an actor of its own (federation.cpp).

#include "actors/internal/agent_state.hpp"
#include "actors/internal/spawn.hpp"

#include <caf/local_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <stdexcept>

namespace engram::actors {

namespace {

caf::error not_a_federation(agent_ptr self) {
  return to_caf(
      make_error(errc::invalid_argument,
                 self->state.cfg.agent_id + " is an agent, not a federation"));
}

caf::error only_own_scope(agent_ptr self, const memory_scope& scope) {
  return to_caf(
      make_error(errc::invalid_scope, "agent " + self->state.cfg.agent_id
                                          + " holds only its Agent scope, not "
                                          + scope.to_string()));
}

agent_actor::behavior_type agent_impl(agent_ptr self, node_context_ptr ctx,
                                      std::string agent_id) {
  if (!open_replica(self, std::move(ctx), agent_id)
      || !adopt_legacy_messages(self))
    return agent_actor::behavior_type::make_empty_behavior();
  return {
      // -- writes ---------------------------------------------------------
      [=](learn_atom, engram_record& value) -> caf::result<engram_id> {
        auto& s = self->state;
        if (value.scope.is_placeholder()
            && value.scope.kind() == scope_kind::agent)
          value.scope = memory_scope::agent(s.cfg.agent_id);
        if (value.scope != s.hosted)
          return only_own_scope(self, value.scope);
        return route_write(self, std::move(value));
      },
      [=](forward_atom, engram_record& value) -> caf::result<engram_id> {
        if (value.scope != self->state.hosted)
          return only_own_scope(self, value.scope);
        return write_here(self, std::move(value));
      },
      [=](forget_atom, const engram_id& id,
          std::string& reason) -> caf::result<engram_id> {
        return change(
            self, id,
            [=](replica& mem) {
              return mem.forget(id, reason);
            },
            [=](const agent_actor& hdl,
                caf::typed_response_promise<engram_id> rp) mutable {
              rp.delegate(hdl, forget_atom::value, id, reason);
            });
      },
      [=](archive_atom, const engram_id& id) -> caf::result<engram_id> {
        return change(
            self, id,
            [=](replica& mem) {
              return mem.archive(id);
            },
            [=](const agent_actor& hdl,
                caf::typed_response_promise<engram_id> rp) mutable {
              rp.delegate(hdl, archive_atom::value, id);
            });
      },
      [=](answer_atom, uint64_t conflict_id,
          const std::string& option) -> caf::result<engram_id> {
        return answer_question(self, conflict_id, option);
      },
      [=](answer_atom, const std::string&, uint64_t,
          const std::string&) -> caf::result<engram_id> {
        return not_a_federation(self);
      },
      // -- reads ----------------------------------------------------------
      [=](query_atom, const query_filter& filter,
          level_code level) -> caf::result<std::vector<memory_view>> {
        return read(self, filter, level);
      },
      [=](query_atom, const query_filter& filter, level_code level,
          const std::string&) -> caf::result<std::vector<memory_view>> {
        return read(self, filter, level);
      },
      [=](pending_atom) {
        return self->state.mem->pending_questions();
      },
      [=](pending_atom,
          const std::string&) -> caf::result<std::vector<pending_question>> {
        return self->state.mem->pending_questions();
      },
      // -- messages -------------------------------------------------------
      [=](tell_atom, const std::string& from, const std::string& text,
          uint64_t id) -> caf::result<bool> {
        return take_message(self, from, text, id);
      },
      [=](ask_atom, const std::string& from,
          const std::string& question) -> caf::result<std::string> {
        auto& s = self->state;
        // An answer is not sealed: under e2e, none leaves this node (an
        // asker on a node that does not require e2e is refused here).
        if (s.ctx->config.e2e_required)
          return to_caf(make_error(errc::permission_denied,
                                   "end-to-end encryption is required on node "
                                       + s.ctx->config.node_id + ": agent "
                                       + s.cfg.agent_id
                                       + " answers no unsealed questions"));
        if (s.cfg.on_ask)
          return s.cfg.on_ask(from, question);
        if (s.cfg.answer_from_memory)
          return answer_from_memory(self, question);
        return to_caf(make_error(errc::invalid_argument,
                                 "agent " + s.cfg.agent_id
                                     + " answers no questions (no on_ask "
                                       "handler)"));
      },
      [=](inbox_atom) -> caf::result<std::vector<std::string>> {
        return read_inbox(self);
      },
      [=](keyof_atom) -> caf::result<std::string> {
        return key_of(self);
      },
      [=](watch_atom, caf::actor& watcher) {
        return add_watcher(self, std::move(watcher));
      },
      [=](inbox_atom,
          const std::vector<engram_id>& ids) -> std::vector<memory_view> {
        return inbox_views(self, ids);
      },
      [=](broadcast_atom, const std::string&,
          const std::string&) -> caf::result<uint64_t> {
        return to_caf(make_error(errc::invalid_argument,
                                 "broadcast goes to a federation, not to "
                                 "agent "
                                     + self->state.cfg.agent_id));
      },
      // -- shares ---------------------------------------------------------
      [=](share_atom,
          const federation::share& offered) -> caf::result<std::string> {
        return offer(self, offered);
      },
      [=](shares_atom) {
        return pending_shares(self);
      },
      [=](accept_atom, const std::string& from, const std::string& share_id,
          double trust) -> caf::result<uint64_t> {
        return accept_share(self, from, share_id, trust);
      },
      [=](accept_atom, const std::string& from, const std::string& share_id,
          double trust,
          const federation::share& opened) -> caf::result<uint64_t> {
        return accept_share(self, from, share_id, trust, &opened);
      },
      [=](decline_atom,
          const std::string& share_id) -> caf::result<std::string> {
        return decline_share(self, share_id);
      },
      [=](federation_atom, const federation::federation_command&)
          -> caf::result<federation::federation_state> {
        return not_a_federation(self);
      },
      // -- the sessions' side ---------------------------------------------
      [=](sync_atom, const sync_config& cfg) {
        return sync_all(self, cfg);
      },
      [=](digest_atom, const std::string& peer) {
        return digest_for(self, peer);
      },
      [=](since_atom, const causal_context& peer_context,
          const std::string& peer, uint64_t first) {
        return missing_for(self, peer_context, peer, first);
      },
      [=](since_atom, const std::vector<engram_id>& ids,
          const std::string& peer) {
        return piece_for(self, ids, peer);
      },
      [=](merge_atom, const replica_delta& delta) {
        return merge_batch(self, delta);
      },
      [=](written_atom, uint64_t ticket, const std::string& failure) {
        written(self, ticket, failure);
      },
      [=](attach_atom, const caf::actor& session, const std::string& peer) {
        attach_session(self, session, peer, nullptr);
      },
      [=](caught_up_atom) {
        return note_caught_up(self);
      },
      [=](tick_atom) {
        // Agents have no periodic work (a federation checks its leader).
      },
      [=](fail_atom) {
        throw std::runtime_error("agent " + self->state.cfg.agent_id
                                 + ": injected fault");
      },
  };
}

} // namespace

agent_actor spawn_agent(caf::local_actor* parent, node_context_ptr ctx,
                        const std::string& agent_id) {
  if (is_federation_id(agent_id))
    return parent->spawn<caf::monitored>(federation_impl, std::move(ctx),
                                         agent_id);
  return parent->spawn<caf::monitored>(agent_impl, std::move(ctx), agent_id);
}

} // namespace engram::actors
