#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace engram {

/// A stable 64-bit hash of a byte range (MurmurHash64A). Stable across
/// processes, builds and platforms of the same endianness: used for engram
/// ids, content hashes, conflict ids and state digests, never for security.
uint64_t hash_bytes(const void* data, size_t size, uint64_t seed = 0) noexcept;

/// Hashes a string's bytes.
inline uint64_t hash_string(std::string_view str, uint64_t seed = 0) noexcept {
  return hash_bytes(str.data(), str.size(), seed);
}

/// A strong 64-bit finalizer (from SplitMix64): maps any integer to a
/// well-mixed one.
constexpr uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/// Combines a running hash with another value, order-sensitively.
constexpr uint64_t hash_combine(uint64_t seed, uint64_t value) noexcept {
  return mix64(seed
               ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

/// Incrementally hashes a sequence of fields, order-sensitively. Strings are
/// length-prefixed so that ("ab","c") and ("a","bc") differ.
class hasher {
public:
  explicit hasher(uint64_t seed = 0) noexcept : state_(seed) {
    // nop
  }

  hasher& add(uint64_t value) noexcept {
    state_ = hash_combine(state_, value);
    return *this;
  }

  hasher& add(std::string_view str) noexcept {
    state_ = hash_combine(state_, str.size());
    state_ = hash_combine(state_, hash_string(str));
    return *this;
  }

  hasher& add_double(double value) noexcept;

  uint64_t value() const noexcept { return state_; }

private:
  uint64_t state_;
};

} // namespace engram
