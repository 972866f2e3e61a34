#include "persistence/internal/log_scan.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>

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

namespace {

// Reads a log a 32 KiB block at a time (a MANIFEST may grow to a gigabyte:
// it is never read whole).
class block_reader {
public:
  explicit block_reader(std::ifstream& in) : in_(in), block_(block_size, '\0') {
    // nop
  }

  /// Reads the next block; false at the end of the file.
  bool next() {
    offset_ += size_;
    in_.read(block_.data(), static_cast<std::streamsize>(block_size));
    size_ = static_cast<size_t>(in_.gcount());
    return size_ > 0;
  }

  /// Whether everything from `from` in this block to the end of the file
  /// is zeros (reads the rest of the file).
  bool zeros_to_end(size_t from) {
    if (!zeros_from(block_, from, size_))
      return false;
    while (size_ == block_size && next())
      if (!zeros_from(block_, 0, size_))
        return false;
    return true;
  }

  const std::string& block() const noexcept { return block_; }
  size_t size() const noexcept { return size_; }
  uint64_t offset() const noexcept { return offset_; }

private:
  std::ifstream& in_;
  std::string block_;
  size_t size_ = 0;
  uint64_t offset_ = 0;
};

} // namespace

std::optional<log_scan> scan_log_file(const std::string& path, bool write_ahead,
                                      std::string* io_error) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    if (io_error != nullptr)
      *io_error = "cannot read " + path;
    return std::nullopt;
  }
  log_scan result;
  block_reader blocks{in};
  // Damage at `at` in the current block (`absolute`: at that file offset).
  auto damaged = [&](size_t at, std::string what, bool absolute = false) {
    result.damaged_at = absolute ? at : blocks.offset() + at;
    result.damage
        = std::move(what) + " at offset " + std::to_string(*result.damaged_at);
    return result;
  };
  // The head of a logical record assembled from fragments (its write
  // batch's sequence number and count are its first 12 bytes).
  std::string head;
  bool in_fragments = false;
  auto finish = [&] {
    ++result.records;
    if (!write_ahead || head.size() < 12)
      return;
    auto* p = reinterpret_cast<const unsigned char*>(head.data());
    auto seq = load64(p);
    auto count = load32(p + 8);
    if (result.first_sequence == 0)
      result.first_sequence = seq;
    auto last = count > 0 ? seq + count - 1 : seq;
    if (last > result.last_sequence)
      result.last_sequence = last;
  };
  auto keep_head = [&](const unsigned char* payload, size_t length) {
    if (head.size() < 12)
      head.append(reinterpret_cast<const char*>(payload),
                  std::min(length, 12 - head.size()));
  };
  while (blocks.next()) {
    auto& data = blocks.block();
    auto n = blocks.size();
    size_t off = 0;
    while (off < n) {
      auto left = block_size - off;
      if (left < header_size) { // the block's trailer: zeros
        if (!zeros_from(data, off, n))
          return damaged(off, "a non-zero block trailer");
        off = n;
        break;
      }
      if (n - off < header_size) { // the file ends within a header
        result.torn_tail = !zeros_from(data, off, n);
        return result;
      }
      auto* h = reinterpret_cast<const unsigned char*>(data.data()) + off;
      auto masked = load32(h);
      size_t length = h[4] | (size_t{h[5]} << 8);
      auto type = h[6];
      if (masked == 0 && length == 0 && type == zero_type) {
        // Preallocated space: zeros to the end of the file. Zeros followed
        // by data are a header wiped in the middle of the file.
        auto at = blocks.offset() + off;
        if (blocks.zeros_to_end(off))
          return result;
        return damaged(at, "a zeroed record header followed by data", true);
      }
      if (type == zero_type || type > user_timestamp_size)
        return damaged(off, "an invalid record type " + std::to_string(type));
      bool recyclable = type >= recyclable_full && type <= recyclable_last;
      auto hs = recyclable ? recyclable_header_size : header_size;
      if (hs + length > left)
        return damaged(off, "a record length that crosses its block");
      if (off + hs + length > n) { // the last write, cut short
        result.torn_tail = true;
        return result;
      }
      auto crc = crc32c(0, h + 6, 1);
      if (recyclable)
        crc = crc32c(crc, h + header_size, 4);
      crc = crc32c(crc, h + hs, length);
      if (crc != unmask(masked)) {
        // A garbled last record is a write cut short; anywhere else, damage.
        auto at = blocks.offset() + off;
        if (blocks.zeros_to_end(off + hs + length)) {
          result.torn_tail = true;
          return result;
        }
        return damaged(at, "a checksum mismatch", true);
      }
      auto kind = recyclable ? type - 4 : type;
      if (kind == full_type || kind >= set_compression) {
        if (in_fragments)
          return damaged(off, "a fragmented record without its last fragment");
        if (kind == full_type) {
          head.clear();
          keep_head(h + hs, length);
          finish();
        }
      } else if (kind == first_type) {
        if (in_fragments)
          return damaged(off, "a fragmented record without its last fragment");
        in_fragments = true;
        head.clear();
        keep_head(h + hs, length);
      } else { // middle or last
        if (!in_fragments)
          return damaged(off, "a fragment without its first");
        keep_head(h + hs, length);
        if (kind == last_type) {
          in_fragments = false;
          finish();
        }
      }
      off += hs + length;
    }
  }
  if (in_fragments)
    result.torn_tail = true;
  return result;
}

} // namespace engram::persistence::internal
