#pragma once

// A federation's membership and rules (the spec's "Agent Federation"):
// roles, what each role may do, joining and leaving, and who leads when the
// leader is lost. Pure: the federation actor applies it.

#include "core/error.hpp"
#include "core/scope.hpp"
#include "federation/trust.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace engram::federation {

enum class agent_role : uint8_t {
  /// Changes the federation's rules: trust model, membership, roles.
  leader,
  /// Reads and writes the Collective scope.
  member,
  /// Reads only.
  observer,
};

const char* to_string(agent_role role) noexcept;

expected<agent_role> parse_role(const std::string& text);

struct member_info {
  std::string agent_id;
  agent_role role = agent_role::member;
  uint64_t joined_at_us = 0;
  /// The trust the federation places in the member (its trust model's
  /// value when it joined; informational).
  double trust_level = 1.0;
};

/// The leader's invitation of an agent that is not a member yet: joining
/// needs one (an uninvited agent is refused), and joining spends it.
struct invitation {
  std::string agent_id;
  /// The most the invitee may join as (Member, or Observer only).
  agent_role role = agent_role::member;
  /// When it lapses (µs since the epoch; 0: when revoked or spent).
  uint64_t expires_at_us = 0;
};

/// The most invitations a federation holds at once (its rules are one
/// record that every member's node keeps).
inline constexpr size_t max_invitations = 1024;

/// How a federation's Collective memory settles contradictory beliefs (a
/// BeliefConflict between members). Part of the federation's rules: the
/// same on every node.
enum class belief_policy : uint8_t {
  /// Fork{mark_contested}: both beliefs stay, marked contested, each with
  /// its source.
  fork,
  /// Escalate: the conflict handler registered by the leader's agent (on
  /// the leader's node) decides; until its resolution syncs, the conflict
  /// is pending everywhere. Without a handler, the leader is asked.
  escalate,
  /// AskUser: a pending question on every node; the first answer by a
  /// Leader or Member resolves it and syncs.
  ask_user,
  take_newest,
  take_highest_confidence,
};

/// "fork", "escalate", "ask_user", "take_newest", "take_highest_confidence".
const char* to_string(belief_policy policy) noexcept;

expected<belief_policy> parse_belief_policy(const std::string& text);

/// What an agent asks to do in a federation.
enum class operation : uint8_t {
  read,
  write,
  /// Change the trust model, membership or roles.
  change_rules,
};

/// The spec's `FederationConfig`.
struct federation_config {
  std::string name;
  /// The first is the leader; the others join as members.
  std::vector<std::string> initial_members;
  trust_model trust = uniform_trust{};
  /// Collective sync interval (ms; 0: the node's anti-entropy interval).
  uint64_t sync_interval_ms = 0;
  /// How contradictory beliefs of members are settled.
  belief_policy belief_conflicts = belief_policy::fork;
  /// The Collective scope is sealed end to end: its facts' values are
  /// sealed with a key of the federation's that only members hold (the
  /// leader makes it, and a new one whenever the members change).
  bool e2e = false;
};

/// The key of a federation sealed end to end, epoch `epoch`: sealed by
/// agent `sealed_by` (the leader who made it) to each member's published
/// key (e2e/e2e.hpp, kind "fedkey"), with the earlier epochs' keys sealed
/// under it (`chain`). Nodes hold it without being able to open any of it.
struct group_keys {
  uint64_t epoch = 0;
  std::string sealed_by;
  /// Per member: the key sealed to it.
  std::map<std::string, std::string> sealed;
  std::string chain;

  friend bool operator==(const group_keys& x, const group_keys& y) {
    return x.epoch == y.epoch && x.sealed_by == y.sealed_by
           && x.sealed == y.sealed && x.chain == y.chain;
  }
};

/// A federation's state: id, shared Collective scope, members and rules.
/// Every change bumps `version`, so replicas of the state can tell the
/// newer one.
class federation_state {
public:
  /// Creates a federation. Its id is derived from the name; its shared
  /// scope is Collective{id, initial members}.
  static expected<federation_state> create(const federation_config& cfg,
                                           uint64_t now_us);

  /// Rebuilds a state read back from storage or the wire (checked: ids,
  /// one leader at most, trust values).
  static expected<federation_state>
  restore(std::string id, std::string name, std::vector<member_info> members,
          trust_model trust, uint64_t version, uint64_t sync_interval_ms,
          belief_policy belief_conflicts = belief_policy::fork,
          std::vector<std::string> departed = {},
          std::vector<invitation> invitations = {});

  const std::string& id() const noexcept { return id_; }
  uint64_t sync_interval_ms() const noexcept { return sync_interval_ms_; }
  const std::string& name() const noexcept { return name_; }
  const memory_scope& shared_scope() const noexcept { return scope_; }
  const trust_model& trust() const noexcept { return trust_; }
  belief_policy belief_conflicts() const noexcept { return belief_; }
  /// Agents that left or were removed and have not joined again (sorted).
  const std::vector<std::string>& departed() const noexcept {
    return departed_;
  }
  bool has_departed(const std::string& agent) const;
  const std::vector<member_info>& members() const noexcept { return members_; }
  /// Invitations not spent or revoked (sorted by agent; some may have
  /// lapsed since the last change).
  const std::vector<invitation>& invitations() const noexcept {
    return invitations_;
  }
  /// The invitation of `agent` standing at `now_us`, or nullptr.
  const invitation* find_invitation(const std::string& agent,
                                    uint64_t now_us) const;
  uint64_t version() const noexcept { return version_; }

  /// Whether the Collective scope is sealed end to end, and its key.
  bool e2e() const noexcept { return e2e_; }
  const group_keys& keys() const noexcept { return keys_; }

  /// An end-to-end federation whose key was not made yet, or was sealed to
  /// another set of members than the current one (one left, was removed
  /// or joined): nothing is written to its Collective scope until the
  /// leader makes a new key. Empty when the key is current; else why not.
  std::string keys_stale() const;

  /// Leader only, end-to-end federations: the key of the next epoch,
  /// sealed by the leader to every current member (no one else). Nodes
  /// check the shape of each sealed key, not what it holds (they cannot).
  expected<void> rotate_keys(const std::string& by, group_keys next);

  /// Sets what a decoder read (the codec's: `restore` checks the rest).
  void restore_keys(bool e2e, group_keys keys);

  /// The member, or nullptr.
  const member_info* find(const std::string& agent_id) const;

  /// The current leader (empty when there is none).
  std::string leader() const;

  /// May `agent` do `op`? The error names the agent, its role (or that it
  /// is no member) and what it may do instead.
  expected<void> check(const std::string& agent, operation op) const;

  /// A join request: an agent the leader invited joins as Member or
  /// Observer (no more than the invitation grants), which spends the
  /// invitation; Leader is only granted by the leader (`set_role`).
  /// Refused with a reason otherwise (uninvited, lapsed, role too high).
  expected<void> join(const std::string& agent, agent_role role,
                      uint64_t now_us);

  /// Leader only: invites `agent` to join as `role` (Member or Observer)
  /// until `expires_at_us` (0: until spent or revoked); replaces an
  /// earlier invitation of the same agent.
  expected<void> invite(const std::string& by, const std::string& agent,
                        agent_role role, uint64_t expires_at_us,
                        uint64_t now_us);

  /// Leader only: revokes the invitation of `agent`.
  expected<void> uninvite(const std::string& by, const std::string& agent);

  /// A member leaves. A leaving leader hands over by the succession rule.
  expected<void> leave(const std::string& agent);

  /// Leader only: removes `agent`.
  expected<void> remove(const std::string& by, const std::string& agent);

  /// Leader only: gives `agent` `role` (granting Leader hands leadership
  /// over: the old leader becomes a Member).
  expected<void> set_role(const std::string& by, const std::string& agent,
                          agent_role role);

  /// Leader only: replaces the trust model.
  expected<void> set_trust(const std::string& by, trust_model model);

  /// Leader only: changes how contradictory beliefs are settled.
  expected<void> set_belief_conflicts(const std::string& by,
                                      belief_policy policy);

  /// The succession rule: the live Member that joined first (ties by agent
  /// id); Observers only when no Member is live. Nullopt when nobody is.
  std::optional<std::string>
  successor(const std::function<bool(const std::string&)>& live) const;

  /// Makes the successor the leader when the leader is not live; returns
  /// the new leader (or nullopt when nothing changed).
  std::optional<std::string>
  succeed(const std::function<bool(const std::string&)>& live);

private:
  member_info* find_mut(const std::string& agent_id);

  std::string id_;
  std::string name_;
  memory_scope scope_;
  trust_model trust_;
  std::vector<member_info> members_;
  uint64_t version_ = 1;
  uint64_t sync_interval_ms_ = 0;
  belief_policy belief_ = belief_policy::fork;
  std::vector<std::string> departed_;
  std::vector<invitation> invitations_;
  bool e2e_ = false;
  group_keys keys_;
};

/// Whether replicated state `next` would weaken a federation sealed end
/// to end that is `current` here (nullptr: none yet): turn the sealing off,
/// go back to an earlier key, or bring a new key sealed by someone who is
/// not a member. A node does not take such a state, whoever wrote it.
bool weakens_sealing(const federation_state* current,
                     const federation_state& next);

} // namespace engram::federation
