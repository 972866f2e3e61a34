#include "sync/session.hpp"

#include "messages/codec.hpp"
#include "messages/envelope.hpp"

#include <algorithm>
#include <cassert>

#include "engram/v1/sync.pb.h"

namespace engram::sync {

namespace {

const std::vector<std::string> capabilities{"delta-batch", "digest",
                                            "fact-columns"};

} // namespace

session::session(identity who, settings cfg, hybrid_logical_clock& hlc,
                 physical_clock& wall, clock_check clock_ok, time_point now)
    : who_(std::move(who)), cfg_(cfg), hlc_(hlc), wall_(wall),
      clock_ok_(std::move(clock_ok)), out_(cfg.retransmit_after),
      on_change_(cfg.on_change), last_heard_(now), last_anti_entropy_(now),
      last_ping_(now) {
  send_hello(now);
}

std::vector<action> session::take_actions() {
  std::vector<action> result;
  result.swap(actions_);
  return result;
}

// -- frames
// -----------------------------------------------------------------------

uint64_t session::ask(request r) {
  auto tag = next_tag_++;
  requests_.emplace(tag, std::move(r));
  return tag;
}

void session::send_frame(int type, const google::protobuf::Message& payload) {
  auto env = messages::make_envelope(static_cast<v1::MessageType>(type),
                                     who_.node_id, hlc_.now(), payload);
  auto bytes = messages::serialize(env);
  ++stats_.frames_out;
  stats_.bytes_out += bytes.size();
  actions_.push_back(act::send{std::move(bytes)});
}

// A frame that must be acknowledged: it stays in the outbox.
uint64_t session::send_reliable(v1::SyncResponse& payload, time_point now) {
  payload.set_sequence(out_.next_sequence());
  payload.set_epoch(who_.epoch);
  auto env = messages::make_envelope(v1::SYNC_RESPONSE, who_.node_id,
                                     hlc_.now(), payload);
  auto bytes = messages::serialize(env);
  auto seq = out_.add(bytes, now);
  ++stats_.frames_out;
  stats_.bytes_out += bytes.size();
  actions_.push_back(act::send{std::move(bytes)});
  return seq;
}

void session::send_hello(time_point now) {
  v1::Hello hello;
  for (auto& c : capabilities)
    hello.add_capabilities(c);
  hello.set_node_id(who_.node_id);
  hello.set_epoch(who_.epoch);
  hello.set_wall_us(wall_.now_us());
  last_sent_hello_ = now;
  send_frame(v1::HELLO, hello);
}

void session::report(const char* event,
                     std::vector<std::pair<std::string, std::string>> extra) {
  act::report r;
  r.event = event;
  r.fields = {{"node", who_.node_id},
              {"peer", who_.peer_node},
              {"agent", who_.agent_id}};
  for (auto& f : extra)
    r.fields.push_back(std::move(f));
  actions_.push_back(std::move(r));
}

// -- rounds
// -----------------------------------------------------------------------

// Asks the peer whether our states differ (O(1) bytes when they do not).
void session::start_anti_entropy(time_point now) {
  anti_entropy_due_ = false;
  last_anti_entropy_ = now;
  ++stats_.rounds;
  actions_.push_back(act::ask_digest{ask({purpose::anti_entropy})});
}

// Asks the peer for everything we have not seen (an explicit sync).
void session::start_pull() {
  pull_outstanding_ = true;
  actions_.push_back(act::ask_digest{ask({purpose::pull})});
}

void session::reset_round() {
  round_open_ = false;
  round_pulled_ = false;
  pull_outstanding_ = false;
  round_push_seq_ = 0;
  round_push_acked_ = false;
  round_streaming_ = false;
  round_result_ = round_outcome{};
}

void session::finish_rounds() {
  act::rounds_done done;
  done.outcome = round_result_;
  done.outcome.clean = done.outcome.conflicts.empty();
  for (auto& r : rounds_)
    done.rounds.push_back(r.id);
  rounds_.clear();
  reset_round();
  if (!done.rounds.empty())
    actions_.push_back(std::move(done));
}

void session::established(time_point now) {
  if (established_)
    return;
  established_ = true;
  report("session_up");
  start_anti_entropy(now);
  if (round_open_ && !round_pulled_)
    start_pull();
  flush(now);
}

// -- the stream to the peer
// -----------------------------------------------------

bool session::stream_open() const {
  return cursor_next_ < cursor_.size() || piece_asked_;
}

// A stream to the peer is in progress: parts queued or still to be read, or
// more than a few frames unacknowledged. The peer's context does not show
// what is in flight yet: what it seems to miss is mostly on its way.
bool session::streaming() const {
  return !pending_.empty() || out_.size() > 2 || stream_open();
}

// Stops reading the delta streaming to the peer (what it still misses is
// left to the next anti-entropy round).
void session::drop_stream() {
  cursor_.clear();
  cursor_next_ = 0;
  stream_clock_.reset();
}

// What the peer will have seen once the frames on their way to it and those
// pending arrive: what it misses is computed against this, or an answer
// would carry again what is on its way. A frame resent or overdue may be
// lost: an answer carries its versions again.
causal_context session::expected_context(causal_context peer,
                                         time_point now) const {
  for (auto& [seq, events] : in_flight_)
    if (out_.on_its_way(seq, now))
      peer.join(events);
  for (auto& d : pending_)
    peer.join(d.context);
  return peer;
}

// Queues a delta's frames, after what is pending (an answer that carries no
// versions but the responder's context too: the peer adds it).
void session::queue_parts(replica_delta&& delta) {
  if (delta.empty())
    return;
  if (round_streaming_)
    round_result_.synced_count += delta.version_count();
  holding_pushes_ = false; // an answer leaves now, with what is pending
  for (auto& part : split_delta(std::move(delta), cfg_.frame_versions)) {
    pending_versions_ += part.version_count();
    pending_.push_back(std::move(part));
  }
}

// Reads the next piece of the delta streaming to the peer once fewer than a
// piece's versions wait to be sent.
void session::read_piece() {
  auto piece = std::max<size_t>(cfg_.stream_piece, 1);
  if (piece_asked_ || cursor_next_ >= cursor_.size()
      || pending_versions_ >= piece)
    return;
  auto from = cursor_.begin() + static_cast<ptrdiff_t>(cursor_next_);
  auto n = std::min(piece, cursor_.size() - cursor_next_);
  std::vector<engram_id> ids(from, from + static_cast<ptrdiff_t>(n));
  cursor_next_ += n;
  if (cursor_next_ == cursor_.size()) { // read to the end: freed
    cursor_ = std::vector<engram_id>{};
    cursor_next_ = 0;
  }
  piece_asked_ = true;
  actions_.push_back(act::ask_piece{ask({purpose::piece}), std::move(ids)});
}

// Sends what is pending, as far as the window takes it.
void session::send_pending(time_point now) {
  if (out_.size() >= cfg_.max_outstanding) {
    flush_due_ = true; // the next tick tries again
    return;
  }
  // Consecutive small changes are joined into frames of up to
  // frame_versions (superseded versions drop out); a large one is split.
  // Parts already frame-sized (a pull streaming) are left as they are:
  // re-joining everything pending on every acknowledgement is quadratic.
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
    if (joined.version_count() <= cfg_.frame_versions) {
      parts.push_back(std::move(joined));
      return;
    }
    for (auto& part : split_delta(std::move(joined), cfg_.frame_versions))
      parts.push_back(std::move(part));
  };
  for (auto& d : pending_) {
    auto n = d.version_count();
    if (group_versions > 0 && group_versions + n > cfg_.frame_versions)
      close_group();
    group_versions += n;
    group.push_back(std::move(d));
  }
  close_group();
  pending_.clear();
  pending_versions_ = 0;
  std::vector<uint64_t> sent;
  for (size_t i = 0; i < parts.size(); ++i) {
    auto& part = parts[i];
    if (out_.size() >= cfg_.max_outstanding) {
      // The peer is slow: keep the rest for the next tick.
      pending_versions_ += part.version_count();
      pending_.push_back(std::move(part));
      flush_due_ = true;
      continue;
    }
    v1::SyncResponse push;
    messages::to_proto(part, *push.mutable_batch());
    if (origins_.prove)
      origins_.prove(part, *push.mutable_batch());
    // The last frame of a pull's answer carries the clock.
    if (i + 1 == parts.size() && stream_clock_ && !stream_open()) {
      // A whole answer in one frame carries the clock as its context once.
      if (part.context == *stream_clock_)
        push.mutable_batch()->clear_context();
      messages::to_proto(*stream_clock_, *push.mutable_clock());
      stream_clock_.reset();
    }
    auto seq = send_reliable(push, now);
    sent.push_back(seq);
    in_flight_.emplace(seq, std::move(part.context));
  }
  if (round_streaming_ && !sent.empty()) {
    round_push_seq_ = sent.back();
    round_push_acked_ = false;
  }
  // Replications wait for every frame sent since they were queued.
  for (auto& w : pending_waiters_)
    w.sequences.insert(sent.begin(), sent.end());
  if (pending_.empty() && !pending_waiters_.empty()) {
    for (auto& w : pending_waiters_) {
      if (w.sequences.empty())
        actions_.push_back(act::replicated{w.id});
      else
        ack_waiters_.push_back(std::move(w));
    }
    pending_waiters_.clear();
  }
}

// Sends pending frames, reads more of a delta streaming to the peer, and
// ends the stream once everything of it was sent.
void session::flush(time_point now) {
  flush_due_ = false;
  if (!established_ || !clock_ok())
    return; // established() flushes, and the tick once the clocks agree
  if (holding_pushes_ && now < hold_until_) {
    // Held: the delayed flush sends them, else the first tick after the
    // hold (a flush now must not forget what is held).
    flush_due_ = true;
    return;
  }
  holding_pushes_ = false;
  if (!pending_.empty())
    send_pending(now);
  read_piece();
  if (stream_open() || !pending_.empty())
    return;
  if (stream_clock_) { // the answer ended with a piece the peer holds
    if (out_.size() >= cfg_.max_outstanding) {
      flush_due_ = true;
      return;
    }
    // With an explicit (empty) context: the peer must not take the clock
    // as what this frame makes it see, while frames before it may still be
    // on their way (or lost, and resent).
    v1::SyncResponse resp;
    messages::to_proto(replica_delta{}, *resp.mutable_batch());
    messages::to_proto(*stream_clock_, *resp.mutable_clock());
    stream_clock_.reset();
    send_reliable(resp, now);
  }
  if (round_streaming_) {
    round_streaming_ = false;
    if (round_open_ && round_pulled_
        && (round_push_seq_ == 0 || round_push_acked_))
      finish_rounds();
  }
}

// Streams to the peer `missing`, then the engrams `rest` (oldest event
// first), read in pieces while the peer acknowledges; the stream's last
// frame carries `clock` when given (a pull's answer). A stream already
// under way ends here: this one carries what the peer still misses of it.
void session::send_missing(replica_delta missing, std::vector<engram_id> rest,
                           const causal_context* clock, time_point now) {
  cursor_ = std::move(rest);
  cursor_next_ = 0;
  if (clock != nullptr)
    stream_clock_ = *clock;
  queue_parts(std::move(missing));
  flush(now);
  flush_due_ = true;
}

// -- acknowledgements and replications
// ------------------------------------------

void session::acknowledge(uint64_t seq, bool refused) {
  v1::SyncAck ack;
  ack.set_sequence(seq);
  ack.set_refused(refused);
  send_frame(v1::SYNC_ACK, ack);
}

void session::fail_waiters(std::vector<waiter>& ws, const std::string& why) {
  for (auto& w : ws)
    actions_.push_back(act::replication_failed{
        w.id,
        make_error(errc::unavailable, "node " + who_.peer_node + ": " + why)});
  ws.clear();
}

// The peer acknowledged (stored, or refused) frame `seq`.
void session::on_acknowledged(uint64_t seq, bool refused) {
  for (auto i = ack_waiters_.begin(); i != ack_waiters_.end();) {
    if (i->sequences.erase(seq) == 0) {
      ++i;
      continue;
    }
    if (refused)
      actions_.push_back(act::replication_failed{
          i->id,
          make_error(errc::unavailable, "node " + who_.peer_node
                                            + " refused the change's batch")});
    else if (i->sequences.empty())
      actions_.push_back(act::replicated{i->id});
    else {
      ++i;
      continue;
    }
    i = ack_waiters_.erase(i);
  }
}

void session::tell_caught_up() {
  if (told_caught_up_ || caught_up_asked_)
    return;
  caught_up_asked_ = true;
  actions_.push_back(act::ask_caught_up{});
}

// -- inputs
// ------------------------------------------------------------------------

void session::on_frame(const std::string& bytes, time_point now) {
  auto env = messages::decode_envelope(bytes);
  if (!env) // hostile or broken bytes: refused, nothing reaches the store
    return;
  last_heard_ = now;
  ++stats_.frames_in;
  stats_.bytes_in += bytes.size();
  switch (env->type()) {
    case v1::HELLO: {
      auto hello = messages::decode_payload<v1::Hello>(*env, v1::HELLO);
      if (!hello || !clock_ok(hello->wall_us()))
        return; // greeted again until the clocks agree
      v1::HelloAck ack;
      for (auto& c : hello->capabilities())
        if (std::find(capabilities.begin(), capabilities.end(), c)
            != capabilities.end())
          ack.add_accepted_capabilities(c);
      ack.set_wall_us(wall_.now_us());
      send_frame(v1::HELLO_ACK, ack);
      established(now);
      return;
    }
    case v1::HELLO_ACK: {
      auto ack = messages::decode_payload<v1::HelloAck>(*env, v1::HELLO_ACK);
      if (ack && clock_ok(ack->wall_us()))
        established(now);
      return;
    }
    case v1::SYNC_REQUEST: {
      if (!clock_ok())
        return; // refused: the peer's clock is off
      auto req
          = messages::decode_payload<v1::SyncRequest>(*env, v1::SYNC_REQUEST);
      if (req)
        on_sync_request(*req, now);
      return;
    }
    case v1::SYNC_RESPONSE: {
      if (!clock_ok())
        return; // not merged, not acknowledged: resent once clocks agree
      auto resp
          = messages::decode_payload<v1::SyncResponse>(*env, v1::SYNC_RESPONSE);
      if (resp)
        on_sync_response(*resp, now);
      return;
    }
    case v1::SYNC_ACK: {
      auto ack = messages::decode_payload<v1::SyncAck>(*env, v1::SYNC_ACK);
      if (!ack)
        return;
      out_.acknowledge(ack->sequence(), now);
      in_flight_.erase(ack->sequence());
      on_acknowledged(ack->sequence(), ack->refused());
      if (round_open_ && round_push_seq_ != 0
          && round_push_seq_ == ack->sequence()) {
        round_push_acked_ = true;
        if (!round_streaming_)
          finish_rounds();
      }
      flush(now);
      return;
    }
    case v1::PING: {
      auto ping = messages::decode_payload<v1::Ping>(*env, v1::PING);
      if (!ping)
        return;
      v1::Pong pong;
      pong.set_nonce(ping->nonce());
      send_frame(v1::PONG, pong);
      return;
    }
    default:
      // PONG (liveness is noted above), conflict notifications (the peer's
      // conflicts are detected here too when its versions merge), and
      // anything that is not a session's message.
      return;
  }
}

void session::on_sync_request(const v1::SyncRequest& msg, time_point now) {
  if (msg.has_since()) {
    auto since = messages::from_proto(msg.since(), messages::limits{});
    if (!since)
      return;
    auto expected = expected_context(*since, now);
    request r{purpose::answer};
    r.partial = expected != *since;
    auto first = std::max<uint64_t>(cfg_.stream_piece / 4, 1);
    actions_.push_back(
        act::ask_since{ask(std::move(r)), std::move(expected), first});
    return;
  }
  request r{purpose::compare};
  r.digest = msg.has_digest() ? msg.digest() : 0;
  actions_.push_back(act::ask_digest{ask(std::move(r))});
}

// Merges a batch from the peer, then acknowledges it (and, for a pull
// response, pushes back what the peer's clock misses).
void session::on_sync_response(v1::SyncResponse& msg, time_point) {
  bool is_pull = msg.has_clock();
  bool empty = msg.sequence() == 0 && !msg.has_batch() && !is_pull;
  if (empty) { // digests matched: nothing to do
    ++stats_.idle_rounds;
    tell_caught_up();
    if (round_open_ && !round_pulled_)
      start_pull();
    return;
  }
  auto seq = msg.sequence();
  auto epoch = msg.epoch();
  if (seq != 0) {
    if (in_.contains(epoch, seq)) { // merged before: acknowledge again
      ++stats_.duplicates;
      acknowledge(seq);
      return;
    }
    if (merging_.count({epoch, seq}) > 0) { // its merge acknowledges it
      ++stats_.duplicates;
      return;
    }
  }
  auto delta = messages::from_proto(msg, messages::limits{});
  if (delta && origins_.check) {
    // Versions whose origin is not proved are dropped (logged), the rest
    // merged; a batch that cannot be narrowed is refused.
    auto checked = origins_.check(msg.batch(), *delta);
    if (!checked) {
      report("origin_refused", {{"reason", checked.error_value().message}});
      delta = checked.error_value();
    } else if (checked->count > 0) {
      stats_.refused += checked->count;
      report("origin_refused", {{"versions", std::to_string(checked->count)},
                                {"reason", checked->reason}});
    }
  }
  if (!delta) {
    // Refused as a whole, nothing merged. Acknowledged so that the sender
    // stops resending what can never be merged; anti-entropy sends the
    // state again in a fresh frame.
    ++stats_.refused;
    if (seq != 0)
      acknowledge(seq, true);
    return;
  }
  request r{purpose::merge};
  r.epoch = epoch;
  r.sequence = seq;
  r.versions = delta->version_count();
  if (is_pull)
    if (auto clock = messages::from_proto(msg.clock(), messages::limits{}))
      r.peer_clock = std::move(*clock);
  if (seq != 0)
    merging_.emplace(epoch, seq);
  actions_.push_back(act::ask_merge{ask(std::move(r)), std::move(*delta)});
}

void session::on_tick(time_point now) {
  if (established_ && now - last_heard_ > cfg_.peer_timeout) {
    established_ = false; // silent too long: greet again until it answers
    report("session_down", {{"reason", "peer silent"}});
  }
  if (!established_) {
    if (now - last_sent_hello_ >= cfg_.retransmit_after * 4)
      send_hello(now);
  } else if (!clock_ok()) {
    // The peer's clock is off: nothing is sent or resent but pings (the
    // node logged it; sync resumes once the clocks agree).
    if (now - last_ping_ >= cfg_.ping_interval) {
      last_ping_ = now;
      v1::Ping ping;
      ping.set_nonce(++ping_nonce_);
      send_frame(v1::PING, ping);
    }
  } else {
    auto due = out_.due(now);
    if (out_.take_expired() > 0) {
      anti_entropy_due_ = true; // given up: the digest round repairs
      for (auto i = in_flight_.begin(); i != in_flight_.end();)
        i = out_.contains(i->first) ? std::next(i) : in_flight_.erase(i);
    }
    for (auto* frame : due) {
      ++stats_.retransmits;
      ++stats_.frames_out;
      stats_.bytes_out += frame->size();
      actions_.push_back(act::send{*frame});
    }
    // A stream to the peer in progress (parts queued, or frames in flight)
    // defers the round: the peer's context does not show what is in flight
    // yet, so the round would send all of it again (for a large pull at
    // every interval, never catching up). Frames in flight are resent
    // until acknowledged or given up (which ends the stream too).
    if (!streaming()
        && (anti_entropy_due_
            || now - last_anti_entropy_ >= cfg_.anti_entropy_interval))
      start_anti_entropy(now);
    if (now - last_heard_ >= cfg_.ping_interval
        && now - last_ping_ >= cfg_.ping_interval) {
      last_ping_ = now;
      v1::Ping ping;
      ping.set_nonce(++ping_nonce_);
      send_frame(v1::PING, ping);
    }
    if (flush_due_)
      flush(now);
  }
  // Replications nobody waits for any more.
  for (auto* ws : {&pending_waiters_, &ack_waiters_}) {
    auto late = std::partition(ws->begin(), ws->end(), [&](const waiter& w) {
      return w.deadline > now;
    });
    for (auto i = late; i != ws->end(); ++i)
      actions_.push_back(act::replication_failed{
          i->id, make_error(errc::timeout, "node " + who_.peer_node
                                               + " did not confirm in time")});
    ws->erase(late, ws->end());
  }
  // Explicit syncs that ran out of time end with what they did.
  auto expired
      = std::partition(rounds_.begin(), rounds_.end(), [&](const round& r) {
          return r.deadline > now;
        });
  for (auto i = expired; i != rounds_.end(); ++i)
    actions_.push_back(act::round_failed{
        i->id, make_error(errc::timeout,
                          "no sync with node " + who_.peer_node + " in time")});
  rounds_.erase(expired, rounds_.end());
  if (rounds_.empty() && round_open_)
    reset_round();
}

void session::on_flush(time_point now) { flush(now); }

void session::on_push(replica_delta delta, time_point now) {
  if (!on_change_) {
    anti_entropy_due_ = true;
    return;
  }
  auto hold = pending_.empty() && cfg_.push_delay.count() > 0;
  if (hold) {
    holding_pushes_ = true;
    hold_until_ = now + cfg_.push_delay;
  }
  pending_versions_ += delta.version_count();
  pending_.push_back(std::move(delta));
  if (pending_versions_ > cfg_.max_pending_versions) {
    ++stats_.pending_overflows;
    pending_.clear(); // the digest round repairs it
    pending_versions_ = 0;
    holding_pushes_ = false;
    anti_entropy_due_ = true;
    fail_waiters(pending_waiters_,
                 "too many pending changes; left to anti-entropy");
    return;
  }
  // A new hold ends with its own delayed flush, even when a flush is due
  // already (a tick within the hold would only find it held).
  if (hold)
    actions_.push_back(act::flush_after{cfg_.push_delay});
  if (flush_due_)
    return;
  flush_due_ = true;
  if (cfg_.push_delay.count() == 0)
    flush(now);
  else if (!hold)
    actions_.push_back(act::flush_after{cfg_.push_delay});
}

void session::on_replicate(uint64_t waiter_id, replica_delta delta,
                           time_point now, time_point deadline) {
  if (!established_) {
    actions_.push_back(act::replication_failed{
        waiter_id, make_error(errc::unavailable,
                              "node " + who_.peer_node + " is not connected")});
    return;
  }
  if (!clock_ok()) {
    actions_.push_back(act::replication_failed{
        waiter_id,
        make_error(errc::clock_offset,
                   "node " + who_.peer_node
                       + "'s clock is off by more than max_clock_offset: no "
                         "sync with it")});
    return;
  }
  pending_versions_ += delta.version_count();
  pending_.push_back(std::move(delta));
  pending_waiters_.push_back(waiter{waiter_id, {}, deadline});
  holding_pushes_ = false; // a replication leaves now
  flush(now);
}

void session::on_sync(uint64_t round_id, time_point now, time_point deadline,
                      milliseconds interval, bool on_change) {
  if (interval.count() > 0)
    cfg_.anti_entropy_interval = interval;
  // A sync may turn pushing off; on, it follows the node's setting.
  on_change_ = on_change && cfg_.on_change;
  rounds_.push_back(round{round_id, deadline});
  if (!round_open_) {
    round_open_ = true;
    holding_pushes_ = false; // a sync sends what is pending now
    flush(now);
    if (established_)
      start_pull();
  }
}

void session::on_peer_lost() {
  if (established_)
    report("session_down", {{"reason", "connection lost"}});
  established_ = false;
  in_flight_.clear();
  drop_stream();
  fail_waiters(pending_waiters_, "connection lost");
  fail_waiters(ack_waiters_, "connection lost");
}

void session::on_peer_new(time_point now) {
  report("session_greeting");
  in_flight_.clear();
  drop_stream();
  established_ = false;
  send_hello(now);
}

void session::on_agent_new() {
  // Its predecessor's answers will not come: what they were for is
  // repaired by the next round.
  for (auto& [tag, r] : requests_) {
    if (r.why == purpose::merge && r.sequence != 0)
      merging_.erase({r.epoch, r.sequence});
    if (r.why == purpose::pull)
      pull_outstanding_ = false;
  }
  requests_.clear();
  piece_asked_ = false;
  drop_stream();
  anti_entropy_due_ = true;
  told_caught_up_ = false;
  caught_up_asked_ = false;
}

// -- the agent's answers
// -----------------------------------------------------------

void session::on_digest(uint64_t tag, uint64_t digest, causal_context context) {
  auto i = requests_.find(tag);
  if (i == requests_.end())
    return;
  auto r = std::move(i->second);
  requests_.erase(i);
  switch (r.why) {
    case purpose::anti_entropy: {
      v1::SyncRequest req;
      req.set_digest(digest);
      send_frame(v1::SYNC_REQUEST, req);
      return;
    }
    case purpose::pull: {
      v1::SyncRequest req;
      req.set_digest(digest);
      messages::to_proto(context, *req.mutable_since());
      send_frame(v1::SYNC_REQUEST, req);
      return;
    }
    case purpose::compare: {
      if (digest == r.digest) {
        send_frame(v1::SYNC_RESPONSE, v1::SyncResponse{});
        return;
      }
      v1::SyncRequest req; // we differ: send me what I miss (and I you)
      req.set_digest(digest);
      messages::to_proto(context, *req.mutable_since());
      send_frame(v1::SYNC_REQUEST, req);
      return;
    }
    default: assert(false && "a digest answers a digest request"); return;
  }
}

void session::on_since(uint64_t tag, replica_delta missing,
                       std::vector<engram_id> rest, causal_context context,
                       time_point now) {
  auto i = requests_.find(tag);
  if (i == requests_.end())
    return;
  auto r = std::move(i->second);
  requests_.erase(i);
  // Computed against more than the peer's context (with what is on its way
  // to it), the answer does not carry everything the peer lacks: it names
  // only its own versions' events, or the peer would take the events on
  // their way as seen, and drop their versions if they arrive after it.
  if (r.partial)
    missing.context = own_dots(missing);
  if (r.why == purpose::answer) {
    send_missing(std::move(missing), std::move(rest), &context, now);
    return;
  }
  assert(r.why == purpose::push_back);
  // The round's own push: it ends when the stream does.
  if (round_open_ && round_pulled_ && round_push_seq_ == 0
      && !round_streaming_) {
    if (missing.entries.empty() && rest.empty()) {
      finish_rounds();
      return;
    }
    round_streaming_ = true;
  }
  if (missing.entries.empty() && rest.empty())
    return;
  send_missing(std::move(missing), std::move(rest), nullptr, now);
}

void session::on_piece(uint64_t tag, replica_delta piece, time_point now) {
  if (requests_.erase(tag) == 0)
    return;
  piece_asked_ = false;
  queue_parts(std::move(piece));
  flush(now);
}

void session::on_merged(uint64_t tag, merged result, time_point now) {
  auto i = requests_.find(tag);
  if (i == requests_.end())
    return;
  auto r = std::move(i->second);
  requests_.erase(i);
  ++stats_.merged;
  if (r.sequence != 0) {
    // Recorded as delivered only now that it is merged and durable.
    merging_.erase({r.epoch, r.sequence});
    in_.first_time(r.epoch, r.sequence);
    acknowledge(r.sequence);
  }
  // The peer hears of the conflicts kept open here; those the configured
  // resolution settled, it settles alike when it sees the same versions.
  if (!result.open.empty()) {
    v1::ConflictNotification note;
    for (auto& c : result.conflicts)
      if (std::find(result.open.begin(), result.open.end(), c.id)
          != result.open.end())
        messages::to_proto(c, *note.add_conflicts());
    send_frame(v1::CONFLICT_NOTIFICATION, note);
  }
  if (round_open_) {
    round_result_.merged_count += result.applied;
    round_result_.synced_count += r.versions;
    for (auto& c : result.conflicts)
      round_result_.conflicts.push_back(std::move(c));
  }
  if (!r.peer_clock)
    return;
  tell_caught_up();       // the answer to a pull: all it had
  if (result.applied > 0) // anti-entropy found what was missing
    report("session_repaired", {{"versions", std::to_string(result.applied)}});
  // Only the answer to this round's own request completes its pull (not a
  // late answer, nor a round the peer started).
  if (round_open_ && pull_outstanding_) {
    round_pulled_ = true;
    pull_outstanding_ = false;
  }
  // Then what the peer misses goes back, unless a stream to it is under
  // way (the round after it repairs what is left).
  if (streaming() && !round_open_)
    return;
  auto expected = expected_context(*r.peer_clock, now);
  request back{purpose::push_back};
  back.partial = expected != *r.peer_clock;
  auto first = std::max<uint64_t>(cfg_.stream_piece / 4, 1);
  actions_.push_back(
      act::ask_since{ask(std::move(back)), std::move(expected), first});
}

void session::on_failed(uint64_t tag, time_point now) {
  auto i = requests_.find(tag);
  if (i == requests_.end())
    return;
  auto r = std::move(i->second);
  requests_.erase(i);
  switch (r.why) {
    case purpose::merge:
      // The agent refused the batch (malformed) or is being respawned:
      // acknowledged so it is not resent forever; the next digest round
      // repairs whatever is missing.
      ++stats_.refused;
      anti_entropy_due_ = true;
      if (r.sequence != 0) {
        merging_.erase({r.epoch, r.sequence});
        acknowledge(r.sequence, true);
      }
      return;
    case purpose::piece:
      // The agent is being respawned: the next round repairs.
      piece_asked_ = false;
      drop_stream();
      anti_entropy_due_ = true;
      flush(now);
      return;
    case purpose::pull: pull_outstanding_ = false; return;
    default: return; // the next round asks again
  }
}

void session::on_caught_up(bool counted) {
  caught_up_asked_ = false;
  told_caught_up_ = counted;
}

} // namespace engram::sync
