#include "consensus/types.hpp"

namespace engram::consensus {

namespace {

constexpr uint8_t conf_change_version = 1;

/// At most this many single changes per membership change.
constexpr size_t max_changes = 1024;

} // namespace

std::string encode(const conf_change& cc) {
  // An empty change (leave joint) is the empty string, as an empty entry.
  if (cc.leaves_joint())
    return {};
  std::string out;
  out.reserve(2 + 2 + cc.changes.size() * 9);
  out.push_back(static_cast<char>(conf_change_version));
  out.push_back(static_cast<char>(cc.mode));
  auto n = static_cast<uint16_t>(cc.changes.size());
  out.push_back(static_cast<char>(n & 0xff));
  out.push_back(static_cast<char>(n >> 8));
  for (auto& c : cc.changes) {
    out.push_back(static_cast<char>(c.type));
    for (int i = 0; i < 8; ++i)
      out.push_back(static_cast<char>((c.node >> (8 * i)) & 0xff));
  }
  return out;
}

std::optional<conf_change> decode_conf_change(std::string_view bytes) {
  conf_change cc;
  if (bytes.empty())
    return cc;
  auto byte = [&](size_t i) {
    return static_cast<uint8_t>(bytes[i]);
  };
  if (bytes.size() < 4 || byte(0) != conf_change_version)
    return std::nullopt;
  if (byte(1) > static_cast<uint8_t>(transition::joint_explicit))
    return std::nullopt;
  cc.mode = static_cast<transition>(byte(1));
  size_t n = byte(2) | (static_cast<size_t>(byte(3)) << 8);
  if (n > max_changes || bytes.size() != 4 + n * 9)
    return std::nullopt;
  for (size_t k = 0; k < n; ++k) {
    size_t at = 4 + k * 9;
    if (byte(at) > static_cast<uint8_t>(change_type::remove_node))
      return std::nullopt;
    single_change c;
    c.type = static_cast<change_type>(byte(at));
    for (int i = 0; i < 8; ++i)
      c.node |= static_cast<uint64_t>(byte(at + 1 + i)) << (8 * i);
    if (c.node == no_node)
      return std::nullopt;
    cc.changes.push_back(c);
  }
  // An explicit-mode change with no changes is not "leave joint": keep the
  // distinction the encoding made.
  return cc;
}

const char* to_string(role r) {
  switch (r) {
    case role::follower: return "follower";
    case role::pre_candidate: return "pre-candidate";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
  }
  return "?";
}

const char* to_string(msg_type t) {
  switch (t) {
    case msg_type::hup: return "hup";
    case msg_type::beat: return "beat";
    case msg_type::propose: return "propose";
    case msg_type::append: return "append";
    case msg_type::append_response: return "append-response";
    case msg_type::vote: return "vote";
    case msg_type::vote_response: return "vote-response";
    case msg_type::pre_vote: return "pre-vote";
    case msg_type::pre_vote_response: return "pre-vote-response";
    case msg_type::install_snapshot: return "snapshot";
    case msg_type::heartbeat: return "heartbeat";
    case msg_type::heartbeat_response: return "heartbeat-response";
    case msg_type::unreachable: return "unreachable";
    case msg_type::snapshot_status: return "snapshot-status";
    case msg_type::check_quorum: return "check-quorum";
    case msg_type::transfer_leader: return "transfer-leader";
    case msg_type::timeout_now: return "timeout-now";
    case msg_type::read_index: return "read-index";
    case msg_type::read_index_response: return "read-index-response";
  }
  return "?";
}

bool is_network_message(msg_type t) {
  switch (t) {
    case msg_type::hup:
    case msg_type::beat:
    case msg_type::unreachable:
    case msg_type::snapshot_status:
    case msg_type::check_quorum: return false;
    default: return true;
  }
}

} // namespace engram::consensus
