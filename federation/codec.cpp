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

} // namespace

std::string encode(const federation_state& state) {
  v1::FederationState msg;
  msg.set_id(state.id());
  msg.set_name(state.name());
  msg.set_version(state.version());
  msg.set_sync_interval_ms(state.sync_interval_ms());
  for (auto& m : state.members()) {
    auto* x = msg.add_members();
    x->set_agent(m.agent_id);
    x->set_role(to_proto(m.role));
    x->set_joined_at_us(m.joined_at_us);
    x->set_trust_level(m.trust_level);
  }
  auto* t = msg.mutable_trust();
  std::visit(
      [t](const auto& model) {
        using T = std::decay_t<decltype(model)>;
        if constexpr (std::is_same_v<T, uniform_trust>) {
          t->set_uniform(model.level);
        } else if constexpr (std::is_same_v<T, per_agent_trust>) {
          auto* p = t->mutable_per_agent();
          put_levels(model.levels, p->mutable_levels());
          p->set_fallback(model.fallback);
        } else if constexpr (std::is_same_v<T, reputation_trust>) {
          auto* r = t->mutable_reputation();
          r->set_initial(model.initial);
          r->set_decay(model.decay);
          r->set_boost_on_verification(model.boost_on_verification);
          r->set_penalty_on_contradiction(model.penalty_on_contradiction);
        } else {
          auto* x = t->mutable_transitive();
          put_levels(model.direct_trust, x->mutable_direct_trust());
          x->set_trust_decay_per_hop(model.trust_decay_per_hop);
          x->set_max_hops(static_cast<uint32_t>(model.max_hops));
        }
      },
      state.trust());
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
  trust_model trust;
  auto& t = msg.trust();
  switch (t.model_case()) {
    case v1::TrustModel::kUniform: trust = uniform_trust{t.uniform()}; break;
    case v1::TrustModel::kPerAgent:
      trust = per_agent_trust{get_levels(t.per_agent().levels()),
                              t.per_agent().fallback()};
      break;
    case v1::TrustModel::kReputation: {
      auto& r = t.reputation();
      trust
          = reputation_trust{r.initial(), r.decay(), r.boost_on_verification(),
                             r.penalty_on_contradiction()};
      break;
    }
    case v1::TrustModel::kTransitive: {
      auto& x = t.transitive();
      trust = transitive_trust{get_levels(x.direct_trust()),
                               x.trust_decay_per_hop(), x.max_hops()};
      break;
    }
    default:
      return make_error(errc::invalid_field, "FederationState: no trust model");
  }
  return federation_state::restore(msg.id(), msg.name(), std::move(members),
                                   std::move(trust), msg.version(),
                                   msg.sync_interval_ms());
}

} // namespace engram::federation
