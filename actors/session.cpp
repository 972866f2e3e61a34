// The sync session actor: one peer node × one agent's memory. It speaks
// the spec's flow in protobuf envelopes (`messages/`):
//
//   Hello{capabilities, epoch}        → HelloAck{accepted_capabilities}
//   SyncRequest{digest}               → SyncResponse{} when digests match
//                                       (an idle anti-entropy round), else
//                                       SyncRequest{since: responder context}
//   SyncRequest{since}                → SyncResponse{deltas, seq}...,
//                                       the last with the clock (what the
//                                       peer misses, minus what is on its
//                                       way to it, streamed in pieces)
//   SyncResponse{deltas, seq}         → SyncAck{seq} once merged durably;
//                                       a response with a clock is answered
//                                       by what that clock misses (a push)
//   changes of the local replica      → SyncResponse{deltas, seq} (pushes,
//                                       debounced and batched)
//   conflicts a merge left open       → ConflictNotification{conflicts}
//   (forked or waiting for an answer; those the configured resolution
//   settled, every replica settles alike)
//   Ping{nonce}                       → Pong{nonce}
//
// Frames with a sequence number stay in an outbox until acknowledged and
// are resent with backoff; the receiver merges each (epoch, sequence) once.

#include "actors/internal/spawn.hpp"
#include "core/sync_window.hpp"
#include "messages/codec.hpp"
#include "messages/envelope.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

namespace engram::actors {

namespace {

const std::vector<std::string> capabilities{"delta-batch", "digest",
                                            "fact-columns"};

/// Versions per frame: larger batches are split (frames stay far below the
/// envelope size limit, and one lost frame costs little).
constexpr size_t frame_versions = 1024;

struct round {
  caf::typed_response_promise<sync_result> promise;
  caf::actor_clock::time_point deadline;
};

/// A `replicate` caller waiting until the peer stored its change durably:
/// the frames carrying the change, not yet acknowledged.
struct waiter {
  caf::typed_response_promise<bool> promise;
  std::set<uint64_t> sequences;
  caf::actor_clock::time_point deadline;
};

struct session_state {
  node_context_ptr ctx;
  std::string agent_id;
  std::string peer_node;
  peer_actor peer;
  agent_actor agent;
  session_settings cfg;
  std::unique_ptr<hybrid_logical_clock> clock;
  uint64_t epoch = 0;
  bool established = false;
  outbox out{std::chrono::milliseconds{200}};
  delivery_window in;
  // Batches being merged (a copy arriving meanwhile is not merged again).
  std::set<std::pair<uint64_t, uint64_t>> merging;
  // Changes not yet pushed (joined when flushed: linear, not per push).
  std::vector<replica_delta> pending;
  size_t pending_versions = 0;
  bool flush_scheduled = false;
  // What is pending is only pushes, held until `hold_until` (push_delay
  // after the first of them): they go out together then, or earlier with
  // frames that must leave now (a replication, a sync, an answer).
  bool holding_pushes = false;
  caf::actor_clock::time_point hold_until;
  bool on_change = true;
  bool anti_entropy_due = false;
  caf::actor_clock::time_point last_heard;
  caf::actor_clock::time_point last_sent_hello;
  caf::actor_clock::time_point last_anti_entropy;
  caf::actor_clock::time_point last_ping;
  uint64_t ping_nonce = 0;
  // An explicit sync() in progress: its callers, and what it did so far.
  std::vector<round> rounds;
  bool round_open = false;
  bool round_pulled = false;
  // Our SyncRequest{since} of the open round awaits its answer.
  bool pull_outstanding = false;
  uint64_t round_push_seq = 0;
  bool round_push_acked = false;
  // The open round's push to the peer is still streaming: the round ends
  // when the stream's last frame is acknowledged.
  bool round_streaming = false;
  sync_result round_result;
  // A delta streaming to the peer (`send_missing`): the engrams not read
  // yet, oldest event first, from `cursor_next` on; whether a piece of them
  // is being read; the clock its last frame carries (a pull's answer).
  std::vector<engram_id> cursor;
  size_t cursor_next = 0;
  bool piece_asked = false;
  std::optional<causal_context> stream_clock;
  // The events each frame in flight carries (by sequence): the peer will
  // have seen them once it arrives, so an answer leaves them out.
  std::map<uint64_t, causal_context> in_flight;
  // The agent heard that its replica caught up with this peer.
  bool told_caught_up = false;
  // Replications whose change is still pending / in frames in flight.
  std::vector<waiter> pending_waiters;
  std::vector<waiter> ack_waiters;
  session_stats stats;

  static inline const char* name = "engram.session";
};

using session_ptr = session_actor::stateful_pointer<session_state>;

auto now(session_ptr self) { return self->clock().now(); }

void send_frame(session_ptr self, v1::MessageType type,
                const google::protobuf::Message& payload) {
  auto& st = self->state;
  auto env = messages::make_envelope(type, st.ctx->config.node_id,
                                     st.clock->now(), payload);
  auto bytes = messages::serialize(env);
  ++st.stats.frames_out;
  st.stats.bytes_out += bytes.size();
  self->send(st.peer,
             wire_frame{st.ctx->config.node_id, st.agent_id, std::move(bytes)});
}

// Sends a frame that must be acknowledged: it stays in the outbox.
uint64_t send_reliable(session_ptr self, v1::SyncResponse& payload) {
  auto& st = self->state;
  payload.set_sequence(st.out.next_sequence());
  payload.set_epoch(st.epoch);
  auto env = messages::make_envelope(v1::SYNC_RESPONSE, st.ctx->config.node_id,
                                     st.clock->now(), payload);
  auto bytes = messages::serialize(env);
  auto seq = st.out.add(bytes, now(self));
  ++st.stats.frames_out;
  st.stats.bytes_out += bytes.size();
  self->send(st.peer,
             wire_frame{st.ctx->config.node_id, st.agent_id, std::move(bytes)});
  return seq;
}

void send_hello(session_ptr self) {
  auto& st = self->state;
  v1::Hello hello;
  for (auto& c : capabilities)
    hello.add_capabilities(c);
  hello.set_node_id(st.ctx->config.node_id);
  hello.set_epoch(st.epoch);
  hello.set_wall_us(st.ctx->config.wall_clock->now_us());
  st.last_sent_hello = now(self);
  send_frame(self, v1::HELLO, hello);
}

// Whether this session syncs with its peer: the peer's clock is not known
// to be off by more than max_clock_offset (the node measures it). Before
// the node's first reading, a greeting's wall time gives an estimate (off
// by at most the one-way latency).
bool clock_ok(const session_state& st, uint64_t greeting_wall_us = 0) {
  auto& cluster = *st.ctx->cluster;
  if (cluster.clock(st.peer_node) || greeting_wall_us == 0)
    return cluster.clock_ok(st.peer_node);
  auto now = st.ctx->config.wall_clock->now_us();
  auto off = greeting_wall_us > now ? greeting_wall_us - now
                                    : now - greeting_wall_us;
  return off <= static_cast<uint64_t>(cluster.max_offset_us());
}

// Asks the peer whether our states differ (O(1) bytes when they do not).
void start_anti_entropy(session_ptr self) {
  auto& st = self->state;
  st.anti_entropy_due = false;
  st.last_anti_entropy = now(self);
  ++st.stats.rounds;
  self->request(st.agent, caf::infinite, digest_atom::value, st.peer_node)
      .then([=](uint64_t digest, causal_context&) {
        v1::SyncRequest req;
        req.set_digest(digest);
        send_frame(self, v1::SYNC_REQUEST, req);
      });
}

// Asks the peer for everything we have not seen (an explicit sync).
void start_pull(session_ptr self) {
  auto& st = self->state;
  st.pull_outstanding = true;
  self->request(st.agent, caf::infinite, digest_atom::value, st.peer_node)
      .then([=](uint64_t digest, causal_context& context) {
        v1::SyncRequest req;
        req.set_digest(digest);
        messages::to_proto(context, *req.mutable_since());
        send_frame(self, v1::SYNC_REQUEST, req);
      });
}

void finish_rounds(session_ptr self) {
  auto& st = self->state;
  auto result = st.round_result;
  result.peers = 1;
  result.kind = result.conflicts.empty() ? sync_result::outcome::clean
                                         : sync_result::outcome::merged;
  for (auto& r : st.rounds)
    r.promise.deliver(result);
  st.rounds.clear();
  st.round_open = false;
  st.round_pulled = false;
  st.pull_outstanding = false;
  st.round_push_seq = 0;
  st.round_push_acked = false;
  st.round_streaming = false;
  st.round_result = sync_result{};
}

// Engrams in the first piece of a delta streaming to the peer.
uint64_t first_piece(const session_state& st) {
  return std::max<uint64_t>(st.cfg.stream_piece / 4, 1);
}

// More of the delta streaming to the peer is still to be read.
bool stream_open(const session_state& st) {
  return st.cursor_next < st.cursor.size() || st.piece_asked;
}

// Stops reading the delta streaming to the peer (what it still misses is
// left to the next anti-entropy round).
void drop_stream(session_ptr self) {
  auto& st = self->state;
  st.cursor.clear();
  st.cursor_next = 0;
  st.stream_clock.reset();
}

// What the peer will have seen once the frames on their way to it and
// those pending arrive: what it misses is computed against this, or an
// answer would carry again what is on its way (while many replicas update
// the same keys, such copies were a third of the versions merged). A frame
// resent or overdue may be lost: an answer carries its versions again.
causal_context expected_context(session_ptr self, causal_context peer) {
  auto& st = self->state;
  auto t = now(self);
  for (auto& [seq, events] : st.in_flight)
    if (st.out.on_its_way(seq, t))
      peer.join(events);
  for (auto& d : st.pending)
    peer.join(d.context);
  return peer;
}

// Queues a delta's frames, after what is pending (an answer that carries
// no versions but the responder's context too: the peer adds it).
void queue_parts(session_ptr self, replica_delta&& delta) {
  auto& st = self->state;
  if (delta.empty())
    return;
  if (st.round_streaming)
    st.round_result.synced_count += delta.version_count();
  st.holding_pushes = false; // an answer leaves now, with what is pending
  for (auto& part : split_delta(std::move(delta), frame_versions)) {
    st.pending_versions += part.version_count();
    st.pending.push_back(std::move(part));
  }
}

void flush(session_ptr self);

// Reads the next piece of the delta streaming to the peer once fewer than
// a piece's versions wait to be sent.
void read_piece(session_ptr self) {
  auto& st = self->state;
  auto piece = std::max<size_t>(st.cfg.stream_piece, 1);
  if (st.piece_asked || st.cursor_next >= st.cursor.size()
      || st.pending_versions >= piece)
    return;
  auto from = st.cursor.begin() + static_cast<ptrdiff_t>(st.cursor_next);
  auto n = std::min(piece, st.cursor.size() - st.cursor_next);
  std::vector<engram_id> ids(from, from + static_cast<ptrdiff_t>(n));
  st.cursor_next += n;
  if (st.cursor_next == st.cursor.size()) { // read to the end: freed
    st.cursor = std::vector<engram_id>{};
    st.cursor_next = 0;
  }
  st.piece_asked = true;
  self->request(st.agent, caf::infinite, since_atom::value, std::move(ids),
                st.peer_node)
      .then(
          [=](replica_delta& piece) {
            self->state.piece_asked = false;
            queue_parts(self, std::move(piece));
            flush(self);
          },
          [=](caf::error&) {
            // The agent is being respawned: the next round repairs.
            auto& s = self->state;
            s.piece_asked = false;
            drop_stream(self);
            s.anti_entropy_due = true;
            flush(self);
          });
}

// Sends what is pending, as far as the window takes it.
void send_pending(session_ptr self) {
  auto& st = self->state;
  if (st.out.size() >= st.cfg.max_outstanding) {
    st.flush_scheduled = true; // the next tick tries again
    return;
  }
  // Consecutive small changes are joined into frames of up to
  // frame_versions (superseded versions drop out); a large one is split.
  // Parts already frame-sized (a pull streaming) are left as they are:
  // re-joining everything pending on every acknowledgement was quadratic.
  std::vector<replica_delta> parts;
  std::vector<replica_delta> group;
  size_t group_versions = 0;
  auto close_group = [&] {
    if (group.empty())
      return;
    auto joined = group.size() == 1 ? std::move(group.front())
                                    : join_deltas(std::move(group));
    group.clear();
    group_versions = 0;
    if (joined.version_count() <= frame_versions) {
      parts.push_back(std::move(joined));
      return;
    }
    for (auto& part : split_delta(std::move(joined), frame_versions))
      parts.push_back(std::move(part));
  };
  for (auto& d : st.pending) {
    auto n = d.version_count();
    if (group_versions > 0 && group_versions + n > frame_versions)
      close_group();
    group_versions += n;
    group.push_back(std::move(d));
  }
  close_group();
  st.pending.clear();
  st.pending_versions = 0;
  std::vector<uint64_t> sent;
  for (size_t i = 0; i < parts.size(); ++i) {
    auto& part = parts[i];
    if (st.out.size() >= st.cfg.max_outstanding) {
      // The peer is slow: keep the rest for the next tick.
      st.pending_versions += part.version_count();
      st.pending.push_back(std::move(part));
      st.flush_scheduled = true;
      continue;
    }
    v1::SyncResponse push;
    messages::to_proto(part, *push.mutable_batch());
    // The last frame of a pull's answer carries the clock.
    if (i + 1 == parts.size() && st.stream_clock && !stream_open(st)) {
      // A whole answer in one frame carries the clock as its context once.
      if (part.context == *st.stream_clock)
        push.mutable_batch()->clear_context();
      messages::to_proto(*st.stream_clock, *push.mutable_clock());
      st.stream_clock.reset();
    }
    auto seq = send_reliable(self, push);
    sent.push_back(seq);
    st.in_flight.emplace(seq, std::move(part.context));
  }
  if (st.round_streaming && !sent.empty()) {
    st.round_push_seq = sent.back();
    st.round_push_acked = false;
  }
  // Replications wait for every frame sent since they were queued.
  for (auto& w : st.pending_waiters)
    w.sequences.insert(sent.begin(), sent.end());
  if (st.pending.empty() && !st.pending_waiters.empty()) {
    for (auto& w : st.pending_waiters) {
      if (w.sequences.empty())
        w.promise.deliver(true);
      else
        st.ack_waiters.push_back(std::move(w));
    }
    st.pending_waiters.clear();
  }
}

// Sends pending frames, reads more of a delta streaming to the peer, and
// ends the stream once everything of it was sent.
void flush(session_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  if (!st.established || !clock_ok(st))
    return;
  if (st.holding_pushes && now(self) < st.hold_until)
    return; // the delayed flush sends them
  st.holding_pushes = false;
  if (!st.pending.empty())
    send_pending(self);
  read_piece(self);
  if (stream_open(st) || !st.pending.empty())
    return;
  if (st.stream_clock) { // the answer ended with a piece the peer holds
    if (st.out.size() >= st.cfg.max_outstanding) {
      st.flush_scheduled = true;
      return;
    }
    // With an explicit (empty) context: the peer must not take the clock
    // as what this frame makes it see, while frames before it may still be
    // on their way (or lost, and resent).
    v1::SyncResponse resp;
    messages::to_proto(replica_delta{}, *resp.mutable_batch());
    messages::to_proto(*st.stream_clock, *resp.mutable_clock());
    st.stream_clock.reset();
    send_reliable(self, resp);
  }
  if (st.round_streaming) {
    st.round_streaming = false;
    if (st.round_open && st.round_pulled
        && (st.round_push_seq == 0 || st.round_push_acked))
      finish_rounds(self);
  }
}

// Ends replications that can no longer be confirmed.
void fail_waiters(session_ptr self, std::vector<waiter>& waiters,
                  const std::string& why) {
  auto& st = self->state;
  for (auto& w : waiters)
    w.promise.deliver(to_caf(
        make_error(errc::unavailable, "node " + st.peer_node + ": " + why)));
  waiters.clear();
}

// The peer acknowledged (stored, or refused) frame `seq`.
void on_acknowledged(session_ptr self, uint64_t seq, bool refused) {
  auto& st = self->state;
  auto& ws = st.ack_waiters;
  for (auto i = ws.begin(); i != ws.end();) {
    if (i->sequences.erase(seq) == 0) {
      ++i;
      continue;
    }
    if (refused)
      i->promise.deliver(to_caf(
          make_error(errc::unavailable,
                     "node " + st.peer_node + " refused the change's batch")));
    else if (i->sequences.empty())
      i->promise.deliver(true);
    else {
      ++i;
      continue;
    }
    i = ws.erase(i);
  }
}

void report(session_ptr self, const char* event, event_fields extra = {}) {
  auto& st = self->state;
  auto& handler = st.ctx->config.on_event;
  if (!handler)
    return;
  event_fields fields{{"node", st.ctx->config.node_id},
                      {"peer", st.peer_node},
                      {"agent", st.agent_id}};
  for (auto& f : extra)
    fields.push_back(std::move(f));
  handler(event, fields);
}

void on_established(session_ptr self) {
  auto& st = self->state;
  if (st.established)
    return;
  st.established = true;
  report(self, "session_up");
  start_anti_entropy(self);
  if (st.round_open && !st.round_pulled)
    start_pull(self);
  flush(self);
}

void send_missing(session_ptr self, replica_delta missing,
                  std::vector<engram_id> rest, const causal_context* clock);

// Tells the agent that its replica caught up with this peer, until the
// agent counts it as caught up (an empty replica caught up with an empty
// peer does not count: its reads still consult another replica).
void tell_caught_up(session_ptr self) {
  auto& st = self->state;
  if (st.told_caught_up)
    return;
  st.told_caught_up = true; // one request at a time
  self->request(st.agent, caf::infinite, caught_up_atom::value)
      .then(
          [=](bool counted) {
            self->state.told_caught_up = counted;
          },
          [=](caf::error&) {
            self->state.told_caught_up = false;
          });
}

// A stream to the peer is in progress: parts queued or still to be read,
// or more than a few frames unacknowledged. The peer's context does not
// show what is in flight yet: what it seems to miss is mostly on its way.
bool streaming(const session_state& st) {
  return !st.pending.empty() || st.out.size() > 2 || stream_open(st);
}

// Merges a batch from the peer, then acknowledges it (and, for a pull
// response, pushes back what the peer's clock misses).
void on_sync_response(session_ptr self, v1::SyncResponse& msg) {
  auto& st = self->state;
  bool is_pull = msg.has_clock();
  bool empty = msg.sequence() == 0 && !msg.has_batch() && !is_pull;
  if (empty) { // digests matched: nothing to do
    ++st.stats.idle_rounds;
    tell_caught_up(self);
    if (st.round_open && !st.round_pulled)
      start_pull(self);
    return;
  }
  auto seq = msg.sequence();
  auto epoch = msg.epoch();
  auto acknowledge = [self](uint64_t n, bool refused = false) {
    v1::SyncAck ack;
    ack.set_sequence(n);
    ack.set_refused(refused);
    send_frame(self, v1::SYNC_ACK, ack);
  };
  if (seq != 0) {
    if (st.in.contains(epoch, seq)) { // merged before: acknowledge again
      ++st.stats.duplicates;
      acknowledge(seq);
      return;
    }
    if (st.merging.count({epoch, seq}) > 0) { // its merge acknowledges it
      ++st.stats.duplicates;
      return;
    }
  }
  auto delta = messages::from_proto(msg, messages::limits{});
  if (!delta) {
    // Refused as a whole, nothing merged. Acknowledged so that the sender
    // stops resending what can never be merged; anti-entropy sends the
    // state again in a fresh frame.
    ++st.stats.refused;
    if (seq != 0)
      acknowledge(seq, true);
    return;
  }
  std::optional<causal_context> peer_clock;
  if (is_pull) {
    auto clock = messages::from_proto(msg.clock(), messages::limits{});
    if (clock)
      peer_clock = std::move(*clock);
  }
  auto versions = delta->version_count();
  if (seq != 0)
    st.merging.emplace(epoch, seq);
  self->request(st.agent, caf::infinite, merge_atom::value, std::move(*delta))
      .then(
          [=](merge_summary& summary) {
            auto& s = self->state;
            ++s.stats.merged;
            if (seq != 0) {
              // Recorded as delivered only now that it is merged and durable.
              s.merging.erase({epoch, seq});
              s.in.first_time(epoch, seq);
              acknowledge(seq);
            }
            // The peer hears of the conflicts kept open here. Those the
            // configured resolution settled, it settles alike when it sees
            // the same versions (with 8 replicas updating shared keys they
            // were most of the bytes sent).
            if (!summary.open.empty()) {
              v1::ConflictNotification note;
              for (auto& c : summary.conflicts)
                if (std::find(summary.open.begin(), summary.open.end(), c.id)
                    != summary.open.end())
                  messages::to_proto(c, *note.add_conflicts());
              send_frame(self, v1::CONFLICT_NOTIFICATION, note);
            }
            if (s.round_open) {
              s.round_result.merged_count += summary.applied;
              s.round_result.synced_count += versions;
              for (auto& c : summary.conflicts)
                s.round_result.conflicts.push_back(std::move(c));
            }
            if (!peer_clock)
              return;
            tell_caught_up(self);    // the answer to a pull: all it had
            if (summary.applied > 0) // anti-entropy found what was missing
              report(self, "session_repaired",
                     {{"versions", std::to_string(summary.applied)}});
            // Only the answer to this round's own request completes its
            // pull (not a late answer, nor a round the peer started).
            if (s.round_open && s.pull_outstanding) {
              s.round_pulled = true;
              s.pull_outstanding = false;
            }
            // Then what the peer misses goes back, unless a stream to it
            // is under way (the round after it repairs what is left).
            if (streaming(s) && !s.round_open)
              return;
            auto expected = expected_context(self, *peer_clock);
            bool partial = expected != *peer_clock;
            self->request(s.agent, caf::infinite, since_atom::value,
                          std::move(expected), s.peer_node, first_piece(s))
                .then([=](replica_delta& missing, std::vector<engram_id>& rest,
                          causal_context&) {
                  auto& s2 = self->state;
                  if (partial) // see on_sync_request
                    missing.context = own_dots(missing);
                  // The round's own push: it ends when the stream does.
                  if (s2.round_open && s2.round_pulled && s2.round_push_seq == 0
                      && !s2.round_streaming) {
                    if (missing.entries.empty() && rest.empty()) {
                      finish_rounds(self);
                      return;
                    }
                    s2.round_streaming = true;
                  }
                  if (missing.entries.empty() && rest.empty())
                    return;
                  send_missing(self, std::move(missing), std::move(rest),
                               nullptr);
                });
          },
          [=](caf::error&) {
            // The agent refused the batch (malformed) or is being respawned:
            // acknowledged so it is not resent forever; the next digest
            // round repairs whatever is missing.
            auto& s = self->state;
            ++s.stats.refused;
            s.anti_entropy_due = true;
            if (seq != 0) {
              s.merging.erase({epoch, seq});
              acknowledge(seq, true);
            }
          });
}

// Streams to the peer `missing`, then the engrams `rest` (oldest event
// first), read in pieces while the peer acknowledges: frames of up to
// frame_versions, as many as the window takes, the stream's last frame
// carrying `clock` when given (a pull's answer). A stream already under way
// ends here: this one carries what the peer still misses of it too.
void send_missing(session_ptr self, replica_delta missing,
                  std::vector<engram_id> rest, const causal_context* clock) {
  auto& s = self->state;
  s.cursor = std::move(rest);
  s.cursor_next = 0;
  if (clock != nullptr)
    s.stream_clock = *clock;
  queue_parts(self, std::move(missing));
  flush(self);
  s.flush_scheduled = true;
}

void on_sync_request(session_ptr self, v1::SyncRequest& msg) {
  auto& st = self->state;
  if (msg.has_since()) {
    auto since = messages::from_proto(msg.since(), messages::limits{});
    if (!since)
      return;
    auto expected = expected_context(self, *since);
    bool partial = expected != *since;
    self->request(st.agent, caf::infinite, since_atom::value,
                  std::move(expected), st.peer_node, first_piece(st))
        .then([=](replica_delta& missing, std::vector<engram_id>& rest,
                  causal_context& context) {
          // Computed against more than the peer's context (with what is
          // on its way to it), the answer does not carry everything the
          // peer lacks: it names only its own versions' events, or the peer
          // would take the events on their way as seen, and drop their
          // versions if they arrive after it.
          if (partial)
            missing.context = own_dots(missing);
          send_missing(self, std::move(missing), std::move(rest), &context);
        });
    return;
  }
  auto theirs = msg.has_digest() ? msg.digest() : 0;
  self->request(st.agent, caf::infinite, digest_atom::value, st.peer_node)
      .then([=](uint64_t ours, causal_context& context) {
        if (ours == theirs) {
          send_frame(self, v1::SYNC_RESPONSE, v1::SyncResponse{});
          return;
        }
        v1::SyncRequest req; // we differ: send me what I miss (and I you)
        req.set_digest(ours);
        messages::to_proto(context, *req.mutable_since());
        send_frame(self, v1::SYNC_REQUEST, req);
      });
}

void on_frame(session_ptr self, const wire_frame& frame) {
  auto& st = self->state;
  auto env = messages::decode_envelope(frame.envelope);
  if (!env) // hostile or broken bytes: refused, nothing reaches the store
    return;
  st.last_heard = now(self);
  ++st.stats.frames_in;
  st.stats.bytes_in += frame.envelope.size();
  switch (env->type()) {
    case v1::HELLO: {
      auto hello = messages::decode_payload<v1::Hello>(*env, v1::HELLO);
      if (!hello)
        return;
      if (!clock_ok(st, hello->wall_us()))
        return; // greeted again until the clocks agree
      v1::HelloAck ack;
      for (auto& c : hello->capabilities())
        if (std::find(capabilities.begin(), capabilities.end(), c)
            != capabilities.end())
          ack.add_accepted_capabilities(c);
      ack.set_wall_us(st.ctx->config.wall_clock->now_us());
      send_frame(self, v1::HELLO_ACK, ack);
      on_established(self);
      return;
    }
    case v1::HELLO_ACK: {
      auto ack = messages::decode_payload<v1::HelloAck>(*env, v1::HELLO_ACK);
      if (ack && clock_ok(st, ack->wall_us()))
        on_established(self);
      return;
    }
    case v1::SYNC_REQUEST: {
      if (!clock_ok(st))
        return; // refused: the peer's clock is off (the node logged it)
      auto req
          = messages::decode_payload<v1::SyncRequest>(*env, v1::SYNC_REQUEST);
      if (req)
        on_sync_request(self, *req);
      return;
    }
    case v1::SYNC_RESPONSE: {
      if (!clock_ok(st))
        return; // not merged, not acknowledged: resent once clocks agree
      auto resp
          = messages::decode_payload<v1::SyncResponse>(*env, v1::SYNC_RESPONSE);
      if (resp)
        on_sync_response(self, *resp);
      return;
    }
    case v1::SYNC_ACK: {
      auto ack = messages::decode_payload<v1::SyncAck>(*env, v1::SYNC_ACK);
      if (!ack)
        return;
      st.out.acknowledge(ack->sequence(), now(self));
      st.in_flight.erase(ack->sequence());
      on_acknowledged(self, ack->sequence(), ack->refused());
      if (st.round_open && st.round_push_seq != 0
          && st.round_push_seq == ack->sequence()) {
        st.round_push_acked = true;
        if (!st.round_streaming)
          finish_rounds(self);
      }
      flush(self);
      return;
    }
    case v1::PING: {
      auto ping = messages::decode_payload<v1::Ping>(*env, v1::PING);
      if (!ping)
        return;
      v1::Pong pong;
      pong.set_nonce(ping->nonce());
      send_frame(self, v1::PONG, pong);
      return;
    }
    case v1::PONG:
    case v1::CONFLICT_NOTIFICATION:
    case v1::CONFLICT_RESOLUTION:
      // Liveness (PONG) is noted above; the peer's conflicts are detected
      // here too when its versions merge, and resolved per our config.
      return;
    default: return; // not a sync-session message
  }
}

void on_tick(session_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  self->delayed_send(self, st.cfg.tick, tick_atom::value);
  if (st.established && t - st.last_heard > st.cfg.peer_timeout) {
    st.established = false; // silent too long: greet again until it answers
    report(self, "session_down", {{"reason", "peer silent"}});
  }
  if (!st.established) {
    if (t - st.last_sent_hello >= st.cfg.retransmit_after * 4)
      send_hello(self);
  } else if (!clock_ok(st)) {
    // The peer's clock is off: nothing is sent or resent but pings (the
    // node logged it; sync resumes once the clocks agree).
    if (t - st.last_ping >= st.cfg.ping_interval) {
      st.last_ping = t;
      v1::Ping ping;
      ping.set_nonce(++st.ping_nonce);
      send_frame(self, v1::PING, ping);
    }
  } else {
    auto due = st.out.due(t);
    if (st.out.take_expired() > 0) {
      st.anti_entropy_due = true; // given up: the digest round repairs
      for (auto i = st.in_flight.begin(); i != st.in_flight.end();)
        i = st.out.contains(i->first) ? std::next(i) : st.in_flight.erase(i);
    }
    for (auto* frame : due) {
      ++st.stats.retransmits;
      ++st.stats.frames_out;
      st.stats.bytes_out += frame->size();
      self->send(st.peer,
                 wire_frame{st.ctx->config.node_id, st.agent_id, *frame});
    }
    // A stream to the peer in progress (parts queued, or frames in flight)
    // defers the round: the peer's context does not show what is in flight
    // yet, so the round would send all of it again (and for a large pull
    // again at every interval, never catching up). Frames in flight are
    // resent until acknowledged or given up (which ends the stream too);
    // what the round would repair waits until then.
    if (!streaming(st)
        && (st.anti_entropy_due
            || t - st.last_anti_entropy >= st.cfg.anti_entropy_interval))
      start_anti_entropy(self);
    if (t - st.last_heard >= st.cfg.ping_interval
        && t - st.last_ping >= st.cfg.ping_interval) {
      st.last_ping = t;
      v1::Ping ping;
      ping.set_nonce(++st.ping_nonce);
      send_frame(self, v1::PING, ping);
    }
    if (st.flush_scheduled)
      flush(self);
  }
  // Replications nobody waits for any more (the agent's request timed out).
  for (auto* ws : {&st.pending_waiters, &st.ack_waiters}) {
    auto late = std::partition(ws->begin(), ws->end(), [&](const waiter& w) {
      return w.deadline > t;
    });
    for (auto i = late; i != ws->end(); ++i)
      i->promise.deliver(to_caf(make_error(
          errc::timeout, "node " + st.peer_node + " did not confirm in time")));
    ws->erase(late, ws->end());
  }
  // Explicit syncs that ran out of time end with what they did.
  auto expired
      = std::partition(st.rounds.begin(), st.rounds.end(), [&](const round& r) {
          return r.deadline > t;
        });
  for (auto i = expired; i != st.rounds.end(); ++i)
    i->promise.deliver(to_caf(make_error(
        errc::timeout, "no sync with node " + st.peer_node + " in time")));
  st.rounds.erase(expired, st.rounds.end());
  if (st.rounds.empty() && st.round_open)
    st.round_open = false, st.round_pulled = false, st.pull_outstanding = false,
    st.round_push_seq = 0, st.round_push_acked = false,
    st.round_streaming = false, st.round_result = sync_result{};
}

session_actor::behavior_type
session_impl(session_ptr self, node_context_ptr ctx, std::string agent_id,
             std::string peer_node, peer_actor peer, agent_actor agent) {
  auto& st = self->state;
  st.ctx = ctx;
  st.agent_id = std::move(agent_id);
  st.peer_node = std::move(peer_node);
  st.peer = std::move(peer);
  st.agent = std::move(agent);
  st.cfg = ctx->config.sessions;
  st.on_change = st.cfg.on_change;
  st.out = outbox{st.cfg.retransmit_after};
  st.clock = std::make_unique<hybrid_logical_clock>(*ctx->config.wall_clock);
  // An error answer to a request without its own handler (the agent being
  // respawned) must not end the session: the next round retries.
  self->set_error_handler([](caf::error&) {});
  auto ts = st.clock->now();
  st.epoch = (ts.wall_us << 16) | (ts.logical & 0xffff);
  st.last_heard = now(self);
  st.last_anti_entropy = now(self);
  st.last_ping = now(self);
  send_hello(self);
  self->delayed_send(self, st.cfg.tick, tick_atom::value);
  return {
      [=](const wire_frame& frame) {
        on_frame(self, frame);
      },
      [=](push_atom, const replica_delta& delta) {
        auto& s = self->state;
        if (!s.on_change) {
          s.anti_entropy_due = true;
          return;
        }
        if (s.pending.empty() && s.cfg.push_delay.count() > 0) {
          s.holding_pushes = true;
          s.hold_until = now(self) + s.cfg.push_delay;
        }
        s.pending.push_back(delta);
        s.pending_versions += delta.version_count();
        if (s.pending_versions > s.cfg.max_pending_versions) {
          ++s.stats.pending_overflows;
          s.pending.clear(); // the digest round repairs it
          s.pending_versions = 0;
          s.anti_entropy_due = true;
          fail_waiters(self, s.pending_waiters,
                       "too many pending changes; left to anti-entropy");
          return;
        }
        if (s.flush_scheduled)
          return;
        s.flush_scheduled = true;
        if (s.cfg.push_delay.count() == 0)
          flush(self);
        else
          self->delayed_send(self, s.cfg.push_delay, flush_atom::value);
      },
      [=](replicate_atom, replica_delta& delta) -> caf::result<bool> {
        auto& s = self->state;
        if (!s.established)
          return to_caf(make_error(
              errc::unavailable, "node " + s.peer_node + " is not connected"));
        if (!clock_ok(s))
          return to_caf(make_error(errc::clock_offset,
                                   "node " + s.peer_node
                                       + "'s clock is off by more than "
                                         "max_clock_offset: no sync with it"));
        auto rp = self->make_response_promise<bool>();
        s.pending_versions += delta.version_count();
        s.pending.push_back(std::move(delta));
        auto deadline = now(self) + 2 * s.ctx->config.replication.write_timeout;
        s.pending_waiters.push_back(waiter{rp, {}, deadline});
        s.holding_pushes = false; // a replication leaves now
        flush(self);
        return rp;
      },
      [=](flush_atom) {
        flush(self);
      },
      [=](tick_atom) {
        on_tick(self);
      },
      [=](sync_atom, const sync_config& cfg) -> caf::result<sync_result> {
        auto& s = self->state;
        if (cfg.interval.count() > 0)
          s.cfg.anti_entropy_interval = cfg.interval;
        // A sync may turn pushing off; on, it follows the node's setting.
        s.on_change = cfg.on_change && s.cfg.on_change;
        auto rp = self->make_response_promise<sync_result>();
        s.rounds.push_back(round{rp, now(self) + cfg.timeout});
        if (!s.round_open) {
          s.round_open = true;
          s.holding_pushes = false; // a sync sends what is pending now
          flush(self);
          if (s.established)
            start_pull(self);
        }
        return rp;
      },
      [=](attach_atom, agent_actor& agent) {
        self->state.agent = std::move(agent);
        self->state.told_caught_up = false; // a new incarnation
      },
      [=](peer_atom, peer_actor& peer) {
        auto& s = self->state;
        if (!peer) { // the peer node was lost
          if (s.established)
            report(self, "session_down", {{"reason", "connection lost"}});
          s.established = false;
          s.in_flight.clear();
          drop_stream(self);
          fail_waiters(self, s.pending_waiters, "connection lost");
          fail_waiters(self, s.ack_waiters, "connection lost");
          return;
        }
        // The peer node restarted (or was reached anew): greet it again.
        report(self, "session_greeting");
        s.in_flight.clear();
        drop_stream(self);
        s.peer = std::move(peer);
        s.established = false;
        send_hello(self);
      },
      [=](status_atom) {
        auto& s = self->state;
        auto result = s.stats;
        result.peer_node = s.peer_node;
        result.agent = s.agent_id;
        result.established = s.established;
        result.outstanding = s.out.size();
        result.pending_versions = s.pending_versions;
        result.unread_engrams = s.cursor.size() - s.cursor_next;
        return result;
      },
      [=](fail_atom) {
        throw std::runtime_error("session " + self->state.agent_id + "@"
                                 + self->state.peer_node + ": injected fault");
      },
  };
}

} // namespace

session_actor spawn_session(caf::local_actor* parent, node_context_ptr ctx,
                            const std::string& agent_id,
                            const std::string& peer_node, peer_actor peer,
                            agent_actor agent) {
  return parent->spawn<caf::monitored>(session_impl, std::move(ctx), agent_id,
                                       peer_node, std::move(peer),
                                       std::move(agent));
}

} // namespace engram::actors
