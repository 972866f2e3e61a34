#include "messages/codec.hpp"

#include "core/hash.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

namespace engram::messages {

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

// -- engram
// --------------------------------------------------------------------

void to_proto(const engram_record& in, v1::Engram& out) {
  out.set_id(id_bytes(in.id));
  out.set_type(static_cast<v1::MemoryType>(in.type));
  auto* scope = out.mutable_scope();
  switch (in.scope.kind()) {
    case scope_kind::instance: scope->set_kind(v1::SCOPE_KIND_INSTANCE); break;
    case scope_kind::agent: scope->set_kind(v1::SCOPE_KIND_AGENT); break;
    case scope_kind::collective:
      scope->set_kind(v1::SCOPE_KIND_COLLECTIVE);
      break;
    case scope_kind::universal:
      scope->set_kind(v1::SCOPE_KIND_UNIVERSAL);
      break;
  }
  scope->set_id(in.scope.id());
  for (auto& m : in.scope.members())
    scope->add_members(m);
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
    }
  }
  put_ts(in.created, *out.mutable_created());
  put_ts(in.updated, *out.mutable_updated());
  out.set_archived(in.archived);
  out.set_tombstone(in.tombstone);
  out.set_forget_reason(in.forget_reason);
}

expected<engram_record> from_proto(const v1::Engram& in) {
  engram_record out;
  auto id = id_from_bytes(in.id());
  if (!id)
    return id.error_value();
  out.id = *id;
  if (!v1::MemoryType_IsValid(in.type()))
    return bad("unknown memory type " + std::to_string(in.type()));
  out.type = static_cast<memory_type>(in.type());
  auto& s = in.scope();
  switch (s.kind()) {
    case v1::SCOPE_KIND_INSTANCE:
      out.scope = memory_scope::instance(s.id());
      break;
    case v1::SCOPE_KIND_AGENT: out.scope = memory_scope::agent(s.id()); break;
    case v1::SCOPE_KIND_COLLECTIVE:
      out.scope = memory_scope::collective(
          s.id(), {s.members().begin(), s.members().end()});
      break;
    case v1::SCOPE_KIND_UNIVERSAL: out.scope = memory_scope::universal(); break;
    default: return bad("unknown scope kind " + std::to_string(s.kind()));
  }
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
    out.origin.hops.push_back(provenance_hop{
        hop.agent(), hop.has_trust() ? hop.trust() : 1.0, hop.transform()});
  out.created = get_ts(in.created());
  out.updated = get_ts(in.updated());
  out.archived = in.archived();
  out.tombstone = in.tombstone();
  out.forget_reason = in.forget_reason();
  if (auto ok = validate(out); !ok)
    return make_error(errc::invalid_field,
                      "engram " + out.id.to_string()
                          + " is invalid: " + ok.error_value().to_string());
  return out;
}

// -- clocks
// --------------------------------------------------------------------

void to_proto(const vector_clock& in, v1::VectorClock& out) {
  for (auto& [replica, counter] : in.entries()) {
    auto* e = out.add_entries();
    e->set_replica(replica);
    e->set_counter(counter);
  }
}

expected<vector_clock> from_proto(const v1::VectorClock& in,
                                  const limits& bounds) {
  if (static_cast<size_t>(in.entries_size()) > bounds.max_elements)
    return make_error(errc::limit_exceeded, "vector clock too large");
  vector_clock out;
  for (auto& e : in.entries()) {
    if (e.replica() == 0)
      return bad("vector clock names replica 0");
    if (out.get(e.replica()) != 0)
      return bad("vector clock lists a replica twice");
    out.set(e.replica(), e.counter());
  }
  return out;
}

void to_proto(const causal_context& in, v1::CausalContext& out) {
  to_proto(in.clock(), *out.mutable_clock());
  for (auto& d : in.cloud()) {
    auto* pd = out.add_cloud();
    pd->set_replica(d.replica);
    pd->set_counter(d.counter);
  }
}

expected<causal_context> from_proto(const v1::CausalContext& in,
                                    const limits& bounds) {
  auto clock = from_proto(in.clock(), bounds);
  if (!clock)
    return clock.error_value();
  if (static_cast<size_t>(in.cloud_size()) > bounds.max_elements)
    return make_error(errc::limit_exceeded, "causal context cloud too large");
  std::vector<dot> cloud;
  cloud.reserve(static_cast<size_t>(in.cloud_size()));
  for (auto& d : in.cloud()) {
    if (d.replica() == 0 || d.counter() == 0)
      return bad("causal context holds an invalid dot");
    cloud.push_back(dot{d.replica(), d.counter()});
  }
  return causal_context::from_parts(std::move(*clock), std::move(cloud));
}

// -- delta batches
// -------------------------------------------------------------

void to_proto(const replica_delta& in, v1::DeltaBatch& out) {
  for (auto& entry : in.entries) {
    for (auto& v : entry.versions) {
      auto* d = out.add_deltas();
      d->set_id(id_bytes(entry.id));
      to_proto(v.value, *d->mutable_create()->mutable_full());
      to_proto(entry.context, *d->mutable_clock());
      d->mutable_dot()->set_replica(v.tag.replica);
      d->mutable_dot()->set_counter(v.tag.counter);
      d->set_resolves(v.resolves);
    }
  }
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

// -- delta batches
// -------------------------------------------------------------

namespace {

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
      auto full = from_proto(d.create().full());
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

std::string encode_delta(const replica_delta& delta) {
  v1::DeltaBatch batch;
  to_proto(delta, batch);
  return serialize(batch);
}

expected<replica_delta> decode_delta(std::string_view bytes,
                                     const limits& bounds) {
  v1::DeltaBatch batch;
  if (auto ok = parse(bytes, batch, bounds, "DeltaBatch"); !ok)
    return ok.error_value();
  return from_proto(batch, bounds);
}

} // namespace engram::messages
