#pragma once

// A linearizability checker for histories of a key-value register (the
// Wing & Gong search with Lowe's memoization, as Porcupine does it):
// whether the operations clients saw — each with the time it was invoked,
// the time it returned (or never) and what it returned — can be ordered so
// that each takes effect at one instant between its invocation and its
// return and every read returns the last value written before it. Keys are
// checked one at a time (linearizability is compositional). Used on the
// histories of the Raft simulator and of real engramd processes.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace engram::consensus {

/// One client operation on one key.
struct register_op {
  enum kind_t : uint8_t { put, get };
  kind_t kind = put;
  std::string key;
  /// put: the value written; get: the value read ("" = never written).
  std::string value;
  /// When it was invoked and when it returned (any monotonic clock);
  /// `returned` is nullopt when the client never heard back (a put may or
  /// may not have taken effect; a get without answer constrains nothing).
  uint64_t invoked = 0;
  std::optional<uint64_t> returned;
};

/// The outcome of a check.
struct linearizability_result {
  bool ok = true;
  /// The first key whose history is not linearizable.
  std::string key;
  /// States explored (the search's cost).
  uint64_t explored = 0;
  /// True when the search stopped at its budget without an answer (treated
  /// as ok = true: no violation was found).
  bool gave_up = false;
};

/// Checks a history; `budget` bounds the states explored per key.
linearizability_result
check_linearizable(const std::vector<register_op>& history,
                   uint64_t budget = 10'000'000);

} // namespace engram::consensus
