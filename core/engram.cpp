#include "core/engram.hpp"

#include "core/hash.hpp"

#include <cmath>
#include <cstring>
#include <string_view>

namespace engram {

const char* to_string(memory_type type) noexcept {
  switch (type) {
    case memory_type::instant: return "instant";
    case memory_type::episodic: return "episodic";
    case memory_type::semantic: return "semantic";
    case memory_type::procedural: return "procedural";
  }
  return "invalid";
}

const char* content_name(const content& body) noexcept {
  switch (body.index()) {
    case 0: return "fact";
    case 1: return "belief";
    case 2: return "episode";
    default: return "skill";
  }
}

const char* to_string(epistemic_kind kind) noexcept {
  switch (kind) {
    case epistemic_kind::observed: return "observed";
    case epistemic_kind::inferred: return "inferred";
    case epistemic_kind::reported: return "reported";
  }
  return "invalid";
}

bool operator==(const engram_record& x, const engram_record& y) {
  return x.id == y.id && x.type == y.type && x.scope == y.scope
         && x.body == y.body && x.confidence == y.confidence
         && x.epistemic == y.epistemic && x.origin == y.origin
         && x.created == y.created && x.updated == y.updated
         && x.archived == y.archived && x.tombstone == y.tombstone
         && x.forget_reason == y.forget_reason;
}

namespace {

bool in_unit_interval(double x) {
  return std::isfinite(x) && x >= 0.0 && x <= 1.0;
}

expected<void> validate_content(const content& body) {
  struct visitor {
    expected<void> operator()(const fact& x) const {
      return validate_id(x.key, "fact key");
    }
    expected<void> operator()(const belief& x) const {
      if (auto ok = validate_id(x.subject, "belief subject"); !ok)
        return ok;
      if (auto ok = validate_id(x.relation, "belief relation"); !ok)
        return ok;
      return validate_id(x.object, "belief object");
    }
    expected<void> operator()(const episode& x) const {
      return validate_id(x.episode_id, "episode id");
    }
    expected<void> operator()(const skill& x) const {
      return validate_id(x.skill_id, "skill id");
    }
  };
  return std::visit(visitor{}, body);
}

} // namespace

expected<void> validate(const engram_record& value) {
  if (value.id.empty())
    return make_error(errc::empty_id, "engram id is empty");
  if (static_cast<size_t>(value.type) >= memory_type_count)
    return make_error(errc::invalid_content, "unknown memory type");
  if (auto ok = value.scope.validate(); !ok)
    return ok;
  if (!in_unit_interval(value.confidence))
    return make_error(errc::invalid_confidence,
                      "confidence must lie in [0, 1], got "
                          + std::to_string(value.confidence));
  if (value.epistemic.kind == epistemic_kind::reported) {
    if (auto ok = validate_id(value.epistemic.source, "reported source"); !ok)
      return ok;
    if (!in_unit_interval(value.epistemic.trust))
      return make_error(errc::invalid_confidence,
                        "trust must lie in [0, 1], got "
                            + std::to_string(value.epistemic.trust));
  }
  for (auto& hop : value.origin.hops)
    if (!in_unit_interval(hop.trust))
      return make_error(errc::invalid_confidence,
                        "provenance trust must lie in [0, 1]");
  // Texts are UTF-8 (the wire's string fields); only a fact's value is
  // bytes.
  auto text = [](const std::string& x, const char* what) -> expected<void> {
    if (is_utf8(x))
      return {};
    return make_error(errc::invalid_argument,
                      std::string{what} + " is not valid UTF-8");
  };
  for (auto& hop : value.origin.hops) {
    if (auto ok = text(hop.agent, "a provenance hop's agent"); !ok)
      return ok;
    if (auto ok = text(hop.transform, "a provenance hop's transform"); !ok)
      return ok;
  }
  if (auto ok = text(value.origin.origin_agent, "the origin agent"); !ok)
    return ok;
  if (auto ok = text(value.origin.origin_instance, "the origin instance"); !ok)
    return ok;
  if (auto ok = text(value.forget_reason, "the reason to forget"); !ok)
    return ok;
  if (value.tombstone)
    return {}; // content of a forgotten engram is cleared
  if (auto* e = std::get_if<episode>(&value.body))
    for (auto& ev : e->events)
      if (auto ok = text(ev.description, "an episode's event"); !ok)
        return ok;
  if (auto* k = std::get_if<skill>(&value.body))
    for (auto& r : k->refinements)
      if (auto ok = text(r.description, "a skill's refinement"); !ok)
        return ok;
  return validate_content(value.body);
}

namespace {

// Appends to a fixed buffer, spilling to a string only for long keys: id
// derivation runs for every fact on the wire and should not allocate.
class key_builder {
public:
  void add(std::string_view part) {
    if (spill_.empty() && size_ + part.size() <= sizeof(buf_)) {
      std::memcpy(buf_ + size_, part.data(), part.size());
      size_ += part.size();
      return;
    }
    if (spill_.empty())
      spill_.assign(buf_, size_);
    spill_.append(part);
  }

  void add(char c) { add(std::string_view{&c, 1}); }

  std::string_view view() const {
    return spill_.empty() ? std::string_view{buf_, size_}
                          : std::string_view{spill_};
  }

private:
  char buf_[256];
  size_t size_ = 0;
  std::string spill_;
};

} // namespace

engram_id derive_id(const memory_scope& scope, const content& body) {
  key_builder key;
  key.add(to_string(scope.kind()));
  if (scope.kind() != scope_kind::universal) {
    key.add(':');
    key.add(scope.id());
  }
  key.add('\x1e');
  switch (body.index()) {
    case 0:
      key.add("f\x1f");
      key.add(std::get<fact>(body).key);
      break;
    case 1: {
      auto& b = std::get<belief>(body);
      key.add("b\x1f");
      key.add(b.subject);
      key.add('\x1f');
      key.add(b.relation);
      break;
    }
    case 2:
      key.add("e\x1f");
      key.add(std::get<episode>(body).episode_id);
      break;
    default:
      key.add("s\x1f");
      key.add(std::get<skill>(body).skill_id);
      break;
  }
  engram_id result{hash_string(key.view(), 0x456e6772616d4869ULL),
                   hash_string(key.view(), 0x456e6772616d4c6fULL)};
  if (result.empty())
    result.lo = 1;
  return result;
}

uint64_t content_hash(const engram_record& value) {
  hasher h{0x436f6e74656e74ULL};
  h.add(static_cast<uint64_t>(value.type));
  h.add(static_cast<uint64_t>(value.scope.kind())).add(value.scope.id());
  h.add(value.scope.members().size());
  for (auto& m : value.scope.members())
    h.add(m);
  h.add(value.body.index());
  struct visitor {
    hasher& h;
    void operator()(const fact& x) const { h.add(x.key).add(x.value); }
    void operator()(const belief& x) const {
      h.add(x.subject).add(x.relation).add(x.object);
    }
    void operator()(const episode& x) const {
      h.add(x.episode_id).add(x.events.size());
      for (auto& e : x.events)
        h.add(e.at.wall_us).add(e.at.logical).add(e.description);
    }
    void operator()(const skill& x) const {
      h.add(x.skill_id).add(x.refinements.size());
      for (auto& r : x.refinements)
        h.add(r.version).add(r.description);
    }
  };
  std::visit(visitor{h}, value.body);
  h.add_double(value.confidence);
  h.add(static_cast<uint64_t>(value.epistemic.kind))
      .add(value.epistemic.source);
  h.add_double(value.epistemic.trust);
  h.add(value.archived ? 1u : 0u).add(value.tombstone ? 1u : 0u);
  h.add(value.forget_reason);
  return h.value();
}

content cleared_content(const content& body) {
  struct visitor {
    content operator()(const fact& x) const { return fact{x.key, {}}; }
    content operator()(const belief& x) const {
      return belief{x.subject, x.relation, {}};
    }
    content operator()(const episode& x) const {
      return episode{x.episode_id, {}};
    }
    content operator()(const skill& x) const { return skill{x.skill_id, {}}; }
  };
  return std::visit(visitor{}, body);
}

std::string describe(const content& body) {
  struct visitor {
    std::string operator()(const fact& x) const {
      return "fact " + x.key + "=" + x.value;
    }
    std::string operator()(const belief& x) const {
      return "belief " + x.subject + " " + x.relation + " " + x.object;
    }
    std::string operator()(const episode& x) const {
      return "episode " + x.episode_id + " (" + std::to_string(x.events.size())
             + " events)";
    }
    std::string operator()(const skill& x) const {
      return "skill " + x.skill_id + " (" + std::to_string(x.refinements.size())
             + " refinements)";
    }
  };
  return std::visit(visitor{}, body);
}

scope_defaults scope_defaults::agent_shared() {
  scope_defaults result;
  result.episodic = memory_scope::agent({});
  return result;
}

const memory_scope& scope_defaults::for_type(memory_type type) const noexcept {
  switch (type) {
    case memory_type::instant: return instant;
    case memory_type::episodic: return episodic;
    case memory_type::semantic: return semantic;
    case memory_type::procedural: return procedural;
  }
  return semantic;
}

expected<memory_scope>
scope_defaults::resolve(memory_type type, const std::string& agent_id,
                        const std::string& instance_id) const {
  auto result = for_type(type);
  if (result.is_placeholder()) {
    if (result.kind() == scope_kind::instance)
      result = memory_scope::instance(instance_id);
    else
      result = memory_scope::agent(agent_id);
  }
  if (auto ok = result.validate(); !ok)
    return ok.error_value();
  return result;
}

} // namespace engram
