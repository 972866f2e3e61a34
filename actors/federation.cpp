// The federation actor: one node's replica of a federation's Collective
// memory and its rules. The rules are a fact of that memory (newest wins,
// synced like any memory); a member's command (federation/command) is
// decided by the pure `federation::apply` and stored as the new rules.
// Every node where a member runs holds the federation; succession,
// re-joins lost to concurrent changes and queued broadcasts are retried on
// a tick. Broadcasts: federation_broadcast.cpp.

#include "actors/internal/agent_state.hpp"
#include "actors/node.hpp"
#include "federation/codec.hpp"

#include <caf/send.hpp>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "e2e/e2e.hpp"

namespace engram::actors {

namespace {

// The id of the fact holding a federation's state.
engram_id state_id(const std::string& fed_id) {
  return derive_id(memory_scope::collective(fed_id, {fed_id}),
                   fact{federation::state_key(), {}});
}

bool is_state(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  return f != nullptr && f->key == federation::state_key();
}

// Sets how the federation's replica settles contradictory beliefs, from its
// rules: Escalate uses the handler the leader's agent registered, on the
// leader's node; elsewhere (and without a handler) the conflict waits as a
// pending question until the leader's resolution syncs in.
void configure_conflicts(agent_ptr self) {
  auto& st = self->state;
  if (!st.fed)
    return;
  // What the configuration depends on: recomputed (and the leader's
  // agent_config asked for its handler) only when that changes.
  auto leader = st.fed->leader();
  bool leader_here = !leader.empty() && st.ctx->dir->agent(leader).has_value();
  auto basis = std::to_string(static_cast<int>(st.fed->belief_conflicts()))
               + (leader_here ? "+" : "-") + leader;
  if (basis == st.conflicts_basis)
    return;
  st.conflicts_basis = basis;
  auto res = st.mem->config().resolution;
  switch (st.fed->belief_conflicts()) {
    case federation::belief_policy::fork:
      res.belief_conflict = fork_versions{true};
      break;
    case federation::belief_policy::ask_user:
      res.belief_conflict = escalate{};
      break;
    case federation::belief_policy::escalate: {
      escalate esc;
      if (leader_here)
        esc.handler = st.ctx->agent(leader).federation_conflicts;
      res.belief_conflict = std::move(esc);
      break;
    }
    case federation::belief_policy::take_newest:
      res.belief_conflict = take_newest{};
      break;
    case federation::belief_policy::take_highest_confidence:
      res.belief_conflict = take_highest_confidence{};
      break;
  }
  st.mem->set_resolution(std::move(res));
}

// Gives a session of a federation its Collective sync interval (the
// federation's rules; 0 keeps the node's anti-entropy interval).
void set_sync_interval(agent_ptr self, const session_actor& s,
                       uint64_t interval_ms) {
  sync_config cfg;
  cfg.scope = scope_kind::collective;
  cfg.interval = milliseconds{interval_ms};
  self->request(s, cfg.timeout + cfg.timeout / 2, sync_atom::value, cfg)
      .then([](sync_result&) {}, [](caf::error&) {});
}

// Takes a federation state as current; a new trust model starts a new book.
void adopt_state(agent_ptr self, federation::federation_state next) {
  auto& st = self->state;
  if (next.sync_interval_ms() > 0
      && (!st.fed || st.fed->sync_interval_ms() != next.sync_interval_ms()))
    for (auto& [_, s] : st.sessions)
      set_sync_interval(self, s, next.sync_interval_ms());
  bool same_model = st.fed
                    && federation::encode_trust(st.fed->trust())
                           == federation::encode_trust(next.trust());
  if (!same_model)
    st.trust = federation::trust_book{next.trust()};
  st.fed = std::move(next);
  configure_conflicts(self);
}

// Reads the federation's state from the replica (newer versions win over a
// view cached from a remote answer).
void reload_state(agent_ptr self) {
  auto& st = self->state;
  auto rec = st.mem->get(state_id(st.cfg.agent_id));
  if (!rec || rec->tombstone)
    return;
  auto decoded = federation::decode_state(std::get<fact>(rec->body).value);
  if (decoded && (!st.fed || decoded->version() >= st.fed->version())
      && !federation::weakens_sealing(st.fed ? &*st.fed : nullptr, *decoded))
    adopt_state(self, std::move(*decoded));
}

// Whether an agent hosted on this node still belongs to the federation.
bool has_local_member(agent_ptr self) {
  auto& st = self->state;
  if (!st.fed)
    return true; // not known yet: keep
  for (auto& a : st.ctx->dir->local_agents())
    if (!is_federation_id(a) && st.fed->find(a) != nullptr)
      return true;
  return false;
}

// Stores new rules as the federation's state fact (synced like any
// memory) and takes them as current; `shipped`: the change, for a caller
// that waits for the peers to have it.
federation::federation_state write_state(agent_ptr self,
                                         federation::federation_state next,
                                         replica_delta* shipped = nullptr) {
  auto& st = self->state;
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = next.shared_scope();
  e.body = fact{federation::state_key(), federation::encode(next)};
  e.confidence = 1.0;
  e.origin.origin_agent = next.leader();
  auto delta = st.mem->put(std::move(e));
  if (!delta)
    throw std::runtime_error("federation " + st.cfg.agent_id
                             + ": cannot store its state: "
                             + delta.error_value().to_string());
  record(self, *delta);
  push(self, *delta);
  if (shipped != nullptr)
    *shipped = *delta;
  adopt_state(self, next);
  return next;
}

// Succession: when the leader's agent runs nowhere reachable, every node
// computes the same successor (federation_state::successor); the node where
// the successor runs writes the new state, which syncs to the others.
void check_leader(agent_ptr self) {
  auto& st = self->state;
  if (!st.fed)
    return;
  auto live = [self](const std::string& a) {
    return agent_live(self, a);
  };
  auto leader = st.fed->leader();
  if (!leader.empty() && live(leader))
    return;
  auto next = st.fed->successor(live);
  if (!next || !st.ctx->dir->agent(*next))
    return; // not ours to write
  auto state = *st.fed;
  if (state.succeed(live))
    write_state(self, std::move(state));
}

std::vector<memory_view> without_state(std::vector<memory_view> views) {
  views.erase(std::remove_if(views.begin(), views.end(),
                             [](const memory_view& v) {
                               return is_state(v.value);
                             }),
              views.end());
  return views;
}

// Makes again the joins of this node's agents that a concurrent change of
// the rules elsewhere superseded (see `joined_here`).
void repair_membership(agent_ptr self) {
  auto& st = self->state;
  if (!st.fed)
    return;
  for (auto i = st.joined_here.begin(); i != st.joined_here.end();) {
    auto& [agent, role] = *i;
    if (st.fed->has_departed(agent) || !st.ctx->dir->agent(agent)) {
      i = st.joined_here.erase(i); // left, removed, or gone from this node
      continue;
    }
    if (st.fed->find(agent) == nullptr) {
      auto rejoin = role == federation::agent_role::leader
                        ? federation::agent_role::member
                        : role;
      auto next
          = federation::apply(*st.fed, {agent, federation::cmd::join{rejoin}},
                              st.clock->now().wall_us);
      if (!next) { // e.g. its invitation was revoked meanwhile
        i = st.joined_here.erase(i);
        continue;
      }
      if (next->version() != st.fed->version())
        write_state(self, std::move(*next));
    }
    ++i;
  }
}

// Asks the nodes that know the federation, in turn, to run `c` (this node
// does not know its rules yet: it is joining) until one accepts: a change
// of the rules (an invitation) reaches the node it was made on first and
// the others by sync. The rules it answers with are taken if newer, and
// the rest arrives here by sync. Refused by all: the last refusal.
void ask_hosts(agent_ptr self, federation::federation_command c,
               std::shared_ptr<std::vector<std::string>> targets, size_t next,
               caf::typed_response_promise<federation::federation_state> rp,
               caf::error last) {
  if (next >= targets->size()) {
    if (std::holds_alternative<federation::cmd::join>(c.what))
      self->state.joined_here.erase(c.agent); // refused: not made again
    rp.deliver(std::move(last));
    return;
  }
  auto target = (*targets)[next];
  c.relayed = true;
  auto try_next = [=](caf::error err) mutable {
    ask_hosts(self, c, targets, next + 1, rp, std::move(err));
  };
  with_remote(
      self, target,
      [=](const agent_actor& owner) mutable {
        self->request(owner, std::chrono::seconds{5}, federation_atom::value, c)
            .then(
                [=](federation::federation_state& state) mutable {
                  auto& s = self->state;
                  if ((!s.fed || state.version() >= s.fed->version())
                      && !federation::weakens_sealing(s.fed ? &*s.fed : nullptr,
                                                      state))
                    adopt_state(self, state);
                  rp.deliver(std::move(state));
                },
                [=](caf::error& err) mutable {
                  try_next(std::move(err));
                });
      },
      [=](caf::error& err) mutable {
        try_next(std::move(err));
      });
}

caf::result<federation::federation_state>
ask_host(agent_ptr self, const federation::federation_command& c,
         caf::error refused_here = {}) {
  auto& st = self->state;
  auto targets = std::make_shared<std::vector<std::string>>();
  for (auto& n : st.ctx->dir->hosts(st.cfg.agent_id))
    if (n != self_node(self) && st.ctx->cluster->live(n))
      targets->push_back(n);
  if (targets->empty() && refused_here) {
    st.joined_here.erase(c.agent);
    return refused_here;
  }
  if (targets->empty())
    return to_caf(
        make_error(errc::unknown_agent,
                   "no reachable node knows federation " + st.cfg.agent_id));
  auto rp = self->make_response_promise<federation::federation_state>();
  ask_hosts(self, c, targets, 0, rp, std::move(refused_here));
  return rp;
}

// Nobody on this node belongs to the federation any more: it stops holding
// (and receiving) it once the peers have `shipped` (the change that made
// it so must not be lost with this replica), bounded by the write timeout.
caf::result<federation::federation_state>
leave_node(agent_ptr self, federation::federation_state rules,
           const replica_delta& shipped) {
  auto& st = self->state;
  auto rp = self->make_response_promise<federation::federation_state>();
  auto& sessions = st.sessions;
  if (sessions.empty()) {
    rp.deliver(std::move(rules));
    self->quit();
    return rp;
  }
  auto waiting = std::make_shared<size_t>(sessions.size());
  auto done = [=]() mutable {
    if (--*waiting > 0)
      return;
    rp.deliver(rules);
    if (!has_local_member(self)) // nobody joined again meanwhile
      self->quit();
  };
  auto timeout = st.ctx->config.replication.write_timeout;
  for (auto& [_, s] : sessions)
    self->request(s, timeout, replicate_atom::value, shipped)
        .then(
            [=](bool) mutable {
              done();
            },
            [=](caf::error&) mutable {
              done();
            });
  return rp;
}

// Creates the federation with the rules its leader made.
caf::result<federation::federation_state>
create(agent_ptr self, const std::string& agent,
       const federation::federation_state& created) {
  auto& st = self->state;
  if (created.id() != st.cfg.agent_id)
    return to_caf(make_error(errc::invalid_argument,
                             "the state is of federation " + created.id()));
  if (st.fed)
    return to_caf(
        make_error(errc::invalid_argument,
                   "federation " + st.fed->name() + " exists already"));
  if (created.leader() != agent)
    return to_caf(
        make_error(errc::permission_denied, agent + " cannot create federation "
                                                + created.name() + " led by "
                                                + created.leader()));
  return write_state(self, created);
}

// A member reports that another's memory proved right (`verified`) or
// wrong: Reputation trust follows (kept by this node).
caf::result<federation::federation_state> report(agent_ptr self,
                                                 const std::string& agent,
                                                 const std::string& member,
                                                 bool verified) {
  auto& st = self->state;
  if (auto ok = st.fed->check(agent, federation::operation::read); !ok)
    return to_caf(ok.error_value());
  if (st.fed->find(member) == nullptr)
    return to_caf(
        make_error(errc::invalid_argument, member
                                               + " is not a member of "
                                                 "federation "
                                               + st.fed->name()));
  auto now = st.clock->now().wall_us;
  if (verified)
    st.trust.verified(member, now);
  else
    st.trust.contradicted(member, now);
  return *st.fed;
}

caf::error not_known_yet(agent_ptr self);

// Runs a command: the rules decide (federation::apply); a change is stored
// as the new state fact, which syncs to every node holding the federation.
caf::result<federation::federation_state>
run(agent_ptr self, const federation::federation_command& c) {
  namespace cmd = federation::cmd;
  auto& st = self->state;
  if (!st.fed && c.relayed)
    return not_known_yet(self);
  if (c.relayed && c.seen_version > 0 && st.fed->version() <= c.seen_version)
    // The node it comes from knows these rules or newer ones: deciding
    // here could undo what it knows (a revoked invitation, a removal).
    return to_caf(make_error(errc::permission_denied,
                             c.agent + " may not join federation "
                                 + st.fed->name()
                                 + ": no newer rules here than where it asked "
                                   "(it has no standing invitation)"));
  // Joins made here are remembered (and made again if a concurrent change
  // elsewhere supersedes them); a refused join is not.
  auto* joining = std::get_if<cmd::join>(&c.what);
  if (joining != nullptr && joining->role != federation::agent_role::leader)
    st.joined_here[c.agent] = joining->role;
  else if (std::holds_alternative<cmd::create>(c.what))
    st.joined_here[c.agent] = federation::agent_role::leader;
  else if (std::holds_alternative<cmd::leave>(c.what))
    st.joined_here.erase(c.agent);
  if (auto* x = std::get_if<cmd::create>(&c.what))
    return create(self, c.agent, x->state);
  if (!st.fed)
    return ask_host(self, c);
  if (auto* x = std::get_if<cmd::verify>(&c.what))
    return report(self, c.agent, x->member, true);
  if (auto* x = std::get_if<cmd::contradict>(&c.what))
    return report(self, c.agent, x->member, false);
  auto next = federation::apply(*st.fed, c, st.clock->now().wall_us);
  if (!next && joining != nullptr
      && next.error_value().code == errc::permission_denied
      && st.fed->find(c.agent) == nullptr && !c.relayed)
  // No invitation here yet: the node it was made on may know it (the
  // others learn it by sync). Passed on once, never around.
  {
    auto relay = c;
    relay.seen_version = st.fed->version();
    return ask_host(self, relay, to_caf(next.error_value()));
  }
  if (!next) {
    if (joining != nullptr)
      st.joined_here.erase(c.agent);
    return to_caf(next.error_value());
  }
  if (next->version() == st.fed->version())
    return std::move(*next); // a read, or a change that changes nothing
  if (auto why = st.ctx->cluster->clock_refusal(); !why.empty())
    return to_caf(make_error(errc::clock_offset, why));
  replica_delta shipped;
  auto rules = write_state(self, std::move(*next), &shipped);
  if (!has_local_member(self))
    return leave_node(self, std::move(rules), shipped);
  return rules;
}

// A federation sealed end to end takes facts whose values are sealed with
// its current key (e2e::seal_value), and only while that key is sealed to
// exactly its current members: a member who left or was removed gets no
// key of what is written after.
expected<void> sealed_to_current_key(const federation::federation_state& fed,
                                     const engram_record& value) {
  auto refused = [&](const std::string& why) {
    return make_error(errc::invalid_argument,
                      "federation " + fed.name()
                          + " is sealed end to end: " + why);
  };
  auto* f = std::get_if<fact>(&value.body);
  if (f == nullptr)
    return refused("its Collective scope holds facts only (sealed values), "
                   "not "
                   + std::string{content_name(value.body)} + "s");
  if (auto why = fed.keys_stale(); !why.empty())
    return refused(why);
  auto epoch = e2e::value_epoch(f->value);
  if (!epoch || !e2e::is_sealed_value(f->value))
    return refused("the value of " + f->key
                   + " is not sealed with its key (e2e::seal_value)");
  if (*epoch != fed.keys().epoch)
    return refused("the value of " + f->key + " is sealed with key epoch "
                   + std::to_string(*epoch) + ", not the current "
                   + std::to_string(fed.keys().epoch));
  return {};
}

caf::error no_such(agent_ptr self, const char* what) {
  return to_caf(make_error(errc::invalid_argument,
                           "federation " + self->state.cfg.agent_id
                               + " takes no " + what + " (its members do)"));
}

caf::error not_known_yet(agent_ptr self) {
  return to_caf(make_error(errc::unavailable, "federation "
                                                  + self->state.cfg.agent_id
                                                  + " is not known here yet"));
}

} // namespace

agent_actor::behavior_type federation_impl(agent_ptr self, node_context_ptr ctx,
                                           std::string fed_id) {
  if (!open_replica(self, std::move(ctx), fed_id))
    return agent_actor::behavior_type::make_empty_behavior();
  reload_state(self);
  self->delayed_send(self, std::chrono::milliseconds{500}, tick_atom::value);
  return {
      // -- the Collective memory ------------------------------------------
      [=](learn_atom, engram_record& value) -> caf::result<engram_id> {
        // The writer's role decides.
        auto& s = self->state;
        if (value.scope.kind() != scope_kind::collective
            || value.scope.id() != s.cfg.agent_id)
          return to_caf(make_error(errc::invalid_scope,
                                   "federation " + s.cfg.agent_id
                                       + " holds only its Collective scope, "
                                         "not "
                                       + value.scope.to_string()));
        if (!s.fed)
          return not_known_yet(self);
        if (auto ok = s.fed->check(value.origin.origin_agent,
                                   federation::operation::write);
            !ok)
          return to_caf(ok.error_value());
        if (is_state(value))
          return to_caf(make_error(errc::invalid_argument,
                                   "the key " + federation::state_key()
                                       + " is reserved"));
        if (s.fed->e2e())
          if (auto ok = sealed_to_current_key(*s.fed, value); !ok)
            return to_caf(ok.error_value());
        value.scope = s.fed->shared_scope();
        return write_here(self, std::move(value));
      },
      [=](forward_atom, engram_record& value) -> caf::result<engram_id> {
        // Every member node holds the whole Collective memory: writes are
        // never forwarded to a coordinator.
        return to_caf(make_error(errc::invalid_scope,
                                 "federation " + self->state.cfg.agent_id
                                     + " takes no forwarded writes ("
                                     + value.scope.to_string() + ")"));
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
      [=](query_atom, const query_filter& filter,
          level_code) -> caf::result<std::vector<memory_view>> {
        return without_state(local_query(self, filter));
      },
      [=](query_atom, const query_filter& filter, level_code,
          const std::string& caller) -> caf::result<std::vector<memory_view>> {
        auto& s = self->state;
        if (!s.fed)
          return not_known_yet(self);
        if (auto ok = s.fed->check(caller, federation::operation::read); !ok)
          return to_caf(ok.error_value());
        // Every member node holds the whole Collective memory. What other
        // members wrote reaches the caller as Reported{writer, trust}, its
        // confidence scaled by the trust and the hop in its provenance.
        auto views = without_state(local_query(self, filter));
        auto now = s.clock->now().wall_us;
        for (auto& v : views) {
          auto& writer = v.value.origin.origin_agent;
          if (!writer.empty() && writer != caller)
            federation::apply_trust(v.value, writer,
                                    s.trust.trust(writer, now));
        }
        return views;
      },
      // -- conflicts ------------------------------------------------------
      [=](answer_atom, uint64_t conflict_id,
          const std::string& option) -> caf::result<engram_id> {
        return answer_question(self, conflict_id, option);
      },
      [=](answer_atom, const std::string& who, uint64_t conflict_id,
          const std::string& option) -> caf::result<engram_id> {
        // A member answers a question about the federation's memory:
        // under Escalate only the leader decides, under AskUser any writer.
        auto& s = self->state;
        if (!s.fed)
          return not_known_yet(self);
        auto needed
            = s.fed->belief_conflicts() == federation::belief_policy::escalate
                  ? federation::operation::change_rules
                  : federation::operation::write;
        if (auto ok = s.fed->check(who, needed); !ok)
          return to_caf(ok.error_value());
        return answer_question(self, conflict_id, option);
      },
      [=](pending_atom) {
        return self->state.mem->pending_questions();
      },
      [=](pending_atom, const std::string& who)
          -> caf::result<std::vector<pending_question>> {
        auto& s = self->state;
        if (!s.fed)
          return not_known_yet(self);
        if (auto ok = s.fed->check(who, federation::operation::read); !ok)
          return to_caf(ok.error_value());
        return s.mem->pending_questions();
      },
      // -- the rules and broadcasts ---------------------------------------
      [=](federation_atom, const federation::federation_command& c) {
        return run(self, c);
      },
      [=](broadcast_atom, const std::string& from, const std::string& text) {
        return broadcast(self, from, text);
      },
      [=](tell_atom, const std::string&, const std::string&,
          uint64_t) -> caf::result<bool> {
        return no_such(self, "messages: tell an agent; a federation takes "
                             "broadcasts");
      },
      [=](ask_atom, const std::string&,
          const std::string&) -> caf::result<std::string> {
        return no_such(self, "questions: query its memory as a member");
      },
      [=](inbox_atom) -> caf::result<std::vector<std::string>> {
        return no_such(self, "inbox");
      },
      [=](keyof_atom) -> caf::result<std::string> {
        return no_such(self, "key for end-to-end encryption");
      },
      [=](inbox_atom, const std::vector<engram_id>&) {
        return std::vector<memory_view>{};
      },
      [=](share_atom, const federation::share&) -> caf::result<std::string> {
        return no_such(self, "shares");
      },
      [=](shares_atom) -> caf::result<std::vector<federation::share>> {
        return no_such(self, "shares");
      },
      [=](accept_atom, const std::string&, const std::string&,
          double) -> caf::result<uint64_t> {
        return no_such(self, "shares");
      },
      [=](accept_atom, const std::string&, const std::string&, double,
          const federation::share&) -> caf::result<uint64_t> {
        return no_such(self, "shares");
      },
      [=](decline_atom, const std::string&) -> caf::result<std::string> {
        return no_such(self, "shares");
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
        auto result = merge_batch(self, delta);
        reload_state(self); // the rules may have changed
        return result;
      },
      [=](written_atom, uint64_t ticket, const std::string& failure) {
        written(self, ticket, failure);
      },
      [=](attach_atom, const caf::actor& session, const std::string& peer) {
        attach_session(self, session, peer, [self](const session_actor& s) {
          if (auto& st = self->state; st.fed && st.fed->sync_interval_ms() > 0)
            set_sync_interval(self, s, st.fed->sync_interval_ms());
        });
      },
      [=](caught_up_atom) {
        return note_caught_up(self);
      },
      [=](tick_atom) {
        check_leader(self);
        repair_membership(self);
        configure_conflicts(self);
        retry_undelivered(self);
        self->delayed_send(self, std::chrono::milliseconds{500},
                           tick_atom::value);
      },
      [=](watch_atom, caf::actor& watcher) {
        return add_watcher(self, std::move(watcher));
      },
      [=](fail_atom) {
        throw std::runtime_error("federation " + self->state.cfg.agent_id
                                 + ": injected fault");
      },
  };
}

} // namespace engram::actors
