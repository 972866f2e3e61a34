#pragma once

#include "core/ids.hpp"
#include "core/vector_clock.hpp"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

namespace engram {

/// An add-wins observed-remove set. Each add is tagged with a fresh dot; a
/// remove supersedes only the adds it has observed, so an add concurrent with
/// a remove survives. Every element carries a dotted version vector (its
/// live dots plus a version vector of the operations on it seen), which makes
/// joins order-insensitive: deltas may arrive in any order, duplicated.
/// A removed element keeps its version vector (a few bytes per writer).
template<class T>
class aw_set {
public:
  /// Adds `value` as replica `self`; returns the delta to ship.
  aw_set add(replica_id self, const T& value) {
    dot d{self, seen_.get(self) + 1};
    seen_.set(self, d.counter);
    aw_set delta;
    auto& slot = delta.elements_[value];
    slot.context = context_of(value);
    slot.context.set(self, d.counter);
    slot.dots.push_back(d);
    join(delta);
    return delta;
  }

  /// Removes `value` (every add of it observed so far).
  aw_set remove(const T& value) {
    aw_set delta;
    delta.elements_[value].context = context_of(value);
    join(delta);
    return delta;
  }

  /// Joins another state or delta.
  void join(const aw_set& other) {
    for (auto& [value, theirs] : other.elements_) {
      auto& ours = elements_[value];
      std::vector<dot> result;
      for (auto& d : ours.dots)
        if (has(theirs.dots, d) || !theirs.context.covers(d))
          result.push_back(d);
      for (auto& d : theirs.dots)
        if (!has(ours.dots, d) && !ours.context.covers(d))
          result.push_back(d);
      std::sort(result.begin(), result.end());
      ours.dots = std::move(result);
      ours.context.merge(theirs.context);
      seen_.merge(theirs.context);
    }
  }

  bool contains(const T& value) const {
    auto i = elements_.find(value);
    return i != elements_.end() && !i->second.dots.empty();
  }

  /// The elements in ascending order.
  std::vector<T> elements() const {
    std::vector<T> result;
    for (auto& kvp : elements_)
      if (!kvp.second.dots.empty())
        result.push_back(kvp.first);
    return result;
  }

  size_t size() const noexcept {
    size_t n = 0;
    for (auto& kvp : elements_)
      n += kvp.second.dots.empty() ? 0 : 1;
    return n;
  }

  /// Equal when both hold the same elements with the same histories.
  friend bool operator==(const aw_set& x, const aw_set& y) {
    return x.elements_ == y.elements_;
  }

private:
  struct slot_type {
    std::vector<dot> dots;
    vector_clock context;

    friend bool operator==(const slot_type& x, const slot_type& y) {
      return x.dots == y.dots && x.context == y.context;
    }
  };

  vector_clock context_of(const T& value) const {
    auto i = elements_.find(value);
    return i == elements_.end() ? vector_clock{} : i->second.context;
  }

  static bool has(const std::vector<dot>& xs, const dot& d) {
    return std::find(xs.begin(), xs.end(), d) != xs.end();
  }

  std::map<T, slot_type> elements_;
  /// Every operation seen (the join of all element contexts): new dots
  /// continue after the last one of ours seen anywhere.
  vector_clock seen_;
};

} // namespace engram
