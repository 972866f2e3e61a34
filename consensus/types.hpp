#pragma once

// The vocabulary of the Raft machine (consensus/raft.hpp): log entries,
// messages, snapshots, membership. Plain values: no I/O, no CAF, no protobuf;
// the actors encode them for the wire and the store (consensus/codec.hpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace engram::consensus {

/// A member of a consensus group. 0 means "nobody".
using node_id = uint64_t;

/// Position in the replicated log; the first entry has index 1.
using index_t = uint64_t;

/// A Raft term (a logical clock of elections).
using term_t = uint64_t;

/// Nobody: no leader known, no vote cast.
constexpr node_id no_node = 0;

// -- the log ------------------------------------------------------------------

/// What an entry carries.
enum class entry_type : uint8_t {
  /// An application command (opaque bytes), or empty: the no-op a new leader
  /// appends to commit entries of earlier terms.
  normal,
  /// A membership change (`conf_change`, encoded with `encode`).
  conf_change,
};

/// One log entry.
struct entry {
  term_t term = 0;
  index_t index = 0;
  entry_type type = entry_type::normal;
  std::string data;

  friend bool operator==(const entry& x, const entry& y) {
    return x.term == y.term && x.index == y.index && x.type == y.type
           && x.data == y.data;
  }
};

/// The bytes an entry counts against size limits.
inline uint64_t payload_size(const entry& e) { return e.data.size(); }

// -- membership ---------------------------------------------------------------

/// The membership of a group, as stored in snapshots. During a joint change
/// both `voters` (incoming) and `voters_outgoing` decide.
struct conf_state {
  std::vector<node_id> voters;
  std::vector<node_id> learners;
  /// Voters of the configuration being left (non-empty only while joint).
  std::vector<node_id> voters_outgoing;
  /// Outgoing voters that become learners when the joint state is left.
  std::vector<node_id> learners_next;
  /// Whether the leader leaves the joint state by itself.
  bool auto_leave = false;

  friend bool operator==(const conf_state& x, const conf_state& y) {
    return x.voters == y.voters && x.learners == y.learners
           && x.voters_outgoing == y.voters_outgoing
           && x.learners_next == y.learners_next
           && x.auto_leave == y.auto_leave;
  }
};

/// One step of a membership change.
enum class change_type : uint8_t {
  add_voter,
  /// Adds a learner (a non-voting member that receives the log), or demotes a
  /// voter to learner.
  add_learner,
  remove_node,
};

struct single_change {
  change_type type = change_type::add_voter;
  node_id node = no_node;
};

/// How a change moves through the joint configuration.
enum class transition : uint8_t {
  /// One voter added or removed: applied directly; more: joint consensus
  /// that the leader leaves by itself once the joint state is committed.
  automatic,
  /// Always joint; left automatically.
  joint_implicit,
  /// Always joint; left only by a later empty change proposed by the user.
  joint_explicit,
};

/// A membership change. No changes at all means "leave the joint state".
struct conf_change {
  transition mode = transition::automatic;
  std::vector<single_change> changes;

  /// Whether this is the change that leaves a joint configuration.
  bool leaves_joint() const {
    return mode == transition::automatic && changes.empty();
  }

  /// Whether applying it enters a joint configuration, and whether the
  /// leader then leaves that state by itself.
  bool enters_joint(bool& auto_leave) const {
    auto_leave = mode != transition::joint_explicit;
    return changes.size() > 1 || mode != transition::automatic;
  }
};

/// The bytes of a change as an entry carries them.
std::string encode(const conf_change& cc);

/// Reads the bytes of a change; nullopt when they are not one.
std::optional<conf_change> decode_conf_change(std::string_view bytes);

// -- snapshots and state ------------------------------------------------------

/// Where a snapshot stands in the log, and the membership at that point.
struct snapshot_meta {
  index_t index = 0;
  term_t term = 0;
  conf_state conf;
};

/// The application state up to `meta.index` (opaque bytes), replacing the
/// log before it.
struct snapshot {
  snapshot_meta meta;
  std::string data;

  bool empty() const { return meta.index == 0; }
};

/// What must be durable before any message of the same `ready` is sent.
struct hard_state {
  term_t term = 0;
  node_id vote = no_node;
  index_t commit = 0;

  bool empty() const { return term == 0 && vote == no_node && commit == 0; }

  friend bool operator==(const hard_state& x, const hard_state& y) {
    return x.term == y.term && x.vote == y.vote && x.commit == y.commit;
  }
  friend bool operator!=(const hard_state& x, const hard_state& y) {
    return !(x == y);
  }
};

/// The role a member plays.
enum class role : uint8_t { follower, pre_candidate, candidate, leader };

const char* to_string(role r);

// -- messages -----------------------------------------------------------------

/// Messages between members, and local inputs (marked local: never accepted
/// from the network).
enum class msg_type : uint8_t {
  hup,                ///< local: start an election
  beat,               ///< local: send heartbeats (leader)
  propose,            ///< local or forwarded: append entries
  append,             ///< leader → follower: entries after (index, log_term)
  append_response,    ///< follower → leader: accepted up to index, or reject
  vote,               ///< candidate → voter
  vote_response,      ///< voter → candidate
  pre_vote,           ///< pre-candidate → voter: would you vote for me?
  pre_vote_response,  ///< voter → pre-candidate
  install_snapshot,   ///< leader → follower: the snapshot replaces the log
  heartbeat,          ///< leader → follower
  heartbeat_response, ///< follower → leader
  unreachable,        ///< local: a peer could not be reached
  snapshot_status,    ///< local: a snapshot was or was not delivered
  check_quorum,       ///< local: leader checks it still hears a quorum
  transfer_leader,    ///< local or forwarded: hand leadership to `from`
  timeout_now,        ///< leader → transferee: campaign now
  read_index,         ///< local or forwarded: linearizable read request
  read_index_response ///< leader → follower: the read index
};

const char* to_string(msg_type t);

/// Whether a message type may arrive over the network.
bool is_network_message(msg_type t);

/// One message. Fields not used by a type stay zero.
struct message {
  msg_type type = msg_type::hup;
  node_id to = no_node;
  node_id from = no_node;
  term_t term = 0;
  /// append: term of the entry at `index`; vote: the candidate's last term;
  /// rejected append_response: term of the follower's entry at reject_hint.
  term_t log_term = 0;
  /// append: the index the entries follow; vote: candidate's last index;
  /// append_response: last index accepted (or rejected index);
  /// read_index_response: the read index.
  index_t index = 0;
  std::vector<entry> entries;
  index_t commit = 0;
  std::optional<snapshot> snap;
  bool reject = false;
  index_t reject_hint = 0;
  /// heartbeat(_response): the read request being confirmed; vote: "transfer"
  /// when a leader hands over (the voters ignore their leader lease).
  std::string context;
  /// vote, pre_vote from a candidate in a joint configuration: the incoming
  /// voters. A member that already left that joint configuration (it is not
  /// among them) may then vote for the candidate although its own log runs
  /// longer: see raft::left_joint_for.
  std::vector<node_id> voters;
};

/// The context of a campaign started by a leader transfer.
constexpr std::string_view transfer_context = "transfer";

/// A read the application may serve once it applied up to `index`.
struct read_state {
  index_t index = 0;
  std::string request;
};

/// What changes with each message and says nothing durable.
struct soft_state {
  node_id leader = no_node;
  role state = role::follower;

  friend bool operator==(const soft_state& x, const soft_state& y) {
    return x.leader == y.leader && x.state == y.state;
  }
  friend bool operator!=(const soft_state& x, const soft_state& y) {
    return !(x == y);
  }
};

/// Everything the driver must do, in this order: persist `snap`, `entries`
/// and `hard` (synced when `must_sync`), then send `messages`, then apply
/// `committed` and serve `reads`, then call `raw_node::advance`.
struct ready {
  std::optional<soft_state> soft;
  std::optional<hard_state> hard;
  std::vector<read_state> reads;
  std::vector<entry> entries;
  std::optional<snapshot> snap;
  std::vector<entry> committed;
  std::vector<message> messages;
  bool must_sync = false;

  bool empty() const {
    return !soft && !hard && reads.empty() && entries.empty() && !snap
           && committed.empty() && messages.empty();
  }
};

} // namespace engram::consensus
