#include "messages/codec.hpp"

#include "core/hash.hpp"

#include <google/protobuf/arena.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

namespace engram::messages {

v1::ScopeKind kind_to_proto(scope_kind kind) {
  switch (kind) {
    case scope_kind::instance: return v1::SCOPE_KIND_INSTANCE;
    case scope_kind::agent: return v1::SCOPE_KIND_AGENT;
    case scope_kind::collective: return v1::SCOPE_KIND_COLLECTIVE;
    case scope_kind::universal: break;
  }
  return v1::SCOPE_KIND_UNIVERSAL;
}

expected<scope_kind> kind_from_proto(int kind) {
  switch (kind) {
    case v1::SCOPE_KIND_INSTANCE: return scope_kind::instance;
    case v1::SCOPE_KIND_AGENT: return scope_kind::agent;
    case v1::SCOPE_KIND_COLLECTIVE: return scope_kind::collective;
    case v1::SCOPE_KIND_UNIVERSAL: return scope_kind::universal;
    default: break;
  }
  return make_error(errc::invalid_field,
                    "unknown scope kind " + std::to_string(kind));
}

namespace {

void put_ts(hlc_timestamp ts, v1::HlcTimestamp& out) {
  out.set_wall_us(ts.wall_us);
  out.set_logical(ts.logical);
}

hlc_timestamp get_ts(const v1::HlcTimestamp& in) {
  return {in.wall_us(), in.logical()};
}

error bad(const std::string& what) {
  return make_error(errc::invalid_field, what);
}

void scope_to_proto(const memory_scope& in, v1::Scope& scope) {
  scope.set_kind(kind_to_proto(in.kind()));
  scope.set_id(in.id());
  for (auto& m : in.members())
    scope.add_members(m);
}

expected<memory_scope> scope_from_parts(
    int kind, const std::string& id,
    const google::protobuf::RepeatedPtrField<std::string>& members) {
  switch (kind) {
    case v1::SCOPE_KIND_INSTANCE: return memory_scope::instance(id);
    case v1::SCOPE_KIND_AGENT: return memory_scope::agent(id);
    case v1::SCOPE_KIND_COLLECTIVE:
      return memory_scope::collective(id, {members.begin(), members.end()});
    case v1::SCOPE_KIND_UNIVERSAL: return memory_scope::universal();
    default: return bad("unknown scope kind " + std::to_string(kind));
  }
}

expected<memory_scope> scope_from_proto(const v1::Scope& s) {
  return scope_from_parts(s.kind(), s.id(), s.members());
}

// -- varint columns ---------------------------------------------------------

void put_varint(std::string& out, uint64_t x) {
  while (x >= 0x80) {
    out += static_cast<char>((x & 0x7f) | 0x80);
    x >>= 7;
  }
  out += static_cast<char>(x);
}

uint64_t zigzag(int64_t x) {
  return (static_cast<uint64_t>(x) << 1) ^ static_cast<uint64_t>(x >> 63);
}

int64_t unzigzag(uint64_t x) {
  return static_cast<int64_t>(x >> 1) ^ -static_cast<int64_t>(x & 1);
}

/// Reads varints from a column; `ok()` turns false on truncation or an
/// over-long varint, after which every read returns 0.
class column_reader {
public:
  explicit column_reader(const std::string& bytes) : bytes_(bytes) {
    // nop
  }

  uint64_t next() {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) {
        ok_ = false;
        return 0;
      }
      auto byte = static_cast<uint8_t>(bytes_[pos_++]);
      result |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0)
        return result;
    }
    ok_ = false;
    return 0;
  }

  /// Reads 8 little-endian bytes.
  uint64_t next_fixed64() {
    if (bytes_.size() - pos_ < 8) {
      ok_ = false;
      pos_ = bytes_.size();
      return 0;
    }
    uint64_t result = 0;
    for (size_t i = 0; i < 8; ++i)
      result |= uint64_t{static_cast<uint8_t>(bytes_[pos_ + i])} << (8 * i);
    pos_ += 8;
    return result;
  }

  bool ok() const noexcept { return ok_; }

  bool at_end() const noexcept { return pos_ == bytes_.size(); }

private:
  const std::string& bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// A timestamp column element: (value << 1 | logical != 0), then logical.
void put_timestamp(std::string& out, uint64_t value, uint32_t logical) {
  put_varint(out, value << 1 | (logical != 0 ? 1 : 0));
  if (logical != 0)
    put_varint(out, logical);
}

std::pair<uint64_t, uint64_t> next_timestamp(column_reader& in) {
  auto head = in.next();
  return {head >> 1, (head & 1) ? in.next() : 0};
}

} // namespace

std::string id_bytes(const engram_id& id) {
  std::string out(16, '\0');
  for (int i = 0; i < 8; ++i) {
    out[static_cast<size_t>(i)] = static_cast<char>(id.hi >> (56 - 8 * i));
    out[static_cast<size_t>(8 + i)] = static_cast<char>(id.lo >> (56 - 8 * i));
  }
  return out;
}

expected<engram_id> id_from_bytes(const std::string& bytes) {
  if (bytes.size() != 16)
    return bad("engram id has " + std::to_string(bytes.size())
               + " bytes, expected 16");
  engram_id id;
  for (size_t i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | static_cast<uint8_t>(bytes[i]);
    id.lo = (id.lo << 8) | static_cast<uint8_t>(bytes[8 + i]);
  }
  return id;
}

// -- engram -----------------------------------------------------------------

void to_proto(const engram_record& in, v1::Engram& out) {
  out.set_id(id_bytes(in.id));
  out.set_type(static_cast<v1::MemoryType>(in.type));
  scope_to_proto(in.scope, *out.mutable_scope());
  if (auto f = std::get_if<fact>(&in.body)) {
    auto* pf = out.mutable_fact();
    pf->set_key(f->key);
    pf->set_value(f->value);
  } else if (auto b = std::get_if<belief>(&in.body)) {
    auto* pb = out.mutable_belief();
    pb->set_subject(b->subject);
    pb->set_relation(b->relation);
    pb->set_object(b->object);
  } else if (auto e = std::get_if<episode>(&in.body)) {
    auto* pe = out.mutable_episode();
    pe->set_episode_id(e->episode_id);
    for (auto& ev : e->events) {
      auto* pev = pe->add_events();
      put_ts(ev.at, *pev->mutable_at());
      pev->set_description(ev.description);
    }
  } else if (auto s = std::get_if<skill>(&in.body)) {
    auto* ps = out.mutable_skill();
    ps->set_skill_id(s->skill_id);
    for (auto& r : s->refinements) {
      auto* pr = ps->add_refinements();
      pr->set_version(r.version);
      pr->set_description(r.description);
    }
  }
  if (in.confidence != 1.0)
    out.set_confidence(in.confidence);
  if (in.epistemic.kind != epistemic_kind::observed
      || !in.epistemic.source.empty() || in.epistemic.trust != 1.0) {
    auto* ep = out.mutable_epistemic();
    ep->set_kind(static_cast<v1::EpistemicKind>(in.epistemic.kind));
    ep->set_source(in.epistemic.source);
    if (in.epistemic.trust != 1.0)
      ep->set_trust(in.epistemic.trust);
  }
  if (!in.origin.origin_agent.empty() || !in.origin.origin_instance.empty()
      || !in.origin.hops.empty()) {
    auto* pv = out.mutable_provenance();
    pv->set_origin_agent(in.origin.origin_agent);
    pv->set_origin_instance(in.origin.origin_instance);
    for (auto& hop : in.origin.hops) {
      auto* ph = pv->add_hops();
      ph->set_agent(hop.agent);
      if (hop.trust != 1.0)
        ph->set_trust(hop.trust);
      ph->set_transform(hop.transform);
      ph->set_read_only(hop.read_only);
    }
  }
  put_ts(in.created, *out.mutable_created());
  put_ts(in.updated, *out.mutable_updated());
  out.set_archived(in.archived);
  out.set_tombstone(in.tombstone);
  out.set_forget_reason(in.forget_reason);
}

namespace {

expected<void> check_engram_bounds(const v1::Engram& in, const limits& bounds) {
  auto too_many = [&](int n) {
    return static_cast<size_t>(n) > bounds.max_elements;
  };
  if (too_many(in.scope().members_size())
      || too_many(in.episode().events_size())
      || too_many(in.skill().refinements_size())
      || too_many(in.provenance().hops_size()))
    return make_error(errc::limit_exceeded,
                      "engram has more than "
                          + std::to_string(bounds.max_elements)
                          + " members, events, refinements or hops");
  size_t longest
      = std::max({in.fact().key().size(), in.fact().value().size(),
                  in.belief().subject().size(), in.belief().object().size(),
                  in.forget_reason().size()});
  for (auto& e : in.episode().events())
    longest = std::max(longest, e.description().size());
  for (auto& r : in.skill().refinements())
    longest = std::max(longest, r.description().size());
  if (longest > bounds.max_string_bytes)
    return make_error(errc::limit_exceeded,
                      "engram holds a string of " + std::to_string(longest)
                          + " bytes, the limit is "
                          + std::to_string(bounds.max_string_bytes));
  return {};
}

} // namespace

expected<engram_record> from_proto(const v1::Engram& in, const limits& bounds,
                                   record_check check) {
  if (auto ok = check_engram_bounds(in, bounds); !ok)
    return ok.error_value();
  engram_record out;
  if (check == record_check::draft && in.id().empty()) {
    out.id = engram_id{};
  } else {
    auto id = id_from_bytes(in.id());
    if (!id)
      return id.error_value();
    out.id = *id;
  }
  if (!v1::MemoryType_IsValid(in.type()))
    return bad("unknown memory type " + std::to_string(in.type()));
  out.type = static_cast<memory_type>(in.type());
  auto scope = scope_from_proto(in.scope());
  if (!scope)
    return scope.error_value();
  out.scope = std::move(*scope);
  switch (in.content_case()) {
    case v1::Engram::kFact:
      out.body = fact{in.fact().key(), in.fact().value()};
      break;
    case v1::Engram::kBelief:
      out.body = belief{in.belief().subject(), in.belief().relation(),
                        in.belief().object()};
      break;
    case v1::Engram::kEpisode: {
      episode e{in.episode().episode_id(), {}};
      e.events.reserve(static_cast<size_t>(in.episode().events_size()));
      for (auto& ev : in.episode().events())
        e.events.push_back(event{get_ts(ev.at()), ev.description()});
      out.body = std::move(e);
      break;
    }
    case v1::Engram::kSkill: {
      skill sk{in.skill().skill_id(), {}};
      for (auto& r : in.skill().refinements())
        sk.refinements.push_back(refinement{r.version(), r.description()});
      out.body = std::move(sk);
      break;
    }
    default: return bad("engram has no content");
  }
  out.confidence = in.has_confidence() ? in.confidence() : 1.0;
  if (!v1::EpistemicKind_IsValid(in.epistemic().kind()))
    return bad("unknown epistemic kind "
               + std::to_string(in.epistemic().kind()));
  out.epistemic.kind = static_cast<epistemic_kind>(in.epistemic().kind());
  out.epistemic.source = in.epistemic().source();
  out.epistemic.trust
      = in.epistemic().has_trust() ? in.epistemic().trust() : 1.0;
  out.origin.origin_agent = in.provenance().origin_agent();
  out.origin.origin_instance = in.provenance().origin_instance();
  for (auto& hop : in.provenance().hops())
    out.origin.hops.push_back(
        provenance_hop{hop.agent(), hop.has_trust() ? hop.trust() : 1.0,
                       hop.transform(), hop.read_only()});
  out.created = get_ts(in.created());
  out.updated = get_ts(in.updated());
  out.archived = in.archived();
  out.tombstone = in.tombstone();
  out.forget_reason = in.forget_reason();
  if (check == record_check::draft)
    return out;
  if (auto ok = validate(out); !ok)
    return make_error(errc::invalid_field,
                      "engram " + out.id.to_string()
                          + " is invalid: " + ok.error_value().to_string());
  return out;
}

// -- clocks -----------------------------------------------------------------

namespace {

void pack_clock(const vector_clock& in, std::string& bytes) {
  bytes.reserve(bytes.size() + in.size() * 10);
  for (auto& [replica, counter] : in.entries()) {
    for (int i = 0; i < 8; ++i)
      bytes += static_cast<char>(replica >> (8 * i));
    put_varint(bytes, counter);
  }
}

expected<vector_clock> unpack_clock(const std::string& bytes,
                                    const limits& bounds) {
  vector_clock out;
  column_reader in{bytes};
  while (!in.at_end()) {
    if (out.size() == bounds.max_elements)
      return make_error(errc::limit_exceeded, "vector clock too large");
    auto replica = in.next_fixed64();
    auto counter = in.next();
    if (!in.ok())
      return bad("vector clock is truncated");
    if (replica == 0)
      return bad("vector clock names replica 0");
    if (counter == 0)
      return bad("vector clock holds a zero counter");
    if (out.get(replica) != 0)
      return bad("vector clock lists a replica twice");
    out.set(replica, counter);
  }
  return out;
}

} // namespace

void to_proto(const vector_clock& in, v1::VectorClock& out) {
  pack_clock(in, *out.mutable_entries());
}

expected<vector_clock> from_proto(const v1::VectorClock& in,
                                  const limits& bounds) {
  return unpack_clock(in.entries(), bounds);
}

void to_proto(const causal_context& in, v1::CausalContext& out) {
  pack_clock(in.clock(), *out.mutable_clock());
  // The cloud is sorted by (replica, counter): one run per replica.
  auto& cloud = in.cloud();
  uint64_t previous = 0; // end of the previous run of this replica
  for (size_t i = 0; i < cloud.size();) {
    if (i == 0 || cloud[i - 1].replica != cloud[i].replica) {
      out.add_cloud()->set_replica(cloud[i].replica);
      previous = 0;
    }
    auto* counters = out.mutable_cloud()->rbegin()->mutable_counters();
    size_t j = i + 1;
    while (j < cloud.size() && cloud[j].replica == cloud[i].replica
           && cloud[j].counter == cloud[j - 1].counter + 1)
      ++j;
    auto length = j - i;
    auto gap = cloud[i].counter - previous;
    put_varint(*counters, gap << 1 | (length > 1 ? 1 : 0));
    if (length > 1)
      put_varint(*counters, length - 2);
    previous = cloud[j - 1].counter;
    i = j;
  }
}

expected<causal_context> from_proto(const v1::CausalContext& in,
                                    const limits& bounds) {
  auto clock = unpack_clock(in.clock(), bounds);
  if (!clock)
    return clock.error_value();
  if (static_cast<size_t>(in.cloud_size()) > bounds.max_elements)
    return make_error(errc::limit_exceeded, "causal context has too many runs");
  std::vector<dot> cloud;
  for (auto& run : in.cloud()) {
    if (run.replica() == 0)
      return bad("causal context names replica 0");
    column_reader counters{run.counters()};
    uint64_t counter = 0;
    while (!counters.at_end()) {
      auto head = counters.next();
      auto gap = head >> 1;
      uint64_t length = (head & 1) ? counters.next() + 2 : 1;
      if (!counters.ok() || gap == 0 || counter + gap < counter
          || counter + gap + length - 1 < counter + gap)
        return bad("causal context holds an invalid dot");
      if (length > bounds.max_elements - cloud.size())
        return make_error(errc::limit_exceeded,
                          "causal context cloud too large");
      counter += gap;
      for (uint64_t k = 0; k < length; ++k)
        cloud.push_back(dot{run.replica(), counter + k});
      counter += length - 1;
    }
  }
  return causal_context::from_parts(std::move(*clock), std::move(cloud));
}

namespace {

// True when a version can travel in fact columns (see FactColumns).
bool columnar(const delta_entry& entry, const version& v) {
  auto& e = v.value;
  auto f = std::get_if<fact>(&e.body);
  return f != nullptr && v.resolves == 0 && !e.archived && !e.tombstone
         && e.forget_reason.empty()
         && e.epistemic.kind == epistemic_kind::observed
         && e.epistemic.source.empty() && e.epistemic.trust == 1.0
         && e.origin.origin_instance.empty() && e.origin.hops.empty()
         && entry.context.size() == 1
         && entry.context.get(v.tag.replica) == v.tag.counter
         && e.created.wall_us <= e.updated.wall_us
         && e.updated.wall_us < (uint64_t{1} << 60) // deltas fit the columns
         && e.id == derive_id(e.scope, e.body);
}

// Facts sharing what a FactColumns factors out.
struct fact_group {
  const engram_record* first;
  replica_id replica;
  std::vector<const version*> members;

  bool accepts(const version& v) const {
    auto& x = *first;
    auto& y = v.value;
    return replica == v.tag.replica && x.type == y.type
           && x.confidence == y.confidence
           && x.origin.origin_agent == y.origin.origin_agent
           && x.scope == y.scope;
  }
};

void to_columns(const fact_group& group, v1::FactColumns& out) {
  auto& first = *group.first;
  out.set_scope_kind(kind_to_proto(first.scope.kind()));
  out.set_scope_id(first.scope.id());
  for (auto& m : first.scope.members())
    out.add_scope_members(m);
  out.set_type(static_cast<v1::MemoryType>(first.type));
  out.set_replica(group.replica);
  if (first.confidence != 1.0)
    out.set_confidence(first.confidence);
  out.set_origin_agent(first.origin.origin_agent);
  out.set_count(static_cast<uint32_t>(group.members.size()));
  // Keys: the longest prefix they share, then suffixes.
  auto key_of = [](const version* v) -> const std::string& {
    return std::get<fact>(v->value.body).key;
  };
  std::string prefix = key_of(group.members.front());
  for (auto* v : group.members) {
    auto& key = key_of(v);
    size_t n = 0;
    while (n < prefix.size() && n < key.size() && prefix[n] == key[n])
      ++n;
    prefix.resize(n);
  }
  out.set_key_prefix(prefix);
  auto* suffixes = out.mutable_key_suffixes();
  auto* suffix_lengths = out.mutable_key_suffix_lengths();
  auto* values = out.mutable_values();
  auto length = std::get<fact>(group.members.front()->value.body).value.size();
  bool same_length = true;
  bool consecutive = true;
  auto expected_counter = group.members.front()->tag.counter;
  size_t value_bytes = 0;
  for (auto* v : group.members) {
    auto size = std::get<fact>(v->value.body).value.size();
    same_length = same_length && size == length;
    consecutive = consecutive && v->tag.counter == expected_counter++;
    value_bytes += size;
  }
  values->reserve(value_bytes);
  auto* updated = out.mutable_updated();
  auto* created = out.mutable_created();
  out.set_first_counter(group.members.front()->tag.counter);
  out.set_base_wall_us(group.members.front()->value.updated.wall_us);
  if (same_length)
    out.set_value_length(static_cast<uint32_t>(length));
  auto* value_lengths = same_length ? nullptr : out.mutable_value_lengths();
  auto* counters = consecutive ? nullptr : out.mutable_counter_deltas();
  auto previous_counter = group.members.front()->tag.counter - 1;
  auto previous_wall = group.members.front()->value.updated.wall_us;
  for (auto* v : group.members) {
    auto& f = std::get<fact>(v->value.body);
    suffixes->append(f.key, prefix.size(), std::string::npos);
    put_varint(*suffix_lengths, f.key.size() - prefix.size());
    values->append(f.value);
    if (value_lengths)
      put_varint(*value_lengths, f.value.size());
    if (counters)
      put_varint(*counters, zigzag(static_cast<int64_t>(
                                v->tag.counter - previous_counter - 1)));
    previous_counter = v->tag.counter;
    auto& e = v->value;
    put_timestamp(
        *updated,
        zigzag(static_cast<int64_t>(e.updated.wall_us - previous_wall)),
        e.updated.logical);
    previous_wall = e.updated.wall_us;
    put_timestamp(*created, e.updated.wall_us - e.created.wall_us,
                  e.created.logical);
  }
}

} // namespace

void to_proto(const replica_delta& in, v1::DeltaBatch& out) {
  std::vector<fact_group> groups;
  for (auto& entry : in.entries) {
    for (auto& v : entry.versions) {
      if (columnar(entry, v)) {
        auto g = std::find_if(groups.begin(), groups.end(),
                              [&](const fact_group& x) {
                                return x.accepts(v);
                              });
        if (g == groups.end())
          groups.push_back(fact_group{&v.value, v.tag.replica, {&v}});
        else
          g->members.push_back(&v);
        continue;
      }
      auto* d = out.add_deltas();
      d->set_id(id_bytes(entry.id));
      to_proto(v.value, *d->mutable_create()->mutable_full());
      to_proto(entry.context, *d->mutable_clock());
      d->mutable_dot()->set_replica(v.tag.replica);
      d->mutable_dot()->set_counter(v.tag.counter);
      d->set_resolves(v.resolves);
    }
  }
  for (auto& g : groups)
    to_columns(g, *out.add_facts());
  to_proto(in.context, *out.mutable_context());
}

// -- field changes -----------------------------------------------------------

uint64_t field_hash(std::string_view field_bytes) {
  return hash_string(field_bytes, 0x4669656c64ULL); // "Field"
}

namespace {

std::string confidence_bytes(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i)
    out[i] = static_cast<char>(bits >> (8 * i));
  return out;
}

// The encoded bytes of the field at `path` of `value`; nullopt when the
// path does not name a field of this engram.
std::optional<std::string> field_bytes(const engram_record& value,
                                       const std::string& path) {
  if (path == "fact.value") {
    if (auto f = std::get_if<fact>(&value.body))
      return f->value;
    return std::nullopt;
  }
  if (path == "belief.object") {
    if (auto b = std::get_if<belief>(&value.body))
      return b->object;
    return std::nullopt;
  }
  if (path == "confidence")
    return confidence_bytes(value.confidence);
  if (path == "archived")
    return std::string(1, value.archived ? '\1' : '\0');
  return std::nullopt;
}

std::string joined_path(const v1::FieldChange& change) {
  std::string result;
  for (auto& part : change.path()) {
    if (!result.empty())
      result += '.';
    result += part;
  }
  return result;
}

// Applies one change; fails when the path or the new value is malformed.
expected<void> apply_change(engram_record& value, const std::string& path,
                            const std::string& bytes) {
  if (path == "fact.value") {
    std::get<fact>(value.body).value = bytes;
  } else if (path == "belief.object") {
    std::get<belief>(value.body).object = bytes;
  } else if (path == "confidence") {
    if (bytes.size() != 8)
      return bad("confidence change carries " + std::to_string(bytes.size())
                 + " bytes, expected 8");
    uint64_t bits = 0;
    for (size_t i = 0; i < 8; ++i)
      bits |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
    std::memcpy(&value.confidence, &bits, sizeof(bits));
  } else if (path == "archived") {
    if (bytes.size() != 1)
      return bad("archived change carries " + std::to_string(bytes.size())
                 + " bytes, expected 1");
    value.archived = bytes[0] != 0;
  }
  return {};
}

void set_common(v1::EngramDelta& out, const version& after,
                const vector_clock& key_context) {
  out.set_id(id_bytes(after.value.id));
  to_proto(key_context, *out.mutable_clock());
  out.mutable_dot()->set_replica(after.tag.replica);
  out.mutable_dot()->set_counter(after.tag.counter);
  out.set_resolves(after.resolves);
  put_ts(after.value.updated, *out.mutable_updated());
}

const version& newest_of(const std::vector<version>& xs) {
  return *std::max_element(xs.begin(), xs.end(), older_than);
}

} // namespace

expected<v1::EngramDelta> make_update(const version& before,
                                      const version& after,
                                      const vector_clock& key_context) {
  if (before.value.id != after.value.id)
    return bad("an update relates two versions of one engram");
  v1::EngramDelta out;
  set_common(out, after, key_context);
  auto* update = out.mutable_update();
  auto patched = before.value;
  for (const char* path :
       {"fact.value", "belief.object", "confidence", "archived"}) {
    auto old_bytes = field_bytes(before.value, path);
    auto new_bytes = field_bytes(after.value, path);
    if (!old_bytes || !new_bytes || *old_bytes == *new_bytes)
      continue;
    auto* change = update->add_changes();
    std::string p = path;
    change->add_path(p.substr(0, p.find('.')));
    if (p.find('.') != std::string::npos)
      change->add_path(p.substr(p.find('.') + 1));
    change->set_old_value_hash(field_hash(*old_bytes));
    change->set_new_value(*new_bytes);
    (void)apply_change(patched, path, *new_bytes);
  }
  patched.updated = after.value.updated;
  if (!(patched == after.value))
    return bad("versions of " + after.value.id.to_string()
               + " differ in more than value, object, confidence and "
                 "archived flag: send a Create");
  return out;
}

v1::EngramDelta make_delete(const version& after,
                            const vector_clock& key_context) {
  v1::EngramDelta out;
  set_common(out, after, key_context);
  out.mutable_delete_()->set_reason(after.value.forget_reason);
  return out;
}

v1::EngramDelta make_archive(const version& after,
                             const vector_clock& key_context) {
  v1::EngramDelta out;
  set_common(out, after, key_context);
  out.mutable_archive();
  return out;
}

// -- delta batches ----------------------------------------------------------

namespace {

// Decodes one FactColumns into full versions appended to `out`.
expected<void> from_columns(const v1::FactColumns& in, const limits& bounds,
                            replica_delta& out) {
  auto n = static_cast<size_t>(in.count());
  if (n > bounds.max_elements)
    return make_error(errc::limit_exceeded,
                      "fact columns hold " + std::to_string(n)
                          + " facts, the limit is "
                          + std::to_string(bounds.max_elements));
  if (in.replica() == 0)
    return bad("fact columns name replica 0");
  if (!v1::MemoryType_IsValid(in.type()))
    return bad("unknown memory type " + std::to_string(in.type()));
  auto scope
      = scope_from_parts(in.scope_kind(), in.scope_id(), in.scope_members());
  if (!scope)
    return scope.error_value();
  // What `validate` checks of each fact, once for the group: the scope and
  // the confidence are shared, the rest is fixed by the column form (observed
  // status, no provenance hops, not forgotten). Per fact only the key varies.
  if (auto ok = scope->validate(); !ok)
    return make_error(errc::invalid_field,
                      "fact columns: " + ok.error_value().to_string());
  auto confidence = in.has_confidence() ? in.confidence() : 1.0;
  if (!(confidence >= 0.0 && confidence <= 1.0))
    return make_error(errc::invalid_field,
                      "fact columns: confidence must lie in [0, 1], got "
                          + std::to_string(confidence));
  column_reader suffix_lengths{in.key_suffix_lengths()};
  column_reader value_lengths{in.value_lengths()};
  column_reader counters{in.counter_deltas()};
  column_reader updated{in.updated()};
  column_reader created{in.created()};
  bool shared_length = in.value_lengths().empty();
  bool consecutive = in.counter_deltas().empty();
  size_t suffix_pos = 0;
  size_t value_pos = 0;
  uint64_t counter = in.first_counter();
  uint64_t wall = in.base_wall_us();
  out.entries.reserve(out.entries.size() + n);
  for (size_t i = 0; i < n; ++i) {
    auto suffix_length = suffix_lengths.next();
    auto value_length
        = shared_length ? in.value_length() : value_lengths.next();
    if (i > 0)
      counter += 1
                 + static_cast<uint64_t>(
                     consecutive ? 0 : unzigzag(counters.next()));
    else if (!consecutive)
      counters.next(); // the first delta is always 0
    auto [wall_step, logical] = next_timestamp(updated);
    wall += static_cast<uint64_t>(unzigzag(wall_step));
    auto [age, created_logical] = next_timestamp(created);
    if (!suffix_lengths.ok() || !value_lengths.ok() || !counters.ok()
        || !updated.ok() || !created.ok())
      return bad("fact columns are shorter than their count of "
                 + std::to_string(n));
    if (suffix_length > in.key_suffixes().size() - suffix_pos
        || value_length > in.values().size() - value_pos)
      return bad("fact columns overrun their keys or values");
    if (counter == 0 || logical > UINT32_MAX || created_logical > UINT32_MAX
        || age > wall)
      return bad("fact columns hold an invalid dot or timestamp");
    // Built in place: an engram record is large and moving it is not free.
    dot d{in.replica(), counter};
    auto& entry = out.entries.emplace_back();
    entry.context.set(d.replica, d.counter);
    auto& v = entry.versions.emplace_back();
    v.tag = d;
    auto& e = v.value;
    e.type = static_cast<memory_type>(in.type());
    e.scope = *scope;
    auto& f = e.body.emplace<fact>();
    f.key.reserve(in.key_prefix().size() + suffix_length);
    f.key.append(in.key_prefix());
    f.key.append(in.key_suffixes(), suffix_pos, suffix_length);
    f.value.assign(in.values(), value_pos, value_length);
    suffix_pos += suffix_length;
    value_pos += value_length;
    e.id = derive_id(e.scope, e.body);
    entry.id = e.id;
    e.confidence = confidence;
    e.origin.origin_agent = in.origin_agent();
    e.updated = hlc_timestamp{wall, static_cast<uint32_t>(logical)};
    e.created
        = hlc_timestamp{wall - age, static_cast<uint32_t>(created_logical)};
    if (auto ok = validate_id(f.key, "fact key"); !ok)
      return make_error(errc::invalid_field,
                        "fact " + e.id.to_string()
                            + " is invalid: " + ok.error_value().to_string());
  }
  if (suffix_pos != in.key_suffixes().size() || value_pos != in.values().size()
      || !suffix_lengths.at_end() || !value_lengths.at_end()
      || !counters.at_end() || !updated.at_end() || !created.at_end())
    return bad("fact columns hold more data than their count of "
               + std::to_string(n));
  return {};
}

// Decodes a batch; with `current`, expands Update/Delete/Archive deltas
// against the replica's versions (mismatches go to `rejected`).
expected<replica_delta> decode_batch(const v1::DeltaBatch& in,
                                     const limits& bounds,
                                     const replica* current,
                                     std::vector<rejected_delta>* rejected) {
  if (static_cast<size_t>(in.deltas_size()) > bounds.max_elements)
    return make_error(errc::limit_exceeded,
                      "delta batch has " + std::to_string(in.deltas_size())
                          + " deltas, the limit is "
                          + std::to_string(bounds.max_elements));
  replica_delta out;
  auto context = from_proto(in.context(), bounds);
  if (!context)
    return context.error_value();
  out.context = std::move(*context);
  for (auto& d : in.deltas()) {
    auto id = id_from_bytes(d.id());
    if (!id)
      return id.error_value();
    auto clock = from_proto(d.clock(), bounds);
    if (!clock)
      return clock.error_value();
    if (d.dot().replica() == 0 || d.dot().counter() == 0)
      return bad("delta for " + id->to_string() + " has an invalid dot");
    engram_record value;
    if (d.delta_type_case() == v1::EngramDelta::kCreate) {
      auto full = from_proto(d.create().full(), bounds);
      if (!full)
        return full.error_value();
      value = std::move(*full);
    } else if (d.delta_type_case() == v1::EngramDelta::DELTA_TYPE_NOT_SET) {
      return bad("delta for " + id->to_string() + " has no delta type");
    } else if (current == nullptr) {
      return bad("delta for " + id->to_string()
                 + " is not a Create: Update, Delete and Archive deltas need "
                   "the receiver's current version");
    } else {
      auto held = current->versions(*id);
      if (!held || held->empty()) {
        rejected->push_back({*id, "the engram is not held here"});
        continue;
      }
      if (d.has_update()) {
        std::vector<std::pair<std::string, const v1::FieldChange*>> changes;
        for (auto& change : d.update().changes()) {
          auto path = joined_path(change);
          if (path != "fact.value" && path != "belief.object"
              && path != "confidence" && path != "archived")
            return bad("update of " + id->to_string() + " names unknown field '"
                       + path + "'");
          changes.emplace_back(path, &change);
        }
        const version* base = nullptr;
        std::string mismatch;
        for (auto& candidate : *held) {
          bool matches = true;
          for (auto& [path, change] : changes) {
            auto bytes = field_bytes(candidate.value, path);
            if (!bytes || field_hash(*bytes) != change->old_value_hash()) {
              matches = false;
              mismatch = "update of " + path + " expected an old value "
                         + "the current version does not hold";
              break;
            }
          }
          if (matches) {
            base = &candidate;
            break;
          }
        }
        if (base == nullptr) {
          rejected->push_back({*id, mismatch});
          continue;
        }
        value = base->value;
        for (auto& [path, change] : changes)
          if (auto ok = apply_change(value, path, change->new_value()); !ok)
            return ok.error_value();
      } else if (d.has_delete_()) {
        value = newest_of(*held).value;
        value.tombstone = true;
        value.archived = false;
        value.body = cleared_content(value.body);
        value.forget_reason = d.delete_().reason();
      } else {
        value = newest_of(*held).value;
        value.archived = true;
      }
      value.updated = get_ts(d.updated());
      if (auto ok = validate(value); !ok)
        return make_error(errc::invalid_field,
                          "delta for " + id->to_string()
                              + " is invalid: " + ok.error_value().to_string());
    }
    if (value.id != *id)
      return bad("delta for " + id->to_string() + " carries engram "
                 + value.id.to_string());
    version v{dot{d.dot().replica(), d.dot().counter()}, d.resolves(),
              std::move(value)};
    // Versions of one engram are adjacent (as encoded); regroup them.
    if (out.entries.empty() || out.entries.back().id != *id)
      out.entries.push_back(delta_entry{*id, std::move(*clock), {}});
    else if (out.entries.back().context != *clock)
      return bad("versions of " + id->to_string()
                 + " disagree on the engram's version vector");
    out.entries.back().versions.push_back(std::move(v));
  }
  if (static_cast<size_t>(in.facts_size()) > bounds.max_elements)
    return make_error(errc::limit_exceeded, "delta batch has too many fact "
                                            "column groups");
  for (auto& columns : in.facts())
    if (auto ok = from_columns(columns, bounds, out); !ok)
      return ok.error_value();
  return out;
}

} // namespace

expected<replica_delta> from_proto(const v1::DeltaBatch& in,
                                   const limits& bounds) {
  return decode_batch(in, bounds, nullptr, nullptr);
}

expected<decoded_batch> decode_against(const v1::DeltaBatch& in,
                                       const replica& current,
                                       const limits& bounds) {
  decoded_batch result;
  auto delta = decode_batch(in, bounds, &current, &result.rejected);
  if (!delta)
    return delta.error_value();
  result.delta = std::move(*delta);
  return result;
}

v1::SyncResponse make_sync_response(const replica_delta& missing,
                                    const causal_context& responder) {
  v1::SyncResponse out;
  to_proto(missing, *out.mutable_batch());
  auto covered = missing.context;
  covered.join(responder);
  if (covered == responder)
    out.mutable_batch()->clear_context();
  to_proto(responder, *out.mutable_clock());
  return out;
}

expected<replica_delta> from_proto(const v1::SyncResponse& in,
                                   const limits& bounds) {
  auto delta = from_proto(in.batch(), bounds);
  if (!delta)
    return delta;
  if (!in.batch().has_context()) {
    auto clock = from_proto(in.clock(), bounds);
    if (!clock)
      return clock.error_value();
    delta->context = std::move(*clock);
  }
  return delta;
}

namespace {

// Protobuf messages of one encode or decode live in an arena whose first
// block is on the stack: no allocation per field, no destructor walk.
struct scratch_arena {
  alignas(8) char block[8192];
  google::protobuf::Arena arena;

  scratch_arena() : arena(options(block)) {
    // nop
  }

  static google::protobuf::ArenaOptions options(char* block) {
    google::protobuf::ArenaOptions opts;
    opts.initial_block = block;
    opts.initial_block_size = sizeof(scratch_arena::block);
    return opts;
  }
};

} // namespace

std::string encode_delta(const replica_delta& delta) {
  scratch_arena scratch;
  auto* batch
      = google::protobuf::Arena::CreateMessage<v1::DeltaBatch>(&scratch.arena);
  to_proto(delta, *batch);
  return serialize(*batch);
}

expected<replica_delta> decode_delta(std::string_view bytes,
                                     const limits& bounds) {
  scratch_arena scratch;
  auto* batch
      = google::protobuf::Arena::CreateMessage<v1::DeltaBatch>(&scratch.arena);
  // The delta decoder checks every repeated field and string itself.
  if (auto ok
      = parse(bytes, *batch, bounds, "DeltaBatch", bounds_check::shallow);
      !ok)
    return ok.error_value();
  return from_proto(*batch, bounds);
}

// -- conflicts ----------------------------------------------------------------

void to_proto(const version& in, v1::Version& out) {
  out.mutable_dot()->set_replica(in.tag.replica);
  out.mutable_dot()->set_counter(in.tag.counter);
  out.set_resolves(in.resolves);
  to_proto(in.value, *out.mutable_engram());
}

expected<version> from_proto(const v1::Version& in, const limits& bounds) {
  if (in.dot().replica() == 0 || in.dot().counter() == 0)
    return make_error(errc::invalid_field, "conflict version without a dot");
  auto value = from_proto(in.engram(), bounds);
  if (!value)
    return value.error_value();
  return version{dot{in.dot().replica(), in.dot().counter()}, in.resolves(),
                 std::move(*value)};
}

void to_proto(const conflict& in, v1::Conflict& out) {
  out.set_id(in.id);
  out.set_key(id_bytes(in.key));
  out.set_kind(static_cast<v1::ConflictKind>(in.kind));
  for (auto& v : in.local)
    to_proto(v, *out.add_local());
  for (auto& v : in.remote)
    to_proto(v, *out.add_remote());
}

expected<conflict> from_proto(const v1::Conflict& in, const limits& bounds) {
  conflict result;
  result.id = in.id();
  auto key = id_from_bytes(in.key());
  if (!key)
    return key.error_value();
  result.key = *key;
  if (in.kind() < 0 || static_cast<size_t>(in.kind()) >= conflict_kind_count)
    return make_error(errc::invalid_field,
                      "unknown conflict kind " + std::to_string(in.kind()));
  result.kind = static_cast<conflict_kind>(in.kind());
  if (static_cast<size_t>(in.local_size() + in.remote_size())
      > bounds.max_elements)
    return make_error(errc::limit_exceeded, "conflict lists too many versions");
  for (auto& v : in.local()) {
    auto x = from_proto(v, bounds);
    if (!x)
      return x.error_value();
    result.local.push_back(std::move(*x));
  }
  for (auto& v : in.remote()) {
    auto x = from_proto(v, bounds);
    if (!x)
      return x.error_value();
    result.remote.push_back(std::move(*x));
  }
  return result;
}

} // namespace engram::messages
