#include "core/conflict.hpp"

#include "core/hash.hpp"

#include <algorithm>
#include <cassert>

namespace engram {

const char* to_string(conflict_kind kind) noexcept {
  switch (kind) {
    case conflict_kind::value: return "value";
    case conflict_kind::belief: return "belief";
    case conflict_kind::episodic: return "episodic";
    case conflict_kind::skill: return "skill";
  }
  return "invalid";
}

conflict_kind kind_of(const content& body) noexcept {
  switch (body.index()) {
    case 0: return conflict_kind::value;
    case 1: return conflict_kind::belief;
    case 2: return conflict_kind::episodic;
    default: return conflict_kind::skill;
  }
}

conflict_kind classify(const std::vector<version>& versions) {
  assert(!versions.empty());
  auto kind = kind_of(versions.front().value.body);
  if (kind != conflict_kind::belief)
    return kind;
  const std::string* object = nullptr;
  for (auto& v : versions) {
    auto b = std::get_if<belief>(&v.value.body);
    if (!b || v.value.tombstone)
      return kind;
    if (object && *object != b->object)
      return kind;
    object = &b->object;
  }
  return conflict_kind::value;
}

std::vector<version> conflict::versions() const {
  std::vector<version> result = local;
  result.insert(result.end(), remote.begin(), remote.end());
  std::sort(result.begin(), result.end(),
            [](const version& x, const version& y) {
              return x.tag < y.tag;
            });
  return result;
}

namespace {

const version& newest(const std::vector<version>& xs) {
  assert(!xs.empty());
  return *std::max_element(xs.begin(), xs.end(), older_than);
}

} // namespace

const version& conflict::newest_local() const { return newest(local); }

const version& conflict::newest_remote() const { return newest(remote); }

bool conflict::is_critical() const {
  auto critical = [](const version& v) {
    return v.value.scope.kind() == scope_kind::universal
           || v.value.confidence >= 0.9;
  };
  return std::any_of(local.begin(), local.end(), critical)
         || std::any_of(remote.begin(), remote.end(), critical);
}

std::string conflict::to_string() const {
  std::string result = ::engram::to_string(kind);
  result += " conflict on ";
  result += key.to_string();
  result += ":";
  auto append = [&](const std::vector<version>& xs) {
    for (auto& v : xs) {
      result += ' ';
      result += v.value.tombstone ? std::string{"(forgotten)"}
                                  : describe(v.value.body);
      result += ';';
    }
  };
  append(local);
  result += " vs";
  append(remote);
  return result;
}

uint64_t conflict_id_of(std::vector<dot> dots) {
  std::sort(dots.begin(), dots.end());
  hasher h{0x436f6e666c696374ULL};
  for (auto& d : dots)
    h.add(d.replica).add(d.counter);
  auto id = h.value();
  return id == 0 ? 1 : id;
}

namespace {

template<class T>
const T* newest_body(const std::vector<version>& xs) {
  if (xs.empty())
    return nullptr;
  auto& v = newest(xs);
  if (v.value.tombstone)
    return nullptr;
  return std::get_if<T>(&v.value.body);
}

} // namespace

std::optional<value_conflict> as_value_conflict(const conflict& c) {
  auto l = newest_body<fact>(c.local);
  auto r = newest_body<fact>(c.remote);
  if (c.kind != conflict_kind::value || !l || !r)
    return std::nullopt;
  return value_conflict{c.key, l->value, r->value};
}

std::optional<belief_conflict> as_belief_conflict(const conflict& c) {
  auto l = newest_body<belief>(c.local);
  auto r = newest_body<belief>(c.remote);
  if (c.kind != conflict_kind::belief || !l || !r)
    return std::nullopt;
  return belief_conflict{l->subject, l->relation, l->object, r->object};
}

std::optional<episodic_conflict> as_episodic_conflict(const conflict& c) {
  auto l = newest_body<episode>(c.local);
  auto r = newest_body<episode>(c.remote);
  if (c.kind != conflict_kind::episodic || !l || !r)
    return std::nullopt;
  return episodic_conflict{l->episode_id, l->events, r->events};
}

std::optional<skill_conflict> as_skill_conflict(const conflict& c) {
  auto l = newest_body<skill>(c.local);
  auto r = newest_body<skill>(c.remote);
  if (c.kind != conflict_kind::skill || !l || !r)
    return std::nullopt;
  return skill_conflict{l->skill_id, l->refinements, r->refinements};
}

} // namespace engram
