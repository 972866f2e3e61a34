#pragma once

// Nodes across processes and hosts, over CAF's network layer (the io
// middleman, BASP): publishing a node, reaching a remote one, and keeping a
// node connected to its seed peers. The node, agent, instance and session
// actors are the same as in one process: frames are protobuf envelopes
// either way.

#include "actors/endpoint.hpp"
#include "actors/node.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace caf {
class actor_system;
class actor_system_config;
} // namespace caf

namespace engram::actors {

/// Loads CAF's io module and sets what multi-node operation needs: BASP
/// heartbeats so that a frozen peer (SIGSTOP) is detected, not only a
/// closed connection. Call before creating the actor system.
void configure_network(caf::actor_system_config& cfg,
                       milliseconds heartbeat = milliseconds{200},
                       milliseconds connection_timeout = milliseconds{1000});

/// Publishes `n`'s node actor at `at` (port 0: a free port); returns the
/// port bound.
expected<uint16_t> publish(caf::actor_system& sys, const node& n,
                           const endpoint& at);

/// A node reached over the network.
struct remote_node {
  std::string id;
  node_actor hdl;
};

/// Connects to the node published at `at` and asks its id (bounded by
/// `timeout`; a handshake the connection timeout cut short is tried again
/// within it).
expected<remote_node> connect_remote(caf::actor_system& sys, const endpoint& at,
                                     milliseconds timeout = milliseconds{5000});

/// Keeps a node connected to its seed peers: connects to each, makes both
/// nodes peers of each other, watches the connection and reconnects after a
/// loss (retrying every `retry`). Runs a thread of its own until destroyed.
class peer_keeper {
public:
  /// Called for every connection event: ("peer_up" | "peer_down" |
  /// "connect_failed" | "seed_is_self", the seed, a detail such as the
  /// peer's node id or the error). A seed that is this node itself (one
  /// seed list shared by every node) is reported once and then ignored.
  using event_handler = std::function<void(
      const std::string& event, const std::string& seed, const std::string&)>;

  peer_keeper(caf::actor_system& sys, node& n, std::vector<endpoint> seeds,
              event_handler on_event, milliseconds retry = milliseconds{500});

  ~peer_keeper();

  peer_keeper(const peer_keeper&) = delete;
  peer_keeper& operator=(const peer_keeper&) = delete;

  /// Seeds currently connected.
  size_t connected() const noexcept { return connected_.load(); }

private:
  void run();

  caf::actor_system& sys_;
  node& node_;
  std::vector<endpoint> seeds_;
  event_handler on_event_;
  milliseconds retry_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> connected_{0};
  std::thread thread_;
};

} // namespace engram::actors
