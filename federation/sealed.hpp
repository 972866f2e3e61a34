#pragma once

// A federation sealed end to end, on the side of its members (who hold
// their key pairs): the leader's next key sealed to every member, and a
// member's keys opened from the federation's state. Nodes never call
// these: they hold sealed keys and sealed values only.

#include "core/error.hpp"
#include "federation/membership.hpp"

#include <cstdint>
#include <map>
#include <string>

#include "e2e/e2e.hpp"

namespace engram::federation {

/// The keys of federation `fed_id` (its keys `k`) member `me` holds, by
/// epoch: its copy of the current key opened with `keys` (sealed by the
/// leader `k` names, whose binding must pass `t`), and the earlier keys
/// chained under it. Errors: no copy sealed to `me` (permission_denied),
/// one that does not open or holds another federation's or epoch's key
/// (unauthenticated).
expected<std::map<uint64_t, std::string>>
open_group_keys(const std::string& fed_id, const group_keys& k,
                const std::string& me, const e2e::key_pair& keys,
                const e2e::trust& t, int64_t now_s);

/// The key after epoch `epoch` of federation `fed_id`, made by its leader
/// `me` (holding `keys`, whose published binding is `mine`): a fresh key
/// sealed to each binding of `members` (every current member, checked by
/// the caller), with `older` (what `open_group_keys` gave the leader;
/// empty for the first) chained under it.
expected<group_keys>
next_group_keys(const std::string& fed_id, uint64_t epoch,
                const std::string& me, const e2e::key_pair& keys,
                const e2e::key_binding& mine,
                const std::map<std::string, e2e::key_binding>& members,
                const std::map<uint64_t, std::string>& older, uint64_t now_us);

/// Opens the sealed value of fact `key` with `held`, the keys by epoch
/// `open_group_keys` gave member `me`. Errors: not a sealed value
/// (invalid_argument), sealed with a key never sealed to `me`
/// (permission_denied), one that does not open (unauthenticated).
expected<std::string>
open_fact_value(const std::map<uint64_t, std::string>& held,
                const std::string& me, const std::string& key,
                std::string_view value);

} // namespace engram::federation
