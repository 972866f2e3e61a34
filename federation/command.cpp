#include "federation/command.hpp"

#include "core/overload.hpp"
#include "federation/codec.hpp"

#include "engram/v1/api.pb.h"

namespace engram::federation {

namespace {

v1::AgentRole role_to_proto(agent_role role) {
  return role == agent_role::leader     ? v1::ROLE_LEADER
         : role == agent_role::observer ? v1::ROLE_OBSERVER
                                        : v1::ROLE_MEMBER;
}

expected<agent_role> role_from_proto(int role) {
  switch (role) {
    case v1::ROLE_LEADER: return agent_role::leader;
    case v1::ROLE_MEMBER: return agent_role::member;
    case v1::ROLE_OBSERVER: return agent_role::observer;
    default: return make_error(errc::invalid_field, "unknown federation role");
  }
}

} // namespace

std::string describe(const federation_command& c) {
  return std::visit(
      overload{
          [](const cmd::read_state&) {
            return std::string{"read the rules"};
          },
          [](const cmd::create& x) {
            return "create federation " + x.state.name();
          },
          [](const cmd::join& x) {
            return std::string{"join as "} + to_string(x.role);
          },
          [](const cmd::leave&) {
            return std::string{"leave"};
          },
          [](const cmd::remove& x) {
            return "remove " + x.member;
          },
          [](const cmd::set_role& x) {
            return "make " + x.member + " " + to_string(x.role);
          },
          [](const cmd::set_trust& x) {
            return std::string{"set the trust model to "} + model_name(x.model);
          },
          [](const cmd::set_belief_policy& x) {
            return std::string{"settle contradictory beliefs by "}
                   + to_string(x.policy);
          },
          [](const cmd::verify& x) {
            return "verify " + x.member;
          },
          [](const cmd::contradict& x) {
            return "contradict " + x.member;
          },
          [](const cmd::invite& x) {
            return "invite " + x.member + " as " + to_string(x.role);
          },
          [](const cmd::uninvite& x) {
            return "revoke the invitation of " + x.member;
          },
          [](const cmd::rotate_keys& x) {
            return "make key epoch " + std::to_string(x.keys.epoch);
          },
      },
      c.what);
}

bool changes_rules(const federation_command& c) noexcept {
  return std::holds_alternative<cmd::join>(c.what)
         || std::holds_alternative<cmd::leave>(c.what)
         || std::holds_alternative<cmd::remove>(c.what)
         || std::holds_alternative<cmd::set_role>(c.what)
         || std::holds_alternative<cmd::set_trust>(c.what)
         || std::holds_alternative<cmd::set_belief_policy>(c.what)
         || std::holds_alternative<cmd::invite>(c.what)
         || std::holds_alternative<cmd::uninvite>(c.what)
         || std::holds_alternative<cmd::rotate_keys>(c.what);
}

expected<federation_state> apply(const federation_state& current,
                                 const federation_command& c, uint64_t now_us) {
  auto& agent = c.agent;
  auto next = current;
  auto changed = std::visit(
      overload{
          [&](const cmd::read_state&) -> expected<void> {
            return current.check(agent, operation::read);
          },
          [&](const cmd::join& x) -> expected<void> {
            if (auto* m = current.find(agent); m != nullptr) {
              if (m->role == x.role || x.role == agent_role::member)
                return {}; // joining again: already in, nothing changes
              return make_error(errc::invalid_argument,
                                agent + " is already " + to_string(m->role)
                                    + " of federation " + current.name()
                                    + " (the leader changes roles)");
            }
            return next.join(agent, x.role, now_us);
          },
          [&](const cmd::leave&) {
            return next.leave(agent);
          },
          [&](const cmd::remove& x) {
            return next.remove(agent, x.member);
          },
          [&](const cmd::set_role& x) {
            return next.set_role(agent, x.member, x.role);
          },
          [&](const cmd::set_trust& x) {
            return next.set_trust(agent, x.model);
          },
          [&](const cmd::set_belief_policy& x) {
            return next.set_belief_conflicts(agent, x.policy);
          },
          [&](const cmd::invite& x) {
            return next.invite(agent, x.member, x.role, x.expires_at_us,
                               now_us);
          },
          [&](const cmd::uninvite& x) {
            return next.uninvite(agent, x.member);
          },
          [&](const cmd::rotate_keys& x) {
            return next.rotate_keys(agent, x.keys);
          },
          [&](const auto&) -> expected<void> {
            return make_error(errc::invalid_argument,
                              "'" + describe(c)
                                  + "' is not a change of the rules of "
                                    "federation "
                                  + current.name());
          },
      },
      c.what);
  if (!changed)
    return changed.error_value();
  if (std::holds_alternative<cmd::read_state>(c.what))
    return current;
  return next;
}

std::string encode(const federation_command& c) {
  v1::FederationCommand out;
  out.set_agent(c.agent);
  out.set_relayed(c.relayed);
  out.set_seen_version(c.seen_version);
  std::visit(overload{
                 [&](const cmd::read_state&) {
                   out.set_read_state(true);
                 },
                 [&](const cmd::create& x) {
                   out.set_create(encode(x.state));
                 },
                 [&](const cmd::join& x) {
                   out.set_join(to_string(x.role));
                 },
                 [&](const cmd::leave&) {
                   out.set_leave(true);
                 },
                 [&](const cmd::remove& x) {
                   out.set_remove(x.member);
                 },
                 [&](const cmd::set_role& x) {
                   out.mutable_set_role()->set_agent(x.member);
                   out.mutable_set_role()->set_role(role_to_proto(x.role));
                 },
                 [&](const cmd::set_trust& x) {
                   out.set_set_trust(encode_trust(x.model));
                 },
                 [&](const cmd::set_belief_policy& x) {
                   out.set_set_belief_policy(to_string(x.policy));
                 },
                 [&](const cmd::verify& x) {
                   out.set_verify(x.member);
                 },
                 [&](const cmd::contradict& x) {
                   out.set_contradict(x.member);
                 },
                 [&](const cmd::invite& x) {
                   auto* inv = out.mutable_invite();
                   inv->set_agent(x.member);
                   inv->set_role(role_to_proto(x.role));
                   inv->set_expires_at_us(x.expires_at_us);
                 },
                 [&](const cmd::uninvite& x) {
                   out.set_uninvite(x.member);
                 },
                 [&](const cmd::rotate_keys& x) {
                   out.set_rotate_keys(encode_keys(x.keys));
                 },
             },
             c.what);
  return out.SerializeAsString();
}

expected<federation_command> decode_command(std::string_view bytes) {
  v1::FederationCommand in;
  if (!in.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error(errc::decode_failed, "not a federation command");
  federation_command c;
  c.agent = in.agent();
  c.relayed = in.relayed();
  c.seen_version = in.seen_version();
  if (auto ok = validate_id(c.agent, "the asking agent"); !ok)
    return ok.error_value();
  auto member = [](const std::string& m) -> expected<std::string> {
    if (auto ok = validate_id(m, "member"); !ok)
      return ok.error_value();
    return m;
  };
  switch (in.what_case()) {
    case v1::FederationCommand::kReadState: c.what = cmd::read_state{}; break;
    case v1::FederationCommand::kCreate: {
      auto state = decode_state(in.create());
      if (!state)
        return state.error_value();
      c.what = cmd::create{std::move(*state)};
      break;
    }
    case v1::FederationCommand::kJoin: {
      auto role = parse_role(in.join().empty() ? "member" : in.join());
      if (!role)
        return role.error_value();
      c.what = cmd::join{*role};
      break;
    }
    case v1::FederationCommand::kLeave: c.what = cmd::leave{}; break;
    case v1::FederationCommand::kRemove: {
      auto m = member(in.remove());
      if (!m)
        return m.error_value();
      c.what = cmd::remove{std::move(*m)};
      break;
    }
    case v1::FederationCommand::kSetRole: {
      auto m = member(in.set_role().agent());
      if (!m)
        return m.error_value();
      auto role = role_from_proto(in.set_role().role());
      if (!role)
        return role.error_value();
      c.what = cmd::set_role{std::move(*m), *role};
      break;
    }
    case v1::FederationCommand::kSetTrust: {
      auto model = decode_trust(in.set_trust());
      if (!model)
        return model.error_value();
      c.what = cmd::set_trust{std::move(*model)};
      break;
    }
    case v1::FederationCommand::kSetBeliefPolicy: {
      auto policy = parse_belief_policy(in.set_belief_policy());
      if (!policy)
        return policy.error_value();
      c.what = cmd::set_belief_policy{*policy};
      break;
    }
    case v1::FederationCommand::kVerify: {
      auto m = member(in.verify());
      if (!m)
        return m.error_value();
      c.what = cmd::verify{std::move(*m)};
      break;
    }
    case v1::FederationCommand::kContradict: {
      auto m = member(in.contradict());
      if (!m)
        return m.error_value();
      c.what = cmd::contradict{std::move(*m)};
      break;
    }
    case v1::FederationCommand::kInvite: {
      auto m = member(in.invite().agent());
      if (!m)
        return m.error_value();
      auto role = role_from_proto(in.invite().role());
      if (!role)
        return role.error_value();
      if (*role == agent_role::leader)
        return make_error(errc::invalid_field,
                          "an invitation is to join as member or observer");
      c.what = cmd::invite{std::move(*m), *role, in.invite().expires_at_us()};
      break;
    }
    case v1::FederationCommand::kUninvite: {
      auto m = member(in.uninvite());
      if (!m)
        return m.error_value();
      c.what = cmd::uninvite{std::move(*m)};
      break;
    }
    case v1::FederationCommand::kRotateKeys: {
      auto keys = decode_keys(in.rotate_keys());
      if (!keys)
        return keys.error_value();
      c.what = cmd::rotate_keys{std::move(*keys)};
      break;
    }
    default:
      return make_error(errc::invalid_field,
                        "a federation command without an operation");
  }
  return c;
}

} // namespace engram::federation
