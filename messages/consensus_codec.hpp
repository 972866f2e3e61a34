#pragma once

// The wire and stored forms of the consensus layer's values
// (consensus/types.hpp, schema engram/v1/consensus.proto). Decoding checks
// every field against bounds and names what is wrong; a decoded message may
// still be refused by raw_node::step (which checks its consistency).

#include "core/error.hpp"

#include <string>
#include <string_view>

#include "consensus/types.hpp"

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
  /// Bytes of a group name.
  size_t max_group_bytes = 256;
};

std::string encode(const consensus::entry& e);
std::string encode(const consensus::hard_state& hs);
std::string encode(const consensus::snapshot& s);
std::string encode(const consensus::message& m);

/// A message for `group`, as group actors exchange them.
std::string encode_raft_envelope(const std::string& group,
                                 const consensus::message& m);

expected<consensus::entry> decode_entry(std::string_view bytes,
                                        const consensus_limits& bounds = {});
expected<consensus::hard_state> decode_hard_state(std::string_view bytes);
expected<consensus::snapshot>
decode_snapshot(std::string_view bytes, const consensus_limits& bounds = {});
expected<consensus::message>
decode_message(std::string_view bytes, const consensus_limits& bounds = {});

/// A group's message: the group's name and the message.
struct consensus_envelope {
  std::string group;
  consensus::message message;
};

expected<consensus_envelope> decode_raft_envelope(std::string_view bytes,
                                                  const consensus_limits& bounds
                                                  = {});

} // namespace engram::messages
