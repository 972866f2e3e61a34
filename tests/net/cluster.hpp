#pragma once

// A test cluster of engramd processes on 127.0.0.1 and a client actor
// system that talks to them over TCP (shared by the net tests).

#include "actors/net.hpp"
#include "apps/common/process.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "temp_dir.hpp"
#include "test_pki.hpp"

namespace engram::test {

using engram::apps::process;
using engram::apps::read_port;
using namespace std::chrono_literals;

inline const std::string engramd = ENGRAMD_PATH;

/// A client's actor system: mutual TLS with `tls` (plaintext when none).
struct client_config : caf::actor_system_config {
  explicit client_config(const actors::tls_config& tls = {}) {
    actors::register_types(*this);
    actors::configure_network(*this);
    if (tls.enabled())
      actors::configure_tls(*this, tls);
  }
};

inline engram_record fact_of(const std::string& key, const std::string& value) {
  engram_record e;
  e.type = memory_type::semantic;
  e.body = fact{key, value};
  e.confidence = 0.9;
  return e;
}

// A test cluster: engramd processes in a temp dir and a client actor
// system that talks to them over TCP — mutual TLS, with certificates made
// at start.
struct cluster {
  temp_dir dir;
  test_pki pki{dir.sub("certs")};
  client_config cfg{pki.node_tls("test-harness")};
  caf::actor_system sys{cfg};

  struct daemon {
    std::string id;
    process proc;
    uint16_t port = 0;
    std::string host = "127.0.0.1";
    /// The client API's port (HTTPS).
    uint16_t api_port = 0;
  };
  std::vector<daemon> nodes;
  /// Flags every node gets (placement, timings).
  std::vector<std::string> common;
  /// Environment variables ("NAME=value") of a node, by id.
  std::map<std::string, std::vector<std::string>> env;

  std::vector<std::string> argv(const std::string& id,
                                const std::vector<uint16_t>& seeds,
                                uint16_t port = 0) {
    std::vector<std::string> args{engramd,
                                  "--node-id",
                                  id,
                                  "--data-dir",
                                  dir.sub(id),
                                  "--listen",
                                  "127.0.0.1:" + std::to_string(port),
                                  "--port-file",
                                  dir.sub(id + ".port"),
                                  "--api-listen",
                                  "127.0.0.1:0",
                                  "--api-port-file",
                                  dir.sub(id + ".api"),
                                  "--log-level",
                                  "debug"};
    pki.node(id);
    args.insert(args.end(), {"--certs-dir", pki.dir()});
    for (auto p : seeds) {
      args.push_back("--peer");
      args.push_back("127.0.0.1:" + std::to_string(p));
    }
    args.insert(args.end(), common.begin(), common.end());
    return args;
  }

  // Starts node `id` with `seeds` (ports of running nodes); returns its index.
  size_t start(const std::string& id, const std::vector<uint16_t>& seeds,
               uint16_t port = 0) {
    std::remove(dir.sub(id + ".port").c_str());
    std::remove(dir.sub(id + ".api").c_str());
    daemon d{id, process{argv(id, seeds, port), dir.sub(id + ".log"), env[id]},
             0};
    d.port = read_port(dir.sub(id + ".port"));
    d.api_port = read_port(dir.sub(id + ".api"));
    nodes.push_back(std::move(d));
    return nodes.size() - 1;
  }

  // Starts node `id` listening on `host` with seeds "host:port", its
  // command prefixed by `prefix` (e.g. `ip netns exec NS`).
  size_t start_at(const std::string& id, const std::string& host,
                  const std::vector<std::string>& seeds,
                  const std::vector<std::string>& prefix = {}) {
    std::remove(dir.sub(id + ".port").c_str());
    std::remove(dir.sub(id + ".api").c_str());
    auto args = prefix;
    auto own = argv(id, {});
    for (auto& a : own)
      args.push_back(a == "127.0.0.1:0" && host != "127.0.0.1" ? host + ":0"
                                                               : a);
    for (auto& seed : seeds) {
      args.push_back("--peer");
      args.push_back(seed);
    }
    daemon d{id, process{args, dir.sub(id + ".log")}, 0, host};
    d.port = read_port(dir.sub(id + ".port"));
    d.api_port = read_port(dir.sub(id + ".api"));
    nodes.push_back(std::move(d));
    return nodes.size() - 1;
  }

  std::string address(size_t i) const {
    return nodes[i].host + ":" + std::to_string(nodes[i].port);
  }

  /// The client API's address of node `i`.
  std::string api_address(size_t i) const {
    return nodes[i].host + ":" + std::to_string(nodes[i].api_port);
  }

  actors::node_actor node(size_t i) {
    auto remote = actors::connect_remote(
        sys, actors::endpoint{nodes[i].host, nodes[i].port}, 5s);
    if (!remote)
      BOOST_FAIL(remote.error_value().to_string());
    return remote->hdl;
  }

  actors::instance_actor instance(size_t i, const std::string& agent,
                                  const std::string& inst) {
    caf::scoped_actor self{sys};
    actors::instance_actor result;
    self->request(node(i), 5s, actors::instance_atom::value, agent, inst)
        .receive(
            [&](actors::instance_actor& x) {
              result = x;
            },
            [&](caf::error& e) {
              BOOST_FAIL(to_string(e));
            });
    return result;
  }

  void learn(const actors::instance_actor& inst, engram_record e) {
    caf::scoped_actor self{sys};
    self->request(inst, 5s, actors::learn_atom::value, std::move(e), false)
        .receive([](engram_id) {},
                 [&](caf::error& err) {
                   BOOST_FAIL(to_string(err));
                 });
  }

  size_t count(const actors::instance_actor& inst) {
    caf::scoped_actor self{sys};
    size_t n = 0;
    self->request(inst, 5s, actors::query_atom::value, query_filter{})
        .receive(
            [&](std::vector<memory_view>& xs) {
              n = xs.size();
            },
            [&](caf::error&) {});
    return n;
  }

  // What `inst` reads at `level` (an error fails the test).
  std::vector<memory_view> read(const actors::instance_actor& inst,
                                consistency_level level) {
    caf::scoped_actor self{sys};
    std::vector<memory_view> result;
    self->request(inst, 5s, actors::query_atom::value, query_filter{},
                  actors::code_of(level))
        .receive(
            [&](std::vector<memory_view>& xs) {
              result = std::move(xs);
            },
            [&](caf::error& err) {
              BOOST_ERROR("read failed: " << to_string(err));
            });
    return result;
  }

  // Learns `e` through `inst`: its id, or the error.
  expected<engram_id> try_learn(const actors::instance_actor& inst,
                                engram_record e) {
    caf::scoped_actor self{sys};
    expected<engram_id> result = make_error(errc::timeout, "no answer");
    self->request(inst, 10s, actors::learn_atom::value, std::move(e), false)
        .receive(
            [&](engram_id id) {
              result = id;
            },
            [&](caf::error& err) {
              result = actors::from_caf(err);
            });
    return result;
  }

  bool eventually_count(const actors::instance_actor& inst, size_t n,
                        std::chrono::milliseconds limit = 15s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (count(inst) == n)
        return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
};

// Runs engramd with `args` to completion (bounded) and returns its exit
// code and output.
inline std::pair<int, std::string> run(const std::vector<std::string>& args,
                                       const std::string& log) {
  std::vector<std::string> argv{engramd};
  argv.insert(argv.end(), args.begin(), args.end());
  process p{argv, log};
  auto rc = p.wait(20s);
  if (!rc)
    BOOST_FAIL("engramd did not exit");
  return {*rc, p.output()};
}

/// Sends a request from a fresh scoped actor and waits (bounded by
/// `timeout`) for the answer or the error.
template<class R, class Handle, class... Ts>
expected<R> call(caf::actor_system& sys, const Handle& dest,
                 std::chrono::milliseconds timeout, Ts&&... xs) {
  caf::scoped_actor self{sys};
  expected<R> result = make_error(errc::timeout, "no answer");
  self->request(dest, timeout, std::forward<Ts>(xs)...)
      .receive(
          [&](R& r) {
            result = std::move(r);
          },
          [&](caf::error& err) {
            result = actors::from_caf(err);
          });
  return result;
}

/// Polls `pred` until it holds or `limit` passes (bounded).
template<class Pred>
bool until(Pred pred, std::chrono::milliseconds limit = 15s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (pred()) // each attempt runs once: `pred` may act (send, write)
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(20ms);
  }
}

} // namespace engram::test
