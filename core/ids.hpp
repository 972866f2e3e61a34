#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <tuple>

namespace engram {

/// Identifies one replica of memory: one (node, actor) pair that writes.
/// Replica ids name the writer of every version (the origin of a dot) and
/// break ties between concurrent writes deterministically.
using replica_id = uint64_t;

/// Derives a replica id from a stable name such as "node-1/agent-alpha".
replica_id make_replica_id(std::string_view name) noexcept;

/// The id a replica writes under after its store was repaired
/// `incarnation` times (0: `base` itself). A repaired replica may have lost
/// writes whose dots its peers hold: a new id guarantees it never issues
/// one of those dots again, while its context claims only what it still
/// holds, so peers send back what it lost.
replica_id incarnation_of(replica_id base, uint32_t incarnation) noexcept;

/// The store partition holding a node's replica of an agent's memory.
std::string agent_partition(std::string_view agent_id);

/// The store partition holding an instance's memory.
std::string instance_partition(std::string_view agent_id,
                               std::string_view instance_id);

/// The replica id of a partition of a node (unique per node and partition):
/// what a version's dot names, so a dot tells which node wrote it.
replica_id replica_of(std::string_view node_id, std::string_view partition);

/// A 128-bit engram identifier. Ids of keyed content (a fact's key, a belief's
/// subject and relation, an episode id, a skill id) are derived from the key
/// and scope, so concurrent writes of the same entity meet at the same id.
struct engram_id {
  uint64_t hi = 0;
  uint64_t lo = 0;

  /// True for the all-zero id, which names no engram.
  bool empty() const noexcept { return hi == 0 && lo == 0; }

  /// Returns the id as 32 lowercase hex digits.
  std::string to_string() const;

  /// Parses 32 hex digits; refuses anything else with `errc::parse_error`.
  static expected<engram_id> parse(std::string_view text);

  friend bool operator==(const engram_id& x, const engram_id& y) noexcept {
    return x.hi == y.hi && x.lo == y.lo;
  }

  friend bool operator!=(const engram_id& x, const engram_id& y) noexcept {
    return !(x == y);
  }

  friend bool operator<(const engram_id& x, const engram_id& y) noexcept {
    return std::tie(x.hi, x.lo) < std::tie(y.hi, y.lo);
  }
};

/// One event in the causal history: the `counter`-th write of `replica`.
struct dot {
  replica_id replica = 0;
  uint64_t counter = 0;

  friend bool operator==(const dot& x, const dot& y) noexcept {
    return x.replica == y.replica && x.counter == y.counter;
  }

  friend bool operator!=(const dot& x, const dot& y) noexcept {
    return !(x == y);
  }

  friend bool operator<(const dot& x, const dot& y) noexcept {
    return std::tie(x.replica, x.counter) < std::tie(y.replica, y.counter);
  }
};

} // namespace engram

namespace std {

template<>
struct hash<engram::engram_id> {
  size_t operator()(const engram::engram_id& id) const noexcept {
    // Ids are hashes already; fold both halves.
    return static_cast<size_t>(id.hi ^ (id.lo * 0x9e3779b97f4a7c15ULL));
  }
};

} // namespace std
