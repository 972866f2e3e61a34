#include "federation/codec.hpp"

#include "messages/envelope.hpp"

#include "engram/v1/api.pb.h"

namespace engram::federation {

namespace {

v1::AgentRole to_proto(agent_role role) {
  switch (role) {
    case agent_role::leader: return v1::ROLE_LEADER;
    case agent_role::observer: return v1::ROLE_OBSERVER;
    case agent_role::member:
    default: return v1::ROLE_MEMBER;
  }
}

expected<agent_role> from_proto(int role) {
  switch (role) {
    case v1::ROLE_LEADER: return agent_role::leader;
    case v1::ROLE_MEMBER: return agent_role::member;
    case v1::ROLE_OBSERVER: return agent_role::observer;
    default:
      return make_error(errc::invalid_field,
                        "unknown federation role " + std::to_string(role));
  }
}

template<class Map>
void put_levels(const std::map<std::string, double>& xs, Map* out) {
  for (auto& [agent, level] : xs) {
    auto* x = out->Add();
    x->set_agent(agent);
    x->set_level(level);
  }
}

template<class Repeated>
std::map<std::string, double> get_levels(const Repeated& xs) {
  std::map<std::string, double> result;
  for (auto& x : xs)
    result[x.agent()] = x.level();
  return result;
}

void to_proto(const trust_model& model, v1::TrustModel* t) {
  std::visit(
      [t](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, uniform_trust>) {
          t->set_uniform(m.level);
        } else if constexpr (std::is_same_v<T, per_agent_trust>) {
          auto* p = t->mutable_per_agent();
          put_levels(m.levels, p->mutable_levels());
          p->set_fallback(m.fallback);
        } else if constexpr (std::is_same_v<T, reputation_trust>) {
          auto* r = t->mutable_reputation();
          r->set_initial(m.initial);
          r->set_decay(m.decay);
          r->set_boost_on_verification(m.boost_on_verification);
          r->set_penalty_on_contradiction(m.penalty_on_contradiction);
        } else {
          auto* x = t->mutable_transitive();
          put_levels(m.direct_trust, x->mutable_direct_trust());
          x->set_trust_decay_per_hop(m.trust_decay_per_hop);
          x->set_max_hops(static_cast<uint32_t>(m.max_hops));
        }
      },
      model);
}

expected<trust_model> checked(trust_model model) {
  if (auto ok = validate(model); !ok)
    return ok.error_value();
  return model;
}

expected<trust_model> from_proto(const v1::TrustModel& t) {
  switch (t.model_case()) {
    case v1::TrustModel::kUniform: return checked(uniform_trust{t.uniform()});
    case v1::TrustModel::kPerAgent:
      return checked(per_agent_trust{get_levels(t.per_agent().levels()),
                                     t.per_agent().fallback()});
    case v1::TrustModel::kReputation: {
      auto& r = t.reputation();
      return checked(reputation_trust{r.initial(), r.decay(),
                                      r.boost_on_verification(),
                                      r.penalty_on_contradiction()});
    }
    case v1::TrustModel::kTransitive: {
      auto& x = t.transitive();
      return checked(transitive_trust{get_levels(x.direct_trust()),
                                      x.trust_decay_per_hop(), x.max_hops()});
    }
    default: return make_error(errc::invalid_field, "no trust model");
  }
}

void to_proto(const group_keys& keys, v1::FederationKeys& out) {
  out.set_epoch(keys.epoch);
  out.set_sealed_by(keys.sealed_by);
  for (auto& [member, text] : keys.sealed) {
    auto* x = out.add_sealed();
    x->set_member(member);
    x->set_text(text);
  }
  out.set_chain(keys.chain);
}

expected<group_keys> from_proto(const v1::FederationKeys& in) {
  group_keys out;
  out.epoch = in.epoch();
  out.sealed_by = in.sealed_by();
  for (auto& x : in.sealed())
    if (!out.sealed.emplace(x.member(), x.text()).second)
      return make_error(errc::invalid_field,
                        "FederationKeys: " + x.member() + " is listed twice");
  out.chain = in.chain();
  return out;
}

} // namespace

std::string encode_trust(const trust_model& model) {
  v1::TrustModel msg;
  to_proto(model, &msg);
  return messages::serialize(msg);
}

expected<trust_model> decode_trust(std::string_view bytes) {
  v1::TrustModel msg;
  if (auto ok = messages::parse(bytes, msg, messages::limits{}, "TrustModel");
      !ok)
    return ok.error_value();
  return from_proto(msg);
}

std::string encode_keys(const group_keys& keys) {
  v1::FederationKeys msg;
  to_proto(keys, msg);
  return messages::serialize(msg);
}

expected<group_keys> decode_keys(std::string_view bytes) {
  v1::FederationKeys msg;
  if (auto ok
      = messages::parse(bytes, msg, messages::limits{}, "FederationKeys");
      !ok)
    return ok.error_value();
  return from_proto(msg);
}

std::string encode(const federation_state& state) {
  v1::FederationState msg;
  msg.set_e2e(state.e2e());
  if (state.e2e())
    to_proto(state.keys(), *msg.mutable_keys());
  msg.set_id(state.id());
  msg.set_name(state.name());
  msg.set_version(state.version());
  msg.set_sync_interval_ms(state.sync_interval_ms());
  msg.set_belief_conflicts(
      static_cast<v1::BeliefPolicy>(state.belief_conflicts()));
  for (auto& d : state.departed())
    msg.add_departed(d);
  for (auto& i : state.invitations()) {
    auto* x = msg.add_invitations();
    x->set_agent(i.agent_id);
    x->set_role(to_proto(i.role));
    x->set_expires_at_us(i.expires_at_us);
  }
  for (auto& m : state.members()) {
    auto* x = msg.add_members();
    x->set_agent(m.agent_id);
    x->set_role(to_proto(m.role));
    x->set_joined_at_us(m.joined_at_us);
    x->set_trust_level(m.trust_level);
  }
  to_proto(state.trust(), msg.mutable_trust());
  return messages::serialize(msg);
}

expected<federation_state> decode_state(std::string_view bytes) {
  v1::FederationState msg;
  if (auto ok
      = messages::parse(bytes, msg, messages::limits{}, "FederationState");
      !ok)
    return ok.error_value();
  std::vector<member_info> members;
  for (auto& m : msg.members()) {
    auto role = from_proto(m.role());
    if (!role)
      return role.error_value();
    members.push_back(
        member_info{m.agent(), *role, m.joined_at_us(), m.trust_level()});
  }
  std::vector<invitation> invitations;
  for (auto& i : msg.invitations()) {
    auto role = from_proto(i.role());
    if (!role)
      return role.error_value();
    invitations.push_back(invitation{i.agent(), *role, i.expires_at_us()});
  }
  auto trust = from_proto(msg.trust());
  if (!trust)
    return make_error(trust.error_value().code,
                      "FederationState: " + trust.error_value().message);
  auto keys = from_proto(msg.keys());
  if (!keys)
    return keys.error_value();
  auto state = federation_state::restore(
      msg.id(), msg.name(), std::move(members), std::move(*trust),
      msg.version(), msg.sync_interval_ms(),
      static_cast<belief_policy>(msg.belief_conflicts()),
      std::vector<std::string>{msg.departed().begin(), msg.departed().end()},
      std::move(invitations));
  if (state)
    state->restore_keys(msg.e2e(), std::move(*keys));
  return state;
}

} // namespace engram::federation
