#pragma once

#include "core/ids.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace engram {

/// The outcome of comparing two vector clocks.
enum class causal_order : uint8_t {
  /// Both clocks have seen exactly the same events.
  equal,
  /// The left clock happened before the right one (right dominates).
  before,
  /// The left clock happened after the right one (left dominates).
  after,
  /// Neither dominates: each has seen events the other has not.
  concurrent,
};

/// Returns "equal", "before", "after" or "concurrent".
const char* to_string(causal_order order) noexcept;

/// A vector clock: for each replica, the number of its events seen. Stored as
/// a vector sorted by replica id (small, cache-friendly, deterministic order
/// for hashing and encoding). Missing entries count as zero.
class vector_clock {
public:
  using entry = std::pair<replica_id, uint64_t>;

  vector_clock() = default;

  /// Builds a clock from (replica, counter) pairs in any order; duplicate
  /// replicas keep the maximum counter.
  vector_clock(std::initializer_list<entry> entries);

  /// The counter of `replica` (zero when absent).
  uint64_t get(replica_id replica) const noexcept;

  /// Sets the counter of `replica`; zero removes the entry.
  void set(replica_id replica, uint64_t counter);

  /// Removes every entry (keeps the storage, for reuse).
  void clear() noexcept { entries_.clear(); }

  /// Appends an entry; `replica` must be greater than every replica held
  /// and `counter` non-zero (building a clock from sorted entries).
  void append(replica_id replica, uint64_t counter) {
    entries_.emplace_back(replica, counter);
  }

  /// Increments the counter of `replica` and returns its new value.
  uint64_t increment(replica_id replica);

  /// True when this clock has seen the event `d`.
  bool covers(const dot& d) const noexcept {
    return get(d.replica) >= d.counter;
  }

  /// Point-wise maximum with `other`.
  void merge(const vector_clock& other);

  /// Compares the causal histories of two clocks.
  causal_order compare(const vector_clock& other) const noexcept;

  /// True when this clock has seen everything `other` has.
  bool dominates(const vector_clock& other) const noexcept {
    auto order = compare(other);
    return order == causal_order::equal || order == causal_order::after;
  }

  /// Removes zero entries and the entries of `retired` replicas that `stable`
  /// covers (every peer has seen all of their events, so their entries carry
  /// no information any more). Returns the number of entries removed.
  size_t compact(const vector_clock& stable = {},
                 const std::vector<replica_id>& retired = {});

  /// The entries, sorted by replica id.
  const std::vector<entry>& entries() const noexcept { return entries_; }

  size_t size() const noexcept { return entries_.size(); }

  bool empty() const noexcept { return entries_.empty(); }

  /// Sum of all counters: the number of events seen.
  uint64_t total() const noexcept;

  /// A human-readable rendering, e.g. "{1a2b:3, 77ff:1}".
  std::string to_string() const;

  friend bool operator==(const vector_clock& x,
                         const vector_clock& y) noexcept {
    return x.entries_ == y.entries_;
  }

  friend bool operator!=(const vector_clock& x,
                         const vector_clock& y) noexcept {
    return !(x == y);
  }

private:
  std::vector<entry> entries_;
};

} // namespace engram
