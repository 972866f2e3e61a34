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

// -- core types → protobuf (never fails)
// ---------------------------------------

void to_proto(const engram_record& in, v1::Engram& out);
void to_proto(const vector_clock& in, v1::VectorClock& out);
void to_proto(const causal_context& in, v1::CausalContext& out);

/// Encodes a replica delta: one EngramDelta (Create{full}) per version, with
/// the engram's version vector and the write's dot.
void to_proto(const replica_delta& in, v1::DeltaBatch& out);

// -- protobuf → core types (validates: errors name the bad field) ---------

expected<engram_record> from_proto(const v1::Engram& in);
expected<vector_clock> from_proto(const v1::VectorClock& in,
                                  const limits& bounds);
expected<causal_context> from_proto(const v1::CausalContext& in,
                                    const limits& bounds);

/// Decodes a delta batch. Only Create deltas carry a full version; Update,
/// Delete and Archive deltas need the receiver's current version and are
/// refused here with `errc::invalid_field`.
expected<replica_delta> from_proto(const v1::DeltaBatch& in,
                                   const limits& bounds);

// -- bytes
// ---------------------------------------------------------------------

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
