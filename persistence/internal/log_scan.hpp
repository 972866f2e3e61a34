#pragma once

// A strict reader of RocksDB's log format (the write-ahead log `*.log` and
// the MANIFEST share it): 32 KiB blocks of records, each with a masked
// CRC32C, a length and a type; large records in first/middle/last
// fragments. RocksDB's own recovery modes each drop acknowledged writes
// silently in some damage case (a zeroed or garbled header in the middle
// of a file, a bit flip in a record): this scan finds such damage before
// the store is opened. Not installed; used by `persistence/store.cpp`.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace engram::persistence::internal {

/// CRC32C (Castagnoli), as RocksDB checksums its log records.
uint32_t crc32c(uint32_t crc, const void* data, size_t size) noexcept;

/// What scanning one log file found.
struct log_scan {
  /// Records read whole and intact.
  uint64_t records = 0;
  /// For a write-ahead log: the first and the last sequence number of the
  /// write batches read (0 when none).
  uint64_t first_sequence = 0;
  uint64_t last_sequence = 0;
  /// The file ends in an incomplete record (a write cut short, which was
  /// never acknowledged: RocksDB syncs before it acknowledges). Tolerated.
  bool torn_tail = false;
  /// Damage before the end: where, and what. Records after it are not
  /// read.
  std::optional<uint64_t> damaged_at;
  std::string damage;
};

/// Reads `path` record by record. `write_ahead` parses each record as a
/// write batch (sequence number and count) to report sequence numbers.
/// Fails only when the file cannot be read; damage is in the result.
std::optional<log_scan> scan_log_file(const std::string& path, bool write_ahead,
                                      std::string* io_error = nullptr);

} // namespace engram::persistence::internal
