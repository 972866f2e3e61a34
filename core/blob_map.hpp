#pragma once

#include "core/ids.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace engram {

/// The engrams of a replica in packed form (core/packed.hpp): a hash table
/// from engram id to blob, the blobs in chunks of memory.
///
/// - The table is open addressing with linear probing (load ≤ 0.75, growing
///   by half, the home slot by multiply-shift so any capacity works); a slot
///   is 8 bytes: the blob's address (48 bits) and 16 bits of the id's hash,
///   so a probe dereferences only blobs whose hash bits match. The id itself
///   is the blob's first 16 bytes.
/// - Blobs up to 4 KiB take 4-byte-rounded blocks carved from chunks (512 B
///   growing to 1 MiB); a replaced blob's block goes to the free list of its
///   size and the next blob of that size reuses it. No per-blob header: a
///   blob's size is read from the blob. Larger blobs are allocated one by
///   one. Memory is not returned to the system while the map lives.
///
/// Not thread-safe. Ids are never removed (replicas keep tombstones).
class blob_map {
public:
  blob_map();
  ~blob_map();

  blob_map(const blob_map&) = delete;
  blob_map& operator=(const blob_map&) = delete;

  /// Number of ids held.
  size_t size() const noexcept { return size_; }

  /// Prefetches the home slot of `id`.
  void prefetch(const engram_id& id) const noexcept;

  /// Prefetches the blob `id` probably has (the first one whose hash bits
  /// match), so that a `find` soon after does not wait for it.
  void prefetch_blob(const engram_id& id) const noexcept;

  /// The blob of `id`, or nullptr. Valid until `id` is assigned again.
  const uint8_t* find(const engram_id& id) const noexcept;

  /// Makes a copy of `bytes` (a blob starting with `id`) the blob of `id`,
  /// replacing the previous one, whose memory is reused from then on.
  /// Returns the copy.
  const uint8_t* assign(const engram_id& id, const std::string& bytes);

  /// Calls `f(blob)` for every blob, in table order (not sorted).
  template<class F>
  void for_each(F&& f) const {
    for (auto s : slots_)
      if (s != 0)
        f(address(s));
  }

  /// Bytes of the chunks held.
  size_t reserved_bytes() const noexcept { return reserved_; }

  /// Bytes of the chunks handed out (to live blobs or to free lists) plus
  /// the large blobs: not the chunks' untouched tails.
  size_t used_bytes() const noexcept { return used_; }

  /// Bytes of the table's slots.
  size_t table_bytes() const noexcept { return slots_.size() * 8; }

  /// Bytes of the live blobs.
  size_t live_bytes() const noexcept { return live_; }

private:
  /// The table's slots, zeroed; large tables are mapped from the system
  /// directly (like large chunks), so that growing the table neither leaves
  /// heap pages behind nor moves the allocator's thresholds.
  class slot_array {
  public:
    slot_array() = default;
    explicit slot_array(size_t n);
    ~slot_array();
    slot_array(const slot_array&) = delete;
    slot_array& operator=(const slot_array&) = delete;

    void swap(slot_array& other) noexcept {
      std::swap(data_, other.data_);
      std::swap(size_, other.size_);
    }

    size_t size() const noexcept { return size_; }
    uint64_t& operator[](size_t i) noexcept { return data_[i]; }
    uint64_t operator[](size_t i) const noexcept { return data_[i]; }
    const uint64_t* data() const noexcept { return data_; }
    const uint64_t* begin() const noexcept { return data_; }
    const uint64_t* end() const noexcept { return data_ + size_; }

  private:
    uint64_t* data_ = nullptr;
    size_t size_ = 0;
  };

  static const uint8_t* address(uint64_t slot) noexcept {
    return reinterpret_cast<const uint8_t*>(slot & ((uint64_t{1} << 48) - 1));
  }

  static uint64_t hash(const engram_id& id) noexcept;

  size_t home(uint64_t h) const noexcept;

  /// Index of the slot holding `id`, or of the empty slot ending its probe.
  size_t slot_of(const engram_id& id, uint64_t h) const noexcept;

  void rehash(size_t capacity);

  uint8_t* allocate(size_t n);

  void release(const uint8_t* blob);

  /// Puts a block on the free list of its size.
  void push_free(uint8_t* block, size_t rounded);

  slot_array slots_;
  size_t size_ = 0;
  /// Per size class (bytes / 4): the first free block; each free block
  /// holds the address of the next in its first 8 bytes.
  std::vector<uint8_t*> free_;
  /// Where the current chunk's untouched part begins, and ends.
  uint8_t* bump_ = nullptr;
  uint8_t* end_ = nullptr;
  size_t next_chunk_ = 512;
  /// Every chunk (address, bytes).
  std::vector<std::pair<uint8_t*, size_t>> chunks_;
  size_t reserved_ = 0;
  size_t used_ = 0;
  size_t live_ = 0;
};

} // namespace engram
