#include "core/packed.hpp"

#include <cassert>
#include <cmath>
#include <cstring>
#include <type_traits>

namespace engram::packed {

namespace {

// flags[0]
constexpr uint8_t has_resolves = 0x01;
constexpr uint8_t has_created = 0x02; // created != updated
constexpr uint8_t is_archived = 0x04;
constexpr uint8_t is_tombstone = 0x08;
constexpr uint8_t has_confidence = 0x10; // confidence != 1
constexpr uint8_t has_epistemic = 0x20;  // not the default (observed)
constexpr uint8_t has_hops = 0x40;
constexpr uint8_t has_forget_reason = 0x80;
// flags[1]: bits 0-1 memory type, bits 2-3 content kind, then:
constexpr uint8_t has_logical = 0x10;        // updated.logical != 0
constexpr uint8_t dot_in_context = 0x20;     // counter = context's counter
constexpr uint8_t decimal_confidence = 0x40; // confidence = k / 10 000

constexpr double decimal_scale = 10'000.0;

// -- bytes --------------------------------------------------------------------

void put_varint(std::string& out, uint64_t x) {
  while (x >= 0x80) {
    out.push_back(static_cast<char>(x | 0x80));
    x >>= 7;
  }
  out.push_back(static_cast<char>(x));
}

// Signed differences as varints: small either way.
uint64_t zigzag(uint64_t from, uint64_t to) {
  auto diff = static_cast<int64_t>(to - from);
  return (static_cast<uint64_t>(diff) << 1) ^ static_cast<uint64_t>(diff >> 63);
}

uint64_t unzigzag(uint64_t from, uint64_t code) {
  auto diff = static_cast<int64_t>(code >> 1) ^ -static_cast<int64_t>(code & 1);
  return from + static_cast<uint64_t>(diff);
}

void put_string(std::string& out, const std::string& str) {
  put_varint(out, str.size());
  out.append(str);
}

void put_double(std::string& out, double x) {
  char bytes[sizeof(double)];
  std::memcpy(bytes, &x, sizeof(double));
  out.append(bytes, sizeof(double));
}

void put_u64(std::string& out, uint64_t x) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(x >> (8 * i)));
}

// Reads from memory this replica wrote: no bounds to check.
struct reader {
  const uint8_t* pos;

  uint64_t varint() noexcept {
    uint64_t result = 0;
    for (int shift = 0;; shift += 7) {
      auto byte = *pos++;
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0)
        return result;
    }
  }

  uint8_t byte() noexcept { return *pos++; }

  uint64_t u64() noexcept {
    uint64_t result = 0;
    for (int i = 0; i < 8; ++i)
      result |= static_cast<uint64_t>(pos[i]) << (8 * i);
    pos += 8;
    return result;
  }

  double f64() noexcept {
    double result;
    std::memcpy(&result, pos, sizeof(double));
    pos += sizeof(double);
    return result;
  }

  std::string string() {
    auto n = varint();
    std::string result(reinterpret_cast<const char*>(pos), n);
    pos += n;
    return result;
  }

  std::string_view view() noexcept {
    auto n = varint();
    std::string_view result(reinterpret_cast<const char*>(pos), n);
    pos += n;
    return result;
  }

  void skip_string() noexcept { pos += varint(); }

  void skip_varint() noexcept {
    while (*pos++ & 0x80) {
      // skip
    }
  }
};

// A confidence that a decimal with at most four digits reproduces exactly
// (0.9, 0.75, ...) is stored as that decimal's digits.
bool as_decimal(double x, uint64_t& digits) {
  if (!(x >= 0.0 && x <= 1.0) || std::signbit(x))
    return false;
  auto k = std::nearbyint(x * decimal_scale);
  if (static_cast<double>(k) / decimal_scale != x)
    return false;
  digits = static_cast<uint64_t>(k);
  return true;
}

std::string scope_key(const memory_scope& scope) {
  std::string key;
  key.push_back(static_cast<char>(scope.kind()));
  put_string(key, scope.id());
  for (auto& m : scope.members())
    put_string(key, m);
  return key;
}

} // namespace

// -- dictionary ---------------------------------------------------------------

dictionary::dictionary() = default;

uint32_t dictionary::replica_index(replica_id id) {
  auto [i, added]
      = replica_indexes_.emplace(id, static_cast<uint32_t>(replicas_.size()));
  if (added)
    replicas_.push_back(id);
  return i->second;
}

uint32_t dictionary::scope_index(const memory_scope& scope) {
  auto [i, added] = scope_indexes_.emplace(
      scope_key(scope), static_cast<uint32_t>(scopes_.size()));
  if (added)
    scopes_.push_back(scope);
  return i->second;
}

uint32_t dictionary::origin_index(const std::string& agent,
                                  const std::string& instance) {
  // 0 is the empty origin (engrams from peers usually), stored nowhere.
  if (agent.empty() && instance.empty())
    return 0;
  std::string key;
  put_string(key, agent);
  key.append(instance);
  auto [i, added] = origin_indexes_.emplace(
      std::move(key), static_cast<uint32_t>(origins_.size() + 1));
  if (added)
    origins_.emplace_back(agent, instance);
  return i->second;
}

// -- reading ------------------------------------------------------------------

engram_id blob_id(const uint8_t* blob) noexcept {
  reader in{blob};
  engram_id id;
  id.hi = in.u64();
  id.lo = in.u64();
  return id;
}

size_t blob_size(const uint8_t* blob) noexcept {
  reader in{blob + 16};
  auto entries = in.varint();
  for (uint64_t i = 0; i < entries; ++i) {
    in.skip_varint();
    in.skip_varint();
  }
  auto count = in.varint();
  for (uint64_t i = 0; i < count; ++i)
    in.pos += in.varint();
  return static_cast<size_t>(in.pos - blob);
}

void parse(const uint8_t* blob, const dictionary& dict, blob_view& out) {
  out.id = blob_id(blob);
  reader in{blob + 16};
  out.context.clear();
  auto entries = in.varint();
  for (uint64_t i = 0; i < entries; ++i) {
    auto r = dict.replica(static_cast<uint32_t>(in.varint()));
    out.context.append(r, in.varint());
  }
  out.versions.clear();
  auto count = in.varint();
  for (uint64_t i = 0; i < count; ++i) {
    version_ref ref;
    ref.size = static_cast<uint32_t>(in.varint());
    ref.data = in.pos;
    reader v{in.pos + 1};
    auto flags1 = v.byte();
    ref.tag.replica = dict.replica(static_cast<uint32_t>(v.varint()));
    ref.tag.counter = (flags1 & dot_in_context)
                          ? out.context.get(ref.tag.replica)
                          : v.varint();
    ref.rest = static_cast<uint32_t>(v.pos - ref.data);
    out.versions.push_back(ref);
    in.pos += ref.size;
  }
  out.size = static_cast<size_t>(in.pos - blob);
}

version decode(const version_ref& ref, const engram_id& id,
               const dictionary& dict) {
  version result;
  result.tag = ref.tag;
  auto flags0 = ref.data[0];
  auto flags1 = ref.data[1];
  reader in{ref.data + ref.rest};
  auto& e = result.value;
  e.id = id;
  if (flags0 & has_resolves)
    result.resolves = in.varint();
  e.updated.wall_us = unzigzag(dict.time_base(), in.varint());
  if (flags1 & has_logical)
    e.updated.logical = static_cast<uint32_t>(in.varint());
  if (flags0 & has_created) {
    e.created.wall_us = unzigzag(e.updated.wall_us, in.varint());
    e.created.logical = static_cast<uint32_t>(in.varint());
  } else {
    e.created = e.updated;
  }
  e.scope = dict.scope(static_cast<uint32_t>(in.varint()));
  auto& origin = dict.origin(static_cast<uint32_t>(in.varint()));
  e.origin.origin_agent = origin.first;
  e.origin.origin_instance = origin.second;
  if (flags0 & has_confidence)
    e.confidence = (flags1 & decimal_confidence)
                       ? static_cast<double>(in.varint()) / decimal_scale
                       : in.f64();
  if (flags0 & has_epistemic) {
    e.epistemic.kind = static_cast<epistemic_kind>(in.byte());
    e.epistemic.source = in.string();
    e.epistemic.trust = in.f64();
  }
  if (flags0 & has_hops) {
    auto n = in.varint();
    e.origin.hops.resize(n);
    for (auto& hop : e.origin.hops) {
      hop.agent = in.string();
      hop.trust = in.f64();
      hop.transform = in.string();
      hop.read_only = in.byte() != 0;
    }
  }
  if (flags0 & has_forget_reason)
    e.forget_reason = in.string();
  e.archived = (flags0 & is_archived) != 0;
  e.tombstone = (flags0 & is_tombstone) != 0;
  e.type = static_cast<memory_type>(flags1 & 0x03);
  switch ((flags1 >> 2) & 0x03) {
    case 0: {
      fact f;
      f.key = in.string();
      f.value = in.string();
      e.body = std::move(f);
      break;
    }
    case 1: {
      belief b;
      b.subject = in.string();
      b.relation = in.string();
      b.object = in.string();
      e.body = std::move(b);
      break;
    }
    case 2: {
      episode ep;
      ep.episode_id = in.string();
      ep.events.resize(in.varint());
      for (auto& ev : ep.events) {
        ev.at.wall_us = in.varint();
        ev.at.logical = static_cast<uint32_t>(in.varint());
        ev.description = in.string();
      }
      e.body = std::move(ep);
      break;
    }
    default: {
      skill s;
      s.skill_id = in.string();
      s.refinements.resize(in.varint());
      for (auto& r : s.refinements) {
        r.version = static_cast<uint32_t>(in.varint());
        r.description = in.string();
      }
      e.body = std::move(s);
      break;
    }
  }
  assert(in.pos == ref.data + ref.size);
  return result;
}

version_summary summarize(const version_ref& ref, const dictionary& dict) {
  version_summary result;
  auto flags0 = ref.data[0];
  auto flags1 = ref.data[1];
  reader in{ref.data + ref.rest};
  if (flags0 & has_resolves)
    in.skip_varint();
  result.updated.wall_us = unzigzag(dict.time_base(), in.varint());
  if (flags1 & has_logical)
    result.updated.logical = static_cast<uint32_t>(in.varint());
  if (flags0 & has_created) {
    in.skip_varint();
    in.skip_varint();
  }
  result.kind = dict.scope(static_cast<uint32_t>(in.varint())).kind();
  result.type = static_cast<memory_type>(flags1 & 0x03);
  result.archived = (flags0 & is_archived) != 0;
  result.tombstone = (flags0 & is_tombstone) != 0;
  result.is_belief = ((flags1 >> 2) & 0x03) == 1;
  if (!result.is_belief)
    return result;
  in.skip_varint(); // origin
  if (flags0 & has_confidence) {
    if (flags1 & decimal_confidence)
      in.skip_varint();
    else
      in.pos += sizeof(double);
  }
  if (flags0 & has_epistemic) {
    in.pos += 1;
    in.skip_string();
    in.pos += sizeof(double);
  }
  if (flags0 & has_hops) {
    auto n = in.varint();
    for (uint64_t i = 0; i < n; ++i) {
      in.skip_string();
      in.pos += sizeof(double);
      in.skip_string();
      in.pos += 1;
    }
  }
  if (flags0 & has_forget_reason)
    in.skip_string();
  result.subject = in.view();
  result.relation = in.view();
  return result;
}

std::vector<version> decode_all(const blob_view& view, const dictionary& dict) {
  std::vector<version> result;
  result.reserve(view.versions.size());
  for (auto& ref : view.versions)
    result.push_back(decode(ref, view.id, dict));
  return result;
}

// -- writing ------------------------------------------------------------------

void writer::begin(const engram_id& id, const vector_clock& context,
                   size_t count, dictionary& dict) {
  out_.clear();
  put_u64(out_, id.hi);
  put_u64(out_, id.lo);
  put_varint(out_, context.size());
  for (auto& [r, counter] : context.entries()) {
    put_varint(out_, dict.replica_index(r));
    put_varint(out_, counter);
  }
  put_varint(out_, count);
  context_ = &context;
}

void writer::add(const version& v, dictionary& dict) {
  auto& e = v.value;
  auto& s = scratch_;
  s.clear();
  uint8_t flags0 = 0;
  uint8_t flags1 = static_cast<uint8_t>(static_cast<uint8_t>(e.type) & 0x03);
  flags1 |= static_cast<uint8_t>((e.body.index() & 0x03) << 2);
  if (v.resolves != 0)
    flags0 |= has_resolves;
  if (e.created != e.updated)
    flags0 |= has_created;
  if (e.archived)
    flags0 |= is_archived;
  if (e.tombstone)
    flags0 |= is_tombstone;
  uint64_t digits = 0;
  if (e.confidence != 1.0) {
    flags0 |= has_confidence;
    if (as_decimal(e.confidence, digits))
      flags1 |= decimal_confidence;
  }
  if (!(e.epistemic == epistemic_status::observed()))
    flags0 |= has_epistemic;
  if (!e.origin.hops.empty())
    flags0 |= has_hops;
  if (!e.forget_reason.empty())
    flags0 |= has_forget_reason;
  if (e.updated.logical != 0)
    flags1 |= has_logical;
  bool in_context = context_->get(v.tag.replica) == v.tag.counter;
  if (in_context)
    flags1 |= dot_in_context;
  s.push_back(static_cast<char>(flags0));
  s.push_back(static_cast<char>(flags1));
  put_varint(s, dict.replica_index(v.tag.replica));
  if (!in_context)
    put_varint(s, v.tag.counter);
  if (v.resolves != 0)
    put_varint(s, v.resolves);
  put_varint(s, zigzag(dict.time_base(e.updated.wall_us), e.updated.wall_us));
  if (e.updated.logical != 0)
    put_varint(s, e.updated.logical);
  if (flags0 & has_created) {
    put_varint(s, zigzag(e.updated.wall_us, e.created.wall_us));
    put_varint(s, e.created.logical);
  }
  put_varint(s, dict.scope_index(e.scope));
  put_varint(
      s, dict.origin_index(e.origin.origin_agent, e.origin.origin_instance));
  if (flags0 & has_confidence) {
    if (flags1 & decimal_confidence)
      put_varint(s, digits);
    else
      put_double(s, e.confidence);
  }
  if (flags0 & has_epistemic) {
    s.push_back(static_cast<char>(e.epistemic.kind));
    put_string(s, e.epistemic.source);
    put_double(s, e.epistemic.trust);
  }
  if (flags0 & has_hops) {
    put_varint(s, e.origin.hops.size());
    for (auto& hop : e.origin.hops) {
      put_string(s, hop.agent);
      put_double(s, hop.trust);
      put_string(s, hop.transform);
      s.push_back(hop.read_only ? 1 : 0);
    }
  }
  if (flags0 & has_forget_reason)
    put_string(s, e.forget_reason);
  switch (e.body.index()) {
    case 0: {
      auto& f = std::get<fact>(e.body);
      put_string(s, f.key);
      put_string(s, f.value);
      break;
    }
    case 1: {
      auto& b = std::get<belief>(e.body);
      put_string(s, b.subject);
      put_string(s, b.relation);
      put_string(s, b.object);
      break;
    }
    case 2: {
      auto& ep = std::get<episode>(e.body);
      put_string(s, ep.episode_id);
      put_varint(s, ep.events.size());
      for (auto& ev : ep.events) {
        put_varint(s, ev.at.wall_us);
        put_varint(s, ev.at.logical);
        put_string(s, ev.description);
      }
      break;
    }
    default: {
      auto& sk = std::get<skill>(e.body);
      put_string(s, sk.skill_id);
      put_varint(s, sk.refinements.size());
      for (auto& r : sk.refinements) {
        put_varint(s, r.version);
        put_string(s, r.description);
      }
      break;
    }
  }
  put_varint(out_, s.size());
  out_.append(s);
}

void writer::copy(const version_ref& ref, dictionary& dict) {
  bool was_in_context = (ref.data[1] & dot_in_context) != 0;
  bool in_context = context_->get(ref.tag.replica) == ref.tag.counter;
  if (was_in_context == in_context) {
    put_varint(out_, ref.size);
    out_.append(reinterpret_cast<const char*>(ref.data), ref.size);
    return;
  }
  // The new context changes how the dot is written.
  auto& s = scratch_;
  s.clear();
  s.push_back(static_cast<char>(ref.data[0]));
  s.push_back(static_cast<char>(in_context ? ref.data[1] | dot_in_context
                                           : ref.data[1] & ~dot_in_context));
  put_varint(s, dict.replica_index(ref.tag.replica));
  if (!in_context)
    put_varint(s, ref.tag.counter);
  s.append(reinterpret_cast<const char*>(ref.data + ref.rest),
           ref.size - ref.rest);
  put_varint(out_, s.size());
  out_.append(s);
}

} // namespace engram::packed
