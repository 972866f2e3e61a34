#pragma once

#include "core/ids.hpp"
#include "core/vector_clock.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace engram {

/// A multi-value register with dotted version vectors (Preguiça et al.): each
/// value is tagged with the dot of its write; the register's context is a
/// version vector of the writes it has seen. A write supersedes every value
/// its writer had seen; concurrent writes are all kept (the contested values).
///
/// Delta-state and order-insensitive: a mutation returns a small register
/// (the new value plus the writer's context) that can be joined anywhere, in
/// any order, any number of times. Soundness: a replica's write n supersedes
/// its own earlier writes, so "seen up to n from r" summarizes them exactly.
template<class T>
class mv_register {
public:
  using entry = std::pair<dot, T>;

  /// Writes `value` as replica `self`; returns the delta to ship.
  mv_register write(replica_id self, T value) {
    dot d{self, context_.get(self) + 1};
    mv_register delta;
    delta.context_ = context_;
    delta.context_.set(self, d.counter);
    delta.entries_.emplace_back(d, std::move(value));
    join(delta);
    return delta;
  }

  /// Clears the register (every value seen is superseded); returns the delta.
  mv_register reset() {
    mv_register delta;
    delta.context_ = context_;
    join(delta);
    return delta;
  }

  /// Joins another state or delta: keeps values both sides hold, and values
  /// one side holds that the other side has not seen.
  void join(const mv_register& other) {
    std::vector<entry> result;
    for (auto& e : entries_)
      if (other.holds(e.first) || !other.context_.covers(e.first))
        result.push_back(e);
    for (auto& e : other.entries_)
      if (!holds(e.first) && !context_.covers(e.first))
        result.push_back(e);
    std::sort(result.begin(), result.end(), [](const entry& x, const entry& y) {
      return x.first < y.first;
    });
    entries_ = std::move(result);
    context_.merge(other.context_);
  }

  /// The current values, ordered by dot. More than one means concurrent
  /// writes that no later write has superseded.
  std::vector<T> values() const {
    std::vector<T> result;
    for (auto& e : entries_)
      result.push_back(e.second);
    return result;
  }

  const std::vector<entry>& entries() const noexcept { return entries_; }

  const vector_clock& context() const noexcept { return context_; }

  friend bool operator==(const mv_register& x, const mv_register& y) {
    return x.entries_ == y.entries_ && x.context_ == y.context_;
  }

private:
  bool holds(const dot& d) const {
    return std::any_of(entries_.begin(), entries_.end(), [&](const entry& e) {
      return e.first == d;
    });
  }

  std::vector<entry> entries_;
  vector_clock context_;
};

} // namespace engram
