#include "federation/membership.hpp"

#include "core/hash.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "e2e/e2e.hpp"

namespace engram::federation {

namespace {

const char* const role_names[] = {"leader", "member", "observer"};

const char* const policy_names[] = {"fork", "escalate", "ask_user",
                                    "take_newest", "take_highest_confidence"};

std::string may_do(agent_role role) {
  switch (role) {
    case agent_role::leader: return "read, write and change the rules";
    case agent_role::member: return "read and write, not change the rules";
    case agent_role::observer:
    default: return "read only";
  }
}

const char* verb(operation op) {
  switch (op) {
    case operation::read: return "read";
    case operation::write: return "write";
    case operation::change_rules:
    default: return "change the rules of";
  }
}

} // namespace

const char* to_string(agent_role role) noexcept {
  return role_names[static_cast<size_t>(role)];
}

expected<agent_role> parse_role(const std::string& text) {
  for (size_t i = 0; i < 3; ++i)
    if (text == role_names[i])
      return static_cast<agent_role>(i);
  return make_error(errc::invalid_argument,
                    "unknown role '" + text
                        + "' (known: leader, member, observer)");
}

const char* to_string(belief_policy policy) noexcept {
  return policy_names[static_cast<size_t>(policy)];
}

expected<belief_policy> parse_belief_policy(const std::string& text) {
  for (size_t i = 0; i < std::size(policy_names); ++i)
    if (text == policy_names[i])
      return static_cast<belief_policy>(i);
  return make_error(errc::invalid_argument,
                    "unknown belief conflict policy '" + text
                        + "' (known: fork, escalate, ask_user, take_newest, "
                          "take_highest_confidence)");
}

expected<federation_state>
federation_state::create(const federation_config& cfg, uint64_t now_us) {
  if (cfg.name.empty())
    return make_error(errc::invalid_argument, "a federation needs a name");
  if (cfg.initial_members.empty())
    return make_error(errc::invalid_argument,
                      "federation " + cfg.name + ": no initial members");
  if (auto ok = validate(cfg.trust); !ok)
    return ok.error_value();
  federation_state result;
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(hash_string(cfg.name)));
  result.id_ = std::string{"fed-"} + hex;
  result.name_ = cfg.name;
  result.trust_ = cfg.trust;
  trust_book book{cfg.trust};
  for (size_t i = 0; i < cfg.initial_members.size(); ++i) {
    auto& agent = cfg.initial_members[i];
    if (auto ok = validate_id(agent, "agent id"); !ok)
      return ok.error_value();
    if (result.find(agent) != nullptr)
      return make_error(errc::invalid_argument, "federation " + cfg.name + ": "
                                                    + agent
                                                    + " is listed twice");
    result.members_.push_back(
        member_info{agent, i == 0 ? agent_role::leader : agent_role::member,
                    now_us, book.trust(agent, now_us)});
  }
  result.scope_ = memory_scope::collective(result.id_, cfg.initial_members);
  result.sync_interval_ms_ = cfg.sync_interval_ms;
  result.belief_ = cfg.belief_conflicts;
  result.e2e_ = cfg.e2e;
  return result;
}

expected<federation_state> federation_state::restore(
    std::string id, std::string name, std::vector<member_info> members,
    trust_model trust, uint64_t version, uint64_t sync_interval_ms,
    belief_policy belief_conflicts, std::vector<std::string> departed,
    std::vector<invitation> invitations) {
  if (static_cast<size_t>(belief_conflicts) >= std::size(policy_names))
    return make_error(errc::invalid_field,
                      "federation " + id + ": unknown belief conflict policy "
                          + std::to_string(static_cast<int>(belief_conflicts)));
  if (id.rfind("fed-", 0) != 0)
    return make_error(errc::invalid_field,
                      "federation id '" + id + "' does not start with fed-");
  if (members.empty())
    return make_error(errc::invalid_field, "federation " + id + ": no members");
  if (auto ok = validate(trust); !ok)
    return ok.error_value();
  size_t leaders = 0;
  std::vector<std::string> ids;
  for (auto& m : members) {
    if (auto ok = validate_id(m.agent_id, "member agent id"); !ok)
      return ok.error_value();
    if (std::find(ids.begin(), ids.end(), m.agent_id) != ids.end())
      return make_error(errc::invalid_field, "federation " + id + ": "
                                                 + m.agent_id
                                                 + " is listed twice");
    ids.push_back(m.agent_id);
    leaders += m.role == agent_role::leader ? 1 : 0;
  }
  if (leaders > 1)
    return make_error(errc::invalid_field,
                      "federation " + id + ": more than one leader");
  federation_state result;
  result.id_ = std::move(id);
  result.name_ = std::move(name);
  result.members_ = std::move(members);
  result.trust_ = std::move(trust);
  result.version_ = version;
  result.sync_interval_ms_ = sync_interval_ms;
  result.belief_ = belief_conflicts;
  std::sort(departed.begin(), departed.end());
  departed.erase(std::unique(departed.begin(), departed.end()), departed.end());
  for (auto& d : departed)
    if (auto ok = validate_id(d, "departed agent id"); !ok)
      return ok.error_value();
  result.departed_ = std::move(departed);
  if (invitations.size() > max_invitations)
    return make_error(errc::invalid_field,
                      "federation " + result.id_ + ": more than "
                          + std::to_string(max_invitations) + " invitations");
  std::sort(invitations.begin(), invitations.end(), [](auto& x, auto& y) {
    return x.agent_id < y.agent_id;
  });
  for (size_t i = 0; i < invitations.size(); ++i) {
    auto& inv = invitations[i];
    if (auto ok = validate_id(inv.agent_id, "invited agent id"); !ok)
      return ok.error_value();
    if (i > 0 && invitations[i - 1].agent_id == inv.agent_id)
      return make_error(errc::invalid_field, "federation " + result.id_ + ": "
                                                 + inv.agent_id
                                                 + " is invited twice");
    if (inv.role == agent_role::leader)
      return make_error(errc::invalid_field, "federation " + result.id_ + ": "
                                                 + inv.agent_id
                                                 + " is invited as leader");
  }
  result.invitations_ = std::move(invitations);
  result.scope_ = memory_scope::collective(result.id_, ids);
  return result;
}

const invitation* federation_state::find_invitation(const std::string& agent,
                                                    uint64_t now_us) const {
  auto i = std::lower_bound(invitations_.begin(), invitations_.end(), agent,
                            [](const invitation& x, const std::string& a) {
                              return x.agent_id < a;
                            });
  if (i == invitations_.end() || i->agent_id != agent)
    return nullptr;
  if (i->expires_at_us != 0 && i->expires_at_us <= now_us)
    return nullptr;
  return &*i;
}

expected<void> federation_state::invite(const std::string& by,
                                        const std::string& agent,
                                        agent_role role, uint64_t expires_at_us,
                                        uint64_t now_us) {
  if (auto ok = check(by, operation::change_rules); !ok)
    return ok;
  if (auto ok = validate_id(agent, "invited agent id"); !ok)
    return ok;
  if (role == agent_role::leader)
    return make_error(errc::invalid_argument,
                      "an invitation is to join as member or observer; the "
                      "leader hands leadership to a member (set_role)");
  if (find(agent) != nullptr)
    return make_error(errc::invalid_argument,
                      agent + " is already a member of federation " + name_);
  if (expires_at_us != 0 && expires_at_us <= now_us)
    return make_error(errc::invalid_argument,
                      "the invitation of " + agent + " would lapse at once");
  // Lapsed invitations go first, so they never fill the list.
  invitations_.erase(std::remove_if(invitations_.begin(), invitations_.end(),
                                    [&](const invitation& x) {
                                      return x.expires_at_us != 0
                                             && x.expires_at_us <= now_us;
                                    }),
                     invitations_.end());
  auto i = std::lower_bound(invitations_.begin(), invitations_.end(), agent,
                            [](const invitation& x, const std::string& a) {
                              return x.agent_id < a;
                            });
  if (i != invitations_.end() && i->agent_id == agent) {
    i->role = role;
    i->expires_at_us = expires_at_us;
  } else {
    if (invitations_.size() >= max_invitations)
      return make_error(errc::limit_exceeded,
                        "federation " + name_ + " already holds "
                            + std::to_string(max_invitations)
                            + " open invitations: revoke some first");
    invitations_.insert(i, invitation{agent, role, expires_at_us});
  }
  ++version_;
  return {};
}

expected<void> federation_state::uninvite(const std::string& by,
                                          const std::string& agent) {
  if (auto ok = check(by, operation::change_rules); !ok)
    return ok;
  auto i = std::find_if(invitations_.begin(), invitations_.end(), [&](auto& x) {
    return x.agent_id == agent;
  });
  if (i == invitations_.end())
    return make_error(errc::invalid_argument,
                      agent + " has no invitation to " + "federation " + name_);
  invitations_.erase(i);
  ++version_;
  return {};
}

bool federation_state::has_departed(const std::string& agent) const {
  return std::binary_search(departed_.begin(), departed_.end(), agent);
}

const member_info* federation_state::find(const std::string& agent_id) const {
  for (auto& m : members_)
    if (m.agent_id == agent_id)
      return &m;
  return nullptr;
}

member_info* federation_state::find_mut(const std::string& agent_id) {
  return const_cast<member_info*>(find(agent_id));
}

std::string federation_state::leader() const {
  for (auto& m : members_)
    if (m.role == agent_role::leader)
      return m.agent_id;
  return {};
}

expected<void> federation_state::check(const std::string& agent,
                                       operation op) const {
  auto* m = find(agent);
  if (m == nullptr)
    return make_error(errc::permission_denied,
                      agent + " is not a member of federation " + name_
                          + ": it may not " + verb(op) + " it");
  bool allowed = op == operation::read
                 || (op == operation::write && m->role != agent_role::observer)
                 || m->role == agent_role::leader;
  if (allowed)
    return {};
  return make_error(errc::permission_denied, agent + " is " + to_string(m->role)
                                                 + " of federation " + name_
                                                 + ": it may " + may_do(m->role)
                                                 + ", not " + verb(op) + " it");
}

expected<void> federation_state::join(const std::string& agent, agent_role role,
                                      uint64_t now_us) {
  if (auto ok = validate_id(agent, "agent id"); !ok)
    return ok.error_value();
  if (find(agent) != nullptr)
    return make_error(errc::invalid_argument,
                      agent + " is already a member of federation " + name_);
  if (role == agent_role::leader)
    return make_error(errc::permission_denied,
                      agent + " cannot join federation " + name_
                          + " as leader: only the leader grants that role");
  auto* inv = find_invitation(agent, now_us);
  if (inv == nullptr)
    return make_error(errc::permission_denied,
                      agent + " may not join federation " + name_
                          + ": it has no standing invitation (the leader "
                            "invites)");
  if (inv->role == agent_role::observer && role != agent_role::observer)
    return make_error(errc::permission_denied,
                      agent + " is invited to federation " + name_
                          + " as observer, not as " + to_string(role));
  invitations_.erase(invitations_.begin() + (inv - invitations_.data()));
  trust_book book{trust_};
  members_.push_back(
      member_info{agent, role, now_us, book.trust(agent, now_us)});
  if (auto d = std::lower_bound(departed_.begin(), departed_.end(), agent);
      d != departed_.end() && *d == agent)
    departed_.erase(d);
  std::vector<std::string> ids;
  for (auto& m : members_)
    ids.push_back(m.agent_id);
  scope_ = memory_scope::collective(id_, ids);
  ++version_;
  return {};
}

expected<void> federation_state::leave(const std::string& agent) {
  auto i = std::find_if(members_.begin(), members_.end(), [&](auto& m) {
    return m.agent_id == agent;
  });
  if (i == members_.end())
    return make_error(errc::invalid_argument,
                      agent + " is not a member of federation " + name_);
  bool was_leader = i->role == agent_role::leader;
  members_.erase(i);
  departed_.insert(std::lower_bound(departed_.begin(), departed_.end(), agent),
                   agent);
  if (was_leader)
    if (auto next = successor([](const std::string&) {
          return true;
        }))
      find_mut(*next)->role = agent_role::leader;
  std::vector<std::string> ids;
  for (auto& m : members_)
    ids.push_back(m.agent_id);
  if (!ids.empty())
    scope_ = memory_scope::collective(id_, ids);
  ++version_;
  return {};
}

expected<void> federation_state::remove(const std::string& by,
                                        const std::string& agent) {
  if (auto ok = check(by, operation::change_rules); !ok)
    return ok;
  return leave(agent);
}

expected<void> federation_state::set_role(const std::string& by,
                                          const std::string& agent,
                                          agent_role role) {
  if (auto ok = check(by, operation::change_rules); !ok)
    return ok;
  auto* m = find_mut(agent);
  if (m == nullptr)
    return make_error(errc::invalid_argument,
                      agent + " is not a member of federation " + name_);
  if (role == agent_role::leader && agent != by)
    find_mut(by)->role = agent_role::member; // leadership handed over
  m->role = role;
  if (leader().empty()) // the leader demoted itself: succession
    if (auto next = successor([](const std::string&) {
          return true;
        }))
      find_mut(*next)->role = agent_role::leader;
  ++version_;
  return {};
}

expected<void> federation_state::set_trust(const std::string& by,
                                           trust_model model) {
  if (auto ok = check(by, operation::change_rules); !ok)
    return ok;
  if (auto ok = validate(model); !ok)
    return ok;
  trust_ = std::move(model);
  ++version_;
  return {};
}

expected<void> federation_state::set_belief_conflicts(const std::string& by,
                                                      belief_policy policy) {
  if (auto ok = check(by, operation::change_rules); !ok)
    return ok;
  if (static_cast<size_t>(policy) >= std::size(policy_names))
    return make_error(errc::invalid_argument, "unknown belief conflict policy");
  belief_ = policy;
  ++version_;
  return {};
}

std::string federation_state::keys_stale() const {
  if (!e2e_)
    return {};
  if (keys_.epoch == 0)
    return "federation " + name_
           + " is sealed end to end and its leader has not made its key yet";
  for (auto& m : members_)
    if (keys_.sealed.count(m.agent_id) == 0)
      return "federation " + name_ + "'s key (epoch "
             + std::to_string(keys_.epoch) + ") was not sealed to " + m.agent_id
             + ": its leader must make a new one";
  for (auto& [agent, text] : keys_.sealed)
    if (find(agent) == nullptr)
      return "federation " + name_ + "'s key (epoch "
             + std::to_string(keys_.epoch) + ") is held by " + agent
             + ", no longer a member: its leader must make a new one";
  return {};
}

expected<void> federation_state::rotate_keys(const std::string& by,
                                             group_keys next) {
  if (auto ok = check(by, operation::change_rules); !ok)
    return ok;
  if (!e2e_)
    return make_error(errc::invalid_argument,
                      "federation " + name_ + " is not sealed end to end");
  if (next.epoch != keys_.epoch + 1)
    return make_error(errc::invalid_argument,
                      "federation " + name_ + "'s next key is epoch "
                          + std::to_string(keys_.epoch + 1) + ", not "
                          + std::to_string(next.epoch));
  if (next.sealed_by != by)
    return make_error(errc::invalid_argument, "a key sealed by "
                                                  + next.sealed_by
                                                  + " submitted by " + by);
  for (auto& m : members_)
    if (next.sealed.count(m.agent_id) == 0)
      return make_error(errc::invalid_argument,
                        "the new key is not sealed to member " + m.agent_id);
  for (auto& [agent, text] : next.sealed) {
    if (find(agent) == nullptr)
      return make_error(errc::invalid_argument, "the new key is sealed to "
                                                    + agent
                                                    + ", who is not a member");
    if (!e2e::well_formed(text))
      return make_error(errc::invalid_argument,
                        "the key sealed to " + agent + " is not a sealed text");
    if (auto sender = e2e::sealed_sender(text); !sender || *sender != by)
      return make_error(errc::invalid_argument, "the key sealed to " + agent
                                                    + " was not sealed by "
                                                    + by);
    constexpr size_t max_copy = 64 * 1024;
    if (text.size() > max_copy)
      return make_error(errc::invalid_argument,
                        "the key sealed to " + agent + " is over 64 KiB");
  }
  constexpr size_t max_chain = 1 << 20;
  if (next.chain.size() > max_chain)
    return make_error(errc::invalid_argument,
                      "the chain of earlier keys is over 1 MiB");
  keys_ = std::move(next);
  ++version_;
  return {};
}

void federation_state::restore_keys(bool e2e, group_keys keys) {
  e2e_ = e2e;
  keys_ = std::move(keys);
}

std::optional<std::string> federation_state::successor(
    const std::function<bool(const std::string&)>& live) const {
  const member_info* best = nullptr;
  auto better = [](const member_info& x, const member_info* y) {
    if (y == nullptr)
      return true;
    if (x.joined_at_us != y->joined_at_us)
      return x.joined_at_us < y->joined_at_us;
    return x.agent_id < y->agent_id;
  };
  // Sealed end to end: a member holding the current key first (only a
  // holder can make the next one and keep the earlier ones readable).
  auto holds_key = [this](const member_info& m) {
    return keys_.sealed.count(m.agent_id) > 0;
  };
  for (bool need_key : {e2e_ && keys_.epoch > 0, false}) {
    for (auto role : {agent_role::member, agent_role::observer}) {
      for (auto& m : members_)
        if (m.role == role && live(m.agent_id) && (!need_key || holds_key(m))
            && better(m, best))
          best = &m;
      if (best != nullptr)
        return best->agent_id;
    }
    if (!need_key)
      break;
  }
  return std::nullopt;
}

std::optional<std::string>
federation_state::succeed(const std::function<bool(const std::string&)>& live) {
  auto current = leader();
  if (!current.empty() && live(current))
    return std::nullopt;
  auto next = successor(live);
  if (!next)
    return std::nullopt;
  if (auto* old = find_mut(current))
    old->role = agent_role::member;
  find_mut(*next)->role = agent_role::leader;
  ++version_;
  return next;
}

bool weakens_sealing(const federation_state* current,
                     const federation_state& next) {
  auto& k = next.keys();
  if (next.e2e() && k.epoch > 0 && next.find(k.sealed_by) == nullptr
      && (current == nullptr || current->keys().epoch != k.epoch))
    return true;
  if (current == nullptr || !current->e2e())
    return false;
  return !next.e2e() || k.epoch < current->keys().epoch;
}

} // namespace engram::federation
