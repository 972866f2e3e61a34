#pragma once

#include "core/ids.hpp"
#include "core/vector_clock.hpp"

#include <vector>

namespace engram {

/// The causal context of a delta-state CRDT (Almeida, Shoker, Baquero 2018):
/// the set of dots (events) a state or delta has seen, stored compactly as a
/// vector clock (every dot up to a counter) plus a sorted "dot cloud" of dots
/// beyond the contiguous prefix.
class causal_context {
public:
  causal_context() = default;

  /// A context holding exactly the given dots.
  explicit causal_context(std::vector<dot> dots);

  /// True when the context holds `d`.
  bool contains(const dot& d) const noexcept;

  /// Adds one dot.
  void insert(const dot& d);

  /// Issues the next dot of `replica` and adds it. Precondition: `replica`
  /// is the local replica, whose own dots are always contiguous.
  dot next_dot(replica_id replica);

  /// Set union with `other`, then compaction.
  void join(const causal_context& other);

  /// Moves dots of the cloud that extend the contiguous prefix into it.
  void compact();

  /// The contiguous part: every dot up to each counter.
  const vector_clock& clock() const noexcept { return clock_; }

  /// The dots beyond the contiguous part, sorted.
  const std::vector<dot>& cloud() const noexcept { return cloud_; }

  /// Rebuilds a context from its parts (e.g. decoded from the wire); the
  /// cloud may be unsorted and is normalized.
  static causal_context from_parts(vector_clock clock, std::vector<dot> cloud);

  /// The clock of every dot (contiguous part merged with the cloud's maxima):
  /// what a peer must cover to have seen at least this context's events.
  vector_clock upper_bound() const;

  bool empty() const noexcept { return clock_.empty() && cloud_.empty(); }

  friend bool operator==(const causal_context& x,
                         const causal_context& y) noexcept {
    return x.clock_ == y.clock_ && x.cloud_ == y.cloud_;
  }

  friend bool operator!=(const causal_context& x,
                         const causal_context& y) noexcept {
    return !(x == y);
  }

private:
  vector_clock clock_;
  std::vector<dot> cloud_;
};

} // namespace engram
