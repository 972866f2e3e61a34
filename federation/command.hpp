#pragma once

// What an agent asks of a federation, as a typed value: a read of its
// rules, or one change of them. `apply` is the pure function that decides
// (the federation's actor stores what it returns); `encode` /
// `decode_command` carry a command between actors and processes.

#include "core/error.hpp"
#include "federation/membership.hpp"
#include "federation/trust.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace engram::federation {

namespace cmd {

/// Read the rules (members may).
struct read_state {};

/// Create the federation with these rules (its leader asks).
struct create {
  federation_state state;
};

/// Join as Member or Observer (an invited agent may, as no more than its
/// invitation grants; Leader only by `set_role`).
struct join {
  agent_role role = agent_role::member;
};

/// Leave (a leaving leader hands over by the succession rule).
struct leave {};

/// Leader only: remove a member.
struct remove {
  std::string member;
};

/// Leader only: give a member a role.
struct set_role {
  std::string member;
  agent_role role = agent_role::member;
};

/// Leader only: replace the trust model.
struct set_trust {
  trust_model model;
};

/// Leader only: change how contradictory beliefs are settled.
struct set_belief_policy {
  belief_policy policy = belief_policy::fork;
};

/// Leader only: invite an agent to join as `role` (Member or Observer)
/// until `expires_at_us` (0: until spent or revoked).
struct invite {
  std::string member;
  agent_role role = agent_role::member;
  uint64_t expires_at_us = 0;
};

/// Leader only: revoke an agent's invitation.
struct uninvite {
  std::string member;
};

/// A member reports that another's memory proved right (Reputation trust
/// rises on the reporting node); not a change of the rules.
struct verify {
  std::string member;
};

/// ... or proved wrong (Reputation trust falls).
struct contradict {
  std::string member;
};

/// Leader only, end-to-end federations: the key of the next epoch, sealed
/// to every current member.
struct rotate_keys {
  group_keys keys;
};
} // namespace cmd

using command_kind
    = std::variant<cmd::read_state, cmd::create, cmd::join, cmd::leave,
                   cmd::remove, cmd::set_role, cmd::set_trust,
                   cmd::set_belief_policy, cmd::verify, cmd::contradict,
                   cmd::invite, cmd::uninvite, cmd::rotate_keys>;

/// A command and the agent asking it (its role decides).
struct federation_command {
  std::string agent;
  command_kind what;
  /// Passed on by the node the agent asked (which did not know enough to
  /// decide): the node it reaches decides, and never passes it on again.
  bool relayed = false;
  /// Relayed by a node that knows the rules: their version there. The node
  /// it reaches decides only with newer rules (else it knows no more).
  uint64_t seen_version = 0;
};

/// What a command is, in words ("join as observer", "remove bob").
std::string describe(const federation_command& c);

/// Whether a command changes the rules (the others read them, create
/// them, or report on members).
bool changes_rules(const federation_command& c) noexcept;

/// The rules after `c`: unchanged for a read, changed (version bumped) for
/// an accepted change, or the reason it is refused (naming the agent, its
/// role and what it may do), in which case nothing changes. Creating and
/// reporting are the actor's (they need more than the rules).
expected<federation_state> apply(const federation_state& current,
                                 const federation_command& c, uint64_t now_us);

/// A command as bytes (protobuf engram.v1.FederationCommand) and back;
/// decoding checks every field.
std::string encode(const federation_command& c);
expected<federation_command> decode_command(std::string_view bytes);

} // namespace engram::federation
