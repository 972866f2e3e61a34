#include "core/blob_map.hpp"

#include "core/hash.hpp"
#include "core/packed.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <new>

namespace engram {

namespace {

constexpr size_t max_chunk = size_t{1} << 20;
constexpr size_t granule = 4;
constexpr size_t max_small = 4096;
// A free block holds the address of the next one.
constexpr size_t min_block = 16;
constexpr uint64_t address_mask = (uint64_t{1} << 48) - 1;
// Chunks this large are mapped from the system directly: the allocator's
// heap would interleave them with short-lived allocations whose pages it
// cannot return.
constexpr size_t mapped_chunk = size_t{256} << 10;

uint8_t* allocate_chunk(size_t n) {
  void* p = nullptr;
  if (n >= mapped_chunk) {
    p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
               -1, 0);
    if (p == MAP_FAILED)
      p = nullptr;
  } else {
    p = std::malloc(n);
  }
  if (p == nullptr)
    throw std::bad_alloc{};
  return static_cast<uint8_t*>(p);
}

void free_chunk(uint8_t* p, size_t n) {
  if (n >= mapped_chunk)
    ::munmap(p, n);
  else
    std::free(p);
}

size_t round_up(size_t n) { return (n + granule - 1) & ~(granule - 1); }

__extension__ typedef unsigned __int128 uint128;

// The slot's tag: low bits of the hash (the home slot comes from the high
// bits).
uint64_t tag_of(uint64_t h) { return h << 48; }

uint64_t make_slot(const uint8_t* blob, uint64_t h) {
  auto address = reinterpret_cast<uintptr_t>(blob);
  if ((address & ~address_mask) != 0)
    throw std::bad_alloc{}; // outside the 48-bit address space
  return tag_of(h) | address;
}

} // namespace

blob_map::slot_array::slot_array(size_t n) : size_(n) {
  auto bytes = n * sizeof(uint64_t);
  auto* p = allocate_chunk(bytes);
  if (bytes < mapped_chunk) // mapped memory comes zeroed
    std::memset(p, 0, bytes);
  data_ = reinterpret_cast<uint64_t*>(p);
}

blob_map::slot_array::~slot_array() {
  if (data_ != nullptr)
    free_chunk(reinterpret_cast<uint8_t*>(data_), size_ * sizeof(uint64_t));
}

blob_map::blob_map() { rehash(16); }

blob_map::~blob_map() {
  for (auto s : slots_)
    if (s != 0 && round_up(packed::blob_size(address(s))) > max_small)
      std::free(const_cast<uint8_t*>(address(s)));
  for (auto& [p, n] : chunks_)
    free_chunk(p, n);
}

uint64_t blob_map::hash(const engram_id& id) noexcept {
  return mix64(id.hi ^ (id.lo * 0x9e3779b97f4a7c15ULL));
}

size_t blob_map::home(uint64_t h) const noexcept {
  return static_cast<size_t>((static_cast<uint128>(h) * slots_.size()) >> 64);
}

size_t blob_map::slot_of(const engram_id& id, uint64_t h) const noexcept {
  auto tag = tag_of(h);
  for (size_t i = home(h);; i = i + 1 == slots_.size() ? 0 : i + 1) {
    auto s = slots_[i];
    if (s == 0)
      return i;
    if ((s & ~address_mask) == tag && packed::blob_id(address(s)) == id)
      return i;
  }
}

void blob_map::prefetch(const engram_id& id) const noexcept {
  __builtin_prefetch(slots_.data() + home(hash(id)));
}

void blob_map::prefetch_blob(const engram_id& id) const noexcept {
  auto h = hash(id);
  auto tag = tag_of(h);
  for (size_t i = home(h);; i = i + 1 == slots_.size() ? 0 : i + 1) {
    auto s = slots_[i];
    if (s == 0)
      return;
    if ((s & ~address_mask) == tag) {
      __builtin_prefetch(address(s));
      __builtin_prefetch(address(s) + 64);
      return;
    }
  }
}

const uint8_t* blob_map::find(const engram_id& id) const noexcept {
  auto s = slots_[slot_of(id, hash(id))];
  return s == 0 ? nullptr : address(s);
}

const uint8_t* blob_map::assign(const engram_id& id, const std::string& bytes) {
  assert(bytes.size() >= 16
         && packed::blob_id(reinterpret_cast<const uint8_t*>(bytes.data()))
                == id);
  if ((size_ + 1) * 4 > slots_.size() * 3)
    rehash(slots_.size() * 3 / 2);
  auto h = hash(id);
  auto i = slot_of(id, h);
  auto* copy = allocate(bytes.size());
  std::memcpy(copy, bytes.data(), bytes.size());
  uint64_t slot;
  try {
    slot = make_slot(copy, h);
  } catch (...) {
    release(copy);
    throw;
  }
  if (slots_[i] != 0)
    release(address(slots_[i]));
  else
    ++size_;
  slots_[i] = slot;
  return copy;
}

void blob_map::rehash(size_t capacity) {
  slot_array old{capacity};
  old.swap(slots_);
  for (auto s : old) {
    if (s == 0)
      continue;
    auto i = home(hash(packed::blob_id(address(s))));
    while (slots_[i] != 0)
      i = i + 1 == slots_.size() ? 0 : i + 1;
    slots_[i] = s;
  }
}

uint8_t* blob_map::allocate(size_t n) {
  live_ += n;
  auto rounded = round_up(n);
  if (rounded > max_small) {
    auto* p = static_cast<uint8_t*>(std::malloc(n));
    if (p == nullptr)
      throw std::bad_alloc{};
    used_ += n;
    reserved_ += n;
    return p;
  }
  if (auto cls = rounded / granule; cls < free_.size() && free_[cls]) {
    auto& head = free_[cls];
    auto* p = head;
    std::memcpy(&head, p, sizeof(uint8_t*));
    return p;
  }
  if (static_cast<size_t>(end_ - bump_) < rounded) {
    // The rest of the chunk serves a smaller size later (if it can hold
    // the free list's link; no blob is that small anyway).
    if (end_ - bump_ >= static_cast<ptrdiff_t>(min_block)) {
      auto rest = static_cast<size_t>(end_ - bump_) & ~(granule - 1);
      used_ += rest;
      push_free(bump_, rest);
    }
    auto size = std::max(next_chunk_, rounded);
    next_chunk_ = std::min(next_chunk_ * 2, max_chunk);
    bump_ = allocate_chunk(size);
    end_ = bump_ + size;
    chunks_.emplace_back(bump_, size);
    reserved_ += size;
  }
  auto* p = bump_;
  bump_ += rounded;
  used_ += rounded;
  return p;
}

void blob_map::push_free(uint8_t* block, size_t rounded) {
  assert(rounded >= min_block);
  auto cls = rounded / granule;
  if (cls >= free_.size()) // lists up to the largest size freed so far
    free_.resize(cls + 1, nullptr);
  auto& head = free_[cls];
  std::memcpy(block, &head, sizeof(uint8_t*));
  head = block;
}

void blob_map::release(const uint8_t* blob) {
  auto n = packed::blob_size(blob);
  live_ -= n;
  auto rounded = round_up(n);
  auto* block = const_cast<uint8_t*>(blob);
  if (rounded > max_small) {
    used_ -= n;
    reserved_ -= n;
    std::free(block);
    return;
  }
  push_free(block, rounded);
}

} // namespace engram
