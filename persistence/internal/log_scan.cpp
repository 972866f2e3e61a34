#include "persistence/internal/log_scan.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <iterator>

namespace engram::persistence::internal {

namespace {

constexpr size_t block_size = 32768;
constexpr size_t header_size = 7;
constexpr size_t recyclable_header_size = 11;

// RocksDB's record types (db/log_format.h).
enum record_type : uint8_t {
  zero_type = 0,
  full_type = 1,
  first_type = 2,
  middle_type = 3,
  last_type = 4,
  recyclable_full = 5,
  recyclable_last = 8,
  set_compression = 9,
  user_timestamp_size = 10,
};

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr auto crc_table = make_table();

// RocksDB stores checksums masked (a CRC of data holding CRCs is weak).
uint32_t unmask(uint32_t masked) {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

uint32_t load32(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16)
         | (uint32_t{p[3]} << 24);
}

uint64_t load64(const unsigned char* p) {
  return uint64_t{load32(p)} | (uint64_t{load32(p + 4)} << 32);
}

// Whether data[from, to) holds only zeros (to: the end by default).
bool zeros_from(const std::string& data, size_t from,
                size_t to = std::string::npos) {
  to = std::min(to, data.size());
  for (size_t i = from; i < to; ++i)
    if (data[i] != 0)
      return false;
  return true;
}

} // namespace

uint32_t crc32c(uint32_t crc, const void* data, size_t size) noexcept {
  auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  while (size-- > 0)
    crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::optional<log_scan> scan_log_file(const std::string& path, bool write_ahead,
                                      std::string* io_error) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    if (io_error != nullptr)
      *io_error = "cannot read " + path;
    return std::nullopt;
  }
  std::string data{std::istreambuf_iterator<char>{in}, {}};
  log_scan result;
  auto damaged = [&](size_t at, std::string what) {
    result.damaged_at = at;
    result.damage = std::move(what) + " at offset " + std::to_string(at);
    return result;
  };
  // A logical record assembled from fragments (for its batch header).
  std::string record;
  bool in_fragments = false;
  auto finish = [&](const std::string& payload) {
    ++result.records;
    if (!write_ahead || payload.size() < 12)
      return;
    auto* p = reinterpret_cast<const unsigned char*>(payload.data());
    auto seq = load64(p);
    auto count = load32(p + 8);
    if (result.first_sequence == 0)
      result.first_sequence = seq;
    auto last = count > 0 ? seq + count - 1 : seq;
    if (last > result.last_sequence)
      result.last_sequence = last;
  };
  size_t off = 0;
  while (off < data.size()) {
    auto left = block_size - off % block_size;
    if (left < header_size) { // a block's trailer: zeros
      if (!zeros_from(data, off, off + left))
        return damaged(off, "non-zero block trailer");
      off += left;
      continue;
    }
    if (data.size() - off < header_size) {
      result.torn_tail = !zeros_from(data, off);
      break;
    }
    auto* h = reinterpret_cast<const unsigned char*>(data.data()) + off;
    auto masked = load32(h);
    size_t length = h[4] | (size_t{h[5]} << 8);
    auto type = h[6];
    if (masked == 0 && length == 0 && type == zero_type) {
      // Preallocated space: zeros to the end of the file. Zeros followed
      // by data are a header wiped in the middle of the file.
      if (zeros_from(data, off))
        break;
      return damaged(off, "a zeroed record header followed by data");
    }
    if (type == zero_type || type > user_timestamp_size)
      return damaged(off, "an invalid record type " + std::to_string(type));
    bool recyclable = type >= recyclable_full && type <= recyclable_last;
    auto hs = recyclable ? recyclable_header_size : header_size;
    if (hs + length > left)
      return damaged(off, "a record length that crosses its block");
    if (off + hs + length > data.size()) { // the last write, cut short
      result.torn_tail = true;
      break;
    }
    auto crc = crc32c(0, h + 6, 1);
    if (recyclable)
      crc = crc32c(crc, h + header_size, 4);
    crc = crc32c(crc, h + hs, length);
    if (crc != unmask(masked)) {
      // A garbled last record is a write cut short; anywhere else, damage.
      if (zeros_from(data, off + hs + length)) {
        result.torn_tail = true;
        break;
      }
      return damaged(off, "a checksum mismatch");
    }
    auto kind = recyclable ? type - 4 : type;
    std::string payload{reinterpret_cast<const char*>(h + hs), length};
    if (kind == full_type || kind >= set_compression) {
      if (in_fragments)
        return damaged(off, "a fragmented record without its last fragment");
      if (kind == full_type)
        finish(payload);
    } else if (kind == first_type) {
      if (in_fragments)
        return damaged(off, "a fragmented record without its last fragment");
      in_fragments = true;
      record = std::move(payload);
    } else { // middle or last
      if (!in_fragments)
        return damaged(off, "a fragment without its first");
      record += payload;
      if (kind == last_type) {
        in_fragments = false;
        finish(record);
        record.clear();
      }
    }
    off += hs + length;
  }
  if (in_fragments)
    result.torn_tail = true;
  return result;
}

} // namespace engram::persistence::internal
