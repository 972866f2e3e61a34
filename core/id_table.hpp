#pragma once

#include "core/hash.hpp"
#include "core/ids.hpp"

#include <cassert>
#include <cstddef>
#include <utility>
#include <vector>

namespace engram {

/// A grow-only open-addressing hash map from engram ids to `V` (linear
/// probing, power-of-two capacity, load factor ≤ 0.75). Values live inline in
/// the slot array, so a lookup costs one cache miss and its address can be
/// computed — and prefetched — before the lookup. Engram ids are never
/// removed from a replica (forgetting writes a tombstone), so there is no
/// erase. The all-zero id marks an empty slot and cannot be stored.
template<class V>
class id_table {
public:
  struct slot {
    engram_id id;
    V value;
  };

  id_table() { rehash(16); }

  size_t size() const noexcept { return size_; }

  /// Prefetches the home slot of `id`.
  void prefetch(const engram_id& id) const noexcept {
    __builtin_prefetch(&slots_[home(id)]);
  }

  V* find(const engram_id& id) noexcept {
    return const_cast<V*>(std::as_const(*this).find(id));
  }

  const V* find(const engram_id& id) const noexcept {
    assert(!id.empty());
    for (size_t i = home(id);; i = (i + 1) & mask_) {
      auto& s = slots_[i];
      if (s.id == id)
        return &s.value;
      if (s.id.empty())
        return nullptr;
    }
  }

  /// Returns the value of `id`, inserting a default one if absent. Inserting
  /// may move every value (pointers stay valid only under `reserve`).
  V& operator[](const engram_id& id) {
    assert(!id.empty());
    for (size_t i = home(id);; i = (i + 1) & mask_) {
      auto& s = slots_[i];
      if (s.id == id)
        return s.value;
      if (s.id.empty()) {
        if ((size_ + 1) * 4 > slots_.size() * 3) {
          rehash(slots_.size() * 2);
          return (*this)[id];
        }
        s.id = id;
        ++size_;
        return s.value;
      }
    }
  }

  /// Makes room for `n` more entries: the next `n` insertions move nothing.
  void reserve_more(size_t n) {
    auto capacity = slots_.size();
    while ((size_ + n) * 4 > capacity * 3)
      capacity *= 2;
    if (capacity != slots_.size())
      rehash(capacity);
  }

  /// Calls `f(id, value)` for every entry, in slot order (not sorted).
  template<class F>
  void for_each(F&& f) const {
    for (auto& s : slots_)
      if (!s.id.empty())
        f(s.id, s.value);
  }

private:
  size_t home(const engram_id& id) const noexcept {
    return static_cast<size_t>(mix64(id.hi ^ (id.lo * 0x9e3779b97f4a7c15ULL)))
           & mask_;
  }

  void rehash(size_t capacity) {
    std::vector<slot> old;
    old.swap(slots_);
    slots_.resize(capacity);
    mask_ = capacity - 1;
    size_ = 0;
    for (auto& s : old)
      if (!s.id.empty())
        (*this)[s.id] = std::move(s.value);
  }

  std::vector<slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

} // namespace engram
