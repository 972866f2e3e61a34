#pragma once

// Explicit sharing (the spec's "Explicit Sharing"): memories one agent
// passes to another, transformed by the sender before they leave it,
// pending at the receiver until accepted with a trust level or declined.

#include "core/engram.hpp"
#include "core/error.hpp"
#include "federation/redact.hpp"

#include <string>
#include <string_view>
#include <vector>

#include "e2e/e2e.hpp"

namespace engram::federation {

struct share {
  std::string share_id;
  /// The sharing agent, and the one shared with.
  std::string from;
  std::string to;
  /// ReadOnly: the receiver may not modify the memories nor pass them on.
  bool read_only = true;
  /// The transform the sender applied (empty: none).
  std::string transform;
  std::vector<engram_record> memories;
  /// Sealed end to end to the recipient (e2e::seal of the whole share as
  /// `encode` writes it): `memories` is then empty, and no node on the way
  /// reads them; the recipient's client opens it to accept it.
  std::string sealed;
};

/// Builds a share of `memories` from agent `from`: `transform` (if any) is
/// applied to each here, at the sender (a memory it withholds is left
/// out). Memories this agent received read-only cannot be passed on:
/// refused with `permission_denied`.
expected<share> make_share(const std::string& from, const std::string& to,
                           std::vector<engram_record> memories, bool read_only,
                           const memory_transform* transform, uint64_t now_us);

/// What the receiver stores on accepting: each memory in its own Agent
/// scope (a new id), Reported{from, trust} with confidence × trust, the hop
/// (from, trust, transform, read_only) in its provenance.
std::vector<engram_record> accept(const share& s, const std::string& receiver,
                                  double trust);

/// `inner` sealed end to end by its sender (holding `keys`, whose binding
/// is `sender_key`) to the recipient whose binding is `recipient` (checked
/// by the caller): the share to send — the same id, sender, recipient and
/// permission, no memories, `sealed` set.
expected<share> seal_share(const share& inner, const e2e::key_pair& keys,
                           const e2e::key_binding& sender_key,
                           const e2e::key_binding& recipient, uint64_t now_us);

/// Opens the sealed share `s` pending for agent `me` with its `keys` (the
/// sender's binding checked against `trust`, as e2e::open does): the share
/// inside, which must be `s` (id, sender, recipient, permission).
expected<share> open_share(const share& s, const std::string& me,
                           const e2e::key_pair& keys, const e2e::trust& trust,
                           int64_t now_s);

/// True when the memory was shared read-only with its holder.
bool is_read_only(const engram_record& e);

std::string encode(const share& s);
expected<share> decode_share(std::string_view bytes);
std::string encode(const std::vector<share>& shares);
expected<std::vector<share>> decode_shares(std::string_view bytes);

/// The key prefix of pending shares kept in the receiver's memory
/// (reserved: queries do not show them).
inline const std::string& share_key_prefix() {
  static const std::string prefix = "_share.";
  return prefix;
}

} // namespace engram::federation
