#pragma once

// engram-swarm's options and the result of a run (apps/swarm/main.cpp
// parses the options; simulation.cpp and real.cpp run them).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace engram::swarm {

struct options {
  uint64_t seed = 1;
  size_t seeds = 1;
  size_t agents = 100;
  size_t nodes = 8;
  size_t writes = 1000;
  /// Simulated time over which the writes are spread.
  int64_t workload_ms = 4000;
  double conflict_rate = 0.2;
  double belief_share = 0.2;
  /// Shares of writes that are episodes and skills (in Agent scope), and
  /// of writes kept in the writing instance (Instance scope).
  double episodic_share = 0.1;
  double procedural_share = 0.1;
  double instance_share = 0.05;
  /// Per write, the chance of also a share (redacted, accepted by the
  /// receiver with trust 0.8) and of a tell, between random agents.
  double share_rate = 0.0;
  double tell_rate = 0.0;
  /// Per write, the chance of a broadcast by a member of the swarm's
  /// federation (the first eight agents; only with this option).
  double broadcast_rate = 0.0;
  double loss = 0.0;
  double dup = 0.0;
  double delay = 0.0;
  bool partition = false;
  bool one_way = false;
  bool crash = false;
  int64_t skew_ms = 0;
  /// Give up converging after this much simulated time past the heal.
  int64_t heal_limit_ms = 120'000;
  std::string csv;
  std::string plot;
  bool quiet = false;
};

/// What a run came to: its report (everything in it follows from the seed,
/// the build and the options), the invariants it violated, its series.
struct run_result {
  bool ok = true;
  /// The time series (--csv), when sampled.
  std::string csv;
  std::vector<std::string> failures;
  std::string report;
  uint64_t report_hash = 0;
  double converge_ms = -1;
};

/// The command that reproduces a run of `seed`.
std::string command_of(const options& o, uint64_t seed);

/// FNV-1a over `text`, continuing from `h`.
uint64_t fnv1a(const std::string& text, uint64_t h = 0xcbf29ce484222325ULL);

/// `x` as 16 hex digits.
std::string hex(uint64_t x);

} // namespace engram::swarm
