#pragma once

// Which nodes hold what (the spec's "Storage Layer Distribution"):
// replication strategy and factor, consistency levels, and partitioning.
// Pure: node ids in, node ids out; liveness is a predicate the caller
// passes in.

#include "core/engram.hpp"
#include "core/error.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace engram {

/// How many replicas a write waits for, and a read consults.
enum class consistency_level : uint8_t {
  /// One replica (the nearest: this node when it holds the data).
  one,
  /// A majority of the replicas.
  quorum,
  /// Every replica.
  all,
  /// This node only: reads never leave it; writes are acknowledged once
  /// stored on the first replica (this node when it holds the data).
  local,
};

const char* to_string(consistency_level level) noexcept;

/// Parses "one", "quorum", "all" or "local" (case-insensitive).
expected<consistency_level> parse_consistency(std::string_view text);

enum class replication_strategy : uint8_t {
  /// All replicas are equal: a write is coordinated by any replica (this
  /// node when it holds the data).
  symmetric,
  /// The first live replica of a partition's preference list is its
  /// primary and coordinates every write; the others are secondaries.
  primary_secondary,
  /// Explicit shards: `shard_key` maps an engram to a shard, each shard
  /// lists its nodes (the first is preferred).
  sharded,
};

const char* to_string(replication_strategy strategy) noexcept;

expected<replication_strategy> parse_replication_strategy(std::string_view);

/// PrimarySecondary: when a primary counts as lost.
struct failover_config {
  /// A primary unreachable for this long is replaced by the next live
  /// replica (0: as soon as its loss is detected).
  std::chrono::milliseconds promote_after{0};
};

struct shard_config {
  uint32_t id = 0;
  /// The nodes holding the shard, preferred first.
  std::vector<std::string> nodes;
};

using shard_key_fn = std::function<uint32_t(const engram_record&)>;

/// The spec's `ReplicationConfig`.
struct replication_config {
  /// Replicas per partition; 0: every member.
  size_t factor = 0;
  replication_strategy strategy = replication_strategy::symmetric;
  failover_config failover;
  /// Sharded: the shard of an engram (unknown shard ids wrap around the
  /// configured shards) and the shards.
  shard_key_fn shard_key;
  std::vector<shard_config> shards;
  /// Writes are acknowledged after this many replicas stored them durably;
  /// reads consult and merge this many.
  consistency_level consistency = consistency_level::one;
  /// How long a write waits for the replicas its level needs.
  std::chrono::milliseconds write_timeout{2000};
};

enum class partition_strategy : uint8_t { hash, scope, type, time, custom };

const char* to_string(partition_strategy strategy) noexcept;

expected<partition_strategy> parse_partition_strategy(std::string_view);

using partitioner_fn = std::function<uint32_t(const engram_record&)>;

/// The spec's `PartitionConfig`.
struct partition_config {
  partition_strategy strategy = partition_strategy::hash;
  uint32_t partition_count = 1;
  /// Time: the width of a bucket of creation times.
  std::chrono::milliseconds bucket_size{std::chrono::hours{1}};
  /// Custom: the partition of an engram (taken modulo partition_count).
  partitioner_fn partitioner;
};

/// Built-in shard keys for configuration files: "hash" (engram id),
/// "scope", "type", "subject" (of a fact or belief).
expected<shard_key_fn> make_shard_key(std::string_view name);

/// The replicas an operation at `level` needs out of `replicas`.
size_t required_replicas(consistency_level level, size_t replicas) noexcept;

/// Places an agent's engrams: engram → partition → the nodes holding it,
/// in preference order (rendezvous hashing of (salt, partition) over the
/// members, so every node computes the same lists and a member joining or
/// leaving moves only its own share). The salt (an agent id) spreads
/// agents over different nodes.
class placement {
public:
  using live_fn = std::function<bool(const std::string& node)>;

  /// Every member holds everything (the default: Symmetric, factor 0, one
  /// partition).
  placement() = default;

  /// Fails with `invalid_argument` naming what is wrong (no members for a
  /// factor, no shards for Sharded, a Custom strategy without function...).
  static expected<placement> make(const replication_config& replication,
                                  const partition_config& partitioning,
                                  std::vector<std::string> members,
                                  std::string_view salt = {});

  /// True when every member holds every engram (no filtering needed).
  bool everywhere() const noexcept { return everywhere_; }

  uint32_t partition_count() const noexcept {
    return static_cast<uint32_t>(lists_.size());
  }

  /// The partition of an engram (its id must be set).
  uint32_t partition_of(const engram_record& e) const;

  /// The nodes holding partition `p`, preferred first. Empty when every
  /// member holds everything.
  const std::vector<std::string>& replicas(uint32_t p) const;

  /// True when `node` holds partition `p` (always, when everywhere()).
  bool holds(const std::string& node, uint32_t p) const;

  bool holds(const std::string& node, const engram_record& e) const {
    return everywhere_ || holds(node, partition_of(e));
  }

  /// The node that coordinates a write to partition `p` as seen from
  /// `self`: PrimarySecondary: the first live replica (the primary);
  /// otherwise `self` when it holds `p`, else the first live replica.
  /// Nullopt when no replica is live.
  std::optional<std::string> coordinator(uint32_t p, const std::string& self,
                                         const live_fn& live) const;

  /// The nodes a read at `level` from `self` consults so that every
  /// partition is covered by the replicas the level needs (self first,
  /// then live replicas in preference order). Fails with `unavailable`
  /// naming the partition that has too few live replicas.
  expected<std::vector<std::string>> read_set(consistency_level level,
                                              const std::string& self,
                                              const live_fn& live) const;

  const std::vector<std::string>& members() const noexcept { return members_; }

  const replication_config& replication() const noexcept { return repl_; }

private:
  bool everywhere_ = true;
  replication_config repl_;
  partition_config part_;
  std::vector<std::string> members_;
  /// Per partition (or shard): the nodes, preferred first.
  std::vector<std::vector<std::string>> lists_;
  /// Sharded: shard id → index into lists_.
  std::vector<std::pair<uint32_t, uint32_t>> shard_index_;
};

} // namespace engram
