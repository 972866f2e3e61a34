#pragma once

// What every actor of one node shares: its configuration, its database and
// the directory of live actors (which the supervisor updates on respawn).

#include "actors/api.hpp"
#include "actors/types.hpp"
#include "core/hash.hpp"
#include "messages/envelope.hpp"
#include "persistence/store.hpp"
#include "persistence/write_queue.hpp"

#include <caf/actor_addr.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "crypto/sign.hpp"
#include "origin/book.hpp"
#include "pki/pki.hpp"

namespace engram::actors {

/// The node's directory: agent id → agent actor, instance key → instance
/// actor. Thread-safe; memory handles read it on every call so that they
/// follow an actor the supervisor respawned.
class directory {
public:
  std::optional<agent_actor> agent(const std::string& agent_id) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = agents_.find(agent_id);
    if (i == agents_.end())
      return std::nullopt;
    return i->second;
  }

  std::optional<instance_actor> instance(const std::string& key) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = instances_.find(key);
    if (i == instances_.end())
      return std::nullopt;
    return i->second;
  }

  void put(const std::string& agent_id, agent_actor hdl) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    agents_[agent_id] = std::move(hdl);
  }

  void put_instance(const std::string& key, instance_actor hdl) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    instances_[key] = std::move(hdl);
  }

  void erase(const std::string& agent_id) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    agents_.erase(agent_id);
  }

  void erase_instance(const std::string& key) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    instances_.erase(key);
  }

  void clear() {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    agents_.clear();
    instances_.clear();
    hosts_.clear();
  }

  // -- the cluster-wide part: which other nodes host which agents ---------

  /// Records what `node` announced: it hosts `agents` (all of them when
  /// `full`: earlier entries of the node are dropped) and no longer `gone`.
  void announce(const std::string& node, const std::vector<std::string>& agents,
                bool full, const std::vector<std::string>& gone) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    if (full)
      drop_locked(node);
    for (auto& a : agents)
      hosts_[a].insert(node);
    for (auto& a : gone)
      if (auto i = hosts_.find(a); i != hosts_.end())
        i->second.erase(node);
  }

  /// Forgets every agent of a node that was lost (it announces them again
  /// when it is back).
  void drop_node(const std::string& node) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    drop_locked(node);
  }

  /// The other nodes hosting `agent_id`, ordered by id.
  std::vector<std::string> hosts(const std::string& agent_id) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = hosts_.find(agent_id);
    if (i == hosts_.end())
      return {};
    return {i->second.begin(), i->second.end()};
  }

  /// The agents hosted here.
  std::vector<std::string> local_agents() const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    std::vector<std::string> result;
    for (auto& [id, _] : agents_)
      result.push_back(id);
    std::sort(result.begin(), result.end());
    return result;
  }

  /// The key of an instance of an agent.
  static std::string instance_key(const std::string& agent_id,
                                  const std::string& instance_id) {
    return agent_id + '/' + instance_id;
  }

private:
  void drop_locked(const std::string& node) {
    for (auto i = hosts_.begin(); i != hosts_.end();) {
      i->second.erase(node);
      i = i->second.empty() ? hosts_.erase(i) : std::next(i);
    }
  }

  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, agent_actor> agents_;
  std::unordered_map<std::string, instance_actor> instances_;
  std::map<std::string, std::set<std::string>> hosts_;
};

/// The peers a node knows and whether each is reachable now. The node actor
/// updates it (a peer is up when it connected, down when its connection or
/// actor was lost); agents read it to place and route operations.
class cluster_view {
public:
  using clock_type = std::chrono::steady_clock;

  /// A measurement of a peer's wall clock: its offset from this node's
  /// (peer minus this node) and the round trip that bounds the error.
  struct clock_reading {
    int64_t offset_us = 0;
    int64_t rtt_us = 0;
  };

  /// `max_offset`: the bound beyond which a peer's clock is refused (the
  /// node's `max_clock_offset`).
  explicit cluster_view(std::chrono::milliseconds max_offset
                        = std::chrono::milliseconds{500})
      : max_offset_us_(max_offset.count() * 1000) {
    // nop
  }

  /// Records a reading of `node`'s clock; returns whether that changed the
  /// peer from within the bound to beyond it or back (for the log).
  bool set_clock(const std::string& node, clock_reading reading) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    auto& p = peers_[node];
    bool before = !p.clock || within_locked(*p.clock);
    p.clock = reading;
    return before != within_locked(reading);
  }

  /// The last reading of `node`'s clock, if any.
  std::optional<clock_reading> clock(const std::string& node) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = peers_.find(node);
    if (i == peers_.end())
      return std::nullopt;
    return i->second.clock;
  }

  /// Whether this node syncs with `node`: its clock is not known to be
  /// beyond the bound (the offset minus its error, half the round trip).
  bool clock_ok(const std::string& node) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = peers_.find(node);
    return i == peers_.end() || !i->second.clock
           || within_locked(*i->second.clock);
  }

  /// Why this node refuses writes, if it does: its clock is beyond the
  /// bound from a majority of its peers (every peer it knows, reachable or
  /// not: so it, not they, is off). Empty when writes are fine.
  std::string clock_refusal() const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    size_t off = 0;
    int64_t worst = 0;
    for (auto& [_, p] : peers_)
      if (p.clock && !within_locked(*p.clock)) {
        ++off;
        if (magnitude(p.clock->offset_us) > magnitude(worst))
          worst = p.clock->offset_us;
      }
    if (off == 0 || off * 2 <= peers_.size())
      return {};
    return "this node's clock is off by about "
           + std::to_string(-(worst / 1000)) + " ms from " + std::to_string(off)
           + " of its " + std::to_string(peers_.size())
           + " peers (max_clock_offset " + std::to_string(max_offset_us_ / 1000)
           + " ms): writes are refused until the clocks agree";
  }

  /// |x| without overflow (|INT64_MIN| is INT64_MAX + 1).
  static uint64_t magnitude(int64_t x) noexcept {
    return x < 0 ? uint64_t{0} - static_cast<uint64_t>(x)
                 : static_cast<uint64_t>(x);
  }

  int64_t max_offset_us() const noexcept { return max_offset_us_; }

  void up(const std::string& node, peer_actor hdl) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    auto& p = peers_[node];
    if (!p.hdl)
      ++version_; // a new member
    p.hdl = std::move(hdl);
    p.live = true;
  }

  void down(const std::string& node) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    auto i = peers_.find(node);
    if (i == peers_.end() || !i->second.live)
      return;
    i->second.live = false;
    i->second.down_since = clock_type::now();
  }

  /// True when `node` is connected, or lost less than `grace` ago.
  bool live(const std::string& node, std::chrono::milliseconds grace
                                     = std::chrono::milliseconds{0}) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = peers_.find(node);
    if (i == peers_.end())
      return false;
    return i->second.live
           || (grace.count() > 0
               && clock_type::now() - i->second.down_since < grace);
  }

  /// The handle of a connected peer.
  std::optional<peer_actor> peer(const std::string& node) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = peers_.find(node);
    if (i == peers_.end() || !i->second.live)
      return std::nullopt;
    return i->second.hdl;
  }

  /// Every peer ever connected.
  std::vector<std::string> known() const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    std::vector<std::string> result;
    for (auto& [node, _] : peers_)
      result.push_back(node);
    return result;
  }

  /// Changes whenever a new peer becomes known.
  uint64_t version() const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    return version_;
  }

private:
  bool within_locked(const clock_reading& r) const {
    auto error = static_cast<uint64_t>(std::max<int64_t>(r.rtt_us, 0) / 2);
    auto off = magnitude(r.offset_us);
    return off <= error || off - error <= static_cast<uint64_t>(max_offset_us_);
  }

  struct peer_state {
    peer_actor hdl;
    bool live = false;
    clock_type::time_point down_since;
    std::optional<clock_reading> clock;
  };
  mutable std::shared_mutex mtx_;
  std::map<std::string, peer_state> peers_;
  uint64_t version_ = 0;
  int64_t max_offset_us_;
};

/// How agents and instances keep their partitions of the node's store:
/// their replicas are held in memory, which answers queries and computes
/// the deltas a peer misses, so the store keeps neither an index nor a
/// delta log, and recording a merge reads nothing.
inline const persistence::partition_options in_memory_replica{false, false};

/// Shared by the actors of one node.
/// What this node proves itself with, and checks its peers against.
struct node_identity {
  pki::certificate cert;
  std::string cert_pem;
  pki::private_key key;
  pki::certificate ca;
  std::optional<pki::revocation_list> crl;
};

/// The proof books (origin/book.hpp) of the memories this node hosts, by
/// agent id: an agent registers its book when it loads, its sessions prove
/// and check with it. Thread-safe.
class origin_books {
public:
  void put(const std::string& agent, std::shared_ptr<origin::book> b) {
    std::lock_guard<std::mutex> guard{mtx_};
    books_[agent] = std::move(b);
  }

  std::shared_ptr<origin::book> get(const std::string& agent) const {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = books_.find(agent);
    return i == books_.end() ? nullptr : i->second;
  }

private:
  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::shared_ptr<origin::book>> books_;
};

/// The node's member of the Universal scope's consensus group, once the
/// node spawned it (none when the configuration names no members, or not
/// this node). Thread-safe: instances read it on every Universal request.
class consensus_slot {
public:
  std::optional<consensus_actor> get() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return hdl_;
  }

  void set(std::optional<consensus_actor> hdl) {
    std::lock_guard<std::mutex> guard{mtx_};
    hdl_ = std::move(hdl);
  }

private:
  mutable std::mutex mtx_;
  std::optional<consensus_actor> hdl_;
};

struct node_context {
  node_config config;
  /// Set when the node runs with TLS: peers prove their id.
  std::shared_ptr<const node_identity> identity;
  /// Random, never leaves the process: marks a peer added by this
  /// process's own code (node::add_peer) rather than by a remote claim.
  std::string local_token;
  /// What this node signs its envelopes with (a key of this process's
  /// run, bound to the certificate by the proofs), and the number of the
  /// last envelope signed. Without TLS (or with sign_envelopes off): none.
  std::shared_ptr<const crypto::signing_key> signer;
  /// With a signer: its binding to this node's certificate, for proofs of
  /// origin; and the books of the proofs, per memory.
  std::optional<v1::OriginKey> origin_binding;
  std::shared_ptr<origin_books> origins = std::make_shared<origin_books>();
  std::shared_ptr<std::atomic<uint64_t>> envelopes_signed
      = std::make_shared<std::atomic<uint64_t>>(0);
  std::shared_ptr<persistence::database> db;
  /// Writes the agents' batches in order, off their threads.
  std::shared_ptr<persistence::write_queue> writes;
  std::shared_ptr<directory> dir;
  std::shared_ptr<cluster_view> cluster;
  /// The Universal scope's consensus member (see consensus_slot).
  std::shared_ptr<consensus_slot> universal
      = std::make_shared<consensus_slot>();
  /// The node actor (set once it is spawned, before any child).
  caf::actor_addr node;

  /// `bytes` (a serialized envelope) signed as this node's for node `to`
  /// and `agent` (empty: node to node), with the next sequence number; as
  /// they are when the node does not sign. Error: the signature failed
  /// (the frame is not sent).
  expected<std::string> sign(std::string bytes, const std::string& to,
                             const std::string& agent) const {
    if (!signer)
      return bytes;
    if (auto ok
        = messages::sign_envelope(bytes, ++*envelopes_signed, *signer,
                                  messages::route(config.node_id, to, agent));
        !ok)
      return ok.error_value();
    return bytes;
  }

  /// The configuration of an agent hosted here.
  agent_config agent(const std::string& agent_id) const {
    agent_config result;
    if (config.agent_defaults)
      result = config.agent_defaults(agent_id);
    result.agent_id = agent_id;
    return result;
  }
};

using node_context_ptr = std::shared_ptr<const node_context>;

/// The id of a message an agent sends (tell, broadcast): what it says and
/// the sender's HLC timestamp when sent, so a retry carries the same id and
/// two sends never do.
inline uint64_t message_id(const std::string& what, hlc_timestamp at) {
  return hash_combine(hash_combine(hash_string(what), at.wall_us), at.logical);
}

/// Replicas named "fed-…" hold a federation's Collective memory; every
/// other replica name is an agent id.
inline bool is_federation_id(const std::string& id) {
  return id.rfind("fed-", 0) == 0;
}

} // namespace engram::actors
