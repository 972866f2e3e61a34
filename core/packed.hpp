#pragma once

#include "core/ids.hpp"
#include "core/scope.hpp"
#include "core/vector_clock.hpp"
#include "core/version.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

/// The packed in-memory form of a replica's engrams: per engram one blob of
/// bytes holding its id, its version vector and its versions, with values
/// that repeat across engrams (replica ids, scopes, origins) replaced by
/// small indexes into a per-replica dictionary, default fields left out and
/// integers as varints. A replica decodes a blob when it reads it; a merge
/// parses only the header (context and dots) and copies the versions it
/// keeps byte for byte.
///
/// Blob layout:
///   id            16 bytes (hi, lo; little endian)
///   context       varint n, n × (varint replica index, varint counter),
///                 sorted by replica id
///   versions      varint n, n × (varint size, version bytes)
/// Version bytes:
///   flags         2 bytes (see packed.cpp)
///   dot           varint replica index [, varint counter unless it equals
///                 the context's counter of that replica]
///   fields        resolves (optional), updated (relative to the
///                 dictionary's time base), created (optional, relative to
///                 updated), scope and origin indexes, then optional
///                 confidence, epistemic status, hops, forget reason
///   body          per content kind: its strings and entries
/// Blobs are written and read by this replica only; they are never input
/// from the network or disk (those are decoded and validated first).
namespace engram::packed {

/// Values that repeat across the engrams of a replica, stored once and
/// referred to by index. Grow-only: it holds every replica id, scope and
/// origin the replica has seen (bounded by the swarm, not by the engrams).
class dictionary {
public:
  dictionary();

  uint32_t replica_index(replica_id id);
  replica_id replica(uint32_t index) const noexcept { return replicas_[index]; }

  uint32_t scope_index(const memory_scope& scope);
  const memory_scope& scope(uint32_t index) const noexcept {
    return scopes_[index];
  }

  /// Index of (origin agent, origin instance).
  uint32_t origin_index(const std::string& agent, const std::string& instance);
  const std::pair<std::string, std::string>&
  origin(uint32_t index) const noexcept {
    static const std::pair<std::string, std::string> none;
    return index == 0 ? none : origins_[index - 1];
  }

  /// The time write timestamps are stored relative to: the first one
  /// stored (`first` when none was yet).
  uint64_t time_base(uint64_t first) noexcept {
    if (!has_time_base_) {
      time_base_ = first;
      has_time_base_ = true;
    }
    return time_base_;
  }

  uint64_t time_base() const noexcept { return time_base_; }

private:
  uint64_t time_base_ = 0;
  bool has_time_base_ = false;
  std::vector<replica_id> replicas_;
  std::unordered_map<replica_id, uint32_t> replica_indexes_;
  std::vector<memory_scope> scopes_;
  std::unordered_map<std::string, uint32_t> scope_indexes_;
  std::vector<std::pair<std::string, std::string>> origins_;
  std::unordered_map<std::string, uint32_t> origin_indexes_;
};

/// One version inside a blob, not decoded.
struct version_ref {
  dot tag;
  /// The version's bytes (without their size prefix).
  const uint8_t* data = nullptr;
  uint32_t size = 0;
  /// Offset of what follows the dot in `data`.
  uint32_t rest = 0;
};

/// A blob's header, parsed: what a merge needs without decoding versions.
struct blob_view {
  engram_id id;
  vector_clock context;
  std::vector<version_ref> versions;
  /// Bytes of the whole blob.
  size_t size = 0;
};

/// The engram id a blob starts with.
engram_id blob_id(const uint8_t* blob) noexcept;

/// The size in bytes of the blob at `blob`.
size_t blob_size(const uint8_t* blob) noexcept;

/// Parses a blob's header into `out` (reusing its storage).
void parse(const uint8_t* blob, const dictionary& dict, blob_view& out);

/// Decodes one version of engram `id`.
version decode(const version_ref& ref, const engram_id& id,
               const dictionary& dict);

/// What queries filter on, read from a version without decoding it (the
/// views point into the blob and the dictionary).
struct version_summary {
  memory_type type = memory_type::semantic;
  scope_kind kind = scope_kind::universal;
  bool archived = false;
  bool tombstone = false;
  hlc_timestamp updated;
  /// True for a belief, whose subject and relation follow.
  bool is_belief = false;
  std::string_view subject;
  std::string_view relation;
};

/// Reads a version's summary.
version_summary summarize(const version_ref& ref, const dictionary& dict);

/// Decodes every version of a parsed blob.
std::vector<version> decode_all(const blob_view& view, const dictionary& dict);

/// Writes blobs. Usage: `begin`, then `add` or `copy` exactly `count` times,
/// then `bytes()` is the blob.
class writer {
public:
  /// Starts the blob of `id` with `context` and `count` versions.
  void begin(const engram_id& id, const vector_clock& context, size_t count,
             dictionary& dict);

  /// Encodes a version (its `value.id` must be the blob's id).
  void add(const version& v, dictionary& dict);

  /// Copies a version of a blob of the same replica, as it is.
  void copy(const version_ref& ref, dictionary& dict);

  const std::string& bytes() const noexcept { return out_; }

private:
  std::string out_;
  std::string scratch_;
  const vector_clock* context_ = nullptr;
};

} // namespace engram::packed
