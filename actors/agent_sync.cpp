// The sessions' side of a replica (an agent's or a federation's): what the
// sync machine (sync/session) asks of it through the session actor —
// digests, what a peer misses, merges of a peer's batches — and the
// sessions it has.

#include "actors/internal/agent_state.hpp"

#include <algorithm>
#include <memory>
#include <tuple>

namespace engram::actors {

caf::result<sync_result> sync_all(agent_ptr self, const sync_config& cfg) {
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
  for (auto& [_, s] : sessions)
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
}

namespace {

// What a peer is told about this replica goes out only once every change
// it includes is durable here: a client's write may still be queued for
// the write queue's next sync, and a version a peer got before a crash
// lost it here would have its dot issued again. The answer is made now
// (from what is queued so far) and held until those writes are written.
template<class... Ts>
caf::result<Ts...> when_durable(agent_ptr self, Ts... xs) {
  auto& st = self->state;
  if (st.writes_done == st.writes_queued)
    return caf::result<Ts...>{std::move(xs)...};
  auto rp = self->make_response_promise<Ts...>();
  st.after_write.emplace_back(
      st.writes_queued,
      [rp, answer = std::make_tuple(std::move(xs)...)]() mutable {
        std::apply(
            [&](auto&... ys) {
              rp.deliver(std::move(ys)...);
            },
            answer);
      });
  return rp;
}

} // namespace

caf::result<uint64_t, causal_context> digest_for(agent_ptr self,
                                                 const std::string& peer) {
  auto& mem = *self->state.mem;
  auto& place = placing(self);
  if (place.everywhere() || peer.empty()) // empty: everything held
    return when_durable(self, mem.digest(), mem.context());
  return when_durable(self, mem.digest_of(held_by(place, peer)), mem.context());
}

caf::result<replica_delta, std::vector<engram_id>, causal_context>
missing_for(agent_ptr self, const causal_context& peer_context,
            const std::string& peer, uint64_t first) {
  auto& mem = *self->state.mem;
  auto& place = placing(self);
  auto rest = mem.missing_since(peer_context);
  auto n = static_cast<ptrdiff_t>(std::min<uint64_t>(first, rest.size()));
  auto piece = mem.delta_of({rest.begin(), rest.begin() + n});
  rest.erase(rest.begin(), rest.begin() + n);
  if (!place.everywhere() && !peer.empty())
    piece = filter_delta(piece, held_by(place, peer));
  else if (rest.empty()) // the whole delta: with the whole context
    piece.context = mem.context();
  return when_durable(self, std::move(piece), std::move(rest), mem.context());
}

caf::result<replica_delta> piece_for(agent_ptr self,
                                     const std::vector<engram_id>& ids,
                                     const std::string& peer) {
  auto& mem = *self->state.mem;
  auto& place = placing(self);
  if (!place.everywhere() && !peer.empty())
    return when_durable(self,
                        filter_delta(mem.delta_of(ids), held_by(place, peer)));
  return when_durable(self, mem.delta_of(ids));
}

caf::result<merge_summary> merge_batch(agent_ptr self,
                                       const replica_delta& delta) {
  auto& mem = *self->state.mem;
  auto report = mem.join(delta);
  if (!report)
    return to_caf(report.error_value());
  merge_summary summary;
  summary.applied = report->applied;
  summary.conflicts = std::move(report->conflicts);
  for (auto& c : report->forked)
    summary.open.push_back(c.id);
  for (auto& q : report->pending)
    summary.open.push_back(q.subject.id);
  // Answered (the peer acknowledges the frame) once stored durably.
  auto rp = self->make_response_promise<merge_summary>();
  record_then(self, delta, [rp, summary]() mutable {
    rp.deliver(std::move(summary));
  });
  if (!report->resolutions.empty()) {
    // Resolutions are writes: stored and shipped like any other.
    record(self, report->resolutions);
    push(self, report->resolutions);
  }
  note_messages(self->state, delta);
  // Proofs of versions superseded since go once they outgrow the memory.
  if (auto& st = self->state; st.origins && st.origins->prune_due(mem.size()))
    if (auto gone = prune_origins(*st.origins, mem); !gone.empty())
      if (auto ok = st.db->drop_side_records(gone);
          !ok && st.ctx->config.on_event)
        st.ctx->config.on_event(
            "store_note", {{"node", st.ctx->config.node_id},
                           {"note", "agent " + st.cfg.agent_id
                                        + ": cannot drop proofs of origin: "
                                        + ok.error_value().message}});
  return rp;
}

void written(agent_ptr self, uint64_t ticket, const std::string& failure) {
  auto& st = self->state;
  if (!failure.empty())
    cannot_record(self, failure);
  st.writes_done = std::max(st.writes_done, ticket);
  while (!st.after_write.empty()
         && st.after_write.front().first <= st.writes_done) {
    auto reply = std::move(st.after_write.front().second);
    st.after_write.pop_front();
    reply();
  }
}

void attach_session(agent_ptr self, const caf::actor& session,
                    const std::string& peer,
                    const std::function<void(const session_actor&)>& on_new) {
  auto hdl = caf::actor_cast<session_actor>(session);
  auto& sessions = self->state.sessions;
  auto i = std::find_if(sessions.begin(), sessions.end(), [&](const auto& s) {
    return s.second == hdl;
  });
  if (i != sessions.end())
    return;
  sessions.emplace_back(peer, hdl);
  self->monitor(hdl); // dropped when it ends (the down handler)
  if (on_new)
    on_new(hdl);
}

bool note_caught_up(agent_ptr self) {
  // Caught up with an empty peer, an empty replica is not: the next read
  // still consults a host (which may hold what neither has).
  auto& s = self->state;
  s.caught_up = s.caught_up || s.mem->size() > 0;
  return s.caught_up;
}

} // namespace engram::actors
