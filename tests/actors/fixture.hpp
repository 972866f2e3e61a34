#pragma once

#include "actors/node.hpp"
#include "actors/types.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "temp_dir.hpp"

namespace engram::test {

/// Session timings short enough for tests on the real scheduler.
inline actors::session_settings fast_sessions() {
  actors::session_settings s;
  s.push_delay = std::chrono::milliseconds{1};
  s.retransmit_after = std::chrono::milliseconds{40};
  s.anti_entropy_interval = std::chrono::milliseconds{100};
  s.ping_interval = std::chrono::milliseconds{200};
  s.peer_timeout = std::chrono::milliseconds{2000};
  s.tick = std::chrono::milliseconds{10};
  return s;
}

/// An actor system with Engram's types registered.
struct engram_config : caf::actor_system_config {
  engram_config() { actors::register_types(*this); }
};

/// A real actor system and nodes whose stores live in a temp dir.
struct runtime_fixture {
  temp_dir dir;
  engram_config cfg;
  caf::actor_system sys{cfg};

  actors::node_config node_cfg(const std::string& id) {
    actors::node_config c;
    c.node_id = id;
    c.data_dir = dir.sub(id);
    c.sync_writes = false; // logic tests; durability has its own tests
    c.sessions = fast_sessions();
    return c;
  }

  std::unique_ptr<actors::node> start(const std::string& id) {
    return start(node_cfg(id));
  }

  std::unique_ptr<actors::node> start(actors::node_config c) {
    auto n = actors::node::start(sys, std::move(c));
    if (!n)
      BOOST_FAIL(n.error_value().to_string());
    return std::move(*n);
  }
};

/// A semantic fact with no scope yet (the memory API's defaults decide).
inline engram_record fact_of(const std::string& key, const std::string& value) {
  engram_record e;
  e.type = memory_type::semantic;
  e.body = fact{key, value};
  e.confidence = 0.9;
  return e;
}

/// Polls `pred` until it holds or `limit` passes (bounded: never hangs).
template<class Pred>
bool eventually(Pred pred,
                std::chrono::milliseconds limit = std::chrono::seconds{10}) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  return pred();
}

/// Unwraps an expected or fails the test with its error.
template<class T>
T ok(expected<T> x) {
  if (!x)
    BOOST_FAIL(x.error_value().to_string());
  return std::move(*x);
}

/// Fails the test with the error of a failed operation.
inline void ok(expected<void> x) {
  if (!x)
    BOOST_FAIL(x.error_value().to_string());
}

} // namespace engram::test
