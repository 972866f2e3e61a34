#include "core/vector_clock.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>

namespace engram {

const char* to_string(causal_order order) noexcept {
  switch (order) {
    case causal_order::equal: return "equal";
    case causal_order::before: return "before";
    case causal_order::after: return "after";
    case causal_order::concurrent: return "concurrent";
  }
  return "invalid";
}

vector_clock::vector_clock(std::initializer_list<entry> entries) {
  for (auto& [replica, counter] : entries)
    if (counter > get(replica))
      set(replica, counter);
}

namespace {

auto lower(std::vector<vector_clock::entry>& xs, replica_id r) {
  return std::lower_bound(xs.begin(), xs.end(), r,
                          [](const auto& e, replica_id id) {
                            return e.first < id;
                          });
}

} // namespace

uint64_t vector_clock::get(replica_id replica) const noexcept {
  auto i = std::lower_bound(entries_.begin(), entries_.end(), replica,
                            [](const auto& e, replica_id id) {
                              return e.first < id;
                            });
  return i != entries_.end() && i->first == replica ? i->second : 0;
}

void vector_clock::set(replica_id replica, uint64_t counter) {
  auto i = lower(entries_, replica);
  if (i != entries_.end() && i->first == replica) {
    if (counter == 0)
      entries_.erase(i);
    else
      i->second = counter;
  } else if (counter != 0) {
    entries_.emplace(i, replica, counter);
  }
}

uint64_t vector_clock::increment(replica_id replica) {
  auto i = lower(entries_, replica);
  if (i != entries_.end() && i->first == replica)
    return ++i->second;
  entries_.emplace(i, replica, 1);
  return 1;
}

void vector_clock::merge(const vector_clock& other) {
  if (other.entries_.empty())
    return;
  // Fast path (the common case): every replica of `other` is known here, so
  // the maximum is taken in place without allocating.
  if (other.entries_.size() <= entries_.size()) {
    auto i = entries_.begin();
    bool in_place = true;
    for (auto& e : other.entries_) {
      while (i != entries_.end() && i->first < e.first)
        ++i;
      if (i == entries_.end() || i->first != e.first) {
        in_place = false;
        break;
      }
    }
    if (in_place) {
      auto j = entries_.begin();
      for (auto& e : other.entries_) {
        while (j->first < e.first)
          ++j;
        j->second = std::max(j->second, e.second);
      }
      return;
    }
  }
  std::vector<entry> result;
  result.reserve(entries_.size() + other.entries_.size());
  auto i = entries_.begin();
  auto j = other.entries_.begin();
  while (i != entries_.end() || j != other.entries_.end()) {
    if (j == other.entries_.end()
        || (i != entries_.end() && i->first < j->first)) {
      result.push_back(*i++);
    } else if (i == entries_.end() || j->first < i->first) {
      result.push_back(*j++);
    } else {
      result.emplace_back(i->first, std::max(i->second, j->second));
      ++i;
      ++j;
    }
  }
  entries_ = std::move(result);
}

causal_order vector_clock::compare(const vector_clock& other) const noexcept {
  bool less = false;    // some counter of ours is smaller
  bool greater = false; // some counter of ours is larger
  auto i = entries_.begin();
  auto j = other.entries_.begin();
  while (i != entries_.end() || j != other.entries_.end()) {
    if (j == other.entries_.end()
        || (i != entries_.end() && i->first < j->first)) {
      if (i->second > 0)
        greater = true;
      ++i;
    } else if (i == entries_.end() || j->first < i->first) {
      if (j->second > 0)
        less = true;
      ++j;
    } else {
      if (i->second < j->second)
        less = true;
      else if (i->second > j->second)
        greater = true;
      ++i;
      ++j;
    }
    if (less && greater)
      return causal_order::concurrent;
  }
  if (less)
    return causal_order::before;
  if (greater)
    return causal_order::after;
  return causal_order::equal;
}

size_t vector_clock::compact(const vector_clock& stable,
                             const std::vector<replica_id>& retired) {
  auto before = entries_.size();
  auto is_removable = [&](const entry& e) {
    if (e.second == 0)
      return true;
    return std::find(retired.begin(), retired.end(), e.first) != retired.end()
           && stable.get(e.first) >= e.second;
  };
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(), is_removable),
                 entries_.end());
  return before - entries_.size();
}

uint64_t vector_clock::total() const noexcept {
  uint64_t sum = 0;
  for (auto& e : entries_)
    sum += e.second;
  return sum;
}

std::string vector_clock::to_string() const {
  std::string result = "{";
  char buf[64];
  for (size_t i = 0; i < entries_.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "%s%llx:%llu", i == 0 ? "" : ", ",
                  static_cast<unsigned long long>(entries_[i].first),
                  static_cast<unsigned long long>(entries_[i].second));
    result += buf;
  }
  result += "}";
  return result;
}

} // namespace engram
