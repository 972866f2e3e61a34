#pragma once

// The state of the actors holding one node's replica of a memory: an
// agent's Agent-scope memory (actors/agent.cpp) or a federation's
// Collective memory (actors/federation.cpp). Both keep the replica durable
// and in sync the same way (agent_writes.cpp, agent_sync.cpp); what they
// serve differs (agent_reads.cpp, agent_inbox.cpp, agent_sharing.cpp for
// an agent; the rules and broadcasts for a federation). Internal: never
// installed.

#include "actors/internal/context.hpp"
#include "actors/types.hpp"
#include "core/hlc.hpp"
#include "core/placement.hpp"
#include "core/replica.hpp"
#include "federation/command.hpp"
#include "federation/membership.hpp"
#include "federation/trust.hpp"
#include "persistence/store.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_set>
#include <utility>
#include <vector>

namespace engram::actors {

struct agent_state {
  // -- the replica (both) ----------------------------------------------------

  node_context_ptr ctx;
  agent_config cfg;
  std::unique_ptr<hybrid_logical_clock> clock;
  std::unique_ptr<replica> mem;
  std::unique_ptr<persistence::store> db;
  /// The proofs of origin of the versions held (when the node signs).
  std::shared_ptr<origin::book> origins;
  /// The scope held: Agent{id}, or Collective{id} for a federation.
  memory_scope hosted;
  /// Batches this actor queued for the node's write queue, and the last one
  /// written.
  uint64_t writes_queued = 0;
  uint64_t writes_done = 0;
  /// Replies waiting for a batch (and those before it) to be durable:
  /// (ticket, reply).
  std::deque<std::pair<uint64_t, std::function<void()>>> after_write;
  /// The sync sessions of this replica, by peer node.
  std::vector<std::pair<std::string, session_actor>> sessions;
  /// Where the memory's engrams live (recomputed when the cluster's
  /// members are not configured and a new peer appears).
  placement place;
  uint64_t place_version = ~uint64_t{0};
  /// This memory's actors on other nodes (forwarded writes, reads).
  std::map<std::string, agent_actor> remote;
  /// This replica held memories when it was loaded, or a session found it
  /// caught up with a peer since (and it holds memories). While it is empty
  /// and not caught up, a read at a level other than Local consults a
  /// replica on another node too: a node that never held the agent must not
  /// answer "nothing" while its peers hold memories.
  bool caught_up = false;
  /// Actors told about every change made durable here (watch_atom): a
  /// client API stream each. Bounded.
  std::vector<caf::actor> watchers;

  // -- an agent's inbox
  // --------------------------------------------------------

  /// The messages told to this agent that this replica holds unread (their
  /// engrams: reserved facts "_msg.<id>" in the agent's memory, which
  /// replicate with it). Found by a scan of the replica when first needed,
  /// then kept up to date by writes and merges.
  std::optional<std::set<engram_id>> unread;
  /// Messages an inbox read in progress is marking read: another read
  /// leaves them alone (it would return them a second time).
  std::set<engram_id> claimed;
  /// The ids of the last messages taken into the inbox (a retry of one of
  /// them is acknowledged, not added again); bounded.
  std::deque<uint64_t> recent_ids;
  std::unordered_set<uint64_t> recent;

  // -- a federation's rules
  // ----------------------------------------------------

  /// The rules, from the state fact in the Collective memory.
  std::optional<federation::federation_state> fed;
  /// This node's trust in the federation's members (its trust model, and
  /// the reputations verifications and contradictions earned here).
  federation::trust_book trust;
  /// Broadcasts waiting for members whose node is not reachable now: per
  /// member, (sender, text, message id), oldest first.
  std::map<std::string,
           std::deque<std::tuple<std::string, std::string, uint64_t>>>
      undelivered;
  uint64_t undelivered_dropped = 0;
  /// Agents of this node that joined the federation here, with their role:
  /// a join lost to a concurrent change of the rules elsewhere (the rules
  /// are one newest-wins fact) is made again, unless they left or were
  /// removed since.
  std::map<std::string, federation::agent_role> joined_here;
  /// What the belief-conflict configuration was last computed from.
  std::string conflicts_basis;

  static inline const char* name = "engram.agent";
};

using agent_ptr = agent_actor::stateful_pointer<agent_state>;

// -- opening (agent_writes.cpp)
// ------------------------------------------------

/// Loads the replica of `agent_id` from its partition and installs the
/// handlers both kinds share (errors, sessions ending). False (the actor
/// quit with the reason) when the store cannot be read.
/// Drops from `b` the proofs of versions `mem` no longer holds; returns
/// their store keys.
std::vector<std::string> prune_origins(origin::book& b, const replica& mem);

bool open_replica(agent_ptr self, node_context_ptr ctx,
                  const std::string& agent_id);

// -- placement (agent_writes.cpp)
// ------------------------------------------------

const std::string& self_node(agent_ptr self);
/// Where the memory's engrams live (current with the cluster's members).
const placement& placing(agent_ptr self);
/// Whether a node counts as reachable (`grace`: how long a lost primary
/// keeps its role, PrimarySecondary).
placement::live_fn liveness(agent_ptr self, milliseconds grace = {});
/// Whether the versions of an engram are ones `node` holds.
std::function<bool(const std::vector<version>&)>
held_by(const placement& place, const std::string& node);

// -- writes (agent_writes.cpp)
// ---------------------------------------------------

/// A change that cannot be made durable is not served from memory only:
/// the actor fails and its supervisor reloads the store.
[[noreturn]] void cannot_record(agent_ptr self, const std::string& why);
/// Records a change durably before returning.
void record(agent_ptr self, const replica_delta& delta);
/// Queues a change for the node's write queue; `reply` runs once it (and
/// everything queued before) is durable.
void record_then(agent_ptr self, const replica_delta& delta,
                 std::function<void()> reply);
/// Ships a change to every peer holding a share of it (all but `skip`).
void push(agent_ptr self, const replica_delta& delta,
          const std::vector<std::string>& skip = {});
/// Adds a watcher of this replica's changes; false when there are as many
/// as it takes.
bool add_watcher(agent_ptr self, caf::actor watcher);
/// Tells the watchers about a durable change (its engrams, reserved ones
/// left out).
void notify_watchers(agent_ptr self, const replica_delta& delta);
/// Records a change and ships it, without waiting for any replica.
void record_and_push(agent_ptr self, expected<replica_delta> delta);

/// The replicas besides this node a write to an engram must reach before
/// it is acknowledged, and the sessions to them.
struct write_plan {
  size_t needed = 0;
  std::vector<std::pair<std::string, session_actor>> targets;
};

/// The plan for a write of `e`; `unavailable` (before anything is written)
/// when too few replicas are reachable, `clock_offset` when this node's
/// clock may not write.
expected<write_plan> plan_write(agent_ptr self, const engram_record& e);
/// Records a change here, ships it, and answers once the replicas the plan
/// needs confirmed it durable.
caf::result<engram_id> commit(agent_ptr self, expected<replica_delta> delta,
                              write_plan plan);
/// A write coordinated here: plan, write, commit.
caf::result<engram_id> write_here(agent_ptr self, engram_record value);
/// A new value of an engram: written here when this node coordinates its
/// partition, else forwarded to the node that does.
caf::result<engram_id> route_write(agent_ptr self, engram_record value);
/// Forget, archive: a change of an engram this node may not hold, made
/// here when it holds it, else on the first reachable node that does.
caf::result<engram_id>
change(agent_ptr self, const engram_id& id,
       std::function<expected<replica_delta>(replica&)> make_change,
       std::function<void(const agent_actor&,
                          caf::typed_response_promise<engram_id>)>
           remotely);
/// Answers a pending question; the resolution is a write that syncs.
caf::result<engram_id> answer_question(agent_ptr self, uint64_t conflict_id,
                                       const std::string& option);

/// Runs `f` with this memory's actor on `node` (hosted there on demand), or
/// `fail` with why it cannot be reached.
void with_remote(agent_ptr self, const std::string& node,
                 std::function<void(const agent_actor&)> f,
                 std::function<void(caf::error&)> fail);

// -- reads (agent_reads.cpp)
// -------------------------------------------------------

/// Facts the runtime keeps in a memory for itself (a federation's rules,
/// pending shares, messages): queries do not show them.
bool reserved(const engram_record& e);
/// The prefix of the runtime's own keys ("_msg.", "_share.",
/// "_federation.", "_e2e.") a fact's key starts with, or null: neither a
/// client's write nor a share may set such a fact.
const char* runtime_prefix(const engram_record& e);
bool runtime_key(const engram_record& e);
/// What this replica holds that `filter` selects (reserved facts left out).
std::vector<memory_view> local_query(agent_ptr self,
                                     const query_filter& filter);
/// Per engram, the alternatives of the replica whose newest write is the
/// newest; then ordered and limited as the filter says.
std::vector<memory_view>
merge_reads(const query_filter& filter,
            std::vector<std::vector<memory_view>>& answers);
/// A read at a consistency level: this replica, or the replicas the level
/// needs, merged.
caf::result<std::vector<memory_view>>
read(agent_ptr self, const query_filter& filter, level_code code);
/// What the agent's memory says about `question` (its `ask` answer without
/// an on_ask handler).
caf::result<std::string> answer_from_memory(agent_ptr self,
                                            const std::string& question);

// -- the sessions' side (agent_sync.cpp)
// -----------------------------------------

/// Syncs with every session now; their results summed.
caf::result<sync_result> sync_all(agent_ptr self, const sync_config& cfg);
caf::result<uint64_t, causal_context> digest_for(agent_ptr self,
                                                 const std::string& peer);
caf::result<replica_delta, std::vector<engram_id>, causal_context>
missing_for(agent_ptr self, const causal_context& peer_context,
            const std::string& peer, uint64_t first);
caf::result<replica_delta> piece_for(agent_ptr self,
                                     const std::vector<engram_id>& ids,
                                     const std::string& peer);
/// Merges a peer's batch: answered once it is durable.
caf::result<merge_summary> merge_batch(agent_ptr self,
                                       const replica_delta& delta);
void written(agent_ptr self, uint64_t ticket, const std::string& failure);
/// A session of this replica; `on_new` runs for one not attached before.
void attach_session(agent_ptr self, const caf::actor& session,
                    const std::string& peer,
                    const std::function<void(const session_actor&)>& on_new);
bool note_caught_up(agent_ptr self);

// -- an agent's inbox (agent_inbox.cpp)
// --------------------------------------------

/// The fact holding message `id` told to `agent`.
engram_record message_record(const std::string& agent, uint64_t id,
                             const std::string& from, const std::string& text,
                             uint64_t sent_us);
/// Whether a record is one of the inbox's facts.
bool is_message(const engram_record& e);
/// Keeps the unread set current with what a change (a write, a merge)
/// touched.
void note_messages(agent_state& st, const replica_delta& delta);
/// Takes a message into the inbox (a retry of one held is acknowledged).
caf::result<bool> take_message(agent_ptr self, const std::string& from,
                               const std::string& text, uint64_t id);
/// Reads the inbox: gathered from the replicas the level reads, each
/// message marked read (the mark replicated) before it is returned.
caf::result<std::vector<std::string>> read_inbox(agent_ptr self);
/// A peer's inbox read: the unread messages held here, or (ids given)
/// these messages as held here, read marks included.
std::vector<memory_view> inbox_views(agent_ptr self,
                                     const std::vector<engram_id>& ids);
/// Remembers a message id (a retry is acknowledged, not added again).
void remember_message(agent_ptr self, uint64_t id);
/// Moves messages an earlier build kept beside the replica into it. False
/// (the actor quit) when the store fails.
bool adopt_legacy_messages(agent_ptr self);

// -- an agent's public key (agent_keys.cpp)
// ---------------------------------------------

/// Whether a record is the fact holding the agent's key binding.
bool is_key(const engram_record& e);
/// The fact holding `agent`'s key binding (e2e::encode).
engram_record key_record(const std::string& agent, std::string binding);
/// The binding this replica holds; unknown_engram when none.
caf::result<std::string> key_of(agent_ptr self);

// -- an agent's shares (agent_sharing.cpp)
// -----------------------------------------

/// A share offered to this agent: kept pending (durably, in its memory).
caf::result<std::string> offer(agent_ptr self, const federation::share& s);
std::vector<federation::share> pending_shares(agent_ptr self);
/// Accepts a pending share; a sealed one with `opened`, what the
/// recipient's client opened from it (it must be that share: its id,
/// sender, recipient and permission).
caf::result<uint64_t> accept_share(agent_ptr self, const std::string& from,
                                   const std::string& share_id, double trust,
                                   const federation::share* opened = nullptr);
caf::result<std::string> decline_share(agent_ptr self,
                                       const std::string& share_id);

// -- a federation (federation.cpp)
// ------------------------------------------------

/// Whether `agent` runs on this node or on a reachable peer.
bool agent_live(agent_ptr self, const std::string& agent);
/// Tells every other member (federation_broadcast.cpp) → members reached
/// now; the others get it when they are back.
caf::result<uint64_t> broadcast(agent_ptr self, const std::string& from,
                                const std::string& text);
/// Retries queued broadcasts to members reachable again (on the tick).
void retry_undelivered(agent_ptr self);

/// The federation actor's behavior: its Collective memory, its rules (the
/// commands members send), broadcasts to its members.
agent_actor::behavior_type federation_impl(agent_ptr self, node_context_ptr ctx,
                                           std::string fed_id);

} // namespace engram::actors
