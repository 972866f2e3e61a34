#pragma once

#include "actors/api.hpp"
#include "actors/types.hpp"
#include "federation/membership.hpp"
#include "federation/share.hpp"

#include <caf/error.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "e2e/e2e.hpp"

namespace caf {
class actor_system;
class scoped_actor;
} // namespace caf

namespace engram::actors {

class directory; // actors/internal/context.hpp: where actors are found

/// The memory API of one agent instance (the spec's `memory`): what agent
/// programs are written against. The handle names its instance by id and
/// finds the instance actor in the node's directory on every call, so it
/// keeps working when the supervisor respawns the actor.
///
/// Blocking calls wait up to the handle's timeout and return `expected`
/// values; a handle used for blocking calls belongs to one thread. Actors
/// use the asynchronous variants (`*_async`), which take the calling actor
/// and a callback run in it with the result.
class memory {
public:
  memory(caf::actor_system& sys, std::shared_ptr<directory> dir,
         std::string agent_id, std::string instance_id, milliseconds timeout);

  memory(memory&&) noexcept;
  memory& operator=(memory&&) noexcept;
  ~memory();

  // -- blocking -------------------------------------------------------------

  // Agent communication (the spec's "Agent Communication").

  /// Leaves `text` in the inbox of agent `recipient` (on any node).
  expected<void> tell(const std::string& recipient, const std::string& text);

  /// Asks agent `recipient` (its `on_ask` handler answers); a timeout error
  /// when no answer comes within `timeout`, never a hang.
  expected<std::string> ask(const std::string& recipient,
                            const std::string& question,
                            milliseconds timeout = milliseconds{5000});

  /// Tells every other member of a federation (Leader and Member only).
  /// Returns how many were reached now; members whose node is unreachable
  /// get it when they are back (queued on this node, bounded).
  expected<size_t> broadcast(const std::string& federation_id,
                             const std::string& text);

  /// Reads and empties this agent's inbox: (sender, text), oldest first.
  expected<std::vector<std::pair<std::string, std::string>>> inbox();

  // End-to-end encryption (the spec's E2EEncryption; e2e/e2e.hpp): the
  // agent's key pair stays with the caller, nodes see only sealed texts.
  /// Publishes this agent's public key (32 bytes): this node vouches for
  /// it with its certificate's key, and it replicates with the agent's
  /// memory. Returns the binding.
  expected<e2e::key_binding> publish_key(const std::string& public_key);
  /// Publishes a binding the agent signed itself (e2e::self_signed, with
  /// its client certificate): the node checks it and keeps it as it is.
  expected<e2e::key_binding> publish_key(const e2e::key_binding& signed_key);
  /// The key binding agent `agent` published, unchecked: check it with
  /// e2e::verify (tell_sealed does) before sealing to it.
  expected<e2e::key_binding> agent_key(const std::string& agent);
  /// Seals `text` with `keys` (this agent's, published) to agent
  /// `recipient`'s published key, checked against `trust`, and tells it.
  expected<void> tell_sealed(const std::string& recipient,
                             const std::string& text, const e2e::key_pair& keys,
                             const e2e::trust& trust);
  /// One message of the inbox, opened: its text, or why it did not open.
  struct opened_message {
    std::string from;
    /// Sealed end to end: only then is `from` proven (by the seal).
    bool sealed = false;
    /// The text; for a sealed message, why it did not open.
    expected<std::string> text;
    /// A sealed message that did not open, as it came (read is read: it is
    /// kept here, not lost).
    std::string raw;
    /// When its sender sealed it (microseconds since the epoch).
    uint64_t sealed_us = 0;
  };
  /// Reads and empties the inbox as `inbox` does, opening each sealed
  /// message with `keys` (its sender's binding checked against `trust`);
  /// a message that is not sealed comes as it is, `sealed` false: only the
  /// delivering node vouches for its sender.
  expected<std::vector<opened_message>> inbox_opened(const e2e::key_pair& keys,
                                                     const e2e::trust& trust);

  // Explicit sharing (the spec's "Explicit Sharing").

  /// Shares memories with agent `with` (on any node): pending there until
  /// it accepts them. ReadOnly (the default): the receiver cannot modify
  /// them nor pass them on. Returns the share id.
  expected<std::string> share(const std::vector<memory_view>& memories,
                              const std::string& with, bool read_only = true);

  /// As `share`, after `transform` (e.g. federation::pii_redactor()) ran on
  /// every memory *here*: what it removes never leaves this process.
  expected<std::string> share_transformed(
      const std::vector<memory_view>& memories, const std::string& with,
      const federation::memory_transform& transform, bool read_only = true);

  /// As `share`, sealed end to end to agent `with` (its published key
  /// checked against `trust`) with `keys` (this agent's, published): the
  /// nodes on the way hold only the sealed share.
  expected<std::string> share_sealed(const std::vector<memory_view>& memories,
                                     const std::string& with,
                                     const e2e::key_pair& keys,
                                     const e2e::trust& trust,
                                     bool read_only = true);
  /// Shares offered to this agent and not yet accepted or declined.
  expected<std::vector<federation::share>> pending_shares();

  /// Accepts a pending share: its memories join this agent's memory as
  /// Reported{from, trust_level}, confidence × trust_level, with the hop in
  /// their provenance. Returns how many were stored.
  expected<size_t> accept_share(const std::string& from,
                                const std::string& share_id,
                                double trust_level);

  /// Accepts a pending sealed share: opened here with `keys` (its sender
  /// checked against `trust`), its memories stored as accept_share stores
  /// them.
  expected<size_t> accept_sealed(const std::string& from,
                                 const std::string& share_id,
                                 double trust_level, const e2e::key_pair& keys,
                                 const e2e::trust& trust);
  /// Declines a pending share (it is dropped).
  expected<void> decline_share(const std::string& share_id);

  // Federations (the spec's "Agent Federation"): each call acts as this
  // handle's agent, whose role the federation checks; the answer is the
  // federation's state (members, roles, trust model) after the call.

  /// Creates a federation led by this agent (put first among the initial
  /// members); its Collective memory is held on this node.
  expected<federation::federation_state>
  create_federation(federation::federation_config cfg);

  /// Leader only: invites `agent` to join as Member or Observer for `ttl`
  /// (zero: until it joins or the invitation is revoked). Nobody joins a
  /// federation uninvited.
  expected<federation::federation_state> invite_to_federation(
      const std::string& federation_id, const std::string& agent,
      federation::agent_role role = federation::agent_role::member,
      std::chrono::seconds ttl = std::chrono::hours{24});

  /// Leader only: revokes the invitation of `agent`.
  expected<federation::federation_state>
  revoke_invitation(const std::string& federation_id, const std::string& agent);

  /// Joins a federation created elsewhere as Member or Observer, as no
  /// more than the leader's invitation grants (the node starts holding its
  /// Collective memory and syncing it); an initial member calls it on its
  /// own node to start receiving.
  expected<federation::federation_state>
  join_federation(const std::string& federation_id,
                  federation::agent_role role = federation::agent_role::member);

  /// Leaves: this node stops receiving the federation's memory once no
  /// agent of it belongs to the federation.
  expected<federation::federation_state>
  leave_federation(const std::string& federation_id);

  /// The federation's current state (members may read it).
  expected<federation::federation_state>
  federation_state(const std::string& federation_id);

  /// Leader only: changes a member's role, removes a member, replaces the
  /// trust model.
  expected<federation::federation_state>
  set_role(const std::string& federation_id, const std::string& agent,
           federation::agent_role role);
  expected<federation::federation_state>
  remove_member(const std::string& federation_id, const std::string& agent);
  expected<federation::federation_state>
  set_trust(const std::string& federation_id, federation::trust_model model);
  /// Leader only: how contradictory beliefs of members are settled.
  expected<federation::federation_state>
  set_belief_conflicts(const std::string& federation_id,
                       federation::belief_policy policy);

  /// Reports that a member's memory proved right (verify) or wrong
  /// (contradict): under a Reputation trust model its trust rises or falls
  /// on this node.
  expected<federation::federation_state>
  verify_member(const std::string& federation_id, const std::string& agent);
  expected<federation::federation_state>
  contradict_member(const std::string& federation_id, const std::string& agent);

  /// Learns `value` in the federation's Collective scope (Leader and Member
  /// only): it syncs to every member on every node.
  expected<engram_id> learn_collective(const std::string& federation_id,
                                       engram_record value);

  // A federation sealed end to end (federation_config::e2e): its leader
  // makes its key, sealed to each member's published key; members write
  // and read facts sealed with it. Keys stay with the callers: nodes hold
  // only sealed keys and sealed values.
  /// Leader only: makes the federation's next key, sealed with `keys`
  /// (this agent's, published) to every member's published key (checked
  /// against `trust`), the earlier keys chained under it. Needed once the
  /// federation is created and whenever its members change (until then
  /// nodes refuse writes to it). Returns the new key's epoch.
  expected<uint64_t> rotate_federation_key(const std::string& federation_id,
                                           const e2e::key_pair& keys,
                                           const e2e::trust& trust);
  /// Learns fact `key` = `value` in the federation's Collective scope,
  /// the value sealed with its current key (opened with `keys`).
  expected<engram_id> learn_collective_sealed(const std::string& federation_id,
                                              const std::string& key,
                                              const std::string& value,
                                              const e2e::key_pair& keys,
                                              const e2e::trust& trust);
  /// A fact of a federation sealed end to end, opened: its value, or why
  /// it did not open (a value sealed with a key this agent never held).
  struct opened_fact {
    std::string key;
    expected<std::string> value;
    memory_view view;
  };
  /// The facts of the federation's Collective scope, opened with the keys
  /// sealed to this agent.
  expected<std::vector<opened_fact>>
  query_federation_opened(const std::string& federation_id,
                          const e2e::key_pair& keys, const e2e::trust& trust);

  /// The federation's Collective memory (every member may read). What
  /// other members wrote comes as Reported{writer, trust}, its confidence
  /// multiplied by the federation's trust in the writer, with that hop in
  /// its provenance.
  expected<std::vector<memory_view>>
  query_federation(const std::string& federation_id,
                   const query_filter& filter = {});

  /// Learns `value` in the scope the configuration's `default_scopes` name
  /// for its memory type; returns its id once stored durably.
  expected<engram_id> learn(engram_record value);

  /// Learns `value` in `scope` (an Instance or Agent placeholder means this
  /// instance / this agent).
  expected<engram_id> learn_scoped(engram_record value, memory_scope scope);

  /// Learns `value` with consensus (the spec's learn_with_consensus): in
  /// the Universal scope, decided by the Raft group of the nodes that hold
  /// it. Returns its id once a quorum stored it and this node applied it;
  /// `unavailable` without waiting for the quorum when fewer than
  /// `quorum.min_nodes` members are reachable or no leader is known (nothing
  /// written; the handle retries such answers briefly, as it does while an
  /// actor is respawned), `timeout` when it is not committed within
  /// `quorum.timeout` (its outcome unknown) — never a hang. Reads of the
  /// Universal scope (`query` with `kind = universal`) are linearizable and
  /// say so: `memory_view::consistency == guarantee::consensus`.
  expected<engram_id> learn_with_consensus(engram_record value,
                                           memory_scope scope,
                                           quorum_config quorum = {});

  /// The memories selected by `filter`: this instance's and its agent's.
  expected<std::vector<memory_view>> query(const query_filter& filter = {});

  /// As above, reading the agent's memory at `level`: Local (this node's
  /// replica only), One, Quorum or All of the replicas holding each
  /// partition, merged (per engram, the replica with the newest write).
  expected<std::vector<memory_view>> query(const query_filter& filter,
                                           consistency_level level);

  /// Forgets an engram (a tombstone that syncs) / archives it.
  expected<engram_id> forget(const engram_id& id, std::string reason);
  expected<engram_id> archive(const engram_id& id);

  /// Syncs now with every peer holding this agent's memory.
  expected<sync_result> sync(const sync_config& cfg = {});

  /// Conflicts waiting for an answer, and answering one with an option.
  expected<std::vector<pending_question>> pending();
  expected<engram_id> answer(uint64_t conflict_id, const std::string& option);

  /// A federation's conflicts waiting for an answer (any member), and
  /// answering one: under AskUser a Leader or Member, under Escalate the
  /// Leader. The resolution syncs to every member.
  expected<std::vector<pending_question>>
  pending(const std::string& federation_id);
  expected<engram_id> answer(const std::string& federation_id,
                             uint64_t conflict_id, const std::string& option);

  // -- asynchronous (from inside an actor) ----------------------------------

  template<class Self, class F>
  void learn_async(Self* self, engram_record value, F done) const {
    call<engram_id>(self, std::move(done), learn_atom::value, std::move(value),
                    false);
  }

  template<class Self, class F>
  void learn_scoped_async(Self* self, engram_record value, memory_scope scope,
                          F done) const {
    value.scope = std::move(scope);
    call<engram_id>(self, std::move(done), learn_atom::value, std::move(value),
                    true);
  }

  template<class Self, class F>
  void query_async(Self* self, query_filter filter, F done) const {
    call<std::vector<memory_view>>(self, std::move(done), query_atom::value,
                                   std::move(filter));
  }

  template<class Self, class F>
  void sync_async(Self* self, sync_config cfg, F done) const {
    call<sync_result>(self, std::move(done), sync_atom::value, cfg);
  }

  const std::string& agent_id() const noexcept { return agent_id_; }
  const std::string& instance_id() const noexcept { return instance_id_; }

  /// The instance actor currently serving this handle.
  expected<instance_actor> actor() const;

private:
  // This agent's published binding and `to`'s, both checked against
  // `trust` at `now_us` (the box names this agent as the sender).
  expected<std::pair<e2e::key_binding, e2e::key_binding>>
  checked_keys(const std::string& to, const e2e::trust& trust, uint64_t now_us);
  // The federation's keys this agent holds, by epoch (opened with `keys`).
  expected<std::map<uint64_t, std::string>>
  group_keys_of(const federation::federation_state& fed,
                const e2e::key_pair& keys, const e2e::trust& trust);

  // Calls `done(expected<Result>)` in `self` with the instance's answer.
  template<class Result, class Self, class F, class... Ts>
  void call(Self* self, F done, Ts&&... xs) const {
    auto inst = actor();
    if (!inst) {
      done(expected<Result>{inst.error_value()});
      return;
    }
    self->request(*inst, timeout_, std::forward<Ts>(xs)...)
        .then(
            [done](Result& r) mutable {
              done(expected<Result>{std::move(r)});
            },
            [done](caf::error& e) mutable {
              done(expected<Result>{from_caf(e)});
            });
  }

  template<class Result, class... Ts>
  expected<Result> blocking(Ts&&... xs);

  template<class Result, class... Ts>
  expected<Result> blocking_for(milliseconds timeout, Ts&&... xs);

  expected<federation::federation_state>
  federation_call(const std::string& federation_id,
                  federation::command_kind what);

  caf::actor_system* sys_;
  std::shared_ptr<directory> dir_;
  std::string agent_id_;
  std::string instance_id_;
  std::string key_;
  milliseconds timeout_;
  std::unique_ptr<caf::scoped_actor> self_;
};

} // namespace engram::actors
