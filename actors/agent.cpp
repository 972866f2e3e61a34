// The agent actor: one node's replica of an agent's Agent-scope memory.
// Every change is recorded durably (one synced RocksDB batch) before it is
// acknowledged, then pushed to the agent's sync sessions.

#include "actors/node.hpp"
#include "actors/spawn.hpp"
#include "core/query.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <stdexcept>

namespace engram::actors {

namespace {

struct agent_state {
  node_context_ptr ctx;
  agent_config cfg;
  std::unique_ptr<hybrid_logical_clock> clock;
  std::unique_ptr<replica> mem;
  std::unique_ptr<persistence::store> db;
  std::vector<session_actor> sessions;

  static inline const char* name = "engram.agent";
};

using agent_ptr = agent_actor::stateful_pointer<agent_state>;

// Records a change; a change that cannot be made durable must not be
// served from memory only: the actor fails and its supervisor reloads the
// store.
void record(agent_ptr self, const replica_delta& delta) {
  auto& st = self->state;
  if (delta.empty())
    return;
  if (auto seq = st.db->record(delta, *st.mem); !seq)
    throw std::runtime_error("agent " + st.cfg.agent_id
                             + ": cannot record a change: "
                             + seq.error_value().to_string());
}

void push(agent_ptr self, const replica_delta& delta) {
  if (delta.empty())
    return;
  for (auto& s : self->state.sessions)
    self->send(s, push_atom::value, delta);
}

// A local write: record, push, answer the id.
caf::result<engram_id> commit(agent_ptr self, expected<replica_delta> delta) {
  if (!delta)
    return to_caf(delta.error_value());
  record(self, *delta);
  push(self, *delta);
  if (delta->entries.empty())
    return engram_id{};
  return delta->entries.front().id;
}

} // namespace

namespace {

agent_actor::behavior_type agent_impl(agent_ptr self, node_context_ptr ctx,
                                      std::string agent_id) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = ctx->agent(agent_id);
  st.clock = std::make_unique<hybrid_logical_clock>(*ctx->config.wall_clock);
  auto partition = agent_partition(agent_id);
  auto self_id = replica_of(ctx->config.node_id, partition);
  st.mem = std::make_unique<replica>(self_id, *st.clock, st.cfg.replication);
  auto db = persistence::store::attach(ctx->db, partition, self_id);
  if (!db) {
    self->quit(to_caf(db.error_value()));
    return agent_actor::behavior_type::make_empty_behavior();
  }
  st.db = std::move(*db);
  if (auto loaded = st.db->load(*st.mem); !loaded) {
    self->quit(to_caf(loaded.error_value()));
    return agent_actor::behavior_type::make_empty_behavior();
  }
  self->set_down_handler([=](caf::down_msg& down) {
    auto& sessions = self->state.sessions;
    sessions.erase(std::remove_if(sessions.begin(), sessions.end(),
                                  [&](const session_actor& s) {
                                    return s.address() == down.source;
                                  }),
                   sessions.end());
  });
  return {
      [=](learn_atom, engram_record& value) -> caf::result<engram_id> {
        auto& s = self->state;
        if (value.scope.is_placeholder()
            && value.scope.kind() == scope_kind::agent)
          value.scope = memory_scope::agent(s.cfg.agent_id);
        if (value.scope != memory_scope::agent(s.cfg.agent_id))
          return to_caf(make_error(errc::invalid_scope,
                                   "agent " + s.cfg.agent_id
                                       + " holds only its Agent scope, not "
                                       + value.scope.to_string()));
        return commit(self, s.mem->put(std::move(value)));
      },
      [=](query_atom, const query_filter& filter) {
        std::vector<memory_view> result;
        select(*self->state.mem, filter, result);
        finish(filter, result);
        return result;
      },
      [=](forget_atom, const engram_id& id,
          std::string& reason) -> caf::result<engram_id> {
        return commit(self, self->state.mem->forget(id, std::move(reason)));
      },
      [=](archive_atom, const engram_id& id) -> caf::result<engram_id> {
        return commit(self, self->state.mem->archive(id));
      },
      [=](answer_atom, uint64_t conflict_id,
          const std::string& option) -> caf::result<engram_id> {
        return commit(self, self->state.mem->answer(conflict_id, option));
      },
      [=](pending_atom) {
        return self->state.mem->pending_questions();
      },
      [=](sync_atom, const sync_config& cfg) -> caf::result<sync_result> {
        auto& sessions = self->state.sessions;
        if (sessions.empty())
          return sync_result{};
        // Fan out to every session, fan in their results.
        auto rp = self->make_response_promise<sync_result>();
        auto total = std::make_shared<sync_result>();
        auto waiting = std::make_shared<size_t>(sessions.size());
        auto done = [=]() mutable {
          if (--*waiting > 0)
            return;
          total->kind = total->conflicts.empty() ? sync_result::outcome::clean
                                                 : sync_result::outcome::merged;
          rp.deliver(*total);
        };
        for (auto& s : sessions)
          self->request(s, cfg.timeout + cfg.timeout / 2, sync_atom::value, cfg)
              .then(
                  [=](sync_result& r) mutable {
                    total->synced_count += r.synced_count;
                    total->merged_count += r.merged_count;
                    total->peers += r.peers;
                    for (auto& c : r.conflicts)
                      total->conflicts.push_back(std::move(c));
                    done();
                  },
                  [=](caf::error&) mutable {
                    done();
                  });
        return rp;
      },
      // -- sessions' side --------------------------------------------------
      [=](digest_atom) -> caf::result<uint64_t, causal_context> {
        auto& mem = *self->state.mem;
        return {mem.digest(), mem.context()};
      },
      [=](since_atom, const causal_context& peer)
          -> caf::result<replica_delta, causal_context> {
        auto& mem = *self->state.mem;
        return {mem.delta_since(peer), mem.context()};
      },
      [=](merge_atom,
          const replica_delta& delta) -> caf::result<merge_summary> {
        auto& mem = *self->state.mem;
        auto report = mem.join(delta);
        if (!report)
          return to_caf(report.error_value());
        record(self, delta);
        if (!report->resolutions.empty()) {
          // Resolutions are writes: stored and shipped like any other.
          record(self, report->resolutions);
          push(self, report->resolutions);
        }
        merge_summary summary;
        summary.applied = report->applied;
        summary.conflicts = std::move(report->conflicts);
        return summary;
      },
      [=](attach_atom, const caf::actor& session) {
        auto hdl = caf::actor_cast<session_actor>(session);
        auto& sessions = self->state.sessions;
        if (std::find(sessions.begin(), sessions.end(), hdl)
            == sessions.end()) {
          sessions.push_back(hdl);
          self->monitor(hdl); // dropped when it ends (down handler)
        }
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
  return parent->spawn<caf::monitored>(agent_impl, std::move(ctx), agent_id);
}

} // namespace engram::actors
