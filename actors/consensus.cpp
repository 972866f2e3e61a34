// The consensus group actor of the Universal scope: drives the Raft machine
// (consensus/raw_node.hpp) over the node mesh, keeps its log in the node's
// store (persistence/consensus_log.hpp) and applies the committed facts.
// One per node that the configuration lists as a member.
//
// Each ready is handled in the order the machine requires: persisted (one
// synced batch) before its messages are sent, its committed entries applied
// after, then its reads answered. A write is answered once it is committed
// and applied here; a query is answered after a ReadIndex round confirmed
// that this node's state is at least as recent as the leader's commit
// (linearizable). Raft messages travel as node frames (RAFT envelopes,
// signed like every frame of the mesh); one that names another sender than
// the proven peer it came from is dropped.
#include "actors/internal/guards.hpp"
#include "actors/internal/spawn.hpp"
#include "core/hash.hpp"
#include "messages/codec.hpp"
#include "messages/consensus_codec.hpp"
#include "messages/envelope.hpp"
#include "persistence/consensus_log.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <map>
#include <random>

#include "consensus/raw_node.hpp"
#include "engram/v1/consensus.pb.h"

namespace engram::actors {

namespace c = engram::consensus;

namespace {

using clock_type = std::chrono::steady_clock;

/// The group's name in frames and in the store.
constexpr const char* universal_group = "universal";

/// Applied entries between two snapshots of the facts, and entries kept
/// behind a snapshot (a follower slightly behind catches up from the log,
/// not from a snapshot).
constexpr c::index_t snapshot_every = 4096;
constexpr c::index_t snapshot_margin = 1024;

/// The most a write and the whole Universal scope may take, encoded: a
/// snapshot travels in one frame (whose payload a receiver bounds at
/// 4 MiB), so the scope stays below that.
constexpr size_t max_write_bytes = 256 << 10;
constexpr size_t max_state_bytes = 3 << 20;

struct pending_write {
  caf::typed_response_promise<engram_id> rp;
  engram_id id;
  clock_type::time_point deadline;
};

struct pending_read {
  caf::typed_response_promise<std::vector<memory_view>> rp;
  query_filter filter;
  std::optional<c::index_t> index;
  clock_type::time_point deadline;
};

struct consensus_state {
  node_context_ptr ctx;
  std::unique_ptr<persistence::consensus_log> log;
  std::unique_ptr<c::raw_node> node;
  c::node_id self_id = c::no_node;
  /// Raft id ↔ node id of every member.
  std::map<c::node_id, std::string> names;
  std::map<std::string, c::node_id> ids;
  /// The Universal scope: the facts applied, by id.
  std::map<engram_id, engram_record> facts;
  c::index_t applied = 0;
  c::index_t snapshot_index = 0;
  c::conf_state conf;
  uint64_t next_request = 0;
  /// This run of the member (random): ties requests to it.
  uint64_t incarnation = 0;
  /// The encoded size of the facts (bounded by max_state_bytes).
  size_t state_bytes = 0;
  std::map<uint64_t, pending_write> writes;
  std::map<std::string, pending_read> reads;
  std::unique_ptr<hybrid_logical_clock> clock;

  static inline const char* name = "engram.consensus";
};

using consensus_ptr = consensus_actor::stateful_pointer<consensus_state>;

/// A member's Raft id: a hash of its node id (never 0).
c::node_id raft_id(const std::string& node) {
  auto h = hash_string(node, 0x5241465447524f55ULL);
  return h == 0 ? 1 : h;
}

std::string encode_state(const std::map<engram_id, engram_record>& facts) {
  v1::UniversalState pb;
  for (auto& [id, value] : facts)
    messages::to_proto(value, *pb.add_facts());
  return messages::serialize(pb);
}

expected<std::map<engram_id, engram_record>>
decode_state(const std::string& bytes) {
  std::map<engram_id, engram_record> out;
  if (bytes.empty())
    return out;
  v1::UniversalState pb;
  if (!pb.ParseFromString(bytes))
    return make_error(errc::corrupt_record,
                      "the Universal scope's snapshot does not decode");
  for (auto& f : pb.facts()) {
    auto value = messages::from_proto(f);
    if (!value)
      return value.error_value();
    out[value->id] = std::move(*value);
  }
  return out;
}

// -- sending ------------------------------------------------------------------

void send_message(consensus_ptr self, const c::message& m) {
  auto& st = self->state;
  auto to = st.names.find(m.to);
  if (to == st.names.end())
    return;
  auto peer = st.ctx->cluster->peer(to->second);
  if (!peer) {
    st.node->report_unreachable(m.to);
    if (m.type == c::msg_type::install_snapshot)
      st.node->report_snapshot(m.to, false);
    return;
  }
  v1::RaftEnvelope env;
  env.set_group(universal_group);
  messages::to_raft_proto(m, *env.mutable_message());
  auto bytes = st.ctx->sign(
      messages::serialize(messages::make_envelope(
          v1::RAFT, st.ctx->config.node_id, st.clock->now(), env)),
      to->second, {});
  if (!bytes)
    return; // sent again: Raft retransmits
  self->send(*peer, wire_frame{st.ctx->config.node_id, {}, std::move(*bytes)});
  // The mesh is reliable while a peer is connected: a snapshot sent is a
  // snapshot delivered, or the connection (and the peer) was lost.
  if (m.type == c::msg_type::install_snapshot)
    st.node->report_snapshot(m.to, true);
}

// -- applying -----------------------------------------------------------------

void apply_entry(consensus_ptr self, const c::entry& e) {
  auto& st = self->state;
  st.applied = e.index;
  if (e.type == c::entry_type::conf_change) {
    if (auto cc = c::decode_conf_change(e.data))
      (void)st.node->apply_conf_change(*cc, st.conf);
    return;
  }
  if (e.data.empty())
    return; // a leader's no-op
  v1::UniversalWrite w;
  if (!w.ParseFromString(e.data))
    return; // (a member only proposes what it encoded)
  auto value = messages::from_proto(w.engram());
  if (!value || value->scope.kind() != scope_kind::universal)
    return;
  auto id = value->id;
  auto size = w.engram().ByteSizeLong();
  if (auto old = st.facts.find(id); old != st.facts.end()) {
    v1::Engram before;
    messages::to_proto(old->second, before);
    st.state_bytes -= std::min(st.state_bytes, before.ByteSizeLong());
  }
  st.state_bytes += size;
  st.facts[id] = std::move(*value);
  // The client of this run whose write it is (an earlier run's request
  // numbers start over: its incarnation differs).
  if (w.node() == st.ctx->config.node_id && w.incarnation() == st.incarnation) {
    auto i = st.writes.find(w.request());
    if (i != st.writes.end() && i->second.id == id) {
      i->second.rp.deliver(id);
      st.writes.erase(i);
    }
  }
}

std::vector<memory_view> answer(consensus_state& st,
                                const query_filter& filter) {
  std::vector<memory_view> out;
  for (auto& [id, value] : st.facts) {
    memory_view view;
    view.value = value;
    view.consistency = guarantee::consensus;
    if (matches(filter, view))
      out.push_back(std::move(view));
  }
  finish(filter, out); // order and limit, as every query
  return out;
}

void serve_reads(consensus_ptr self) {
  auto& st = self->state;
  for (auto i = st.reads.begin(); i != st.reads.end();) {
    if (i->second.index && *i->second.index <= st.applied) {
      i->second.rp.deliver(answer(st, i->second.filter));
      i = st.reads.erase(i);
    } else {
      ++i;
    }
  }
}

void maybe_snapshot(consensus_ptr self) {
  auto& st = self->state;
  if (st.applied < st.snapshot_index + snapshot_every + snapshot_margin)
    return;
  // The facts as of `applied`, with the last entries kept behind them in
  // the log for followers that are a little behind.
  if (st.log->compact(st.applied, st.conf, encode_state(st.facts)))
    st.snapshot_index = st.applied;
}

/// Handles every ready: persist, send, apply, serve, advance.
void drive(consensus_ptr self) {
  auto& st = self->state;
  while (st.node->has_ready()) {
    auto rd = st.node->get_ready();
    if (auto saved = st.log->save(rd); !saved) {
      // Nothing of this ready may leave: stop (the supervisor restarts
      // the group from what the store holds).
      self->quit(to_caf(saved.error_value()));
      return;
    }
    if (rd.snap) {
      auto facts = decode_state(rd.snap->data);
      if (!facts) {
        // (Checked before it was stepped in; a member never applies what
        // it cannot read.)
        self->quit(to_caf(facts.error_value()));
        return;
      }
      st.facts = std::move(*facts);
      st.state_bytes = rd.snap->data.size();
      st.applied = rd.snap->meta.index;
      st.snapshot_index = rd.snap->meta.index;
      st.conf = rd.snap->meta.conf;
    }
    for (auto& m : rd.messages)
      send_message(self, m);
    for (auto& e : rd.committed)
      apply_entry(self, e);
    for (auto& r : rd.reads) {
      auto i = st.reads.find(r.request);
      if (i != st.reads.end())
        i->second.index = r.index;
    }
    st.node->advance(rd);
    serve_reads(self);
  }
  maybe_snapshot(self);
}

void expire(consensus_ptr self) {
  auto& st = self->state;
  auto now = clock_type::now();
  for (auto i = st.writes.begin(); i != st.writes.end();) {
    if (i->second.deadline <= now) {
      i->second.rp.deliver(to_caf(make_error(
          errc::timeout, "the write with consensus was not committed in "
                         "time (its outcome is unknown)")));
      i = st.writes.erase(i);
    } else {
      ++i;
    }
  }
  for (auto i = st.reads.begin(); i != st.reads.end();) {
    if (i->second.deadline <= now) {
      i->second.rp.deliver(to_caf(make_error(
          errc::timeout, "the Universal scope's leader did not confirm the "
                         "read in time")));
      i = st.reads.erase(i);
    } else {
      ++i;
    }
  }
}

/// Members reachable now: this one and the connected peers among them.
size_t reachable(const consensus_state& st) {
  size_t n = 1;
  for (auto& [id, name] : st.names)
    if (id != st.self_id && st.ctx->cluster->live(name))
      ++n;
  return n;
}

// -- the behaviour ------------------------------------------------------------

consensus_actor::behavior_type consensus_impl(consensus_ptr self,
                                              node_context_ptr ctx) {
  auto& st = self->state;
  st.ctx = ctx;
  st.clock = std::make_unique<hybrid_logical_clock>(*ctx->config.wall_clock);
  st.incarnation
      = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  // An exit message from another process is not an order (a peer learns
  // this actor's address from its frames); the node's own has no source.
  ignore_foreign_exits(self);
  auto& cfg = ctx->config.consensus;
  for (auto& name : cfg.members) {
    auto id = raft_id(name);
    if (st.names.count(id) > 0) {
      self->quit(to_caf(make_error(errc::invalid_argument,
                                   "consensus members " + st.names[id] + " and "
                                       + name + " have the same Raft id")));
      return consensus_actor::behavior_type::make_empty_behavior();
    }
    st.names[id] = name;
    st.ids[name] = id;
  }
  st.self_id = raft_id(ctx->config.node_id);
  auto log = persistence::consensus_log::open(ctx->db, universal_group);
  if (!log) {
    self->quit(to_caf(log.error_value()));
    return consensus_actor::behavior_type::make_empty_behavior();
  }
  st.log = std::move(*log);
  if (st.log->last_index() == 0) {
    // First start: every member bootstraps the same group from the
    // configured members (a snapshot at index 1 naming the voters).
    c::ready boot;
    c::snapshot s;
    s.meta.index = 1;
    s.meta.term = 1;
    for (auto& [id, name] : st.names)
      s.meta.conf.voters.push_back(id);
    s.data = encode_state({});
    boot.snap = s;
    boot.hard = c::hard_state{1, c::no_node, 1};
    if (auto saved = st.log->save(boot); !saved) {
      self->quit(to_caf(saved.error_value()));
      return consensus_actor::behavior_type::make_empty_behavior();
    }
  }
  // The facts as of the snapshot; the log's committed entries after it are
  // applied again as the machine hands them out.
  c::snapshot snap;
  (void)st.log->get_snapshot(snap);
  auto facts = decode_state(snap.data);
  if (!facts) {
    self->quit(to_caf(facts.error_value()));
    return consensus_actor::behavior_type::make_empty_behavior();
  }
  st.facts = std::move(*facts);
  st.state_bytes = snap.data.size();
  st.applied = snap.meta.index;
  st.snapshot_index = snap.meta.index;
  st.conf = snap.meta.conf;
  // The group's voters are what its log says; a configuration that names
  // other members (changed after the first start, or differing between
  // nodes) would count quorums over the wrong nodes: refused.
  if (snap.meta.index == 1) {
    std::vector<c::node_id> configured;
    for (auto& [id, name] : st.names)
      configured.push_back(id);
    if (configured != snap.meta.conf.voters) {
      self->quit(to_caf(make_error(
          errc::invalid_argument,
          "consensus.members differ from the members this node's Universal "
          "scope started with (the list is read at the group's first start)")));
      return consensus_actor::behavior_type::make_empty_behavior();
    }
  }
  c::config rc;
  rc.id = st.self_id;
  rc.heartbeat_ticks = 1;
  rc.election_ticks = static_cast<int>(
      std::max<int64_t>(3, cfg.election_timeout / cfg.heartbeat_interval));
  rc.applied = snap.meta.index;
  rc.seed = hash_string(ctx->config.node_id, 0x7365656421ULL);
  st.node = std::make_unique<c::raw_node>(rc, *st.log);
  self->delayed_send(self, cfg.heartbeat_interval, tick_atom::value);
  // Frames only from the node actor (which checked who sent them and their
  // signatures); requests only from this process. A peer that learned this
  // actor's address from its frames cannot talk to it directly.
  auto from_node = [self] {
    return from_node_actor(self, self->state.ctx->node);
  };
  auto from_here = [self] {
    return from_this_process(self);
  };
  auto refused = [] {
    return to_caf(make_error(errc::unauthenticated,
                             "the consensus member takes requests from its "
                             "own process only"));
  };
  return {
      [=](tick_atom) {
        if (!from_here())
          return;
        auto& s = self->state;
        s.node->tick();
        drive(self);
        expire(self);
        self->delayed_send(self, s.ctx->config.consensus.heartbeat_interval,
                           tick_atom::value);
      },
      [=](wire_frame& frame) {
        if (!from_node())
          return;
        auto& s = self->state;
        auto env = messages::decode_envelope(frame.envelope);
        if (!env)
          return;
        auto payload
            = messages::decode_payload<v1::RaftEnvelope>(*env, v1::RAFT);
        if (!payload || payload->group() != universal_group)
          return;
        auto m = messages::from_raft_proto(payload->message());
        if (!m)
          return;
        // A snapshot whose facts do not decode is not taken.
        if (m->snap && !decode_state(m->snap->data))
          return;
        // The sender it names must be the proven peer it came from.
        auto from = s.ids.find(frame.from_node);
        if (from == s.ids.end() || m->from != from->second)
          return;
        (void)s.node->step(std::move(*m));
        drive(self);
      },
      [=](learn_atom, engram_record& value, uint32_t min_nodes,
          uint64_t timeout_ms) -> caf::result<engram_id> {
        if (!from_here())
          return refused();
        auto& s = self->state;
        if (value.scope.kind() != scope_kind::universal)
          return to_caf(make_error(errc::invalid_scope,
                                   "a write with consensus goes to the "
                                   "Universal scope, not "
                                       + value.scope.to_string()));
        // (At most an hour: a write that waits longer is lost to its client.)
        timeout_ms = std::min<uint64_t>(timeout_ms, 3'600'000);
        auto quorum = s.conf.voters.size() / 2 + 1;
        auto needed = min_nodes == 0 ? quorum : min_nodes;
        if (auto have = reachable(s); have < needed)
          return to_caf(make_error(errc::unavailable,
                                   std::to_string(have) + " of the "
                                       + std::to_string(s.names.size())
                                       + " members of the Universal scope are "
                                         "reachable; the write needs "
                                       + std::to_string(needed)));
        value.id = derive_id(value.scope, value.body);
        // Stamped here: the log carries the stamps, every member holds them.
        value.created = s.clock->now();
        value.updated = value.created;
        if (auto ok = validate(value); !ok)
          return to_caf(ok.error_value());
        v1::UniversalWrite w;
        w.set_node(s.ctx->config.node_id);
        w.set_incarnation(s.incarnation);
        auto request = ++s.next_request;
        w.set_request(request);
        messages::to_proto(value, *w.mutable_engram());
        auto size = w.engram().ByteSizeLong();
        if (size > max_write_bytes)
          return to_caf(make_error(
              errc::limit_exceeded,
              "a Universal-scope fact of " + std::to_string(size)
                  + " bytes exceeds " + std::to_string(max_write_bytes)));
        if (s.state_bytes + size > max_state_bytes)
          return to_caf(make_error(
              errc::limit_exceeded,
              "the Universal scope holds " + std::to_string(s.state_bytes)
                  + " bytes; it is bounded at "
                  + std::to_string(max_state_bytes)
                  + " (its snapshots travel in one frame)"));
        auto err = s.node->propose(messages::serialize(w));
        if (err != c::step_error::none)
          return to_caf(make_error(
              errc::unavailable, "the Universal scope has no leader reachable "
                                 "from node "
                                     + s.ctx->config.node_id + " ("
                                     + c::to_string(err) + ")"));
        auto rp = self->make_response_promise<engram_id>();
        s.writes[request] = pending_write{
            rp, value.id,
            clock_type::now() + std::chrono::milliseconds{timeout_ms}};
        drive(self);
        return rp;
      },
      [=](query_atom,
          const query_filter& filter) -> caf::result<std::vector<memory_view>> {
        if (!from_here())
          return refused();
        auto& s = self->state;
        auto request = s.ctx->config.node_id + "/"
                       + std::to_string(s.incarnation) + "/r"
                       + std::to_string(++s.next_request);
        if (s.node->read_index(request) != c::step_error::none)
          return to_caf(
              make_error(errc::unavailable, "the Universal scope has no leader "
                                            "reachable from node "
                                                + s.ctx->config.node_id));
        auto rp = self->make_response_promise<std::vector<memory_view>>();
        s.reads[request] = pending_read{
            rp, filter, std::nullopt,
            clock_type::now() + s.ctx->config.consensus.election_timeout * 5};
        drive(self);
        return rp;
      },
  };
}

} // namespace

consensus_actor spawn_consensus(caf::local_actor* parent,
                                node_context_ptr ctx) {
  return parent->spawn<caf::monitored>(consensus_impl, std::move(ctx));
}

} // namespace engram::actors
