#pragma once

#include "core/engram.hpp"
#include "core/ids.hpp"

#include <cstdint>

namespace engram {

/// One version of an engram in a replica: the engram as written, tagged with
/// the unique dot of the write. A replica holds, per engram id, the versions
/// no write has superseded yet (one, or several concurrent ones).
struct version {
  /// The write that produced this version.
  dot tag;
  /// Non-zero when this write resolved a conflict: the conflict's id.
  /// Concurrent resolutions of the same conflict collapse deterministically.
  uint64_t resolves = 0;
  /// The engram; `value.updated` is the HLC timestamp of the write.
  engram_record value;

  friend bool operator==(const version& x, const version& y) {
    return x.tag == y.tag && x.resolves == y.resolves && x.value == y.value;
  }
};

/// Orders versions by recency: HLC timestamp, then dot. Total and the same
/// on every replica.
inline bool older_than(const version& x, const version& y) {
  if (x.value.updated != y.value.updated)
    return x.value.updated < y.value.updated;
  return x.tag < y.tag;
}

} // namespace engram
