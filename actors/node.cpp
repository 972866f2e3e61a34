// The node actor: one per process. It hosts agents and instances, keeps
// one sync session per (peer node, hosted agent), routes frames from peers
// to sessions, and supervises: any child that fails is respawned from the
// store (a child that failed more than 5 times is given up).

#include "actors/node.hpp"

#include "actors/internal/node_state.hpp"
#include "actors/internal/spawn.hpp"
#include "messages/envelope.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/local_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <openssl/crypto.h>

#include <chrono>
#include <ctime>
#include <map>
#include <thread>

namespace engram::actors {

namespace {

// Tells peers (`to`, or all) which agents this node hosts.
void announce(node_ptr self, const std::vector<std::string>& agents, bool full,
              const std::vector<std::string>& gone,
              const std::string& to = {}) {
  auto& st = self->state;
  v1::Directory msg;
  msg.set_node_id(st.ctx->config.node_id);
  msg.set_full(full);
  for (auto& a : agents)
    msg.add_agents(a);
  for (auto& a : gone)
    msg.add_gone(a);
  auto bytes = messages::serialize(messages::make_envelope(
      v1::DIRECTORY, st.ctx->config.node_id, st.clock->now(), msg));
  for (auto& [node, peer] : st.peers)
    if ((to.empty() || node == to) && st.ctx->cluster->live(node)) {
      // Signed for each peer (a failure: announced again on the next tick).
      if (auto signed_bytes = st.ctx->sign(bytes, node, {}))
        self->send(
            peer,
            wire_frame{st.ctx->config.node_id, {}, std::move(*signed_bytes)});
    }
}

// Sends a node-level frame (no agent) to a peer.
void send_node_frame(node_ptr self, const std::string& node,
                     const peer_actor& peer, v1::MessageType type,
                     const google::protobuf::Message& payload) {
  auto& st = self->state;
  auto bytes = st.ctx->sign(
      messages::serialize(messages::make_envelope(type, st.ctx->config.node_id,
                                                  st.clock->now(), payload)),
      node, {});
  if (bytes) // else not sent: pings are sent again
    self->send(peer, wire_frame{st.ctx->config.node_id, {}, std::move(*bytes)});
}

// Pings a peer with this node's wall time: its Pong measures its clock.
void ping_peer(node_ptr self, const std::string& node, const peer_actor& peer) {
  auto& st = self->state;
  v1::Ping ping;
  ping.set_nonce(++st.ping_nonce);
  auto now = st.ctx->config.wall_clock->now_us();
  ping.set_wall_us(now);
  // The Pong must answer this ping: its nonce, and the time it was sent
  // as this node recorded it (not as the peer echoes it).
  st.pings[node] = {st.ping_nonce, now};
  send_node_frame(self, node, peer, v1::PING, ping);
}

// A peer's clock reading arrived: kept for sessions and writes to consult,
// and logged when the peer crosses the bound (either way).
void on_clock_reading(node_ptr self, const std::string& peer,
                      cluster_view::clock_reading reading) {
  auto& st = self->state;
  if (!st.ctx->cluster->set_clock(peer, reading))
    return;
  auto& handler = st.ctx->config.on_event;
  if (!handler)
    return;
  bool ok = st.ctx->cluster->clock_ok(peer);
  handler(ok ? "clock_offset_ok" : "clock_offset_exceeded",
          {{"node", st.ctx->config.node_id},
           {"peer", peer},
           {"offset_ms", std::to_string(reading.offset_us / 1000)},
           {"rtt_ms", std::to_string(reading.rtt_us / 1000)},
           {"max_ms", std::to_string(st.ctx->config.max_clock_offset.count())},
           {"sync", ok ? "resumed" : "refused until the clocks agree"}});
}

// A node-level frame (no agent): a peer's directory, or a clock ping.
// With TLS, a frame counts only from the process of the proven peer it
// names (others, and frames before the proof, are dropped: sessions
// resend, directories are announced again).
bool from_proven_peer(node_ptr self, const wire_frame& frame) {
  auto& st = self->state;
  if (!st.ctx->identity)
    return true;
  auto peer = st.peers.find(frame.from_node);
  auto& sender = self->current_sender();
  return peer != st.peers.end() && sender && peer->second
         && sender->node() == peer->second.node();
}

void on_node_frame(node_ptr self, const wire_frame& frame) {
  auto& st = self->state;
  if (st.peers.count(frame.from_node) == 0) {
    constexpr size_t max_nodes = 64;
    constexpr size_t max_frames = 16;
    auto i = st.early_frames.find(frame.from_node);
    if (i == st.early_frames.end() && st.early_frames.size() < max_nodes)
      i = st.early_frames.emplace(frame.from_node, std::vector<wire_frame>{})
              .first;
    if (i != st.early_frames.end()) { // the newest, in order
      if (i->second.size() == max_frames)
        i->second.erase(i->second.begin());
      i->second.push_back(frame);
    }
    return; // not a peer (yet)
  }
  auto env = messages::decode_envelope(frame.envelope);
  if (!env)
    return;
  if (env->type() == v1::RAFT) {
    // For the consensus member (it checks the sender the message names).
    if (auto group = st.ctx->universal->get())
      self->send(*group, frame);
    return;
  }
  if (env->type() == v1::PING) {
    auto ping = messages::decode_payload<v1::Ping>(*env, v1::PING);
    if (!ping)
      return;
    v1::Pong pong;
    pong.set_nonce(ping->nonce());
    pong.set_echo_wall_us(ping->wall_us());
    pong.set_wall_us(st.ctx->config.wall_clock->now_us());
    send_node_frame(self, frame.from_node, st.peers[frame.from_node], v1::PONG,
                    pong);
    return;
  }
  if (env->type() == v1::PONG) {
    auto pong = messages::decode_payload<v1::Pong>(*env, v1::PONG);
    auto ping = st.pings.find(frame.from_node);
    if (!pong || ping == st.pings.end() || ping->second.first != pong->nonce())
      return; // not the answer to the ping in flight
    auto sent = ping->second.second;
    st.pings.erase(ping);
    auto now = st.ctx->config.wall_clock->now_us();
    if (now < sent || now - sent > 60'000'000)
      return; // this node's clock jumped meanwhile: no reading
    // In µs, within ±2^62 (about 146 000 years): no overflow below.
    constexpr uint64_t bound = uint64_t{1} << 62;
    auto rtt = static_cast<int64_t>(now - sent);
    auto mid = sent + (now - sent) / 2;
    auto theirs = std::min<uint64_t>(pong->wall_us(), bound);
    auto offset = theirs >= mid
                      ? static_cast<int64_t>(std::min(theirs - mid, bound))
                      : -static_cast<int64_t>(std::min(mid - theirs, bound));
    on_clock_reading(self, frame.from_node, {offset, rtt});
    return;
  }
  auto dir = messages::decode_payload<v1::Directory>(*env, v1::DIRECTORY);
  if (!dir || dir->node_id() != frame.from_node)
    return;
  std::vector<std::string> agents;
  for (auto& a : dir->agents())
    if (validate_name(a, "agent id"))
      agents.push_back(a);
  std::vector<std::string> gone{dir->gone().begin(), dir->gone().end()};
  st.ctx->dir->announce(frame.from_node, agents, dir->full(), gone);
}

void open_session(node_ptr self, const std::string& agent_id,
                  hosted_agent& agent, const std::string& peer_node) {
  auto& st = self->state;
  auto peer = st.peers.find(peer_node);
  if (peer == st.peers.end() || agent.sessions.count(peer_node) > 0)
    return;
  auto s = spawn_session(self, st.ctx, agent_id, peer_node, peer->second,
                         agent.hdl);
  agent.sessions.emplace(peer_node, s);
  self->send(agent.hdl, attach_atom::value, caf::actor_cast<caf::actor>(s),
             peer_node);
}

// With placement configured, a node holds shares of agents it does not
// host an instance of: their first frame from a peer hosts them.
bool placed(const node_config& cfg) {
  return cfg.replication.factor != 0
         || cfg.replication.strategy != replication_strategy::symmetric;
}

// Hosts `agent_id` here (its actor loads its replica from the store) and
// opens its sessions; peers hear of it unless `quiet` (the caller announces
// a batch at once).
hosted_agent& host_agent(node_ptr self, const std::string& agent_id,
                         bool quiet = false) {
  auto& st = self->state;
  auto i = st.agents.find(agent_id);
  if (i != st.agents.end())
    return i->second;
  auto& agent = st.agents[agent_id];
  agent.hdl = spawn_agent(self, st.ctx, agent_id);
  st.ctx->dir->put(agent_id, agent.hdl);
  for (auto& [peer_node, _] : st.peers)
    open_session(self, agent_id, agent, peer_node);
  if (!quiet)
    announce(self, {agent_id}, false, {});
  return agent;
}

/// Agents hosted again per message at start (clients' requests interleave
/// with the batches).
constexpr size_t rehost_batch = 256;

// The agents and federations whose replicas the store holds (partitions
// "a/<id>"): a restarted node hosts them again, so that what it
// acknowledged spreads without a client touching them.
std::vector<std::string> stored_agents(const node_context& ctx) {
  std::vector<std::string> result;
  auto parts = ctx.db->partitions();
  auto& report = ctx.config.on_event;
  if (!parts) {
    if (report)
      report("store_note", {{"node", ctx.config.node_id},
                            {"note", "cannot list the stored agents: "
                                         + parts.error_value().to_string()}});
    return result;
  }
  for (auto& p : *parts) {
    if (p.rfind("a/", 0) != 0)
      continue;
    auto id = p.substr(2);
    if (validate_name(id, "agent id")) {
      result.push_back(id);
    } else if (validate_id(id, "agent id")) {
      // Stored by an earlier build, before names had their character set:
      // hosted (its memory keeps replicating), said once.
      result.push_back(id);
      if (report)
        report("store_note",
               {{"node", ctx.config.node_id},
                {"note", "agent id '" + id
                             + "' does not follow the rules for names "
                               "(letters, digits, -_.:@): hosted and synced, "
                               "but clients cannot open it under that name"}});
    }
  }
  return result;
}

// Respawns whichever child `who` was, from the store.
void on_down(node_ptr self, const caf::down_msg& msg) {
  auto& st = self->state;
  for (auto& [peer_node, peer] : st.peers) {
    if (peer.address() != msg.source)
      continue;
    // A peer node (or the connection to it) was lost: its sessions stop
    // waiting for it, placement routes around it.
    st.ctx->cluster->down(peer_node);
    st.ctx->dir->drop_node(peer_node);
    for (auto& [_, agent] : st.agents)
      if (auto s = agent.sessions.find(peer_node); s != agent.sessions.end())
        self->send(s->second, peer_atom::value, peer_actor{});
    return;
  }
  bool failed = msg.reason && msg.reason != caf::exit_reason::user_shutdown;
  if (auto group = st.ctx->universal->get();
      group && group->address() == msg.source) {
    // The consensus member stopped (its store failed a write, or it
    // crashed): restarted from what its log holds, a bounded number of
    // times.
    st.ctx->universal->set(std::nullopt);
    if (auto& handler = st.ctx->config.on_event)
      handler("consensus_stopped", {{"node", st.ctx->config.node_id},
                                    {"reason", caf::to_string(msg.reason)}});
    if (failed && ++st.consensus_restarts <= max_restarts)
      st.ctx->universal->set(spawn_consensus(self, st.ctx));
    return;
  }
  for (auto& [agent_id, agent] : st.agents) {
    if (agent.hdl.address() == msg.source) {
      if (!failed || ++agent.restarts > max_restarts) {
        for (auto& [_, s] : agent.sessions) // they would outlive the node
          caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
        auto gone = agent_id;
        st.ctx->dir->erase(gone);
        st.agents.erase(gone);
        announce(self, {}, false, {gone});
        return;
      }
      ++st.respawns;
      agent.hdl = spawn_agent(self, st.ctx, agent_id);
      st.ctx->dir->put(agent_id, agent.hdl);
      for (auto& [peer_node, s] : agent.sessions) {
        self->send(s, attach_atom::value, agent.hdl);
        self->send(agent.hdl, attach_atom::value,
                   caf::actor_cast<caf::actor>(s), peer_node);
      }
      return;
    }
    for (auto& [peer_node, s] : agent.sessions) {
      if (s.address() != msg.source)
        continue;
      auto peer = peer_node; // the erase below invalidates the reference
      agent.sessions.erase(peer);
      if (failed) {
        ++st.respawns;
        open_session(self, agent_id, agent, peer);
      }
      return;
    }
  }
  for (auto& [key, inst] : st.instances) {
    if (inst.hdl.address() != msg.source)
      continue;
    if (!failed || ++inst.restarts > max_restarts) {
      auto gone = key;
      st.ctx->dir->erase_instance(gone);
      st.instances.erase(gone);
      return;
    }
    ++st.respawns;
    inst.hdl = spawn_instance(self, st.ctx, inst.agent_id, inst.instance_id);
    st.ctx->dir->put_instance(key, inst.hdl);
    return;
  }
}

} // namespace

// Makes `peer` (node `peer_node`) a peer: sessions for every hosted agent,
// the directory announced, early frames replayed.
void register_peer(node_ptr self, const std::string& peer_node, peer_actor peer,
                   const std::string& signing_key) {
  auto& st = self->state;
  if (peer_node == st.ctx->config.node_id || !peer
      || !validate_name(peer_node, "peer node id"))
    return;
  use_signing_key(self, peer_node, signing_key);
  auto& known = st.peers[peer_node];
  // CAF compares handles by (node, actor id): a proxy made by a new
  // connection equals the dead one. A peer we saw go down is new too.
  bool changed = known && (known != peer || !st.ctx->cluster->live(peer_node));
  known = peer;
  st.ctx->cluster->up(peer_node, peer);
  self->monitor(peer);
  ping_peer(self, peer_node, peer); // its clock, before much syncs
  announce(self, st.ctx->dir->local_agents(), true, {}, peer_node);
  if (auto early = st.early_frames.find(peer_node);
      early != st.early_frames.end()) {
    auto frames = std::move(early->second);
    st.early_frames.erase(early);
    for (auto& f : frames)
      on_node_frame(self, f);
  }
  for (auto& [agent_id, agent] : st.agents) {
    auto s = agent.sessions.find(peer_node);
    if (s == agent.sessions.end())
      open_session(self, agent_id, agent, peer_node);
    else if (changed)
      self->send(s->second, peer_atom::value, peer);
  }
}

namespace {

node_actor::behavior_type node_impl(node_ptr self, node_context_ptr ctx) {
  self->state.ctx = ctx;
  self->state.clock
      = std::make_unique<hybrid_logical_clock>(*ctx->config.wall_clock);
  self->set_down_handler([=](caf::down_msg& msg) {
    on_down(self, msg);
  });
  auto directory_interval = 5 * ctx->config.sessions.anti_entropy_interval;
  self->delayed_send(self, directory_interval, tick_atom::value);
  if (auto stored = stored_agents(*ctx); !stored.empty())
    self->send(self, rehost_atom::value, std::move(stored));
  self->delayed_send(self, ctx->config.sessions.ping_interval,
                     ping_atom::value);
  // A member of the Universal scope's consensus group when listed.
  auto& members = ctx->config.consensus.members;
  if (std::find(members.begin(), members.end(), ctx->config.node_id)
      != members.end())
    ctx->universal->set(spawn_consensus(self, ctx));
  return {
      [=](ping_atom) {
        auto& st = self->state;
        for (auto& [node, peer] : st.peers)
          if (st.ctx->cluster->live(node))
            ping_peer(self, node, peer);
        self->delayed_send(self, st.ctx->config.sessions.ping_interval,
                           ping_atom::value);
      },
      [=](rehost_atom, std::vector<std::string>& agents) {
        auto n = std::min(agents.size(), rehost_batch);
        std::vector<std::string> batch(agents.end() - static_cast<ptrdiff_t>(n),
                                       agents.end());
        agents.resize(agents.size() - n);
        for (auto& a : batch)
          host_agent(self, a, true);
        announce(self, batch, false, {});
        if (!agents.empty()) {
          self->send(self, rehost_atom::value, std::move(agents));
          return;
        }
        auto& st = self->state;
        if (auto& handler = st.ctx->config.on_event)
          handler("agents_hosted",
                  {{"node", st.ctx->config.node_id},
                   {"agents", std::to_string(st.agents.size())}});
      },
      [=](tick_atom) {
        auto& st = self->state;
        announce(self, st.ctx->dir->local_agents(), true, {});
        self->delayed_send(self, directory_interval, tick_atom::value);
      },
      // Mutable: the frame (up to megabytes) moves on to its session
      // instead of being copied (the message is not shared).
      [=](wire_frame& frame) {
        auto& st = self->state;
        if (!from_proven_peer(self, frame) || !authentic_frame(self, frame))
          return;
        if (frame.agent.empty()) {
          on_node_frame(self, frame);
          return;
        }
        auto agent = st.agents.find(frame.agent);
        if (agent == st.agents.end()) {
          if (!placed(st.ctx->config) || st.peers.count(frame.from_node) == 0
              || !validate_name(frame.agent, "agent id")
              || is_federation_id(frame.agent))
            return; // an agent not hosted here: nothing to sync
          host_agent(self, frame.agent);
          agent = st.agents.find(frame.agent);
        }
        auto s = agent->second.sessions.find(frame.from_node);
        if (s == agent->second.sessions.end()) {
          open_session(self, frame.agent, agent->second, frame.from_node);
          s = agent->second.sessions.find(frame.from_node);
          if (s == agent->second.sessions.end())
            return; // not a known peer
        }
        self->send(s->second, std::move(frame));
      },
      [=](agent_atom, const std::string& agent_id) -> caf::result<agent_actor> {
        if (auto ok = validate_name(agent_id, "agent id"); !ok)
          return to_caf(ok.error_value());
        return host_agent(self, agent_id).hdl;
      },
      [=](instance_atom, const std::string& agent_id,
          const std::string& instance_id) -> caf::result<instance_actor> {
        if (auto ok = validate_name(agent_id, "agent id"); !ok)
          return to_caf(ok.error_value());
        if (auto ok = validate_name(instance_id, "instance id"); !ok)
          return to_caf(ok.error_value());
        auto& st = self->state;
        host_agent(self, agent_id);
        auto key = directory::instance_key(agent_id, instance_id);
        auto i = st.instances.find(key);
        if (i != st.instances.end())
          return i->second.hdl;
        auto& inst = st.instances[key];
        inst.agent_id = agent_id;
        inst.instance_id = instance_id;
        inst.hdl = spawn_instance(self, st.ctx, agent_id, instance_id);
        st.ctx->dir->put_instance(key, inst.hdl);
        return inst.hdl;
      },
      [=](peer_atom, const std::string& peer_node, peer_actor& peer) {
        // Taken at its word only without TLS (in-process nodes, --insecure).
        auto& st = self->state;
        if (st.ctx->identity) {
          if (auto& handler = st.ctx->config.on_event)
            handler("peer_refused", {{"node", st.ctx->config.node_id},
                                     {"peer", peer_node},
                                     {"reason", "no proof of identity"}});
          return;
        }
        register_peer(self, peer_node, std::move(peer), {});
      },
      [=](peer_atom, const std::string& peer_node, peer_actor& peer,
          const std::string& cert_pem, const std::string& nonce,
          const std::string& signature, const std::string& signing_key) {
        peer_request(self, peer_node, std::move(peer), cert_pem, nonce,
                     signature, signing_key);
      },
      [=](challenge_atom) {
        return issue_challenge(self);
      },
      [=](prove_atom, const std::string& challenge)
          -> caf::result<std::string, std::string, std::string> {
        return prove_identity(self, challenge);
      },
      [=](locate_atom) {
        std::vector<std::string> result;
        for (auto& [agent_id, _] : self->state.agents)
          result.push_back(agent_id);
        return result;
      },
      [=](locate_atom, const std::string& agent_id) {
        auto& st = self->state;
        std::vector<std::string> result;
        if (st.agents.count(agent_id) > 0)
          result.push_back(st.ctx->config.node_id);
        for (auto& n : st.ctx->dir->hosts(agent_id))
          result.push_back(n);
        return result;
      },
      [=](find_atom, const std::string& agent_id) -> caf::result<agent_actor> {
        auto& st = self->state;
        if (auto i = st.agents.find(agent_id); i != st.agents.end())
          return i->second.hdl;
        for (auto& n : st.ctx->dir->hosts(agent_id)) {
          auto peer = st.ctx->cluster->peer(n);
          if (!peer)
            continue;
          // The hosting node answers the caller directly.
          return self->delegate(caf::actor_cast<node_actor>(*peer),
                                agent_atom::value, agent_id);
        }
        return to_caf(make_error(errc::unknown_agent,
                                 "no reachable node hosts agent " + agent_id));
      },
      [=](status_atom) -> caf::result<node_status> {
        auto& st = self->state;
        auto result = std::make_shared<node_status>();
        result->node_id = st.ctx->config.node_id;
        result->agents = st.agents.size();
        result->instances = st.instances.size();
        result->respawns = st.respawns;
        for (auto& [peer, _] : st.peers)
          if (auto c = st.ctx->cluster->clock(peer))
            result->clock_offsets.push_back({peer, c->offset_us, c->rtt_us});
        result->clock_refusal = st.ctx->cluster->clock_refusal();
        for (auto& peer : st.ctx->cluster->known())
          (st.ctx->cluster->live(peer) ? result->peers_up : result->peers_down)
              .push_back(peer);
        std::vector<session_actor> sessions;
        for (auto& [_, agent] : st.agents)
          for (auto& [_, s] : agent.sessions)
            sessions.push_back(s);
        result->sessions = sessions.size();
        if (sessions.empty())
          return *result;
        auto rp = self->make_response_promise<node_status>();
        auto waiting = std::make_shared<size_t>(sessions.size());
        for (auto& s : sessions)
          self->request(s, std::chrono::seconds{5}, status_atom::value)
              .then(
                  [=](session_stats& x) mutable {
                    result->session_details.push_back(std::move(x));
                    if (--*waiting == 0)
                      rp.deliver(*result);
                  },
                  [=](caf::error&) mutable {
                    if (--*waiting == 0)
                      rp.deliver(*result);
                  });
        return rp;
      },
  };
}

} // namespace

node_actor spawn_node(caf::actor_system& sys, node_context_ptr ctx) {
  return sys.spawn(node_impl, std::move(ctx));
}

} // namespace engram::actors
