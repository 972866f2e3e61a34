// The agent actor: one node's replica of an agent's Agent-scope memory.
// Every change is recorded durably (one synced RocksDB batch) before it is
// acknowledged, then pushed to the agent's sync sessions.

#include "actors/internal/spawn.hpp"
#include "actors/node.hpp"
#include "core/query.hpp"
#include "federation/codec.hpp"
#include "federation/share.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>
#include <unordered_set>

#include "engram/v1/sync.pb.h"

namespace engram::actors {

namespace {

struct agent_state {
  node_context_ptr ctx;
  agent_config cfg;
  std::unique_ptr<hybrid_logical_clock> clock;
  std::unique_ptr<replica> mem;
  std::unique_ptr<persistence::store> db;
  /// Batches this agent queued for the node's write queue, and the last one
  /// written.
  uint64_t writes_queued = 0;
  uint64_t writes_done = 0;
  /// Replies waiting for a batch (and those before it) to be durable:
  /// (ticket, reply).
  std::deque<std::pair<uint64_t, std::function<void()>>> after_write;
  /// The sync sessions of this agent, by peer node.
  std::vector<std::pair<std::string, session_actor>> sessions;
  /// Where this agent's engrams live (recomputed when the cluster's
  /// members are not configured and a new peer appears).
  placement place;
  uint64_t place_version = ~uint64_t{0};
  /// This agent's actors on other nodes (forwarded writes, reads).
  std::map<std::string, agent_actor> remote;
  /// The scope held: Agent{id}, or Collective{id} for a federation.
  memory_scope hosted;
  /// A federation's rules, from the state fact in its Collective memory.
  std::optional<federation::federation_state> fed;
  /// This node's trust in the federation's members (its trust model, and
  /// the reputations verifications and contradictions earned here).
  federation::trust_book trust;
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
  /// A federation's broadcasts waiting for members whose node is not
  /// reachable now: per member, (sender, text, message id), oldest first.
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
  /// This replica held memories when it was loaded, or a session found it
  /// caught up with a peer since (and it holds memories). While it is empty
  /// and not caught up, a read at a level other than Local consults a
  /// replica on another node too: a node that never held the agent must not
  /// answer "nothing" while its peers hold memories.
  bool caught_up = false;

  bool is_federation() const { return hosted.kind() == scope_kind::collective; }

  static inline const char* name = "engram.agent";
};

using agent_ptr = agent_actor::stateful_pointer<agent_state>;

const std::string& self_node(agent_ptr self) {
  return self->state.ctx->config.node_id;
}

const placement& placing(agent_ptr self) {
  auto& st = self->state;
  auto& cfg = st.ctx->config;
  auto version = cfg.members.empty() ? st.ctx->cluster->version() : 0;
  if (version == st.place_version)
    return st.place;
  auto members = cfg.members;
  if (members.empty()) {
    members = st.ctx->cluster->known();
    members.push_back(cfg.node_id);
  }
  // node::start validated the configuration.
  if (auto p = placement::make(cfg.replication, cfg.partitioning,
                               std::move(members), st.cfg.agent_id))
    st.place = std::move(*p);
  st.place_version = version;
  return st.place;
}

// Whether `node` counts as reachable (`grace`: how long a lost primary
// keeps its role, PrimarySecondary).
placement::live_fn liveness(agent_ptr self, milliseconds grace = {}) {
  auto ctx = self->state.ctx;
  return [ctx, grace](const std::string& node) {
    return node == ctx->config.node_id || ctx->cluster->live(node, grace);
  };
}

// The versions of one engram held by `node`?
std::function<bool(const std::vector<version>&)>
held_by(const placement& place, const std::string& node) {
  return [&place, node](const std::vector<version>& vs) {
    for (auto& v : vs)
      if (place.holds(node, v.value))
        return true;
    return false;
  };
}

// -- messages
// ------------------------------------------------------------------

/// The key prefix of the reserved facts holding an agent's messages.
constexpr const char* message_prefix = "_msg.";

std::string message_key(uint64_t id) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string key = message_prefix;
  for (int shift = 60; shift >= 0; shift -= 4)
    key += digits[(id >> shift) & 0xf];
  return key;
}

bool is_message(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  return f != nullptr && f->key.rfind(message_prefix, 0) == 0;
}

/// A message of the inbox, decoded from its fact.
struct inbox_message {
  engram_id engram;
  uint64_t id = 0;
  std::string from;
  std::string text;
  uint64_t sent_us = 0;
};

std::optional<inbox_message> decode_message(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  if (f == nullptr || e.tombstone)
    return std::nullopt;
  v1::InboxMessage m;
  if (!m.ParseFromString(f->value))
    return std::nullopt;
  return inbox_message{e.id, m.id(), m.from(), m.text(), m.sent_us()};
}

// The fact holding message `id` told to `agent`.
engram_record message_record(const std::string& agent, uint64_t id,
                             const std::string& from, const std::string& text,
                             uint64_t sent_us) {
  v1::InboxMessage m;
  m.set_id(id);
  m.set_from(from);
  m.set_text(text);
  m.set_sent_us(sent_us);
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent(agent);
  e.body = fact{message_key(id), m.SerializeAsString()};
  e.confidence = 1.0;
  e.origin.origin_agent = is_utf8(from) ? from : std::string{};
  return e;
}

// Keeps `unread` up to date with what the replica now holds for `id`.
void note_message(agent_state& st, const engram_id& id) {
  if (!st.unread)
    return;
  auto now = st.mem->get(id);
  if (now && !now->tombstone && is_message(*now))
    st.unread->insert(id);
  else
    st.unread->erase(id);
}

// Notes the messages a change (a write, a merge) touched.
void note_messages(agent_state& st, const replica_delta& delta) {
  if (!st.unread)
    return;
  for (auto& entry : delta.entries) {
    bool message = st.unread->count(entry.id) > 0; // e.g. forgotten (read)
    for (auto& v : entry.versions)
      message = message || is_message(v.value);
    if (message)
      note_message(st, entry.id);
  }
}

// The messages this replica holds unread (a scan the first time).
const std::set<engram_id>& unread_messages(agent_state& st) {
  if (!st.unread) {
    st.unread.emplace();
    query_filter facts;
    facts.type = memory_type::semantic;
    facts.kind = scope_kind::agent;
    std::vector<memory_view> views;
    select(*st.mem, facts, views);
    for (auto& v : views)
      if (is_message(v.value))
        st.unread->insert(v.value.id);
  }
  return *st.unread;
}

// The views of the messages `ids` this replica holds, read (forgotten)
// ones included: a reader merging several replicas' answers must see that
// one of them already marked a message read.
std::vector<memory_view> message_views(agent_state& st,
                                       const std::vector<engram_id>& ids) {
  std::vector<memory_view> out;
  for (auto& id : ids)
    for (auto& v : st.mem->read(id))
      if (is_message(v.value))
        out.push_back(std::move(v));
  return out;
}

// The unread messages this replica holds, as views.
std::vector<memory_view> message_views(agent_state& st) {
  std::vector<memory_view> out;
  for (auto& id : unread_messages(st))
    for (auto& v : st.mem->read(id))
      if (!v.value.tombstone && is_message(v.value))
        out.push_back(std::move(v));
  return out;
}

// Records a change; a change that cannot be made durable must not be
// served from memory only: the actor fails and its supervisor reloads the
// store.
[[noreturn]] void cannot_record(agent_ptr self, const std::string& why) {
  throw std::runtime_error("agent " + self->state.cfg.agent_id
                           + ": cannot record a change: " + why);
}

// Records a change durably before returning: on this thread when nothing
// of this agent's is queued (no thread hop for a lone write), else through
// the node's write queue, after the batches queued before it.
void record(agent_ptr self, const replica_delta& delta) {
  auto& st = self->state;
  if (delta.empty())
    return;
  auto batch = st.db->prepare(delta, *st.mem);
  if (!batch)
    cannot_record(self, batch.error_value().to_string());
  auto ok = st.writes_done == st.writes_queued
                ? batch->write()
                : st.ctx->writes->write(std::move(*batch));
  if (!ok)
    cannot_record(self, ok.error_value().to_string());
}

// Queues a change for the node's write queue and returns: `reply` runs on
// this actor once the change, and every batch queued before it, is durable
// (an empty change waits for those only). The agent goes on merging while
// the queue writes and syncs: one sync for what queued meanwhile.
void record_then(agent_ptr self, const replica_delta& delta,
                 std::function<void()> reply) {
  auto& st = self->state;
  if (!st.ctx->writes->threaded()) {
    record(self, delta); // a simulation: written before going on
  } else if (!delta.empty()) {
    auto batch = st.db->prepare(delta, *st.mem);
    if (!batch)
      cannot_record(self, batch.error_value().to_string());
    auto ticket = ++st.writes_queued;
    auto hdl = caf::actor_cast<agent_actor>(self);
    st.ctx->writes->submit(
        std::move(*batch), [hdl, ticket](expected<void> written) {
          caf::anon_send(hdl, written_atom::value, ticket,
                         written ? std::string{}
                                 : written.error_value().to_string());
        });
  }
  if (st.writes_done == st.writes_queued)
    reply();
  else
    st.after_write.emplace_back(st.writes_queued, std::move(reply));
}

// Ships a change to every peer holding a share of it (all but `skip`).
void push(agent_ptr self, const replica_delta& delta,
          const std::vector<std::string>& skip = {}) {
  if (delta.empty())
    return;
  auto& place = placing(self);
  for (auto& [peer, s] : self->state.sessions) {
    if (std::find(skip.begin(), skip.end(), peer) != skip.end())
      continue;
    if (place.everywhere()) {
      self->send(s, push_atom::value, delta);
      continue;
    }
    auto share = filter_delta(delta, held_by(place, peer));
    if (!share.entries.empty())
      self->send(s, push_atom::value, std::move(share));
  }
}

/// The replicas besides this node a write to `e` must reach before it is
/// acknowledged, and the sessions to them.
struct write_plan {
  size_t needed = 0;
  std::vector<std::pair<std::string, session_actor>> targets;
};

// Fails with `unavailable` (before anything is written) when too few
// replicas are reachable for the configured level.
expected<write_plan> plan_write(agent_ptr self, const engram_record& e) {
  auto& st = self->state;
  // A clock off from most peers would win every newest-wins conflict; so
  // would this replica's logical clock if it ran ahead with the wall clock
  // before (it never goes back): refused until the wall clock catches up.
  auto why = st.ctx->cluster->clock_refusal();
  auto wall = static_cast<int64_t>(st.ctx->config.wall_clock->now_us());
  auto ahead = static_cast<int64_t>(st.clock->last().wall_us) - wall;
  if (why.empty() && ahead > st.ctx->cluster->max_offset_us())
    why = "the memory's clock on this node is " + std::to_string(ahead / 1000)
          + " ms ahead of the wall clock (the wall clock ran ahead before): "
            "writes are refused until it catches up";
  if (!why.empty()) {
    auto err = make_error(errc::clock_offset, why + "; nothing was stored");
    err.subject = e.id.to_string();
    return err;
  }
  auto& place = placing(self);
  auto level = st.ctx->config.replication.consistency;
  write_plan plan;
  size_t replicas = 0;
  bool here = false;
  if (place.everywhere()) {
    replicas = place.members().size();
    here = true;
  } else {
    auto& list = place.replicas(place.partition_of(e));
    replicas = list.size();
    here = std::find(list.begin(), list.end(), self_node(self)) != list.end();
  }
  auto needed = required_replicas(level, replicas);
  if (here && needed > 0)
    --needed;
  if (level == consistency_level::one || level == consistency_level::local)
    needed = 0; // this replica suffices
  if (needed == 0)
    return plan;
  auto live = liveness(self);
  // A replica whose clock is off is not synced with: it cannot confirm.
  for (auto& [peer, s] : st.sessions)
    if (place.holds(peer, e) && live(peer) && st.ctx->cluster->clock_ok(peer))
      plan.targets.emplace_back(peer, s);
  if (plan.targets.size() < needed) {
    auto err
        = make_error(errc::unavailable,
                     std::string{"write at "} + to_string(level) + " needs "
                         + std::to_string(needed + (here ? 1 : 0)) + " of "
                         + std::to_string(replicas) + " replicas, "
                         + std::to_string(plan.targets.size() + (here ? 1 : 0))
                         + " reachable: refused, nothing was stored");
    err.subject = e.id.to_string();
    return err;
  }
  plan.needed = needed;
  return plan;
}

// Records a change here, ships it, and answers once the replicas the plan
// needs confirmed it durable.
caf::result<engram_id> commit(agent_ptr self, expected<replica_delta> delta,
                              write_plan plan) {
  if (!delta)
    return to_caf(delta.error_value());
  record(self, *delta);
  note_messages(self->state, *delta);
  engram_id id;
  if (!delta->entries.empty())
    id = delta->entries.front().id;
  if (plan.needed == 0) {
    push(self, *delta);
    return id;
  }
  std::vector<std::string> direct;
  for (auto& [peer, _] : plan.targets)
    direct.push_back(peer);
  push(self, *delta, direct);
  auto rp = self->make_response_promise<engram_id>();
  struct tally {
    size_t acks = 0;
    size_t fails = 0;
    bool done = false;
    std::vector<std::string> failed;
  };
  auto t = std::make_shared<tally>();
  auto needed = plan.needed;
  auto targets = plan.targets.size();
  auto level = self->state.ctx->config.replication.consistency;
  auto timeout = self->state.ctx->config.replication.write_timeout;
  for (auto& [peer, s] : plan.targets) {
    auto name = peer;
    self->request(s, timeout, replicate_atom::value, *delta)
        .then(
            [=](bool) mutable {
              if (!t->done && ++t->acks == needed) {
                t->done = true;
                rp.deliver(id);
              }
            },
            [=](caf::error& err) mutable {
              t->failed.push_back(name + " (" + from_caf(err).message + ")");
              if (t->done || ++t->fails <= targets - needed)
                return;
              t->done = true;
              std::string who;
              for (auto& f : t->failed)
                who += (who.empty() ? "" : ", ") + f;
              // Stored here: not refused. The caller must not retry it as
              // a new write; it reaches the replicas when they return.
              auto unconfirmed = make_error(
                  errc::not_confirmed,
                  std::string{"write at "} + to_string(level)
                      + " stored on this node but not confirmed by enough "
                        "replicas: "
                      + who + "; it syncs when they return");
              unconfirmed.subject = id.to_string();
              rp.deliver(to_caf(unconfirmed));
            });
  }
  return rp;
}

// Runs `f` with this agent's actor on `node` (hosted there on demand).
template<class F, class Fail>
void with_remote(agent_ptr self, const std::string& node, F f, Fail fail) {
  auto& st = self->state;
  if (auto i = st.remote.find(node); i != st.remote.end()) {
    f(i->second);
    return;
  }
  auto peer = st.ctx->cluster->peer(node);
  if (!peer) {
    auto err = to_caf(
        make_error(errc::unavailable, "node " + node + " is not connected"));
    fail(err);
    return;
  }
  self->request(caf::actor_cast<node_actor>(*peer), std::chrono::seconds{5},
                agent_atom::value, st.cfg.agent_id)
      .then(
          [=](agent_actor& hdl) mutable {
            self->state.remote[node] = hdl;
            f(hdl);
          },
          [=](caf::error& err) mutable {
            fail(err);
          });
}

// A write coordinated here: plan (fail fast when too few replicas are
// reachable), write, commit.
caf::result<engram_id> write_here(agent_ptr self, engram_record value) {
  // Memories shared read-only with this agent are not modified.
  auto id = value.id.empty() ? derive_id(value.scope, value.body) : value.id;
  if (auto current = self->state.mem->get(id);
      current && federation::is_read_only(*current))
    return to_caf(make_error(errc::permission_denied,
                             "engram " + id.to_string() + " was shared with "
                                 + self->state.cfg.agent_id
                                 + " read-only: it cannot be modified"));
  value.id = id;
  auto plan = plan_write(self, value);
  if (!plan)
    return to_caf(plan.error_value());
  return commit(self, self->state.mem->put(std::move(value)), std::move(*plan));
}

// A new value of an engram: written here when this node coordinates its
// partition, else forwarded to the node that does.
caf::result<engram_id> route_write(agent_ptr self, engram_record value) {
  auto& st = self->state;
  auto& place = placing(self);
  if (place.everywhere())
    return write_here(self, std::move(value));
  if (value.id.empty())
    value.id = derive_id(value.scope, value.body);
  if (st.ctx->config.partitioning.strategy == partition_strategy::time
      && value.created == hlc_timestamp{})
    value.created = st.clock->now(); // its bucket: now
  auto p = place.partition_of(value);
  auto& repl = st.ctx->config.replication;
  auto grace = repl.strategy == replication_strategy::primary_secondary
                   ? repl.failover.promote_after
                   : milliseconds{0};
  auto target = place.coordinator(p, self_node(self), liveness(self, grace));
  if (!target) {
    std::string nodes;
    for (auto& n : place.replicas(p))
      nodes += (nodes.empty() ? "" : ", ") + n;
    auto err = make_error(errc::unavailable,
                          "no replica of partition " + std::to_string(p)
                              + " is reachable (" + nodes
                              + "): refused, nothing was stored");
    err.subject = value.id.to_string();
    return to_caf(err);
  }
  if (*target == self_node(self))
    return write_here(self, std::move(value));
  auto rp = self->make_response_promise<engram_id>();
  auto node = *target;
  auto timeout = repl.write_timeout * 2;
  with_remote(
      self, node,
      [=](const agent_actor& hdl) mutable {
        self->request(hdl, timeout, store_atom::value, value)
            .then(
                [=](engram_id& id) mutable {
                  rp.deliver(id);
                },
                [=](caf::error& err) mutable {
                  auto e = from_caf(err);
                  if (!is_engram_error(err)) {
                    // The request or its answer was lost on the way: the
                    // coordinator may have stored the write, or not.
                    self->state.remote.erase(node);
                    e = make_error(errc::timeout,
                                   "node " + node
                                       + " (coordinator of partition "
                                       + std::to_string(p)
                                       + ") did not answer: the write's "
                                         "outcome is unknown ("
                                       + e.message + ")");
                    e.subject = value.id.to_string();
                  } else if (e.code == errc::timeout
                             || e.code == errc::unavailable) {
                    self->state.remote.erase(node);
                  }
                  rp.deliver(to_caf(e));
                });
      },
      [=](caf::error& err) mutable {
        auto e = make_error(errc::unavailable,
                            "node " + node + " (coordinator of partition "
                                + std::to_string(p)
                                + ") is unreachable: " + from_caf(err).message
                                + ": refused, nothing was stored");
        e.subject = value.id.to_string();
        rp.deliver(to_caf(e));
      });
  return rp;
}

// Forget, archive, answer: a change of an engram this node may not hold.
// Done here when it holds it; else on the first reachable node that does.
template<class Make>
caf::result<engram_id>
change(agent_ptr self, const engram_id& id, Make make_change,
       std::function<void(const agent_actor&,
                          caf::typed_response_promise<engram_id>)>
           remotely) {
  auto& st = self->state;
  auto current = st.mem->get(id);
  if (current && federation::is_read_only(*current))
    return to_caf(make_error(errc::permission_denied,
                             "engram " + id.to_string() + " was shared with "
                                 + st.cfg.agent_id
                                 + " read-only: it cannot be modified"));
  if (current || placing(self).everywhere()) {
    write_plan plan;
    if (current) {
      auto planned = plan_write(self, *current);
      if (!planned)
        return to_caf(planned.error_value());
      plan = std::move(*planned);
    }
    return commit(self, make_change(*st.mem), std::move(plan));
  }
  // Not held here: ask the peers in turn.
  auto rp = self->make_response_promise<engram_id>();
  auto peers = std::make_shared<std::vector<std::string>>();
  for (auto& [peer, _] : st.sessions)
    if (st.ctx->cluster->live(peer))
      peers->push_back(peer);
  auto next = std::make_shared<std::function<void(size_t)>>();
  *next = [=](size_t i) mutable {
    if (i >= peers->size()) {
      rp.deliver(to_caf(
          make_error(errc::unknown_engram,
                     "no reachable replica holds engram " + id.to_string())));
      *next = nullptr; // breaks the cycle
      return;
    }
    with_remote(
        self, (*peers)[i],
        [=](const agent_actor& hdl) mutable {
          self->request(hdl, std::chrono::seconds{5}, query_atom::value,
                        query_filter{}, code_of(consistency_level::local))
              .then(
                  [=](std::vector<memory_view>& views) mutable {
                    for (auto& v : views)
                      if (v.value.id == id) {
                        remotely(hdl, rp);
                        *next = nullptr;
                        return;
                      }
                    (*next)(i + 1);
                  },
                  [=](caf::error&) mutable {
                    (*next)(i + 1);
                  });
        },
        [=](caf::error&) mutable {
          (*next)(i + 1);
        });
  };
  (*next)(0);
  return rp;
}

// Facts the runtime keeps in a memory for itself: a federation's state,
// pending shares. Queries do not show them.
bool reserved(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  return f != nullptr && !f->key.empty() && f->key[0] == '_'
         && (f->key == federation::state_key()
             || f->key.rfind(federation::share_key_prefix(), 0) == 0
             || f->key.rfind(message_prefix, 0) == 0);
}

std::vector<memory_view> local_query(agent_ptr self,
                                     const query_filter& filter) {
  std::vector<memory_view> result;
  select(*self->state.mem, filter, result);
  result.erase(std::remove_if(result.begin(), result.end(),
                              [](const memory_view& v) {
                                return reserved(v.value);
                              }),
               result.end());
  finish(filter, result);
  return result;
}

// Per engram, the alternatives of the replica whose newest write is the
// newest; then ordered and limited as the filter says.
std::vector<memory_view>
merge_reads(const query_filter& filter,
            std::vector<std::vector<memory_view>>& answers) {
  struct best {
    hlc_timestamp newest;
    size_t source = 0;
  };
  std::map<engram_id, best> winners;
  for (size_t i = 0; i < answers.size(); ++i)
    for (auto& v : answers[i]) {
      auto [it, fresh] = winners.emplace(v.value.id, best{v.value.updated, i});
      if (!fresh && it->second.newest < v.value.updated)
        it->second = best{v.value.updated, i};
    }
  std::vector<memory_view> result;
  for (size_t i = 0; i < answers.size(); ++i)
    for (auto& v : answers[i])
      if (winners[v.value.id].source == i)
        result.push_back(std::move(v));
  finish(filter, result);
  return result;
}

caf::result<std::vector<memory_view>>
read(agent_ptr self, const query_filter& filter, level_code code) {
  auto& st = self->state;
  auto level = code == configured_level ? st.ctx->config.replication.consistency
                                        : static_cast<consistency_level>(code);
  if (code != configured_level && code > code_of(consistency_level::local))
    return to_caf(
        make_error(errc::invalid_argument,
                   "unknown consistency level " + std::to_string(code)));
  if (level == consistency_level::local)
    return local_query(self, filter);
  auto nodes = placing(self).read_set(level, self_node(self), liveness(self));
  if (!nodes)
    return to_caf(nodes.error_value());
  if (nodes->size() == 1 && !st.caught_up && st.mem->size() == 0
      && (*nodes)[0] == self_node(self)) {
    // Empty and not caught up yet: a live node hosting the agent answers
    // too (its memories may just not have arrived).
    for (auto& n : st.ctx->dir->hosts(st.cfg.agent_id))
      if (n != self_node(self) && st.ctx->cluster->live(n)) {
        nodes->push_back(n);
        break;
      }
  }
  if (nodes->size() == 1)
    return local_query(self, filter);
  auto rp = self->make_response_promise<std::vector<memory_view>>();
  struct gather {
    std::vector<std::vector<memory_view>> answers;
    size_t waiting = 0;
    bool failed = false;
  };
  auto g = std::make_shared<gather>();
  // Every node asked must answer: unlimited, so the merge sees everything.
  auto unlimited = filter;
  unlimited.limit = 0;
  g->answers.push_back(local_query(self, unlimited));
  g->waiting = nodes->size() - 1;
  auto fail = [=](const std::string& node, const caf::error& err) mutable {
    if (g->failed)
      return;
    g->failed = true;
    self->state.remote.erase(node);
    rp.deliver(to_caf(
        make_error(errc::unavailable,
                   std::string{"read at "} + to_string(level) + ": node " + node
                       + " did not answer: " + from_caf(err).message)));
  };
  for (size_t i = 1; i < nodes->size(); ++i) {
    auto node = (*nodes)[i];
    with_remote(
        self, node,
        [=](const agent_actor& hdl) mutable {
          self->request(hdl, std::chrono::seconds{5}, query_atom::value,
                        unlimited, code_of(consistency_level::local))
              .then(
                  [=](std::vector<memory_view>& views) mutable {
                    if (g->failed)
                      return;
                    g->answers.push_back(std::move(views));
                    if (--g->waiting == 0)
                      rp.deliver(merge_reads(filter, g->answers));
                  },
                  [=](caf::error& err) mutable {
                    fail(node, err);
                  });
        },
        [=](caf::error& err) mutable {
          fail(node, err);
        });
  }
  return rp;
}

// -- federations ----------------------------------------------------------

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
  if (!st.is_federation())
    return;
  auto rec = st.mem->get(state_id(st.cfg.agent_id));
  if (!rec || rec->tombstone)
    return;
  auto decoded = federation::decode_state(std::get<fact>(rec->body).value);
  if (decoded && (!st.fed || decoded->version() >= st.fed->version()))
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

// Stores a new state as the federation's state fact (synced like any
// memory), and answers with its bytes.
std::string write_state(agent_ptr self, federation::federation_state next,
                        replica_delta* shipped = nullptr) {
  auto& st = self->state;
  auto bytes = federation::encode(next);
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = next.shared_scope();
  e.body = fact{federation::state_key(), bytes};
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
  adopt_state(self, std::move(next));
  return bytes;
}

// Whether `agent` runs on this node or on a reachable peer.
bool agent_live(agent_ptr self, const std::string& agent) {
  auto& st = self->state;
  if (st.ctx->dir->agent(agent))
    return true;
  for (auto& n : st.ctx->dir->hosts(agent))
    if (st.ctx->cluster->live(n))
      return true;
  return false;
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

// Applies a federation operation to the known state. Errors name what was
// refused and why; a refused operation changes nothing.
expected<federation::federation_state>
apply_operation(const federation::federation_state& current,
                const std::string& op, const std::string& agent,
                const std::string& arg, uint64_t now_us) {
  auto next = current;
  expected<void> ok;
  if (op == "join") {
    auto role = federation::parse_role(arg.empty() ? "member" : arg);
    if (!role)
      return role.error_value();
    if (auto* m = current.find(agent); m != nullptr) {
      if (m->role == *role || *role == federation::agent_role::member)
        return current; // joining again: already in
      return make_error(errc::invalid_argument,
                        agent + " is already " + to_string(m->role)
                            + " of federation " + current.name()
                            + " (the leader changes roles)");
    }
    ok = next.join(agent, *role, now_us);
  } else if (op == "leave") {
    ok = next.leave(agent);
  } else if (op == "remove") {
    ok = next.remove(agent, arg);
  } else if (op == "set_role") {
    auto colon = arg.rfind(':');
    if (colon == std::string::npos)
      return make_error(errc::invalid_argument,
                        "set_role needs <agent>:<role>, not '" + arg + "'");
    auto role = federation::parse_role(arg.substr(colon + 1));
    if (!role)
      return role.error_value();
    ok = next.set_role(agent, arg.substr(0, colon), *role);
  } else if (op == "set_trust") {
    auto model = federation::decode_trust(arg);
    if (!model)
      return model.error_value();
    ok = next.set_trust(agent, std::move(*model));
  } else if (op == "set_conflicts") {
    auto policy = federation::parse_belief_policy(arg);
    if (!policy)
      return policy.error_value();
    ok = next.set_belief_conflicts(agent, *policy);
  } else if (op == "state") {
    if (auto allowed = current.check(agent, federation::operation::read);
        !allowed)
      return allowed.error_value();
    return current;
  } else {
    return make_error(errc::invalid_argument,
                      "unknown federation operation '" + op + "'");
  }
  if (!ok)
    return ok.error_value();
  return next;
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
      auto next = apply_operation(
          *st.fed, "join", agent,
          federation::to_string(role == federation::agent_role::leader
                                    ? federation::agent_role::member
                                    : role),
          st.clock->now().wall_us);
      if (next && next->version() != st.fed->version())
        write_state(self, std::move(*next));
    }
    ++i;
  }
}

caf::result<std::string> federation_op(agent_ptr self, const std::string& op,
                                       const std::string& agent,
                                       const std::string& arg) {
  auto& st = self->state;
  if (!st.is_federation())
    return to_caf(
        make_error(errc::invalid_argument, st.cfg.agent_id
                                               + " is an agent, not a "
                                                 "federation"));
  if (op == "create") {
    auto created = federation::decode_state(arg);
    if (!created)
      return to_caf(created.error_value());
    if (created->id() != st.cfg.agent_id)
      return to_caf(make_error(errc::invalid_argument,
                               "the state is of federation " + created->id()));
    if (st.fed)
      return to_caf(
          make_error(errc::invalid_argument,
                     "federation " + st.fed->name() + " exists already"));
    if (created->leader() != agent)
      return to_caf(make_error(errc::permission_denied,
                               agent + " cannot create federation "
                                   + created->name() + " led by "
                                   + created->leader()));
    return write_state(self, std::move(*created));
  }
  if (!st.fed) {
    // Not known here yet (a node joining): a node hosting the federation
    // decides, and the state arrives here by sync.
    auto hosts = st.ctx->dir->hosts(st.cfg.agent_id);
    std::string target;
    for (auto& n : hosts)
      if (st.ctx->cluster->live(n)) {
        target = n;
        break;
      }
    if (target.empty())
      return to_caf(
          make_error(errc::unknown_agent,
                     "no reachable node knows federation " + st.cfg.agent_id));
    auto rp = self->make_response_promise<std::string>();
    with_remote(
        self, target,
        [=](const agent_actor& owner) mutable {
          self->request(owner, std::chrono::seconds{5}, federation_atom::value,
                        op, agent, arg)
              .then(
                  [=](std::string& bytes) mutable {
                    if (auto state = federation::decode_state(bytes)) {
                      auto& s = self->state;
                      if (!s.fed || state->version() >= s.fed->version())
                        adopt_state(self, std::move(*state));
                    }
                    rp.deliver(bytes);
                  },
                  [=](caf::error& err) mutable {
                    rp.deliver(err);
                  });
        },
        [=](caf::error& err) mutable {
          rp.deliver(err);
        });
    return rp;
  }
  if (op == "verify" || op == "contradict") {
    // A member reports that `arg`'s memory proved right / wrong:
    // Reputation trust follows (kept by this node).
    if (auto ok = st.fed->check(agent, federation::operation::read); !ok)
      return to_caf(ok.error_value());
    if (st.fed->find(arg) == nullptr)
      return to_caf(
          make_error(errc::invalid_argument,
                     arg + " is not a member of federation " + st.fed->name()));
    auto now = st.clock->now().wall_us;
    if (op == "verify")
      st.trust.verified(arg, now);
    else
      st.trust.contradicted(arg, now);
    return federation::encode(*st.fed);
  }
  auto next = apply_operation(*st.fed, op, agent, arg, st.clock->now().wall_us);
  if (!next)
    return to_caf(next.error_value());
  if (auto why = st.ctx->cluster->clock_refusal();
      !why.empty() && next->version() != st.fed->version())
    return to_caf(make_error(errc::clock_offset, why));
  if (op == "state" || next->version() == st.fed->version())
    return federation::encode(*next);
  replica_delta shipped;
  auto bytes = write_state(self, std::move(*next), &shipped);
  if (!has_local_member(self)) {
    // Nobody here belongs to it any more: stop holding (and receiving) it,
    // once the peers have the new state (the leave must not be lost with
    // this replica); bounded by the write timeout.
    auto rp = self->make_response_promise<std::string>();
    auto& sessions = st.sessions;
    if (sessions.empty()) {
      rp.deliver(bytes);
      self->quit();
      return rp;
    }
    auto waiting = std::make_shared<size_t>(sessions.size());
    auto done = [=]() mutable {
      if (--*waiting > 0)
        return;
      rp.deliver(bytes);
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
  return bytes;
}

// -- sharing ----------------------------------------------------------------

engram_id pending_share_id(const std::string& agent,
                           const std::string& share_id) {
  return derive_id(memory_scope::agent(agent),
                   fact{federation::share_key_prefix() + share_id, {}});
}

// Stores a change made here (no consistency wait: the agent's own memory).
void commit_local(agent_ptr self, expected<replica_delta> delta) {
  if (!delta)
    return;
  record(self, *delta);
  push(self, *delta);
}

// A share offered to this agent: kept pending (durably, in its memory).
caf::result<std::string> offer(agent_ptr self, const std::string& bytes) {
  auto& st = self->state;
  auto s = federation::decode_share(bytes);
  if (!s)
    return to_caf(s.error_value());
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent(st.cfg.agent_id);
  e.body = fact{federation::share_key_prefix() + s->share_id, bytes};
  e.origin.origin_agent = s->from;
  commit_local(self, st.mem->put(std::move(e)));
  return s->share_id;
}

std::vector<federation::share> pending_shares(agent_ptr self) {
  std::vector<federation::share> result;
  std::vector<memory_view> views;
  select(*self->state.mem, query_filter{}, views);
  for (auto& v : views) {
    auto* f = std::get_if<fact>(&v.value.body);
    if (f == nullptr || f->key.rfind(federation::share_key_prefix(), 0) != 0)
      continue;
    if (auto s = federation::decode_share(f->value))
      result.push_back(std::move(*s));
  }
  return result;
}

caf::result<std::string> share_op(agent_ptr self, const std::string& op,
                                  const std::string& from,
                                  const std::string& arg) {
  auto& st = self->state;
  if (op == "list")
    return federation::encode(pending_shares(self));
  auto line = arg.find('\n');
  auto share_id = arg.substr(0, line);
  auto key = pending_share_id(st.cfg.agent_id, share_id);
  auto pending = st.mem->get(key);
  if (!pending || pending->tombstone)
    return to_caf(make_error(errc::unknown_engram,
                             "no pending share " + share_id + " for agent "
                                 + st.cfg.agent_id));
  auto s = federation::decode_share(std::get<fact>(pending->body).value);
  if (!s)
    return to_caf(s.error_value());
  if (op == "decline") {
    commit_local(self, st.mem->forget(key, "declined"));
    return share_id;
  }
  if (op != "accept")
    return to_caf(make_error(errc::invalid_argument,
                             "unknown share operation '" + op + "'"));
  if (!from.empty() && from != s->from)
    return to_caf(
        make_error(errc::invalid_argument, "share " + share_id + " comes from "
                                               + s->from + ", not " + from));
  double trust = 1.0;
  try {
    trust = line == std::string::npos ? 1.0 : std::stod(arg.substr(line + 1));
  } catch (const std::exception&) {
    return to_caf(make_error(errc::invalid_confidence,
                             "bad trust level '" + arg.substr(line + 1) + "'"));
  }
  if (!(trust >= 0 && trust <= 1))
    return to_caf(
        make_error(errc::invalid_confidence, "trust level must be in [0, 1]"));
  size_t n = 0;
  for (auto& m : federation::accept(*s, st.cfg.agent_id, trust)) {
    auto delta = st.mem->put(std::move(m));
    if (!delta)
      return to_caf(delta.error_value());
    commit_local(self, std::move(delta));
    ++n;
  }
  commit_local(self, st.mem->forget(key, "accepted"));
  return std::to_string(n);
}

// -- conflicts ---------------------------------------------------------------

// Answers a pending question; the resolution is a write that syncs.
caf::result<engram_id> answer_question(agent_ptr self, uint64_t conflict_id,
                                       const std::string& option) {
  auto& mem = *self->state.mem;
  auto delta = mem.answer(conflict_id, option);
  write_plan plan;
  if (delta && !delta->entries.empty()
      && !delta->entries.front().versions.empty())
    if (auto planned
        = plan_write(self, delta->entries.front().versions.front().value))
      plan = std::move(*planned);
  return commit(self, std::move(delta), std::move(plan));
}

// -- communication -----------------------------------------------------------

// Marks each message read (forgets its fact: the mark replicates like any
// write, at the configured level) and answers with those marked, oldest
// first, as alternating sender and text. A message whose mark failed stays
// unread for the next read; none marked: the first error.
void mark_read(agent_ptr self, std::vector<memory_view> views,
               caf::typed_response_promise<std::vector<std::string>> rp) {
  std::vector<inbox_message> msgs;
  for (auto& v : views)
    if (auto m = decode_message(v.value))
      msgs.push_back(std::move(*m));
  std::sort(msgs.begin(), msgs.end(), [](const auto& x, const auto& y) {
    return std::tie(x.sent_us, x.id) < std::tie(y.sent_us, y.id);
  });
  msgs.erase(std::unique(msgs.begin(), msgs.end(),
                         [](const auto& x, const auto& y) {
                           return x.engram == y.engram;
                         }),
             msgs.end());
  // What another read is marking, or what is read here already, is not
  // this read's to return.
  auto& st = self->state;
  msgs.erase(std::remove_if(msgs.begin(), msgs.end(),
                            [&](const inbox_message& m) {
                              auto now = st.mem->get(m.engram);
                              return st.claimed.count(m.engram) > 0
                                     || (now && now->tombstone);
                            }),
             msgs.end());
  for (auto& m : msgs)
    st.claimed.insert(m.engram);
  if (msgs.empty()) {
    rp.deliver(std::vector<std::string>{});
    return;
  }
  struct tally {
    std::vector<inbox_message> msgs;
    std::vector<bool> marked;
    size_t waiting = 0;
    std::optional<error> failure;
  };
  auto t = std::make_shared<tally>();
  t->marked.resize(msgs.size());
  t->waiting = msgs.size();
  t->msgs = std::move(msgs);
  auto done = [t, rp]() mutable {
    if (--t->waiting > 0)
      return;
    std::vector<std::string> out;
    for (size_t i = 0; i < t->msgs.size(); ++i)
      if (t->marked[i]) {
        out.push_back(t->msgs[i].from);
        out.push_back(t->msgs[i].text);
      }
    if (out.empty() && t->failure)
      rp.deliver(to_caf(*t->failure));
    else
      rp.deliver(std::move(out));
  };
  auto& cfg = st.ctx->config;
  auto timeout = 2 * cfg.replication.write_timeout + std::chrono::seconds{5};
  auto me = caf::actor_cast<agent_actor>(self);
  for (size_t i = 0; i < t->msgs.size(); ++i)
    self->request(me, timeout, forget_atom::value, t->msgs[i].engram,
                  std::string{"read"})
        .then(
            [=](engram_id&) mutable {
              self->state.claimed.erase(t->msgs[i].engram);
              t->marked[i] = true;
              done();
            },
            [=](caf::error& err) mutable {
              self->state.claimed.erase(t->msgs[i].engram);
              auto e = from_caf(err);
              // Stored here and syncing, or of unknown outcome (the mark
              // may be written): returned, never lost — at worst a message
              // whose mark failed comes back with a later read.
              t->marked[i] = e.code == errc::not_confirmed
                             || e.code == errc::timeout
                             || !is_engram_error(err);
              if (!t->marked[i] && !t->failure)
                t->failure = e;
              done();
            });
}

// The agent's unread messages from the replicas the configured level reads
// (this one alone at One): first each replica's unread messages, then, for
// all of them, each replica's view (a read mark included), merged per
// message: the newest answer (a read mark after the message) wins.
template<class F>
void gather_messages(agent_ptr self, F done) {
  auto& st = self->state;
  auto level = st.ctx->config.replication.consistency;
  if (level == consistency_level::local)
    level = consistency_level::one;
  auto nodes = placing(self).read_set(level, self_node(self), liveness(self));
  if (!nodes || nodes->size() <= 1) {
    done(message_views(st));
    return;
  }
  struct gather {
    std::vector<std::string> nodes;
    std::set<engram_id> candidates;
    std::vector<std::vector<memory_view>> answers;
    size_t waiting = 0;
  };
  auto g = std::make_shared<gather>();
  g->nodes.assign(nodes->begin() + 1, nodes->end());
  // Asks every other node, then runs `then` once all answered (or failed).
  auto ask_all = [self, g](std::vector<engram_id> ids, auto then) mutable {
    g->waiting = g->nodes.size();
    for (auto& node : g->nodes)
      with_remote(
          self, node,
          [=](const agent_actor& hdl) mutable {
            self->request(hdl, std::chrono::seconds{5}, inbox_atom::value, ids)
                .then(
                    [=](std::vector<memory_view>& views) mutable {
                      g->answers.push_back(std::move(views));
                      if (--g->waiting == 0)
                        then();
                    },
                    [=](caf::error&) mutable {
                      if (--g->waiting == 0)
                        then();
                    });
          },
          [=](caf::error&) mutable {
            if (--g->waiting == 0)
              then();
          });
  };
  for (auto& v : message_views(st))
    g->candidates.insert(v.value.id);
  ask_all({}, [self, g, ask_all, done]() mutable {
    for (auto& views : g->answers)
      for (auto& v : views)
        g->candidates.insert(v.value.id);
    g->answers.clear();
    std::vector<engram_id> ids{g->candidates.begin(), g->candidates.end()};
    g->answers.push_back(message_views(self->state, ids));
    ask_all(ids, [self, g, done]() mutable {
      auto merged = merge_reads(query_filter{}, g->answers);
      merged.erase(std::remove_if(merged.begin(), merged.end(),
                                  [](const memory_view& v) {
                                    return v.value.tombstone;
                                  }),
                   merged.end());
      done(std::move(merged));
    });
  });
}

// Reads the inbox: a replica that has not caught up with its peers syncs
// first (bounded), then the unread messages are gathered and marked read.
caf::result<std::vector<std::string>> read_inbox(agent_ptr self) {
  auto& st = self->state;
  if (st.is_federation())
    return to_caf(make_error(errc::invalid_argument,
                             "a federation has no inbox; its members do"));
  auto rp = self->make_response_promise<std::vector<std::string>>();
  auto collect = [self, rp]() mutable {
    gather_messages(self, [self, rp](std::vector<memory_view> views) mutable {
      mark_read(self, std::move(views), rp);
    });
  };
  bool peers_hold_it = false;
  for (auto& n : st.ctx->dir->hosts(st.cfg.agent_id))
    peers_hold_it = peers_hold_it || st.ctx->cluster->live(n);
  if (st.caught_up || !peers_hold_it || st.sessions.empty()) {
    collect();
    return rp;
  }
  sync_config cfg;
  cfg.timeout = std::chrono::seconds{2};
  self->request(caf::actor_cast<agent_actor>(self), cfg.timeout * 2,
                sync_atom::value, cfg)
      .then(
          [=](sync_result&) mutable {
            collect();
          },
          [=](caf::error&) mutable {
            collect();
          });
  return rp;
}

// What the agent's memory says about `question`: the value of the fact with
// that key, else its beliefs about that subject ("relation object", the
// most confident first); an error when it knows nothing about it.
caf::result<std::string> answer_from_memory(agent_ptr self,
                                            const std::string& question) {
  auto& st = self->state;
  if (auto rec = st.mem->get(derive_id(st.hosted, fact{question, {}})))
    if (!rec->tombstone && !rec->archived && !reserved(*rec))
      if (auto* f = std::get_if<fact>(&rec->body))
        return f->value;
  query_filter filter;
  filter.subject = question;
  auto views = local_query(self, filter);
  std::stable_sort(views.begin(), views.end(),
                   [](const memory_view& x, const memory_view& y) {
                     return x.value.confidence > y.value.confidence;
                   });
  std::string answer;
  for (auto& v : views)
    if (auto* b = std::get_if<belief>(&v.value.body))
      answer += (answer.empty() ? "" : "; ") + b->relation + " " + b->object;
  if (answer.empty())
    return to_caf(make_error(errc::unknown_engram,
                             "agent " + st.cfg.agent_id
                                 + " knows nothing about '" + question + "'"));
  return answer;
}

/// Broadcasts queued per member beyond this are dropped (counted).
constexpr size_t max_undelivered = 1000;

/// Each step of reaching a member (finding it, telling it): both together
/// stay under the callers' usual 5 s timeout.
constexpr auto member_timeout = std::chrono::milliseconds{1500};

// Tells `member` (running on this node or a reachable peer) `text` from
// `from`; `done(true)` once it is in the member's inbox.
void tell_member(agent_ptr self, const std::string& member,
                 const std::string& from, const std::string& text, uint64_t id,
                 std::function<void(bool)> done) {
  auto& st = self->state;
  auto send = [=](const agent_actor& hdl) {
    self->request(hdl, member_timeout, tell_atom::value, from, text, id)
        .then(
            [=](bool) {
              done(true);
            },
            [=](caf::error&) {
              done(false);
            });
  };
  if (auto local = st.ctx->dir->agent(member)) {
    send(*local);
    return;
  }
  for (auto& n : st.ctx->dir->hosts(member)) {
    auto peer = st.ctx->cluster->peer(n);
    if (!peer)
      continue;
    self->request(caf::actor_cast<node_actor>(*peer), member_timeout,
                  agent_atom::value, member)
        .then(
            [=](agent_actor& hdl) {
              send(hdl);
            },
            [=](caf::error&) {
              done(false);
            });
    return;
  }
  done(false);
}

void queue_undelivered(agent_ptr self, const std::string& member,
                       const std::string& from, const std::string& text,
                       uint64_t id) {
  auto& q = self->state.undelivered[member];
  if (q.size() >= max_undelivered) {
    q.pop_front();
    ++self->state.undelivered_dropped;
  }
  q.emplace_back(from, text, id);
}

// Retries queued broadcasts (federation tick).
void retry_undelivered(agent_ptr self) {
  auto& st = self->state;
  for (auto i = st.undelivered.begin(); i != st.undelivered.end();) {
    // Members removed (or gone) meanwhile get nothing more.
    if (i->second.empty() || !st.fed || st.fed->find(i->first) == nullptr)
      i = st.undelivered.erase(i);
    else
      ++i;
  }
  for (auto& [member, queue] : st.undelivered) {
    if (!agent_live(self, member))
      continue;
    auto batch = std::move(queue);
    queue.clear();
    for (auto& [from, text, id] : batch) {
      auto m = member;
      auto f = from;
      auto t = text;
      auto i = id;
      tell_member(self, m, f, t, i, [self, m, f, t, i](bool ok) {
        if (!ok)
          queue_undelivered(self, m, f, t, i);
      });
    }
  }
}

caf::result<uint64_t> broadcast(agent_ptr self, const std::string& from,
                                const std::string& text) {
  auto& st = self->state;
  if (!st.is_federation())
    return to_caf(make_error(errc::invalid_argument,
                             "broadcast goes to a federation, not to agent "
                                 + st.cfg.agent_id));
  if (!st.fed)
    return to_caf(
        make_error(errc::unavailable,
                   "federation " + st.cfg.agent_id + " is not known here yet"));
  if (auto ok = st.fed->check(from, federation::operation::write); !ok)
    return to_caf(ok.error_value());
  std::vector<std::string> members;
  for (auto& m : st.fed->members())
    if (m.agent_id != from)
      members.push_back(m.agent_id);
  if (members.empty())
    return uint64_t{0};
  auto rp = self->make_response_promise<uint64_t>();
  // One id for every copy (and retry) of this broadcast.
  auto id = message_id(st.cfg.agent_id + '\n' + from + '\n' + text,
                       st.clock->now());
  auto delivered = std::make_shared<uint64_t>(0);
  auto waiting = std::make_shared<size_t>(members.size());
  for (auto& m : members) {
    tell_member(self, m, from, text, id, [=](bool ok) mutable {
      if (ok)
        ++*delivered;
      else
        queue_undelivered(self, m, from, text, id); // retried when back
      if (--*waiting == 0)
        rp.deliver(*delivered);
    });
  }
  return rp;
}

// Remembers the id of a message taken into the inbox: a retry of it is
// acknowledged, not added again (the last 10 000 ids).
void remember_message(agent_ptr self, uint64_t id) {
  auto& s = self->state;
  constexpr size_t remembered = 10'000;
  s.recent.insert(id);
  s.recent_ids.push_back(id);
  if (s.recent_ids.size() > remembered) {
    s.recent.erase(s.recent_ids.front());
    s.recent_ids.pop_front();
  }
}

agent_actor::behavior_type agent_impl(agent_ptr self, node_context_ptr ctx,
                                      std::string agent_id) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = ctx->agent(agent_id);
  st.clock = std::make_unique<hybrid_logical_clock>(*ctx->config.wall_clock);
  auto partition = agent_partition(agent_id);
  // A repaired partition writes under a new incarnation of its id.
  auto incarnation = persistence::store::incarnation(ctx->db, partition);
  auto self_id = incarnation_of(replica_of(ctx->config.node_id, partition),
                                incarnation ? *incarnation : 0);
  st.mem = std::make_unique<replica>(self_id, *st.clock, st.cfg.replication);
  // What a failed predecessor queued is written before this one loads.
  ctx->writes->drain();
  auto db = persistence::store::attach(ctx->db, partition, self_id,
                                       in_memory_replica);
  if (!db) {
    self->quit(to_caf(db.error_value()));
    return agent_actor::behavior_type::make_empty_behavior();
  }
  st.db = std::move(*db);
  if (auto loaded = st.db->load(*st.mem); !loaded) {
    self->quit(to_caf(loaded.error_value()));
    return agent_actor::behavior_type::make_empty_behavior();
  }
  st.caught_up = st.mem->size() > 0;
  // Messages told before a restart and not read yet.
  std::vector<persistence::corrupt_record> corrupt;
  auto kept = st.db->messages(&corrupt);
  if (!kept) {
    self->quit(to_caf(kept.error_value()));
    return agent_actor::behavior_type::make_empty_behavior();
  }
  if (auto& handler = ctx->config.on_event)
    for (auto& c : corrupt)
      handler("corrupt_record", {{"node", ctx->config.node_id},
                                 {"agent", agent_id},
                                 {"column_family", c.column_family},
                                 {"key", c.key},
                                 {"reason", c.reason}});
  // Messages an earlier build kept beside the replica (unread): moved
  // into the replicated memory, then dropped from the old place.
  if (!kept->empty()) {
    auto now_us = st.clock->now().wall_us;
    for (auto& m : *kept) {
      auto e = message_record(agent_id, m.id, m.from, m.text, now_us);
      auto delta = st.mem->put(std::move(e));
      if (!delta) { // not a valid memory (e.g. a bad sender name): said so
        if (auto& handler = ctx->config.on_event)
          handler("corrupt_record",
                  {{"node", ctx->config.node_id},
                   {"agent", agent_id},
                   {"column_family", "meta"},
                   {"key", "inbox/" + std::to_string(m.id)},
                   {"reason", delta.error_value().to_string()}});
        continue;
      }
      record(self, *delta);
      remember_message(self, m.id);
    }
    if (auto cleared = st.db->clear_messages(); !cleared) {
      self->quit(to_caf(cleared.error_value()));
      return agent_actor::behavior_type::make_empty_behavior();
    }
  }
  st.hosted = is_federation_id(agent_id)
                  ? memory_scope::collective(agent_id, {agent_id})
                  : memory_scope::agent(agent_id);
  reload_state(self);
  if (st.is_federation())
    self->delayed_send(self, std::chrono::milliseconds{500}, tick_atom::value);
  // An error answer to a request without its own handler must not end the
  // agent.
  self->set_error_handler([](caf::error&) {});
  self->set_down_handler([=](caf::down_msg& down) {
    auto& sessions = self->state.sessions;
    sessions.erase(std::remove_if(sessions.begin(), sessions.end(),
                                  [&](const auto& s) {
                                    return s.second.address() == down.source;
                                  }),
                   sessions.end());
  });
  return {
      [=](learn_atom, engram_record& value) -> caf::result<engram_id> {
        auto& s = self->state;
        if (s.is_federation()) {
          // Collective memory: the writer's role decides.
          if (value.scope.kind() != scope_kind::collective
              || value.scope.id() != s.cfg.agent_id)
            return to_caf(make_error(errc::invalid_scope,
                                     "federation " + s.cfg.agent_id
                                         + " holds only its Collective scope, "
                                           "not "
                                         + value.scope.to_string()));
          if (!s.fed)
            return to_caf(
                make_error(errc::unavailable, "federation " + s.cfg.agent_id
                                                  + " is not known here yet"));
          if (auto ok = s.fed->check(value.origin.origin_agent,
                                     federation::operation::write);
              !ok)
            return to_caf(ok.error_value());
          if (is_state(value))
            return to_caf(make_error(errc::invalid_argument,
                                     "the key " + federation::state_key()
                                         + " is reserved"));
          value.scope = s.fed->shared_scope();
          return write_here(self, std::move(value));
        }
        if (value.scope.is_placeholder()
            && value.scope.kind() == scope_kind::agent)
          value.scope = memory_scope::agent(s.cfg.agent_id);
        if (value.scope != memory_scope::agent(s.cfg.agent_id))
          return to_caf(make_error(errc::invalid_scope,
                                   "agent " + s.cfg.agent_id
                                       + " holds only its Agent scope, not "
                                       + value.scope.to_string()));
        return route_write(self, std::move(value));
      },
      [=](store_atom, engram_record& value) -> caf::result<engram_id> {
        if (value.scope != memory_scope::agent(self->state.cfg.agent_id))
          return to_caf(make_error(errc::invalid_scope,
                                   "agent " + self->state.cfg.agent_id
                                       + " holds only its Agent scope, not "
                                       + value.scope.to_string()));
        return write_here(self, std::move(value));
      },
      [=](query_atom, const query_filter& filter,
          level_code level) -> caf::result<std::vector<memory_view>> {
        if (self->state.is_federation())
          return without_state(local_query(self, filter));
        return read(self, filter, level);
      },
      [=](query_atom, const query_filter& filter, level_code level,
          const std::string& caller) -> caf::result<std::vector<memory_view>> {
        auto& s = self->state;
        if (!s.is_federation())
          return read(self, filter, level);
        if (!s.fed)
          return to_caf(
              make_error(errc::unavailable, "federation " + s.cfg.agent_id
                                                + " is not known here yet"));
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
      [=](federation_atom, const std::string& op, const std::string& agent,
          const std::string& arg) -> caf::result<std::string> {
        auto& s = self->state;
        if (!s.is_federation())
          return share_op(self, op, agent, arg);
        if (op == "join") {
          auto role = federation::parse_role(arg.empty() ? "member" : arg);
          if (role && *role != federation::agent_role::leader)
            s.joined_here[agent] = *role;
        } else if (op == "create") {
          s.joined_here[agent] = federation::agent_role::leader;
        } else if (op == "leave") {
          s.joined_here.erase(agent);
        }
        return federation_op(self, op, agent, arg);
      },
      [=](tell_atom, const std::string& from, const std::string& text,
          uint64_t id) -> caf::result<bool> {
        auto& s = self->state;
        if (s.is_federation())
          return to_caf(make_error(errc::invalid_argument,
                                   "tell an agent; a federation takes "
                                   "broadcasts"));
        // A retry of a message this replica holds (read or not): done.
        auto e = message_record(s.cfg.agent_id, id, from, text,
                                s.clock->now().wall_us);
        auto engram = derive_id(e.scope, e.body);
        if (s.recent.count(id) > 0 || s.mem->contains(engram))
          return true;
        if (unread_messages(s).size() >= s.cfg.inbox_capacity)
          return to_caf(make_error(errc::limit_exceeded,
                                   "the inbox of agent " + s.cfg.agent_id
                                       + " is full ("
                                       + std::to_string(s.cfg.inbox_capacity)
                                       + " unread messages)"));
        // Written as any memory of the agent (its level's durability, then
        // replicated to every node holding it) before it is acknowledged.
        auto rp = self->make_response_promise<bool>();
        self->request(caf::actor_cast<agent_actor>(self), caf::infinite,
                      learn_atom::value, std::move(e))
            .then(
                [=](engram_id&) mutable {
                  remember_message(self, id);
                  rp.deliver(true);
                },
                [=](caf::error& err) mutable {
                  rp.deliver(std::move(err));
                });
        return rp;
      },
      [=](ask_atom, const std::string& from,
          const std::string& question) -> caf::result<std::string> {
        auto& s = self->state;
        if (s.is_federation())
          return to_caf(make_error(errc::invalid_argument,
                                   "ask an agent; a federation answers no "
                                   "questions (query its memory as a "
                                   "member)"));
        if (s.cfg.on_ask)
          return s.cfg.on_ask(from, question);
        if (s.cfg.answer_from_memory)
          return answer_from_memory(self, question);
        return to_caf(make_error(errc::invalid_argument,
                                 "agent " + s.cfg.agent_id
                                     + " answers no questions (no on_ask "
                                       "handler)"));
      },
      [=](inbox_atom) -> caf::result<std::vector<std::string>> {
        return read_inbox(self);
      },
      [=](inbox_atom,
          const std::vector<engram_id>& ids) -> std::vector<memory_view> {
        // A peer's inbox read: the unread messages held here, or (ids
        // given) these messages as held here, read marks included.
        if (ids.empty())
          return message_views(self->state);
        return message_views(self->state, ids);
      },
      [=](broadcast_atom, const std::string& from, const std::string& text) {
        return broadcast(self, from, text);
      },
      [=](share_atom, const std::string& bytes) -> caf::result<std::string> {
        if (self->state.is_federation())
          return to_caf(make_error(errc::invalid_argument,
                                   "a federation takes no shares"));
        return offer(self, bytes);
      },
      [=](forget_atom, const engram_id& id,
          std::string& reason) -> caf::result<engram_id> {
        return change(
            self, id,
            [&](replica& mem) {
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
            [&](replica& mem) {
              return mem.archive(id);
            },
            [=](const agent_actor& hdl,
                caf::typed_response_promise<engram_id> rp) mutable {
              rp.delegate(hdl, archive_atom::value, id);
            });
      },
      [=](answer_atom, uint64_t conflict_id,
          const std::string& option) -> caf::result<engram_id> {
        return answer_question(self, conflict_id, option);
      },
      [=](pending_atom) {
        return self->state.mem->pending_questions();
      },
      [=](answer_atom, const std::string& who, uint64_t conflict_id,
          const std::string& option) -> caf::result<engram_id> {
        // A member answers a question about the federation's memory:
        // under Escalate only the leader decides, under AskUser any writer.
        auto& s = self->state;
        if (!s.is_federation() || !s.fed)
          return to_caf(
              make_error(errc::unavailable, "federation " + s.cfg.agent_id
                                                + " is not known here yet"));
        auto needed
            = s.fed->belief_conflicts() == federation::belief_policy::escalate
                  ? federation::operation::change_rules
                  : federation::operation::write;
        if (auto ok = s.fed->check(who, needed); !ok)
          return to_caf(ok.error_value());
        return answer_question(self, conflict_id, option);
      },
      [=](pending_atom, const std::string& who)
          -> caf::result<std::vector<pending_question>> {
        auto& s = self->state;
        if (s.is_federation()) {
          if (!s.fed)
            return to_caf(
                make_error(errc::unavailable, "federation " + s.cfg.agent_id
                                                  + " is not known here yet"));
          if (auto ok = s.fed->check(who, federation::operation::read); !ok)
            return to_caf(ok.error_value());
        }
        return s.mem->pending_questions();
      },
      [=](sync_atom, const sync_config& cfg) -> caf::result<sync_result> {
        auto& sessions = self->state.sessions;
        if (sessions.empty())
          return sync_result{};
        // Fan out to every session, fan in their results.
        auto rp = self->make_response_promise<sync_result>();
        auto total = std::make_shared<sync_result>();
        auto waiting = std::make_shared<size_t>(sessions.size());
        auto done = [=]() mutable {
          if (--*waiting > 0)
            return;
          total->kind = total->conflicts.empty() ? sync_result::outcome::clean
                                                 : sync_result::outcome::merged;
          rp.deliver(*total);
        };
        for (auto& [_, s] : sessions)
          self->request(s, cfg.timeout + cfg.timeout / 2, sync_atom::value, cfg)
              .then(
                  [=](sync_result& r) mutable {
                    total->synced_count += r.synced_count;
                    total->merged_count += r.merged_count;
                    total->peers += r.peers;
                    for (auto& c : r.conflicts)
                      total->conflicts.push_back(std::move(c));
                    done();
                  },
                  [=](caf::error&) mutable {
                    done();
                  });
        return rp;
      },
      // -- sessions' side --------------------------------------------------
      [=](digest_atom,
          const std::string& peer) -> caf::result<uint64_t, causal_context> {
        auto& mem = *self->state.mem;
        auto& place = placing(self);
        if (place.everywhere() || peer.empty()) // empty: everything held
          return {mem.digest(), mem.context()};
        return {mem.digest_of(held_by(place, peer)), mem.context()};
      },
      [=](since_atom, const causal_context& peer_context,
          const std::string& peer,
          uint64_t first) -> caf::result<replica_delta, std::vector<engram_id>,
                                         causal_context> {
        auto& mem = *self->state.mem;
        auto& place = placing(self);
        auto rest = mem.missing_since(peer_context);
        auto n = static_cast<ptrdiff_t>(std::min<uint64_t>(first, rest.size()));
        auto piece = mem.delta_of({rest.begin(), rest.begin() + n});
        rest.erase(rest.begin(), rest.begin() + n);
        if (!place.everywhere() && !peer.empty())
          piece = filter_delta(piece, held_by(place, peer));
        else if (rest.empty()) // the whole delta: with the whole context
          piece.context = mem.context();
        return {std::move(piece), std::move(rest), mem.context()};
      },
      [=](since_atom, const std::vector<engram_id>& ids,
          const std::string& peer) -> caf::result<replica_delta> {
        auto& mem = *self->state.mem;
        auto& place = placing(self);
        if (!place.everywhere() && !peer.empty())
          return filter_delta(mem.delta_of(ids), held_by(place, peer));
        return mem.delta_of(ids);
      },
      [=](merge_atom,
          const replica_delta& delta) -> caf::result<merge_summary> {
        auto& mem = *self->state.mem;
        auto report = mem.join(delta);
        if (!report)
          return to_caf(report.error_value());
        merge_summary summary;
        summary.applied = report->applied;
        summary.conflicts = std::move(report->conflicts);
        for (auto& c : report->forked)
          summary.open.push_back(c.id);
        for (auto& q : report->pending)
          summary.open.push_back(q.subject.id);
        // Answered (the peer acknowledges the frame) once stored durably.
        auto rp = self->make_response_promise<merge_summary>();
        record_then(self, delta, [rp, summary]() mutable {
          rp.deliver(std::move(summary));
        });
        if (!report->resolutions.empty()) {
          // Resolutions are writes: stored and shipped like any other.
          record(self, report->resolutions);
          push(self, report->resolutions);
        }
        note_messages(self->state, delta);
        reload_state(self); // a federation's rules may have changed
        return rp;
      },
      [=](written_atom, uint64_t ticket, const std::string& failure) {
        auto& st = self->state;
        if (!failure.empty())
          cannot_record(self, failure);
        st.writes_done = std::max(st.writes_done, ticket);
        while (!st.after_write.empty()
               && st.after_write.front().first <= st.writes_done) {
          auto reply = std::move(st.after_write.front().second);
          st.after_write.pop_front();
          reply();
        }
      },
      [=](attach_atom, const caf::actor& session, const std::string& peer) {
        auto hdl = caf::actor_cast<session_actor>(session);
        auto& sessions = self->state.sessions;
        auto i = std::find_if(sessions.begin(), sessions.end(),
                              [&](const auto& s) {
                                return s.second == hdl;
                              });
        if (i == sessions.end()) {
          sessions.emplace_back(peer, hdl);
          self->monitor(hdl); // dropped when it ends (down handler)
          if (auto& st = self->state; st.fed && st.fed->sync_interval_ms() > 0)
            set_sync_interval(self, hdl, st.fed->sync_interval_ms());
        }
      },
      [=](caught_up_atom) {
        // Caught up with an empty peer, an empty replica is not: the next
        // read still consults a host (which may hold what neither has).
        auto& s = self->state;
        s.caught_up = s.caught_up || s.mem->size() > 0;
        return s.caught_up;
      },
      [=](tick_atom) {
        check_leader(self);
        repair_membership(self);
        configure_conflicts(self);
        retry_undelivered(self);
        self->delayed_send(self, std::chrono::milliseconds{500},
                           tick_atom::value);
      },
      [=](fail_atom) {
        throw std::runtime_error("agent " + self->state.cfg.agent_id
                                 + ": injected fault");
      },
  };
}

} // namespace

agent_actor spawn_agent(caf::local_actor* parent, node_context_ptr ctx,
                        const std::string& agent_id) {
  return parent->spawn<caf::monitored>(agent_impl, std::move(ctx), agent_id);
}

} // namespace engram::actors
