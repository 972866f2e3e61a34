#pragma once

// The actor runtime's message types, atoms and typed actor interfaces.
// Every type that travels in a message has an `inspect` that serializes it
// as its protobuf (engram.v1) bytes, and is registered under a stable name by
// `register_types`.

#include "actors/api.hpp"
#include "core/causal_context.hpp"
#include "core/query.hpp"
#include "core/replica.hpp"
#include "federation/codec.hpp"
#include "federation/command.hpp"
#include "federation/membership.hpp"
#include "federation/share.hpp"

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/sec.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace caf {
class actor_system_config;
} // namespace caf

namespace engram::actors {

// -- atoms ------------------------------------------------------------------

using learn_atom = caf::atom_constant<caf::atom("learn")>;
using query_atom = caf::atom_constant<caf::atom("query")>;
using forget_atom = caf::atom_constant<caf::atom("forget")>;
using archive_atom = caf::atom_constant<caf::atom("archive")>;
using sync_atom = caf::atom_constant<caf::atom("sync")>;
using answer_atom = caf::atom_constant<caf::atom("answer")>;
using pending_atom = caf::atom_constant<caf::atom("pending")>;
using digest_atom = caf::atom_constant<caf::atom("digest")>;
using since_atom = caf::atom_constant<caf::atom("since")>;
using merge_atom = caf::atom_constant<caf::atom("merge")>;
using push_atom = caf::atom_constant<caf::atom("push")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using attach_atom = caf::atom_constant<caf::atom("attach")>;
using peer_atom = caf::atom_constant<caf::atom("peer")>;
using challenge_atom = caf::atom_constant<caf::atom("challenge")>;
using prove_atom = caf::atom_constant<caf::atom("prove")>;
using agent_atom = caf::atom_constant<caf::atom("agent")>;
using instance_atom = caf::atom_constant<caf::atom("instance")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using fail_atom = caf::atom_constant<caf::atom("fail")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using watched_atom = caf::atom_constant<caf::atom("watched")>;
using forward_atom = caf::atom_constant<caf::atom("forward")>;
using replicate_atom = caf::atom_constant<caf::atom("replicate")>;
using locate_atom = caf::atom_constant<caf::atom("locate")>;
using federation_atom = caf::atom_constant<caf::atom("federation")>;
using share_atom = caf::atom_constant<caf::atom("share")>;
using tell_atom = caf::atom_constant<caf::atom("tell")>;
using ask_atom = caf::atom_constant<caf::atom("ask")>;
using broadcast_atom = caf::atom_constant<caf::atom("broadcast")>;
using inbox_atom = caf::atom_constant<caf::atom("inbox")>;
using shares_atom = caf::atom_constant<caf::atom("shares")>;
using find_atom = caf::atom_constant<caf::atom("find")>;
using written_atom = caf::atom_constant<caf::atom("written")>;
using rehost_atom = caf::atom_constant<caf::atom("rehost")>;
using caught_up_atom = caf::atom_constant<caf::atom("caughtup")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using accept_atom = caf::atom_constant<caf::atom("accept")>;
using decline_atom = caf::atom_constant<caf::atom("decline")>;
using key_atom = caf::atom_constant<caf::atom("key")>;
using keyof_atom = caf::atom_constant<caf::atom("keyof")>;
using prepare_atom = caf::atom_constant<caf::atom("prepare")>;

/// A read's consistency level in a message: a `consistency_level`, or
/// `configured_level` for the node's configured one.
using level_code = uint8_t;
constexpr level_code configured_level = 255;

inline level_code code_of(consistency_level level) {
  return static_cast<level_code>(level);
}

// -- the frame between peers ------------------------------------------------

/// What sync sessions exchange: a protobuf `SyncMessage` envelope (bytes
/// from `messages/`), routed by the sending node and the agent whose memory
/// it concerns. The same bytes whether the peer is local or remote.
struct wire_frame {
  std::string from_node;
  std::string agent;
  std::string envelope;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_frame& x) {
  return f(caf::meta::type_name("engram.wire_frame"), x.from_node, x.agent,
           x.envelope);
}

// -- typed interfaces -------------------------------------------------------

/// Anything that accepts frames from a peer: a node, or a simulated link.
using peer_actor = caf::typed_actor<caf::reacts_to<wire_frame>>;

/// The owner of one agent instance's memory (Instance scope) and the entry
/// point of the memory API: Agent-scope requests go on to the agent actor.
/// `learn` takes the engram and whether its scope is the caller's choice
/// (`learn_scoped`; placeholders are filled) or comes from the configured
/// defaults per memory type (`learn`).
using instance_actor = caf::typed_actor<
    caf::replies_to<learn_atom, engram_record, bool>::with<engram_id>,
    // learn_with_consensus: the engram (Universal scope), the members that
    // must be reachable (0: a majority), the timeout in ms.
    caf::replies_to<learn_atom, engram_record, uint32_t,
                    uint64_t>::with<engram_id>,
    caf::replies_to<query_atom, query_filter>::with<std::vector<memory_view>>,
    caf::replies_to<query_atom, query_filter,
                    level_code>::with<std::vector<memory_view>>,
    caf::replies_to<forget_atom, engram_id, std::string>::with<engram_id>,
    caf::replies_to<archive_atom, engram_id>::with<engram_id>,
    caf::replies_to<sync_atom, sync_config>::with<sync_result>,
    caf::replies_to<answer_atom, uint64_t, std::string>::with<engram_id>,
    caf::replies_to<pending_atom>::with<std::vector<pending_question>>,
    // As agent `who` (a federation checks its role): the pending questions;
    // answering one.
    caf::replies_to<pending_atom,
                    std::string>::with<std::vector<pending_question>>,
    caf::replies_to<answer_atom, std::string, uint64_t,
                    std::string>::with<engram_id>,
    // Federations, for this instance's agent: a command to a federation
    // (its id; the command's agent is set to this instance's agent, whatever
    // the caller put there) → the federation's rules after it; and a query
    // of a federation's Collective memory.
    caf::replies_to<
        federation_atom, std::string,
        federation::federation_command>::with<federation::federation_state>,
    caf::replies_to<query_atom, std::string,
                    query_filter>::with<std::vector<memory_view>>,
    // Sharing: (recipient agent, a share built by this agent) → its share
    // id; and the receiving side: the pending shares, accepting one (sender
    // or "" for any, share id, trust in [0, 1]) → the memories stored, and
    // declining one → its id.
    caf::replies_to<share_atom, std::string,
                    federation::share>::with<std::string>,
    // Shares what the filter selects from this agent's memory with an agent
    // (recipient, filter, built-in transform "" | "redact_pii", read_only),
    // transformed on this node → the share id.
    caf::replies_to<share_atom, std::string, query_filter, std::string,
                    bool>::with<std::string>,
    caf::replies_to<shares_atom>::with<std::vector<federation::share>>,
    caf::replies_to<accept_atom, std::string, std::string,
                    double>::with<uint64_t>,
    // End-to-end: a share prepared as the filter variant above would send
    // it, returned instead for the client to seal (e2e::seal of its
    // encoding) and send as a share with `sealed` set; and accepting a
    // sealed share with what the client opened from it.
    caf::replies_to<prepare_atom, std::string, query_filter, std::string,
                    bool>::with<federation::share>,
    caf::replies_to<accept_atom, std::string, std::string, double,
                    federation::share>::with<uint64_t>,
    caf::replies_to<decline_atom, std::string>::with<std::string>,
    // Communication as this instance's agent: tell (recipient, text), ask
    // (recipient, question, timeout in ms) → the answer, broadcast
    // (federation, text) → members reached now; and reading (draining) the
    // inbox: alternating sender, text.
    caf::replies_to<tell_atom, std::string, std::string>::with<bool>,
    caf::replies_to<ask_atom, std::string, std::string,
                    uint64_t>::with<std::string>,
    caf::replies_to<broadcast_atom, std::string, std::string>::with<uint64_t>,
    caf::replies_to<inbox_atom>::with<std::vector<std::string>>,
    // End-to-end encryption: publishes this agent's public key (X25519, 32
    // bytes), vouched by this node → the binding (e2e::encode); the
    // binding an agent published (any agent, this one included).
    caf::replies_to<key_atom, std::string>::with<std::string>,
    caf::replies_to<keyof_atom, std::string>::with<std::string>,
    // Watching the agent's memory (this process only): `watcher` gets
    // (watched_atom, std::vector<engram_record>) for each change made
    // durable here — writes, and merges of what others learned — until
    // it exits. False when the agent has as many watchers as it takes.
    caf::replies_to<watch_atom, caf::actor>::with<bool>,
    caf::reacts_to<fail_atom>>;

/// The owner of one node's replica of an agent's Agent-scope memory. With
/// placement configured it coordinates: a write goes to the replica that
/// coordinates its partition (`forward` to that node's agent actor) and is
/// acknowledged once as many replicas as its level needs stored it; a read
/// consults and merges the replicas its level needs.
using agent_actor = caf::typed_actor<
    caf::replies_to<learn_atom, engram_record>::with<engram_id>,
    caf::replies_to<forward_atom, engram_record>::with<engram_id>,
    caf::replies_to<query_atom, query_filter,
                    level_code>::with<std::vector<memory_view>>,
    // A read on behalf of agent `caller` (a federation checks its role).
    caf::replies_to<query_atom, query_filter, level_code,
                    std::string>::with<std::vector<memory_view>>,
    // A federation's replica: a command (its agent decides what it may) →
    // the rules after it.
    caf::replies_to<federation_atom, federation::federation_command>::with<
        federation::federation_state>,
    // A share offered to this agent → its id, pending; the pending shares;
    // accepting (sender or "", share id, trust) and declining one.
    caf::replies_to<share_atom, federation::share>::with<std::string>,
    caf::replies_to<shares_atom>::with<std::vector<federation::share>>,
    caf::replies_to<accept_atom, std::string, std::string,
                    double>::with<uint64_t>,
    // A sealed share, accepted with what the recipient's client opened.
    caf::replies_to<accept_atom, std::string, std::string, double,
                    federation::share>::with<uint64_t>,
    caf::replies_to<decline_atom, std::string>::with<std::string>,
    // Messages to this agent: tell (sender, text, message id: a message
    // seen again — a retry — is not added twice) into the inbox, a part of
    // the agent's replicated memory; ask (sender, question) → the agent's
    // answer; reading the inbox (each message marked read, and the mark
    // replicated, before it is returned); a federation broadcasts (sender,
    // text) to its members.
    caf::replies_to<tell_atom, std::string, std::string, uint64_t>::with<bool>,
    caf::replies_to<ask_atom, std::string, std::string>::with<std::string>,
    caf::replies_to<inbox_atom>::with<std::vector<std::string>>,
    // The binding of the agent's public key as this replica holds it
    // (e2e::encode); unknown_engram when it published none.
    caf::replies_to<keyof_atom>::with<std::string>,
    // A watcher of this replica's changes (see instance_actor).
    caf::replies_to<watch_atom, caf::actor>::with<bool>,
    // A peer's inbox read: the unread messages this replica holds (their
    // reserved facts; none marked read), or, ids given, those messages as
    // held here, read marks included.
    caf::replies_to<inbox_atom,
                    std::vector<engram_id>>::with<std::vector<memory_view>>,
    caf::replies_to<broadcast_atom, std::string, std::string>::with<uint64_t>,
    caf::replies_to<forget_atom, engram_id, std::string>::with<engram_id>,
    caf::replies_to<archive_atom, engram_id>::with<engram_id>,
    caf::replies_to<sync_atom, sync_config>::with<sync_result>,
    caf::replies_to<answer_atom, uint64_t, std::string>::with<engram_id>,
    caf::replies_to<pending_atom>::with<std::vector<pending_question>>,
    // As agent `who` (a federation checks its role): the pending questions;
    // answering one.
    caf::replies_to<pending_atom,
                    std::string>::with<std::vector<pending_question>>,
    caf::replies_to<answer_atom, std::string, uint64_t,
                    std::string>::with<engram_id>,
    // Sessions' side (per peer node; "" for everything held here): digest
    // of what both hold; what the peer misses of its share, in pieces (the
    // first n engrams of it as a delta, the rest as ids, oldest event
    // first, then this replica's context), and a piece of those ids;
    // merging a peer's batch.
    caf::replies_to<digest_atom, std::string>::with<uint64_t, causal_context>,
    caf::replies_to<since_atom, causal_context, std::string, uint64_t>::with<
        replica_delta, std::vector<engram_id>, causal_context>,
    caf::replies_to<since_atom, std::vector<engram_id>,
                    std::string>::with<replica_delta>,
    caf::replies_to<merge_atom, replica_delta>::with<merge_summary>,
    caf::reacts_to<attach_atom, caf::actor, std::string>,
    // The node's write queue wrote (or failed: the reason) the agent's
    // batches up to this ticket.
    caf::reacts_to<written_atom, uint64_t, std::string>,
    // A session found this replica caught up with its peer (their digests
    // matched, or the answer to a pull was merged): reads at a level other
    // than Local no longer need to consult another replica first. The
    // answer: whether the agent counts it (not while it holds nothing).
    caf::replies_to<caught_up_atom>::with<bool>,
    // A federation's replica checks its leader periodically (succession).
    caf::reacts_to<tick_atom>, caf::reacts_to<fail_atom>>;

/// One peer × one agent's memory: the spec's sync flow.
using session_actor = caf::typed_actor<
    caf::reacts_to<wire_frame>, caf::reacts_to<push_atom, replica_delta>,
    // Sends a change now; answers once the peer stored it durably.
    caf::replies_to<replicate_atom, replica_delta>::with<bool>,
    caf::replies_to<sync_atom, sync_config>::with<sync_result>,
    caf::reacts_to<tick_atom>, caf::reacts_to<flush_atom>,
    caf::reacts_to<attach_atom, agent_actor>,
    caf::reacts_to<peer_atom, peer_actor>,
    caf::replies_to<status_atom>::with<session_stats>,
    caf::reacts_to<fail_atom>>;

/// A member of the Universal scope's consensus group (Raft): a RAFT frame
/// from a proven peer (forwarded by the node), the clock, a write with
/// consensus (the engram, the members that must be reachable — 0: a
/// majority —, the timeout in ms) → its id once committed and applied
/// here, and a linearizable query.
using consensus_actor = caf::typed_actor<
    caf::reacts_to<wire_frame>, caf::reacts_to<tick_atom>,
    caf::replies_to<learn_atom, engram_record, uint32_t,
                    uint64_t>::with<engram_id>,
    caf::replies_to<query_atom, query_filter>::with<std::vector<memory_view>>>;

/// One per process: hosts agents and instances, routes frames from peers to
/// sessions, supervises (respawns failed actors from the store).
using node_actor = caf::typed_actor<
    caf::reacts_to<wire_frame>,
    caf::replies_to<agent_atom, std::string>::with<agent_actor>,
    caf::replies_to<instance_atom, std::string,
                    std::string>::with<instance_actor>,
    caf::reacts_to<peer_atom, std::string, peer_actor>,
    // A peer that proves its node id (TLS): its certificate (PEM), the
    // challenge it was given here, its signature (actors/tls.hpp,
    // proof_message), and the public key it signs its envelopes with; or,
    // with an empty certificate, this process's own token (node::add_peer).
    caf::reacts_to<peer_atom, std::string, peer_actor, std::string, std::string,
                   std::string, std::string>,
    // A fresh challenge for a peer to sign.
    caf::replies_to<challenge_atom>::with<std::string>,
    // This node's proof of its id for a connecting peer's challenge: its
    // certificate (PEM), signature, and envelope-signing key.
    caf::replies_to<prove_atom, std::string>::with<std::string, std::string,
                                                   std::string>,
    caf::replies_to<status_atom>::with<node_status>,
    // The cluster-wide directory: the nodes hosting an agent (this one
    // first), and the agent's actor on one of them (here when hosted,
    // else on the first reachable node hosting it).
    caf::replies_to<locate_atom, std::string>::with<std::vector<std::string>>,
    // The agents (and federations) this node hosts.
    caf::replies_to<locate_atom>::with<std::vector<std::string>>,
    caf::replies_to<find_atom, std::string>::with<agent_actor>,
    // Periodically: the whole directory again to every peer (announcements
    // are not acknowledged; this repairs one a peer missed).
    caf::reacts_to<tick_atom>,
    // At start: hosts again the agents (and federations) its store holds,
    // a batch at a time (the rest follows in the next message).
    caf::reacts_to<rehost_atom, std::vector<std::string>>,
    // Periodically: pings every peer, measuring its clock.
    caf::reacts_to<ping_atom>>;

// -- registration -----------------------------------------------------------

/// Registers every message type of the runtime under its stable name.
/// Call it on every actor system config (both ends of a connection).
void register_types(caf::actor_system_config& cfg);

/// The names `register_types` registers (for tests).
std::vector<std::string> registered_type_names();

// -- converting errors ------------------------------------------------------

/// An engram error as a CAF error (its message kept).
caf::error to_caf(const error& e);

/// A CAF error as an engram error: timeouts and dead receivers map to
/// `timeout` / `unavailable`; errors made by `to_caf` come back unchanged.
error from_caf(const caf::error& e);

/// Whether `e` was made by `to_caf` (an answer of an Engram actor), not by
/// CAF (a request that timed out, a receiver that went away).
bool is_engram_error(const caf::error& e);

// -- serialization of core types (as protobuf bytes) ------------------------

namespace detail {

std::string encode(const engram_record& x);
expected<engram_record> decode_engram(const std::string& bytes);
std::string encode(const replica_delta& x);
expected<replica_delta> decode_delta(const std::string& bytes);
std::string encode(const causal_context& x);
expected<causal_context> decode_context(const std::string& bytes);
std::string encode(const conflict& x);
expected<conflict> decode_conflict(const std::string& bytes);
std::string encode(const memory_view& x);
expected<memory_view> decode_view(const std::string& bytes);
std::string encode(const pending_question& x);
expected<pending_question> decode_question(const std::string& bytes);
std::string encode(const query_filter& x);
expected<query_filter> decode_filter(const std::string& bytes);

caf::error load_error(const char* type, const error& e);

template<class Inspector, class T, class Decode>
typename Inspector::result_type inspect_bytes(Inspector& f, T& x,
                                              const char* name, Decode decode) {
  std::string bytes;
  if constexpr (Inspector::reads_state)
    bytes = encode(x);
  auto load = [&]() -> caf::error {
    auto value = decode(bytes);
    if (!value)
      return load_error(name, value.error_value());
    x = std::move(*value);
    return caf::none;
  };
  return f(caf::meta::type_name(name), bytes, caf::meta::load_callback(load));
}

} // namespace detail

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, merge_summary& x) {
  return f(caf::meta::type_name("engram.merge_summary"), x.applied, x.conflicts,
           x.open);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, sync_config& x) {
  auto kind = static_cast<uint8_t>(x.scope);
  auto interval = x.interval.count();
  auto timeout = x.timeout.count();
  auto load = [&]() -> caf::error {
    if (kind > static_cast<uint8_t>(scope_kind::universal))
      return caf::make_error(caf::sec::invalid_argument,
                             "engram.sync_config: unknown scope kind");
    x.scope = static_cast<scope_kind>(kind);
    x.interval = milliseconds{interval};
    x.timeout = milliseconds{timeout};
    return caf::none;
  };
  return f(caf::meta::type_name("engram.sync_config"), kind, interval,
           x.on_change, timeout, caf::meta::load_callback(load));
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, sync_result& x) {
  auto kind = static_cast<uint8_t>(x.kind);
  auto load = [&]() -> caf::error {
    if (kind > 1)
      return caf::make_error(caf::sec::invalid_argument,
                             "engram.sync_result: unknown outcome");
    x.kind = static_cast<sync_result::outcome>(kind);
    return caf::none;
  };
  return f(caf::meta::type_name("engram.sync_result"), kind, x.synced_count,
           x.merged_count, x.conflicts, x.peers,
           caf::meta::load_callback(load));
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_stats& x) {
  return f(caf::meta::type_name("engram.session_stats"), x.peer_node, x.agent,
           x.established, x.frames_in, x.frames_out, x.merged, x.duplicates,
           x.refused, x.retransmits, x.outstanding, x.pending_versions,
           x.pending_overflows, x.unread_engrams, x.rounds, x.idle_rounds,
           x.bytes_in, x.bytes_out);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, clock_offset& x) {
  return f(caf::meta::type_name("engram.clock_offset"), x.peer, x.offset_us,
           x.rtt_us);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_status& x) {
  return f(caf::meta::type_name("engram.node_status"), x.node_id, x.agents,
           x.instances, x.sessions, x.respawns, x.session_details,
           x.clock_offsets, x.clock_refusal, x.peers_up, x.peers_down);
}

} // namespace engram::actors

namespace engram {

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, engram_id& x) {
  return f(caf::meta::type_name("engram.id"), x.hi, x.lo);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, engram_record& x) {
  return actors::detail::inspect_bytes(f, x, "engram.record",
                                       actors::detail::decode_engram);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_delta& x) {
  return actors::detail::inspect_bytes(f, x, "engram.delta",
                                       actors::detail::decode_delta);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, causal_context& x) {
  return actors::detail::inspect_bytes(f, x, "engram.causal_context",
                                       actors::detail::decode_context);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, conflict& x) {
  return actors::detail::inspect_bytes(f, x, "engram.conflict",
                                       actors::detail::decode_conflict);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, memory_view& x) {
  return actors::detail::inspect_bytes(f, x, "engram.memory_view",
                                       actors::detail::decode_view);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, pending_question& x) {
  return actors::detail::inspect_bytes(f, x, "engram.pending_question",
                                       actors::detail::decode_question);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, query_filter& x) {
  return actors::detail::inspect_bytes(f, x, "engram.query_filter",
                                       actors::detail::decode_filter);
}

} // namespace engram

namespace engram::federation {

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, federation_command& x) {
  return actors::detail::inspect_bytes(f, x, "engram.federation_command",
                                       decode_command);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, federation_state& x) {
  return actors::detail::inspect_bytes(f, x, "engram.federation_state",
                                       decode_state);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, share& x) {
  return actors::detail::inspect_bytes(f, x, "engram.share", decode_share);
}

} // namespace engram::federation
