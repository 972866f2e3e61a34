#pragma once

// The sync session as a pure state machine: one peer node × one agent's
// memory, speaking the spec's flow in protobuf envelopes. No actors, no
// I/O, no clock or randomness of its own, in the style of etcd raft's
// RawNode: inputs are the peer's frames, the time (ticks), the changes to
// push, and the agent's answers to what the machine asked; outputs are
// actions the driver carries out (send a frame, ask the agent for a digest,
// a delta or a merge, finish a round). The session actor
// (`actors/session.cpp`) is an adapter: every rule is here, and tested
// without CAF over a seeded lossy network (tests/sync).
//
//   Hello{capabilities, epoch, wall}  → HelloAck{accepted, wall}
//   SyncRequest{digest}               → SyncResponse{} when digests match
//                                       (an idle anti-entropy round), else
//                                       SyncRequest{since: own context}
//   SyncRequest{since}                → SyncResponse{deltas, seq}..., the
//                                       last with the clock (what the peer
//                                       misses, minus what is on its way to
//                                       it, streamed in pieces)
//   SyncResponse{deltas, seq}         → SyncAck{seq} once merged durably; a
//                                       response with a clock is answered by
//                                       what that clock misses (a push)
//   changes of the local replica      → SyncResponse{deltas, seq} (pushes,
//                                       held push_delay, batched)
//   conflicts a merge left open       → ConflictNotification{conflicts}
//   Ping{nonce}                       → Pong{nonce}
//
// Frames with a sequence number stay in an outbox until acknowledged and
// are resent with backoff; the receiver merges each (epoch, sequence) once.

#include "core/causal_context.hpp"
#include "core/conflict.hpp"
#include "core/hlc.hpp"
#include "core/replica.hpp"
#include "core/sync_window.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace google::protobuf {
class Message;
} // namespace google::protobuf

namespace engram::v1 {
class DeltaBatch;
class SyncRequest;
class SyncResponse;
} // namespace engram::v1

namespace engram::sync {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;
using std::chrono::milliseconds;

/// The timing and bounds of a session.
struct settings {
  /// Changes are held this long after the first of them, then pushed
  /// together. A replication, a sync or an answer sends them at once.
  milliseconds push_delay{5};
  /// Push changes as they happen (else only anti-entropy carries them).
  bool on_change = true;
  /// Unacknowledged frames are resent after this (adapting, doubling).
  milliseconds retransmit_after{200};
  /// Periodic anti-entropy (digest exchange).
  milliseconds anti_entropy_interval{1000};
  /// A quiet peer is pinged after this.
  milliseconds ping_interval{1000};
  /// A peer silent for this long is taken as gone: greeted again.
  milliseconds peer_timeout{5000};
  /// Frames in flight; beyond, changes wait (and are batched).
  size_t max_outstanding = 64;
  /// Versions waiting to be pushed; beyond, they are dropped in favour of
  /// the next anti-entropy round (nothing is lost).
  size_t max_pending_versions = 65'536;
  /// Engrams read from the replica per piece of a large delta streaming to
  /// the peer (the first piece is a quarter of it).
  size_t stream_piece = 8192;
  /// Versions per frame: larger batches are split.
  size_t frame_versions = 1024;
};

/// Proofs of origin (origin/book.hpp), when the node signs them: `prove`
/// adds the proofs of a delta's versions to the batch about to carry them;
/// `check` drops from a received delta every version its batch does not
/// prove and returns how many it dropped and why (an error refuses the
/// whole batch). Empty functions: nothing is proved or checked.
struct origin_hooks {
  struct dropped {
    size_t count = 0;
    std::string reason;
  };
  std::function<void(const replica_delta&, v1::DeltaBatch&)> prove;
  std::function<expected<dropped>(const v1::DeltaBatch&, replica_delta&)> check;
};

/// What the machine knows of the world it runs in.
struct identity {
  std::string node_id;
  std::string peer_node;
  std::string agent_id;
  /// This session's incarnation: the peer merges each (epoch, sequence)
  /// once.
  uint64_t epoch = 0;
};

/// What a merge of a peer's batch did (the agent's answer).
struct merged {
  size_t applied = 0;
  std::vector<conflict> conflicts;
  /// Those this replica kept open (forked or waiting for an answer).
  std::vector<uint64_t> open;
};

/// An explicit sync's outcome (the spec's SyncResult, for this peer).
struct round_outcome {
  bool clean = true;
  size_t synced_count = 0;
  size_t merged_count = 0;
  std::vector<conflict> conflicts;
};

/// The figures a session reports.
struct figures {
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  uint64_t merged = 0;
  uint64_t duplicates = 0;
  uint64_t refused = 0;
  uint64_t retransmits = 0;
  uint64_t pending_overflows = 0;
  uint64_t rounds = 0;
  uint64_t idle_rounds = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// -- actions ------------------------------------------------------------------

namespace act {

/// Send an envelope to the peer.
struct send {
  std::string bytes;
};

/// Ask the agent for its digest of what both hold, and its context; answer
/// with `session::on_digest(tag, ...)`.
struct ask_digest {
  uint64_t tag;
};

/// Ask the agent what a peer with context `peer` misses: the first `first`
/// engrams as a delta, the rest as ids; answer with `on_since`.
struct ask_since {
  uint64_t tag;
  causal_context peer;
  uint64_t first;
};

/// Ask the agent for the delta of `ids`; answer with `on_piece`.
struct ask_piece {
  uint64_t tag;
  std::vector<engram_id> ids;
};

/// Ask the agent to merge `delta` (and make it durable); answer with
/// `on_merged`, or `on_failed` when it refused.
struct ask_merge {
  uint64_t tag;
  replica_delta delta;
};

/// Tell the agent its replica caught up with the peer; answer with
/// `on_caught_up(counted)`.
struct ask_caught_up {};

/// Call `on_flush` after `after` (pushes held for push_delay).
struct flush_after {
  milliseconds after;
};

/// Explicit syncs finished (each with the same outcome for this peer).
struct rounds_done {
  std::vector<uint64_t> rounds;
  round_outcome outcome;
};

/// An explicit sync ran out of time.
struct round_failed {
  uint64_t round;
  error reason;
};

/// A replication was stored durably by the peer / cannot be confirmed.
struct replicated {
  uint64_t waiter;
};

struct replication_failed {
  uint64_t waiter;
  error reason;
};

/// An event for the node's log (established, lost, repaired).
struct report {
  std::string event;
  std::vector<std::pair<std::string, std::string>> fields;
};

} // namespace act

using action
    = std::variant<act::send, act::ask_digest, act::ask_since, act::ask_piece,
                   act::ask_merge, act::ask_caught_up, act::flush_after,
                   act::rounds_done, act::round_failed, act::replicated,
                   act::replication_failed, act::report>;

// -- the machine
// ----------------------------------------------------------------

/// One peer × one agent's memory. Single-threaded; every input may queue
/// actions, which the driver takes with `take_actions` and carries out.
class session {
public:
  /// Whether the peer's clock agrees with this node's (the node measures
  /// it); a greeting's wall time (µs, or 0) gives an estimate before the
  /// first measurement. Sync frames are neither sent to nor taken from a
  /// peer whose clock is off.
  using clock_check = std::function<bool(uint64_t greeting_wall_us)>;

  /// `hlc` stamps envelopes; `wall` is sent in greetings.
  session(identity who, settings cfg, hybrid_logical_clock& hlc,
          physical_clock& wall, clock_check clock_ok, time_point now);

  session(const session&) = delete;
  session& operator=(const session&) = delete;

  // -- inputs
  // ------------------------------------------------------------------

  /// An envelope from the peer (hostile until decoded: anything that does
  /// not decode is dropped).
  void on_frame(const std::string& bytes, time_point now);

  /// Time passes (call every few tens of ms).
  void on_tick(time_point now);

  /// The timer of a `flush_after` action fired.
  void on_flush(time_point now);

  /// A change of the local replica to push.
  void on_push(replica_delta delta, time_point now);

  /// A change that must reach the peer now; `replicated(waiter)` once the
  /// peer stored it durably, else `replication_failed` (by `deadline`).
  void on_replicate(uint64_t waiter, replica_delta delta, time_point now,
                    time_point deadline);

  /// An explicit sync: pull what the peer has, push what it misses;
  /// `rounds_done(round)` when both are done, `round_failed` at
  /// `deadline`. `interval` (when positive) replaces the anti-entropy
  /// interval; `on_change` false stops pushing changes.
  void on_sync(uint64_t round, time_point now, time_point deadline,
               milliseconds interval, bool on_change);

  /// The peer (its node, or the connection to it) was lost.
  void on_peer_lost();

  /// The peer came back (a new connection, or it restarted): greet again.
  void on_peer_new(time_point now);

  /// The agent is a new incarnation (it was respawned): its earlier
  /// answers will not come.
  void on_agent_new();

  /// Proves what this session sends and checks what it receives.
  void set_origins(origin_hooks hooks) { origins_ = std::move(hooks); }

  // -- the agent's answers
  // -------------------------------------------------------

  void on_digest(uint64_t tag, uint64_t digest, causal_context context);
  void on_since(uint64_t tag, replica_delta missing,
                std::vector<engram_id> rest, causal_context context,
                time_point now);
  void on_piece(uint64_t tag, replica_delta piece, time_point now);
  void on_merged(uint64_t tag, merged result, time_point now);
  /// The agent did not answer request `tag` (it refused, or failed).
  void on_failed(uint64_t tag, time_point now);
  void on_caught_up(bool counted);

  // -- outputs and state
  // ------------------------------------------------------------

  /// The actions queued since the last call, in order.
  std::vector<action> take_actions();

  bool established() const noexcept { return established_; }
  const figures& stats() const noexcept { return stats_; }
  size_t outstanding() const noexcept { return out_.size(); }
  size_t pending_versions() const noexcept { return pending_versions_; }
  /// Engrams of a delta streaming to the peer not read yet.
  size_t unread_engrams() const noexcept {
    return cursor_.size() - cursor_next_;
  }

private:
  // What an outstanding request to the agent was for.
  enum class purpose : uint8_t {
    anti_entropy, // a digest, for our SyncRequest{digest}
    pull,         // a digest and context, for our SyncRequest{since}
    compare,      // a digest, to compare with the peer's
    answer,       // what the peer's SyncRequest{since} misses
    push_back,    // what a pull answer's clock misses
    piece,        // the next piece of a stream
    merge,        // a batch of the peer's
  };
  struct request {
    request(purpose p) : why(p) { // NOLINT: {purpose::x} reads best
      // nop
    }
    purpose why;
    uint64_t digest = 0;  // compare: the peer's
    bool partial = false; // answer / push_back: computed with what is on
                          // its way to the peer
    uint64_t epoch = 0;   // merge: the frame's
    uint64_t sequence = 0;
    size_t versions = 0;
    std::optional<causal_context> peer_clock;
  };
  struct waiter {
    uint64_t id;
    std::set<uint64_t> sequences;
    time_point deadline;
  };
  struct round {
    uint64_t id;
    time_point deadline;
  };

  uint64_t ask(request r);
  void send_frame(int type, const google::protobuf::Message& payload);
  uint64_t send_reliable(v1::SyncResponse& payload, time_point now);
  void send_hello(time_point now);
  void established(time_point now);
  void start_anti_entropy(time_point now);
  void start_pull();
  void finish_rounds();
  void reset_round();
  void flush(time_point now);
  void send_pending(time_point now);
  void read_piece();
  void queue_parts(replica_delta&& delta);
  void send_missing(replica_delta missing, std::vector<engram_id> rest,
                    const causal_context* clock, time_point now);
  causal_context expected_context(causal_context peer, time_point now) const;
  bool stream_open() const;
  bool streaming() const;
  void drop_stream();
  void acknowledge(uint64_t seq, bool refused = false);
  void on_acknowledged(uint64_t seq, bool refused);
  void fail_waiters(std::vector<waiter>& ws, const std::string& why);
  void tell_caught_up();
  void report(const char* event,
              std::vector<std::pair<std::string, std::string>> extra = {});
  void on_sync_request(const v1::SyncRequest& msg, time_point now);
  void on_sync_response(v1::SyncResponse& msg, time_point now);
  bool clock_ok(uint64_t greeting_wall_us = 0) const {
    return !clock_ok_ || clock_ok_(greeting_wall_us);
  }

  identity who_;
  settings cfg_;
  hybrid_logical_clock& hlc_;
  physical_clock& wall_;
  clock_check clock_ok_;
  origin_hooks origins_;
  std::vector<action> actions_;
  uint64_t next_tag_ = 1;
  std::map<uint64_t, request> requests_;
  bool established_ = false;
  outbox out_;
  delivery_window in_;
  // Batches being merged (a copy arriving meanwhile is not merged again).
  std::set<std::pair<uint64_t, uint64_t>> merging_;
  // Changes not yet pushed (joined when flushed: linear, not per push).
  std::vector<replica_delta> pending_;
  size_t pending_versions_ = 0;
  bool flush_due_ = false;
  bool holding_pushes_ = false;
  time_point hold_until_;
  bool on_change_ = true;
  bool anti_entropy_due_ = false;
  time_point last_heard_;
  time_point last_sent_hello_;
  time_point last_anti_entropy_;
  time_point last_ping_;
  uint64_t ping_nonce_ = 0;
  // Explicit syncs in progress and what they did so far.
  std::vector<round> rounds_;
  bool round_open_ = false;
  bool round_pulled_ = false;
  bool pull_outstanding_ = false;
  uint64_t round_push_seq_ = 0;
  bool round_push_acked_ = false;
  bool round_streaming_ = false;
  round_outcome round_result_;
  // A delta streaming to the peer: the engrams not read yet, from
  // `cursor_next_` on; whether a piece of them is being read; the clock its
  // last frame carries (a pull's answer).
  std::vector<engram_id> cursor_;
  size_t cursor_next_ = 0;
  bool piece_asked_ = false;
  std::optional<causal_context> stream_clock_;
  // The events each frame in flight carries: an answer leaves them out.
  std::map<uint64_t, causal_context> in_flight_;
  bool told_caught_up_ = false;
  bool caught_up_asked_ = false;
  // Replications whose change is still pending / in frames in flight.
  std::vector<waiter> pending_waiters_;
  std::vector<waiter> ack_waiters_;
  figures stats_;
};

} // namespace engram::sync
