#include "core/hash.hpp"

#include <cstring>

namespace engram {

uint64_t hash_bytes(const void* data, size_t size, uint64_t seed) noexcept {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ULL;
  constexpr int r = 47;
  uint64_t h = seed ^ (size * m);
  auto bytes = static_cast<const unsigned char*>(data);
  auto blocks = size / 8;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k;
    std::memcpy(&k, bytes + i * 8, sizeof(k));
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  auto tail = bytes + blocks * 8;
  switch (size & 7) {
    case 7: h ^= uint64_t{tail[6]} << 48; [[fallthrough]];
    case 6: h ^= uint64_t{tail[5]} << 40; [[fallthrough]];
    case 5: h ^= uint64_t{tail[4]} << 32; [[fallthrough]];
    case 4: h ^= uint64_t{tail[3]} << 24; [[fallthrough]];
    case 3: h ^= uint64_t{tail[2]} << 16; [[fallthrough]];
    case 2: h ^= uint64_t{tail[1]} << 8; [[fallthrough]];
    case 1: h ^= uint64_t{tail[0]}; h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

hasher& hasher::add_double(double value) noexcept {
  if (value == 0.0)
    value = 0.0; // -0.0 and 0.0 hash alike
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return add(bits);
}

} // namespace engram
