// The writes of a replica (an agent's or a federation's): opening it,
// recording changes durably, shipping them to the peers holding them, and
// waiting for as many replicas as the consistency level needs.

#include "actors/internal/agent_state.hpp"
#include "actors/node.hpp"
#include "federation/share.hpp"

#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include <algorithm>
#include <stdexcept>

namespace engram::actors {

namespace {

// The proofs of origin this memory keeps (when the node signs envelopes,
// it proves its versions too): restored from the store, those of
// versions no longer held dropped, registered for the sessions.
void open_origins(agent_ptr self, const std::string& partition,
                  uint32_t incarnation) {
  auto& st = self->state;
  auto& ctx = st.ctx;
  if (!ctx->signer || !ctx->identity || !ctx->origin_binding)
    return;
  origin::book::config cfg;
  cfg.node = ctx->config.node_id;
  cfg.agent = st.cfg.agent_id;
  cfg.key = ctx->signer;
  cfg.binding = *ctx->origin_binding;
  auto base = replica_of(ctx->config.node_id, partition);
  for (uint32_t i = 0; i <= incarnation; ++i)
    cfg.own.push_back(incarnation_of(base, i));
  cfg.trust = {&ctx->identity->ca,
               ctx->identity->crl ? &*ctx->identity->crl : nullptr};
  cfg.anchor = ctx->identity;
  auto b = std::make_shared<origin::book>(std::move(cfg));
  std::vector<std::string> gone;
  if (auto records = st.db->side_records(); records && !records->empty()) {
    gone = b->restore(*records);
    auto unused = prune_origins(*b, *st.mem);
    gone.insert(gone.end(), unused.begin(), unused.end());
  }
  if (auto ok = st.db->drop_side_records(gone); !ok && ctx->config.on_event)
    ctx->config.on_event("store_note",
                         {{"node", ctx->config.node_id},
                          {"note", "cannot drop proofs of origin: "
                                       + ok.error_value().message}});
  st.origins = b;
  ctx->origins->put(st.cfg.agent_id, std::move(b));
}

} // namespace

std::vector<std::string> prune_origins(origin::book& b, const replica& mem) {
  return b.prune(
      [&mem](const std::function<void(const dot&)>& f) {
        mem.for_each([&f](const engram_id&, const std::vector<version>& vs) {
          for (auto& v : vs)
            f(v.tag);
        });
      },
      mem.context());
}

bool open_replica(agent_ptr self, node_context_ptr ctx,
                  const std::string& agent_id) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = ctx->agent(agent_id);
  st.clock = std::make_unique<hybrid_logical_clock>(*ctx->config.wall_clock);
  auto partition = agent_partition(agent_id);
  // A repaired partition writes under a new incarnation of its id.
  auto incarnation = persistence::store::incarnation(ctx->db, partition);
  auto self_id = incarnation_of(replica_of(ctx->config.node_id, partition),
                                incarnation ? *incarnation : 0);
  st.mem = std::make_unique<replica>(self_id, *st.clock, st.cfg.replication);
  // What a failed predecessor queued is written before this one loads.
  ctx->writes->drain();
  auto db = persistence::store::attach(ctx->db, partition, self_id,
                                       in_memory_replica);
  if (!db) {
    self->quit(to_caf(db.error_value()));
    return false;
  }
  st.db = std::move(*db);
  if (auto loaded = st.db->load(*st.mem); !loaded) {
    self->quit(to_caf(loaded.error_value()));
    return false;
  }
  open_origins(self, partition, incarnation ? *incarnation : 0);
  st.caught_up = st.mem->size() > 0;
  st.hosted = is_federation_id(agent_id)
                  ? memory_scope::collective(agent_id, {agent_id})
                  : memory_scope::agent(agent_id);
  // An error answer to a request without its own handler must not end the
  // actor.
  self->set_error_handler([](caf::error&) {});
  self->set_down_handler([=](caf::down_msg& down) {
    auto& sessions = self->state.sessions;
    sessions.erase(std::remove_if(sessions.begin(), sessions.end(),
                                  [&](const auto& s) {
                                    return s.second.address() == down.source;
                                  }),
                   sessions.end());
    auto& ws = self->state.watchers;
    ws.erase(std::remove_if(ws.begin(), ws.end(),
                            [&](const caf::actor& w) {
                              return w.address() == down.source;
                            }),
             ws.end());
  });
  return true;
}

// -- placement
// ------------------------------------------------------------------

const std::string& self_node(agent_ptr self) {
  return self->state.ctx->config.node_id;
}

const placement& placing(agent_ptr self) {
  auto& st = self->state;
  auto& cfg = st.ctx->config;
  auto version = cfg.members.empty() ? st.ctx->cluster->version() : 0;
  if (version == st.place_version)
    return st.place;
  auto members = cfg.members;
  if (members.empty()) {
    members = st.ctx->cluster->known();
    members.push_back(cfg.node_id);
  }
  // node::start validated the configuration.
  if (auto p = placement::make(cfg.replication, cfg.partitioning,
                               std::move(members), st.cfg.agent_id))
    st.place = std::move(*p);
  st.place_version = version;
  return st.place;
}

placement::live_fn liveness(agent_ptr self, milliseconds grace) {
  auto ctx = self->state.ctx;
  return [ctx, grace](const std::string& node) {
    return node == ctx->config.node_id || ctx->cluster->live(node, grace);
  };
}

std::function<bool(const std::vector<version>&)>
held_by(const placement& place, const std::string& node) {
  return [&place, node](const std::vector<version>& vs) {
    for (auto& v : vs)
      if (place.holds(node, v.value))
        return true;
    return false;
  };
}

// -- writes
// ---------------------------------------------------------------------

// Records a change; a change that cannot be made durable must not be
// served from memory only: the actor fails and its supervisor reloads the
// store.
[[noreturn]] void cannot_record(agent_ptr self, const std::string& why) {
  throw std::runtime_error("agent " + self->state.cfg.agent_id
                           + ": cannot record a change: " + why);
}

// The batch storing a change, with the proofs of origin kept since the
// last one (checked by the sessions, they are stored no later than the
// versions they prove).
expected<persistence::prepared_write> prepare(agent_state& st,
                                              const replica_delta& delta) {
  if (!st.origins)
    return st.db->prepare(delta, *st.mem);
  return st.db->prepare(delta, *st.mem, st.origins->take_unsaved());
}

// Records a change durably before returning: on this thread when nothing
// of this agent's is queued (no thread hop for a lone write), else through
// the node's write queue, after the batches queued before it.
void record(agent_ptr self, const replica_delta& delta) {
  auto& st = self->state;
  if (delta.empty())
    return;
  auto batch = prepare(st, delta);
  if (!batch)
    cannot_record(self, batch.error_value().to_string());
  auto ok = st.writes_done == st.writes_queued
                ? st.ctx->writes->write_here(*batch)
                : st.ctx->writes->write(std::move(*batch));
  if (!ok)
    cannot_record(self, ok.error_value().to_string());
  notify_watchers(self, delta);
}

bool add_watcher(agent_ptr self, caf::actor watcher) {
  constexpr size_t max_watchers = 256;
  auto& ws = self->state.watchers;
  if (!watcher || ws.size() >= max_watchers)
    return false;
  self->monitor(watcher);
  ws.push_back(std::move(watcher));
  return true;
}

void notify_watchers(agent_ptr self, const replica_delta& delta) {
  auto& st = self->state;
  if (st.watchers.empty())
    return;
  std::vector<engram_record> changed;
  for (auto& entry : delta.entries)
    for (auto& v : entry.versions)
      if (!reserved(v.value))
        changed.push_back(v.value);
  if (changed.empty())
    return;
  for (auto& w : st.watchers)
    caf::anon_send(w, watched_atom::value, changed);
}

// Queues a change for the node's write queue and returns: `reply` runs on
// this actor once the change, and every batch queued before it, is durable
// (an empty change waits for those only). The agent goes on merging while
// the queue writes and syncs: one sync for what queued meanwhile.
void record_then(agent_ptr self, const replica_delta& delta,
                 std::function<void()> reply) {
  auto& st = self->state;
  if (!st.ctx->writes->threaded()) {
    record(self, delta); // a simulation: written before going on
  } else if (!delta.empty()) {
    auto batch = prepare(st, delta);
    if (!batch)
      cannot_record(self, batch.error_value().to_string());
    auto ticket = ++st.writes_queued;
    auto hdl = caf::actor_cast<agent_actor>(self);
    st.ctx->writes->submit(
        std::move(*batch), [hdl, ticket](expected<void> written) {
          caf::anon_send(hdl, written_atom::value, ticket,
                         written ? std::string{}
                                 : written.error_value().to_string());
        });
    if (!st.watchers.empty()) // told once it is durable
      reply = [self, delta, reply = std::move(reply)] {
        notify_watchers(self, delta);
        reply();
      };
  }
  if (st.writes_done == st.writes_queued)
    reply();
  else
    st.after_write.emplace_back(st.writes_queued, std::move(reply));
}

// Ships a change to every peer holding a share of it (all but `skip`).
void push(agent_ptr self, const replica_delta& delta,
          const std::vector<std::string>& skip) {
  if (delta.empty())
    return;
  auto& place = placing(self);
  for (auto& [peer, s] : self->state.sessions) {
    if (std::find(skip.begin(), skip.end(), peer) != skip.end())
      continue;
    if (place.everywhere()) {
      self->send(s, push_atom::value, delta);
      continue;
    }
    auto share = filter_delta(delta, held_by(place, peer));
    if (!share.entries.empty())
      self->send(s, push_atom::value, std::move(share));
  }
}

// Fails with `unavailable` (before anything is written) when too few
// replicas are reachable for the configured level.
expected<write_plan> plan_write(agent_ptr self, const engram_record& e) {
  auto& st = self->state;
  // A clock off from most peers would win every newest-wins conflict; so
  // would this replica's logical clock if it ran ahead with the wall clock
  // before (it never goes back): refused until the wall clock catches up.
  auto why = st.ctx->cluster->clock_refusal();
  auto wall = static_cast<int64_t>(st.ctx->config.wall_clock->now_us());
  auto ahead = static_cast<int64_t>(st.clock->last().wall_us) - wall;
  if (why.empty() && ahead > st.ctx->cluster->max_offset_us())
    why = "the memory's clock on this node is " + std::to_string(ahead / 1000)
          + " ms ahead of the wall clock (the wall clock ran ahead before): "
            "writes are refused until it catches up";
  if (!why.empty()) {
    auto err = make_error(errc::clock_offset, why + "; nothing was stored");
    err.subject = e.id.to_string();
    return err;
  }
  auto& place = placing(self);
  auto level = st.ctx->config.replication.consistency;
  write_plan plan;
  size_t replicas = 0;
  bool here = false;
  if (place.everywhere()) {
    replicas = place.members().size();
    here = true;
  } else {
    auto& list = place.replicas(place.partition_of(e));
    replicas = list.size();
    here = std::find(list.begin(), list.end(), self_node(self)) != list.end();
  }
  auto needed = required_replicas(level, replicas);
  if (here && needed > 0)
    --needed;
  if (level == consistency_level::one || level == consistency_level::local)
    needed = 0; // this replica suffices
  if (needed == 0)
    return plan;
  auto live = liveness(self);
  // A replica whose clock is off is not synced with: it cannot confirm.
  for (auto& [peer, s] : st.sessions)
    if (place.holds(peer, e) && live(peer) && st.ctx->cluster->clock_ok(peer))
      plan.targets.emplace_back(peer, s);
  if (plan.targets.size() < needed) {
    auto err
        = make_error(errc::unavailable,
                     std::string{"write at "} + to_string(level) + " needs "
                         + std::to_string(needed + (here ? 1 : 0)) + " of "
                         + std::to_string(replicas) + " replicas, "
                         + std::to_string(plan.targets.size() + (here ? 1 : 0))
                         + " reachable: refused, nothing was stored");
    err.subject = e.id.to_string();
    return err;
  }
  plan.needed = needed;
  return plan;
}

namespace {

// Ships a change recorded here and answers `rp` once the replicas the plan
// needs confirmed it durable.
void confirm(agent_ptr self, const replica_delta& delta, const write_plan& plan,
             const engram_id& id, caf::typed_response_promise<engram_id> rp) {
  if (plan.needed == 0) {
    push(self, delta);
    rp.deliver(id);
    return;
  }
  std::vector<std::string> direct;
  for (auto& [peer, _] : plan.targets)
    direct.push_back(peer);
  push(self, delta, direct);
  struct tally {
    size_t acks = 0;
    size_t fails = 0;
    bool done = false;
    std::vector<std::string> failed;
  };
  auto t = std::make_shared<tally>();
  auto needed = plan.needed;
  auto targets = plan.targets.size();
  auto level = self->state.ctx->config.replication.consistency;
  auto timeout = self->state.ctx->config.replication.write_timeout;
  for (auto& [peer, s] : plan.targets) {
    auto name = peer;
    self->request(s, timeout, replicate_atom::value, delta)
        .then(
            [=](bool) mutable {
              if (!t->done && ++t->acks == needed) {
                t->done = true;
                rp.deliver(id);
              }
            },
            [=](caf::error& err) mutable {
              t->failed.push_back(name + " (" + from_caf(err).message + ")");
              if (t->done || ++t->fails <= targets - needed)
                return;
              t->done = true;
              std::string who;
              for (auto& f : t->failed)
                who += (who.empty() ? "" : ", ") + f;
              // Stored here: not refused. The caller must not retry it as
              // a new write; it reaches the replicas when they return.
              auto unconfirmed = make_error(
                  errc::not_confirmed,
                  std::string{"write at "} + to_string(level)
                      + " stored on this node but not confirmed by enough "
                        "replicas: "
                      + who + "; it syncs when they return");
              unconfirmed.subject = id.to_string();
              rp.deliver(to_caf(unconfirmed));
            });
  }
}

} // namespace

// Records a change here, ships it, and answers once the replicas the plan
// needs confirmed it durable. A lone write is written and synced on this
// thread (a hop to the write queue would only delay it); while other
// writes are in progress it joins the write queue's next sync instead, and
// this actor goes on meanwhile. Either way nothing is shipped or answered
// before it is durable here. (Between the two, a read of this agent may
// see it, as it may see a merge not yet durable here.)
caf::result<engram_id> commit(agent_ptr self, expected<replica_delta> delta,
                              write_plan plan) {
  if (!delta)
    return to_caf(delta.error_value());
  auto& st = self->state;
  note_messages(st, *delta);
  engram_id id;
  if (!delta->entries.empty())
    id = delta->entries.front().id;
  auto rp = self->make_response_promise<engram_id>();
  if (!st.ctx->writes->threaded()
      || (st.writes_done == st.writes_queued && !st.ctx->writes->busy())) {
    record(self, *delta);
    confirm(self, *delta, plan, id, rp);
    return rp;
  }
  auto shared = std::make_shared<replica_delta>(std::move(*delta));
  record_then(self, *shared,
              [self, shared, plan = std::move(plan), id, rp]() mutable {
                confirm(self, *shared, plan, id, rp);
              });
  return rp;
}

void with_remote(agent_ptr self, const std::string& node,
                 std::function<void(const agent_actor&)> f,
                 std::function<void(caf::error&)> fail) {
  auto& st = self->state;
  if (auto i = st.remote.find(node); i != st.remote.end()) {
    f(i->second);
    return;
  }
  auto peer = st.ctx->cluster->peer(node);
  if (!peer) {
    auto err = to_caf(
        make_error(errc::unavailable, "node " + node + " is not connected"));
    fail(err);
    return;
  }
  self->request(caf::actor_cast<node_actor>(*peer), std::chrono::seconds{5},
                agent_atom::value, st.cfg.agent_id)
      .then(
          [=](agent_actor& hdl) mutable {
            self->state.remote[node] = hdl;
            f(hdl);
          },
          [=](caf::error& err) mutable {
            fail(err);
          });
}

// A write coordinated here: plan (fail fast when too few replicas are
// reachable), write, commit.
caf::result<engram_id> write_here(agent_ptr self, engram_record value) {
  // Memories shared read-only with this agent are not modified.
  auto id = value.id.empty() ? derive_id(value.scope, value.body) : value.id;
  if (auto current = self->state.mem->get(id);
      current && federation::is_read_only(*current))
    return to_caf(make_error(errc::permission_denied,
                             "engram " + id.to_string() + " was shared with "
                                 + self->state.cfg.agent_id
                                 + " read-only: it cannot be modified"));
  value.id = id;
  auto plan = plan_write(self, value);
  if (!plan)
    return to_caf(plan.error_value());
  return commit(self, self->state.mem->put(std::move(value)), std::move(*plan));
}

// A new value of an engram: written here when this node coordinates its
// partition, else forwarded to the node that does.
caf::result<engram_id> route_write(agent_ptr self, engram_record value) {
  auto& st = self->state;
  auto& place = placing(self);
  if (place.everywhere())
    return write_here(self, std::move(value));
  if (value.id.empty())
    value.id = derive_id(value.scope, value.body);
  if (st.ctx->config.partitioning.strategy == partition_strategy::time
      && value.created == hlc_timestamp{})
    value.created = st.clock->now(); // its bucket: now
  auto p = place.partition_of(value);
  auto& repl = st.ctx->config.replication;
  auto grace = repl.strategy == replication_strategy::primary_secondary
                   ? repl.failover.promote_after
                   : milliseconds{0};
  auto target = place.coordinator(p, self_node(self), liveness(self, grace));
  if (!target) {
    std::string nodes;
    for (auto& n : place.replicas(p))
      nodes += (nodes.empty() ? "" : ", ") + n;
    auto err = make_error(errc::unavailable,
                          "no replica of partition " + std::to_string(p)
                              + " is reachable (" + nodes
                              + "): refused, nothing was stored");
    err.subject = value.id.to_string();
    return to_caf(err);
  }
  if (*target == self_node(self))
    return write_here(self, std::move(value));
  auto rp = self->make_response_promise<engram_id>();
  auto node = *target;
  auto timeout = repl.write_timeout * 2;
  with_remote(
      self, node,
      [=](const agent_actor& hdl) mutable {
        self->request(hdl, timeout, forward_atom::value, value)
            .then(
                [=](engram_id& id) mutable {
                  rp.deliver(id);
                },
                [=](caf::error& err) mutable {
                  auto e = from_caf(err);
                  if (!is_engram_error(err)) {
                    // The request or its answer was lost on the way: the
                    // coordinator may have stored the write, or not.
                    self->state.remote.erase(node);
                    e = make_error(errc::timeout,
                                   "node " + node
                                       + " (coordinator of partition "
                                       + std::to_string(p)
                                       + ") did not answer: the write's "
                                         "outcome is unknown ("
                                       + e.message + ")");
                    e.subject = value.id.to_string();
                  } else if (e.code == errc::timeout
                             || e.code == errc::unavailable) {
                    self->state.remote.erase(node);
                  }
                  rp.deliver(to_caf(e));
                });
      },
      [=](caf::error& err) mutable {
        auto e = make_error(errc::unavailable,
                            "node " + node + " (coordinator of partition "
                                + std::to_string(p)
                                + ") is unreachable: " + from_caf(err).message
                                + ": refused, nothing was stored");
        e.subject = value.id.to_string();
        rp.deliver(to_caf(e));
      });
  return rp;
}

caf::result<engram_id>
change(agent_ptr self, const engram_id& id,
       std::function<expected<replica_delta>(replica&)> make_change,
       std::function<void(const agent_actor&,
                          caf::typed_response_promise<engram_id>)>
           remotely) {
  auto& st = self->state;
  auto current = st.mem->get(id);
  if (current && federation::is_read_only(*current))
    return to_caf(make_error(errc::permission_denied,
                             "engram " + id.to_string() + " was shared with "
                                 + st.cfg.agent_id
                                 + " read-only: it cannot be modified"));
  if (current || placing(self).everywhere()) {
    write_plan plan;
    if (current) {
      auto planned = plan_write(self, *current);
      if (!planned)
        return to_caf(planned.error_value());
      plan = std::move(*planned);
    }
    return commit(self, make_change(*st.mem), std::move(plan));
  }
  // Not held here: ask the peers in turn.
  auto rp = self->make_response_promise<engram_id>();
  auto peers = std::make_shared<std::vector<std::string>>();
  for (auto& [peer, _] : st.sessions)
    if (st.ctx->cluster->live(peer))
      peers->push_back(peer);
  auto next = std::make_shared<std::function<void(size_t)>>();
  *next = [=](size_t i) mutable {
    if (i >= peers->size()) {
      rp.deliver(to_caf(
          make_error(errc::unknown_engram,
                     "no reachable replica holds engram " + id.to_string())));
      *next = nullptr; // breaks the cycle
      return;
    }
    with_remote(
        self, (*peers)[i],
        [=](const agent_actor& hdl) mutable {
          self->request(hdl, std::chrono::seconds{5}, query_atom::value,
                        query_filter{}, code_of(consistency_level::local))
              .then(
                  [=](std::vector<memory_view>& views) mutable {
                    for (auto& v : views)
                      if (v.value.id == id) {
                        remotely(hdl, rp);
                        *next = nullptr;
                        return;
                      }
                    (*next)(i + 1);
                  },
                  [=](caf::error&) mutable {
                    (*next)(i + 1);
                  });
        },
        [=](caf::error&) mutable {
          (*next)(i + 1);
        });
  };
  (*next)(0);
  return rp;
}

// Stores a change made here (no consistency wait: the agent's own memory).
void record_and_push(agent_ptr self, expected<replica_delta> delta) {
  if (!delta)
    return;
  record(self, *delta);
  push(self, *delta);
}

// Answers a pending question; the resolution is a write that syncs.
caf::result<engram_id> answer_question(agent_ptr self, uint64_t conflict_id,
                                       const std::string& option) {
  auto& mem = *self->state.mem;
  auto delta = mem.answer(conflict_id, option);
  write_plan plan;
  if (delta && !delta->entries.empty()
      && !delta->entries.front().versions.empty())
    if (auto planned
        = plan_write(self, delta->entries.front().versions.front().value))
      plan = std::move(*planned);
  return commit(self, std::move(delta), std::move(plan));
}

} // namespace engram::actors
