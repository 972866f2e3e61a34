#pragma once

// The wire and stored forms of the consensus layer's values
// (consensus/types.hpp, schema engram/v1/consensus.proto). Decoding checks
// every field against bounds and names what is wrong; a decoded message may
// still be refused by raw_node::step (which checks its consistency).

#include "core/error.hpp"

#include <string>
#include <string_view>

#include "consensus/types.hpp"
#include "engram/v1/consensus.pb.h"

namespace engram::messages {

/// What a decoded consensus value may hold.
struct consensus_limits {
  /// Entries per message.
  size_t max_entries = 1 << 16;
  /// Bytes of one entry's data.
  size_t max_entry_bytes = 16 << 20;
  /// Bytes of a snapshot's data.
  size_t max_snapshot_bytes = 256 << 20;
  /// Members listed in a membership.
  size_t max_members = 4096;
  /// Bytes of a message's context.
  size_t max_context_bytes = 256;
};

std::string encode(const consensus::entry& e);
std::string encode(const consensus::hard_state& hs);
std::string encode(const consensus::snapshot& s);
std::string encode(const consensus::message& m);

/// A message in its protobuf form (a group actor puts it in the
/// RaftEnvelope of a node frame), and back.
void to_raft_proto(const consensus::message& m, v1::RaftMessage& out);
expected<consensus::message>
from_raft_proto(const v1::RaftMessage& in, const consensus_limits& bounds = {});

expected<consensus::entry> decode_entry(std::string_view bytes,
                                        const consensus_limits& bounds = {});
expected<consensus::hard_state> decode_hard_state(std::string_view bytes);
expected<consensus::snapshot>
decode_snapshot(std::string_view bytes, const consensus_limits& bounds = {});
expected<consensus::message>
decode_message(std::string_view bytes, const consensus_limits& bounds = {});

} // namespace engram::messages
