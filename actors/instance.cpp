// The instance actor: one agent instance (conversation). It owns the
// instance's Instance-scope memory, which never leaves it, and is the entry
// point of the memory API: Agent-scope requests go on to the node's agent
// actor (looked up in the directory on every request, so a respawned agent
// is found).

#include "actors/internal/agent_state.hpp"
#include "actors/internal/spawn.hpp"
#include "actors/node.hpp"
#include "core/query.hpp"
#include "federation/share.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>

#include "e2e/e2e.hpp"

namespace engram::actors {

namespace {

struct instance_state {
  node_context_ptr ctx;
  agent_config cfg;
  std::string instance_id;
  std::unique_ptr<hybrid_logical_clock> clock;
  std::unique_ptr<replica> mem;
  std::unique_ptr<persistence::store> db;

  static inline const char* name = "engram.instance";

  memory_scope own_scope() const { return memory_scope::instance(instance_id); }

  expected<agent_actor> agent() const {
    if (auto hdl = ctx->dir->agent(cfg.agent_id))
      return *hdl;
    return make_error(errc::unavailable, "agent " + cfg.agent_id
                                             + " is not running on node "
                                             + ctx->config.node_id);
  }

  // Fills placeholders ("this instance", "this agent") and refuses scopes
  // an instance cannot write.
  expected<memory_scope> resolve(memory_scope scope) const {
    if (scope.is_placeholder())
      scope = scope.kind() == scope_kind::instance
                  ? own_scope()
                  : memory_scope::agent(cfg.agent_id);
    if (scope.kind() == scope_kind::instance && scope != own_scope())
      return make_error(errc::invalid_scope,
                        "instance " + instance_id
                            + " cannot write another instance's memory ("
                            + scope.to_string() + ")");
    if (scope.kind() == scope_kind::agent
        && scope != memory_scope::agent(cfg.agent_id))
      return make_error(errc::invalid_scope,
                        "an instance of agent " + cfg.agent_id
                            + " cannot write " + scope.to_string());
    if (scope.kind() == scope_kind::collective && !is_federation_id(scope.id()))
      return make_error(errc::invalid_scope,
                        "a Collective scope is a federation's: "
                            + scope.to_string()
                            + " names no federation (ids start with fed-)");
    if (scope.kind() == scope_kind::universal)
      if (auto group = universal(); !group)
        return group.error_value();
    return scope;
  }

  // This node's member of the Universal scope's consensus group.
  expected<consensus_actor> universal() const {
    if (auto group = ctx->universal->get())
      return *group;
    return make_error(errc::invalid_scope,
                      "node " + ctx->config.node_id
                          + " holds no Universal scope (its [consensus] "
                            "members do not list it)");
  }

  // The replica of a federation this node holds (once this node's agent
  // joined it).
  expected<agent_actor> federation(const std::string& fed_id) const {
    if (is_federation_id(fed_id))
      if (auto hdl = ctx->dir->agent(fed_id))
        return *hdl;
    return make_error(errc::unknown_agent,
                      "agent " + cfg.agent_id + " has not joined federation "
                          + fed_id + " on node " + ctx->config.node_id);
  }
};

using instance_ptr = instance_actor::stateful_pointer<instance_state>;

// Records an Instance-scope change durably before answering (nothing ships:
// it stays in this instance; an agent's `commit` also replicates).
// Facts the runtime keeps for itself (messages, pending shares, a
// federation's rules) are not written by clients.
std::optional<caf::error> reserved_refusal(const engram_record& value) {
  if (auto* prefix = runtime_prefix(value))
    return to_caf(make_error(errc::invalid_argument,
                             std::string{"keys starting with "} + prefix
                                 + " are reserved (the runtime's own facts)"));
  return std::nullopt;
}

// A Universal-scope write, decided by the consensus group, as this agent
// (every agent of the cluster reads it).
caf::result<engram_id> learn_universal(instance_ptr self, engram_record value,
                                       uint32_t min_nodes,
                                       uint64_t timeout_ms) {
  auto& s = self->state;
  auto group = s.universal();
  if (!group)
    return to_caf(group.error_value());
  value.origin.origin_agent = s.cfg.agent_id;
  return self->delegate(*group, learn_atom::value, std::move(value), min_nodes,
                        timeout_ms);
}

caf::result<engram_id> record_change(instance_ptr self,
                                     expected<replica_delta> delta) {
  auto& st = self->state;
  if (!delta)
    return to_caf(delta.error_value());
  if (auto seq = st.db->record(*delta, *st.mem); !seq)
    throw std::runtime_error("instance " + st.instance_id
                             + ": cannot record a change: "
                             + seq.error_value().to_string());
  if (delta->entries.empty())
    return engram_id{};
  return delta->entries.front().id;
}

// Sends a request on to the agent actor and answers with its reply.
template<class Result, class... Ts>
caf::result<Result> to_agent(instance_ptr self, Ts&&... xs) {
  auto agent = self->state.agent();
  if (!agent)
    return to_caf(agent.error_value());
  return self->delegate(*agent, std::forward<Ts>(xs)...);
}

// Instance scope from this instance, Agent scope from the agent actor (at
// the consistency level asked for).
caf::result<std::vector<memory_view>>
query(instance_ptr self, const query_filter& filter, level_code level) {
  std::vector<memory_view> local;
  if (!filter.kind || *filter.kind == scope_kind::instance)
    select(*self->state.mem, filter, local);
  if (filter.kind && *filter.kind != scope_kind::agent) {
    finish(filter, local);
    return local;
  }
  auto agent = self->state.agent();
  if (!agent)
    return to_caf(agent.error_value());
  if (local.empty()) // the agent answers the caller directly
    return self->delegate(*agent, query_atom::value, filter, level);
  auto rp = self->make_response_promise<std::vector<memory_view>>();
  self->request(*agent, caf::infinite, query_atom::value, filter, level)
      .then(
          [=](std::vector<memory_view>& shared) mutable {
            auto all = std::move(local);
            for (auto& v : shared)
              all.push_back(std::move(v));
            finish(filter, all);
            rp.deliver(std::move(all));
          },
          [=](caf::error& err) mutable {
            rp.deliver(std::move(err));
          });
  return rp;
}

// With end-to-end encryption required, nothing unsealed is sent: `why`
// says what to do instead.
std::optional<error> unsealed_refused(instance_ptr self, const char* why) {
  if (!self->state.ctx->config.e2e_required)
    return std::nullopt;
  return make_error(errc::permission_denied,
                    std::string{"end-to-end encryption is required on this "
                                "cluster: "}
                        + why);
}

// What `filter` selects from this agent's memory, transformed here (what
// the transform removes never leaves this node), as a share to agent `to`
// → `done`.
void prepare_share(instance_ptr self, const std::string& to,
                   const query_filter& filter, const std::string& transform,
                   bool read_only,
                   std::function<void(expected<federation::share>)> done) {
  auto& s = self->state;
  std::optional<federation::memory_transform> t;
  if (transform == "redact_pii")
    t = federation::pii_redactor();
  else if (!transform.empty())
    return done(
        make_error(errc::invalid_argument, "unknown transform '" + transform
                                               + "' (built in: redact_pii)"));
  auto agent = s.agent();
  if (!agent)
    return done(agent.error_value());
  auto me = s.cfg.agent_id;
  self->request(*agent, std::chrono::seconds{10}, query_atom::value, filter,
                configured_level)
      .then(
          [=](std::vector<memory_view>& views) mutable {
            // What this agent holds read-only is not its to pass on: left
            // out (a share of only such memories is refused).
            std::vector<engram_record> records;
            size_t withheld = 0;
            for (auto& v : views) {
              if (federation::is_read_only(v.value))
                ++withheld;
              else
                records.push_back(std::move(v.value));
            }
            if (records.empty())
              return done(make_error(
                  withheld > 0 ? errc::permission_denied
                               : errc::invalid_argument,
                  "nothing to share: the filter selects "
                      + std::string{withheld > 0
                                        ? "only memories shared with agent "
                                              + me + " read-only"
                                        : "no memory of agent " + me}));
            done(federation::make_share(me, to, std::move(records), read_only,
                                        t ? &*t : nullptr,
                                        self->state.clock->now().wall_us));
          },
          [=](caf::error& err) mutable {
            done(from_caf(err));
          });
}

// Offers a share to agent `to`, wherever it runs (the cluster's directory);
// `rp` gets the share id once it is pending there.
void offer_share(instance_ptr self, const std::string& to,
                 federation::share offered,
                 caf::typed_response_promise<std::string> rp) {
  auto node = caf::actor_cast<node_actor>(self->state.ctx->node);
  self->request(node, std::chrono::seconds{5}, find_atom::value, to)
      .then(
          [=](agent_actor& recipient) mutable {
            rp.delegate(recipient, share_atom::value, std::move(offered));
          },
          [=](caf::error& err) mutable {
            rp.deliver(err);
          });
}

instance_actor::behavior_type instance_impl(instance_ptr self,
                                            node_context_ptr ctx,
                                            std::string agent_id,
                                            std::string instance_id) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = ctx->agent(agent_id);
  st.instance_id = instance_id;
  st.clock = std::make_unique<hybrid_logical_clock>(*ctx->config.wall_clock);
  auto partition = instance_partition(agent_id, instance_id);
  // A repaired partition writes under a new incarnation of its id.
  auto incarnation = persistence::store::incarnation(ctx->db, partition);
  auto self_id = incarnation_of(replica_of(ctx->config.node_id, partition),
                                incarnation ? *incarnation : 0);
  st.mem = std::make_unique<replica>(self_id, *st.clock, st.cfg.replication);
  auto db = persistence::store::attach(ctx->db, partition, self_id,
                                       in_memory_replica);
  if (!db) {
    self->quit(to_caf(db.error_value()));
    return instance_actor::behavior_type::make_empty_behavior();
  }
  st.db = std::move(*db);
  if (auto loaded = st.db->load(*st.mem); !loaded) {
    self->quit(to_caf(loaded.error_value()));
    return instance_actor::behavior_type::make_empty_behavior();
  }
  return {
      [=](learn_atom, engram_record& value,
          bool scoped) -> caf::result<engram_id> {
        auto& s = self->state;
        if (auto refused = reserved_refusal(value))
          return *refused;
        auto scope = s.resolve(
            scoped ? value.scope : s.cfg.default_scopes.for_type(value.type));
        if (!scope)
          return to_caf(scope.error_value());
        value.scope = std::move(*scope);
        // Provenance: the agent that learned it (the instance is not
        // recorded: plain facts keep their compact wire form).
        if (value.origin.origin_agent.empty())
          value.origin.origin_agent = s.cfg.agent_id;
        if (value.scope.kind() == scope_kind::instance)
          return record_change(self, s.mem->put(std::move(value)));
        if (value.scope.kind() == scope_kind::universal)
          // Decided by consensus (a majority), answered before the client's
          // default timeout (5 s) gives up.
          return learn_universal(self, std::move(value), 0, 4000);
        if (value.scope.kind() == scope_kind::collective) {
          // Written as this agent: the federation checks its role.
          value.origin.origin_agent = s.cfg.agent_id;
          auto owner = s.federation(value.scope.id());
          if (!owner)
            return to_caf(owner.error_value());
          return self->delegate(*owner, learn_atom::value, std::move(value));
        }
        return to_agent<engram_id>(self, learn_atom::value, std::move(value));
      },
      [=](learn_atom, engram_record& value, uint32_t min_nodes,
          uint64_t timeout_ms) -> caf::result<engram_id> {
        // learn_with_consensus: the Universal scope only.
        if (auto refused = reserved_refusal(value))
          return *refused;
        if (value.scope.kind() != scope_kind::universal)
          return to_caf(make_error(
              errc::invalid_scope,
              "learn_with_consensus writes the Universal scope (Raft); "
                  + value.scope.to_string()
                  + " is replicated as a CRDT: use learn_scoped"));
        return learn_universal(self, std::move(value), min_nodes, timeout_ms);
      },
      [=](query_atom,
          const query_filter& filter) -> caf::result<std::vector<memory_view>> {
        // The Universal scope is read linearizably from its group.
        if (filter.kind == scope_kind::universal) {
          auto group = self->state.universal();
          if (!group)
            return to_caf(group.error_value());
          return self->delegate(*group, query_atom::value, filter);
        }
        return query(self, filter, configured_level);
      },
      [=](query_atom, const query_filter& filter,
          level_code level) -> caf::result<std::vector<memory_view>> {
        return query(self, filter, level);
      },
      [=](query_atom, const std::string& fed_id,
          const query_filter& filter) -> caf::result<std::vector<memory_view>> {
        auto& s = self->state;
        auto owner = s.federation(fed_id);
        if (!owner)
          return to_caf(owner.error_value());
        return self->delegate(*owner, query_atom::value, filter,
                              configured_level, s.cfg.agent_id);
      },
      [=](share_atom, const std::string& to,
          federation::share& offered) -> caf::result<std::string> {
        // A share built by this agent's program: it must come from this
        // agent (a client cannot share in another's name).
        auto& s = self->state;
        if (offered.sealed.empty())
          if (auto refused = unsealed_refused(
                  self, "seal the share to its recipient "
                        "(memory::share_sealed; engram share --seal KEYFILE)"))
            return to_caf(*refused);
        if (!offered.sealed.empty()
            && (!offered.memories.empty() || !e2e::well_formed(offered.sealed)))
          return to_caf(make_error(errc::invalid_argument,
                                   "share " + offered.share_id
                                       + " is not a sealed share (sealed "
                                         "bytes of e2e::seal and no memories "
                                         "in the clear)"));
        if (offered.from != s.cfg.agent_id || offered.to != to)
          return to_caf(make_error(errc::permission_denied,
                                   "share " + offered.share_id + " from "
                                       + offered.from + " to " + offered.to
                                       + " sent as agent " + s.cfg.agent_id
                                       + " to " + to));
        auto rp = self->make_response_promise<std::string>();
        offer_share(self, to, std::move(offered), rp);
        return rp;
      },
      [=](share_atom, const std::string& to, const query_filter& filter,
          const std::string& transform,
          bool read_only) -> caf::result<std::string> {
        if (auto refused = unsealed_refused(
                self, "seal the share to its recipient (memory::share_sealed; "
                      "engram share --seal KEYFILE)"))
          return to_caf(*refused);
        auto rp = self->make_response_promise<std::string>();
        prepare_share(self, to, filter, transform, read_only,
                      [=](expected<federation::share> made) mutable {
                        if (!made)
                          rp.deliver(to_caf(made.error_value()));
                        else
                          offer_share(self, to, std::move(*made), rp);
                      });
        return rp;
      },
      [=](prepare_atom, const std::string& to, const query_filter& filter,
          const std::string& transform,
          bool read_only) -> caf::result<federation::share> {
        auto rp = self->make_response_promise<federation::share>();
        prepare_share(self, to, filter, transform, read_only,
                      [=](expected<federation::share> made) mutable {
                        if (!made)
                          rp.deliver(to_caf(made.error_value()));
                        else
                          rp.deliver(std::move(*made));
                      });
        return rp;
      },
      [=](tell_atom, const std::string& to,
          const std::string& text) -> caf::result<bool> {
        auto& s = self->state;
        // Required: only a sealed text leaves (the recipient's node checks
        // nothing it cannot read; the recipient opens and checks it).
        if (s.ctx->config.e2e_required && !e2e::well_formed(text))
          return to_caf(make_error(
              errc::permission_denied,
              "end-to-end encryption is required on this cluster: seal the "
              "text to agent "
                  + to + "'s key (e2e::seal; engram tell --seal KEYFILE)"));
        auto id = message_id(s.cfg.agent_id + '\n' + s.instance_id + '\n' + to
                                 + '\n' + text,
                             s.clock->now());
        auto rp = self->make_response_promise<bool>();
        auto node = caf::actor_cast<node_actor>(s.ctx->node);
        auto me = s.cfg.agent_id;
        self->request(node, std::chrono::seconds{5}, find_atom::value, to)
            .then(
                [=](agent_actor& recipient) mutable {
                  rp.delegate(recipient, tell_atom::value, me, text, id);
                },
                [=](caf::error& err) mutable {
                  rp.deliver(err);
                });
        return rp;
      },
      [=](ask_atom, const std::string& to, const std::string& question,
          uint64_t timeout_ms) -> caf::result<std::string> {
        auto& s = self->state;
        // A question and its answer are not sealed: not under e2e.
        if (auto refused = unsealed_refused(
                self, "asks are not sealed (tell the question, sealed, and "
                      "read the answer from the inbox)"))
          return to_caf(*refused);
        auto rp = self->make_response_promise<std::string>();
        auto node = caf::actor_cast<node_actor>(s.ctx->node);
        auto me = s.cfg.agent_id;
        // One deadline for finding the recipient and its answer together.
        auto timeout = std::chrono::milliseconds{timeout_ms};
        auto deadline = std::chrono::steady_clock::now() + timeout;
        auto timed_out = [=](caf::error& err) {
          auto e = from_caf(err);
          if (e.code == errc::timeout)
            e.message = "agent " + to + " did not answer within "
                        + std::to_string(timeout_ms) + " ms";
          return to_caf(e);
        };
        self->request(node, timeout, find_atom::value, to)
            .then(
                [=](agent_actor& recipient) mutable {
                  auto left
                      = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now());
                  self->request(recipient,
                                std::max(left, std::chrono::milliseconds{1}),
                                ask_atom::value, me, question)
                      .then(
                          [=](std::string& answer) mutable {
                            rp.deliver(answer);
                          },
                          [=](caf::error& err) mutable {
                            rp.deliver(timed_out(err));
                          });
                },
                [=](caf::error& err) mutable {
                  rp.deliver(timed_out(err));
                });
        return rp;
      },
      [=](broadcast_atom, const std::string& fed_id,
          const std::string& text) -> caf::result<uint64_t> {
        auto& s = self->state;
        if (auto refused = unsealed_refused(
                self,
                "broadcasts are not sealed yet (tell each member, sealed)"))
          return to_caf(*refused);
        auto owner = s.federation(fed_id);
        if (!owner)
          return to_caf(owner.error_value());
        return self->delegate(*owner, broadcast_atom::value, s.cfg.agent_id,
                              text);
      },
      [=](inbox_atom) -> caf::result<std::vector<std::string>> {
        return to_agent<std::vector<std::string>>(self, inbox_atom::value);
      },
      [=](key_atom, const std::string& key) -> caf::result<std::string> {
        // A public key (32 bytes): vouched by this node, with its
        // certificate's key. Or a binding the agent signed itself (its
        // client certificate): checked, and kept as it is. Either names
        // this instance's agent, never one the caller claims.
        auto& s = self->state;
        auto now = s.clock->now().wall_us;
        auto& id = s.ctx->identity;
        auto& node_id = s.ctx->config.node_id;
        auto b = expected<e2e::key_binding>{
            make_error(errc::invalid_argument, "no key")};
        if (key.size() == 32) {
          b = id ? e2e::vouch(s.cfg.agent_id, key, node_id, id->cert, id->key,
                              now)
                 : e2e::unvouched(s.cfg.agent_id, key, node_id, now);
        } else {
          b = e2e::decode_binding(key);
          if (!b)
            return to_caf(make_error(errc::invalid_argument,
                                     "neither a 32-byte public key nor a "
                                     "key binding"));
          if (!id)
            return to_caf(make_error(errc::invalid_argument,
                                     "node " + node_id
                                         + " runs without TLS: it has no CA "
                                           "to check a signed key with"));
          e2e::trust own{&id->ca, id->crl ? &*id->crl : nullptr, false, true};
          if (auto ok = e2e::verify(*b, s.cfg.agent_id, own,
                                    static_cast<int64_t>(now / 1'000'000));
              !ok)
            return to_caf(make_error(errc::invalid_argument,
                                     "the key binding is refused: "
                                         + ok.error_value().message));
        }
        if (!b)
          return to_caf(b.error_value());
        auto agent = s.agent();
        if (!agent)
          return to_caf(agent.error_value());
        auto bytes = e2e::encode(*b);
        auto rp = self->make_response_promise<std::string>();
        self->request(*agent, caf::infinite, learn_atom::value,
                      key_record(s.cfg.agent_id, bytes))
            .then(
                [=](engram_id&) mutable {
                  rp.deliver(bytes);
                },
                [=](caf::error& err) mutable {
                  rp.deliver(std::move(err));
                });
        return rp;
      },
      [=](keyof_atom, const std::string& of) -> caf::result<std::string> {
        auto& s = self->state;
        if (auto ok = validate_name(of, "agent id"); !ok)
          return to_caf(ok.error_value());
        if (of == s.cfg.agent_id)
          return to_agent<std::string>(self, keyof_atom::value);
        auto rp = self->make_response_promise<std::string>();
        auto node = caf::actor_cast<node_actor>(s.ctx->node);
        self->request(node, std::chrono::seconds{5}, find_atom::value, of)
            .then(
                [=](agent_actor& holder) mutable {
                  rp.delegate(holder, keyof_atom::value);
                },
                [=](caf::error& err) mutable {
                  rp.deliver(err);
                });
        return rp;
      },
      [=](watch_atom, caf::actor& watcher) -> caf::result<bool> {
        return to_agent<bool>(self, watch_atom::value, std::move(watcher));
      },
      [=](shares_atom) -> caf::result<std::vector<federation::share>> {
        return to_agent<std::vector<federation::share>>(self,
                                                        shares_atom::value);
      },
      [=](accept_atom, const std::string& from, const std::string& share_id,
          double trust) -> caf::result<uint64_t> {
        return to_agent<uint64_t>(self, accept_atom::value, from, share_id,
                                  trust);
      },
      [=](accept_atom, const std::string& from, const std::string& share_id,
          double trust, federation::share& opened) -> caf::result<uint64_t> {
        return to_agent<uint64_t>(self, accept_atom::value, from, share_id,
                                  trust, std::move(opened));
      },
      [=](decline_atom,
          const std::string& share_id) -> caf::result<std::string> {
        return to_agent<std::string>(self, decline_atom::value, share_id);
      },
      [=](federation_atom, const std::string& fed_id,
          federation::federation_command& command)
          -> caf::result<federation::federation_state> {
        auto& s = self->state;
        if (!is_federation_id(fed_id))
          return to_caf(make_error(errc::invalid_argument,
                                   "'" + fed_id + "' is no federation id"));
        // Host the federation's replica on this node (it syncs with the
        // other nodes holding it), then let it decide.
        // The command is this instance's agent's, whatever name it carries.
        command.agent = s.cfg.agent_id;
        command.relayed = false;
        command.seen_version = 0;
        auto rp = self->make_response_promise<federation::federation_state>();
        auto node = caf::actor_cast<node_actor>(s.ctx->node);
        self->request(node, std::chrono::seconds{5}, agent_atom::value, fed_id)
            .then(
                [=](agent_actor& owner) mutable {
                  rp.delegate(owner, federation_atom::value, command);
                },
                [=](caf::error& err) mutable {
                  rp.deliver(err);
                });
        return rp;
      },
      [=](forget_atom, const engram_id& id,
          std::string& reason) -> caf::result<engram_id> {
        auto& mem = *self->state.mem;
        if (mem.contains(id))
          return record_change(self, mem.forget(id, std::move(reason)));
        return to_agent<engram_id>(self, forget_atom::value, id,
                                   std::move(reason));
      },
      [=](archive_atom, const engram_id& id) -> caf::result<engram_id> {
        auto& mem = *self->state.mem;
        if (mem.contains(id))
          return record_change(self, mem.archive(id));
        return to_agent<engram_id>(self, archive_atom::value, id);
      },
      [=](sync_atom, const sync_config& cfg) -> caf::result<sync_result> {
        if (cfg.scope == scope_kind::instance)
          return sync_result{}; // Instance memory never leaves its instance.
        if (cfg.scope != scope_kind::agent)
          return to_caf(make_error(errc::invalid_scope,
                                   std::string{"not supported yet: sync of "}
                                       + to_string(cfg.scope) + " scope"));
        return to_agent<sync_result>(self, sync_atom::value, cfg);
      },
      [=](answer_atom, uint64_t conflict_id,
          const std::string& option) -> caf::result<engram_id> {
        auto& mem = *self->state.mem;
        for (auto& q : mem.pending_questions())
          if (q.subject.id == conflict_id)
            return record_change(self, mem.answer(conflict_id, option));
        return to_agent<engram_id>(self, answer_atom::value, conflict_id,
                                   option);
      },
      [=](pending_atom) -> caf::result<std::vector<pending_question>> {
        return to_agent<std::vector<pending_question>>(self,
                                                       pending_atom::value);
      },
      [=](pending_atom, const std::string& fed_id)
          -> caf::result<std::vector<pending_question>> {
        auto& s = self->state;
        auto owner = s.federation(fed_id);
        if (!owner)
          return to_caf(owner.error_value());
        return self->delegate(*owner, pending_atom::value, s.cfg.agent_id);
      },
      [=](answer_atom, const std::string& fed_id, uint64_t conflict_id,
          const std::string& option) -> caf::result<engram_id> {
        auto& s = self->state;
        auto owner = s.federation(fed_id);
        if (!owner)
          return to_caf(owner.error_value());
        return self->delegate(*owner, answer_atom::value, s.cfg.agent_id,
                              conflict_id, option);
      },
      [=](fail_atom) {
        throw std::runtime_error("instance " + self->state.instance_id
                                 + ": injected fault");
      },
  };
}

} // namespace

instance_actor spawn_instance(caf::local_actor* parent, node_context_ptr ctx,
                              const std::string& agent_id,
                              const std::string& instance_id) {
  return parent->spawn<caf::monitored>(instance_impl, std::move(ctx), agent_id,
                                       instance_id);
}

} // namespace engram::actors
