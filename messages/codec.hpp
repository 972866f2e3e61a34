#pragma once

#include "core/causal_context.hpp"
#include "core/engram.hpp"
#include "core/error.hpp"
#include "core/replica.hpp"
#include "core/vector_clock.hpp"
#include "messages/envelope.hpp"

#include <string>
#include <string_view>

#include "engram/v1/engram.pb.h"
#include "engram/v1/sync.pb.h"

namespace engram::messages {

// -- scope kinds --------------------------------------------------------------

v1::ScopeKind kind_to_proto(scope_kind kind);

/// Fails with `invalid_field` for a value no ScopeKind names.
expected<scope_kind> kind_from_proto(int kind);

// -- core types → protobuf (never fails) ------------------------------------

void to_proto(const engram_record& in, v1::Engram& out);
void to_proto(const vector_clock& in, v1::VectorClock& out);
void to_proto(const causal_context& in, v1::CausalContext& out);

/// Encodes a replica delta: one EngramDelta (Create{full}) per version, with
/// the engram's version vector and the write's dot.
void to_proto(const replica_delta& in, v1::DeltaBatch& out);

// -- protobuf → core types (validates: errors name the bad field) ---------

/// Decodes and validates an engram; every repeated field and string is
/// checked against `bounds`.
/// How strictly a decoded engram is checked.
enum class record_check : uint8_t {
  /// A stored or replicated engram: every field valid (`validate`).
  full,
  /// A draft on its way to a replica (the memory API's `learn`): the id may
  /// be empty and the scope a placeholder; the replica validates on write.
  /// Sizes and enumerations are still checked.
  draft,
};

expected<engram_record> from_proto(const v1::Engram& in,
                                   const limits& bounds = {},
                                   record_check check = record_check::full);
expected<vector_clock> from_proto(const v1::VectorClock& in,
                                  const limits& bounds);
expected<causal_context> from_proto(const v1::CausalContext& in,
                                    const limits& bounds);

/// Decodes a delta batch. Only Create deltas carry a full version; Update,
/// Delete and Archive deltas need the receiver's current version (see
/// `decode_against`) and are refused here with `errc::invalid_field`.
expected<replica_delta> from_proto(const v1::DeltaBatch& in,
                                   const limits& bounds);

// -- Update / Delete / Archive deltas --------------------------------------

/// The hash an Update's `old_value_hash` carries: the stable 64-bit hash of
/// the field's encoded bytes.
uint64_t field_hash(std::string_view field_bytes);

/// Encodes the change from `before` to `after` (two versions of one engram
/// that differ only in fact value, belief object, confidence or archived
/// flag) as an Update delta; fails if anything else differs.
expected<v1::EngramDelta> make_update(const version& before,
                                      const version& after,
                                      const vector_clock& key_context);

/// Encodes a Delete (forget) or Archive delta for `after`, a tombstone or
/// archived version of an engram.
v1::EngramDelta make_delete(const version& after,
                            const vector_clock& key_context);
v1::EngramDelta make_archive(const version& after,
                             const vector_clock& key_context);

/// A delta that could not be applied, and why.
struct rejected_delta {
  engram_id id;
  std::string reason;
};

/// A batch decoded against a replica.
struct decoded_batch {
  /// Full versions, ready to join.
  replica_delta delta;
  /// Update deltas whose old value did not match the current one (a
  /// conflict: reported, never silently applied), and deltas naming an
  /// engram the replica does not hold.
  std::vector<rejected_delta> rejected;
};

/// Decodes a batch against the current state of `current`: Create deltas as
/// they are; Update, Delete and Archive deltas become full versions built
/// from the replica's current version of the engram.
expected<decoded_batch> decode_against(const v1::DeltaBatch& in,
                                       const replica& current,
                                       const limits& bounds = {});

// -- sync responses -------------------------------------------------------

/// Builds the SyncResponse answering a SyncRequest: the deltas the requester
/// lacks (`replica::delta_since(its context)`) and the responder's context.
/// The batch's own context is left out when the responder's context covers
/// it (always, for `delta_since` output): the receiver uses `clock`.
v1::SyncResponse make_sync_response(const replica_delta& missing,
                                    const causal_context& responder);

/// Decodes a SyncResponse into the delta to join.
expected<replica_delta> from_proto(const v1::SyncResponse& in,
                                   const limits& bounds);

// -- conflicts ----------------------------------------------------------------

void to_proto(const version& in, v1::Version& out);

expected<version> from_proto(const v1::Version& in, const limits& bounds);

void to_proto(const conflict& in, v1::Conflict& out);

expected<conflict> from_proto(const v1::Conflict& in, const limits& bounds);

// -- bytes ------------------------------------------------------------------

/// Deterministic bytes of a delta batch: replicas holding the same delta
/// produce byte-identical encodings.
std::string encode_delta(const replica_delta& delta);

/// Decodes a delta batch from untrusted bytes.
expected<replica_delta> decode_delta(std::string_view bytes,
                                     const limits& bounds = {});

/// Encodes an engram id as its 16 wire bytes (big-endian hi, lo).
std::string id_bytes(const engram_id& id);

/// Decodes 16 wire bytes into an engram id.
expected<engram_id> id_from_bytes(const std::string& bytes);

} // namespace engram::messages
