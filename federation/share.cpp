#include "federation/share.hpp"

#include "core/hash.hpp"
#include "federation/trust.hpp"
#include "messages/codec.hpp"
#include "messages/envelope.hpp"

#include <cstdio>

#include "engram/v1/api.pb.h"
#include "engram/v1/sync.pb.h"

namespace engram::federation {

bool is_read_only(const engram_record& e) {
  for (auto& hop : e.origin.hops)
    if (hop.read_only)
      return true;
  return false;
}

expected<share> make_share(const std::string& from, const std::string& to,
                           std::vector<engram_record> memories, bool read_only,
                           const memory_transform* transform, uint64_t now_us) {
  if (auto ok = validate_id(from, "sharing agent id"); !ok)
    return ok.error_value();
  if (auto ok = validate_id(to, "recipient agent id"); !ok)
    return ok.error_value();
  share result;
  result.from = from;
  result.to = to;
  result.read_only = read_only;
  if (transform != nullptr)
    result.transform = transform->name;
  hasher h{now_us};
  h.add(from).add(to);
  for (auto& m : memories) {
    if (is_read_only(m))
      return make_error(errc::permission_denied,
                        "engram " + m.id.to_string() + " was shared with "
                            + from + " read-only: it cannot be passed on");
    if (transform != nullptr && !transform->apply(m))
      continue; // withheld by the transform
    h.add(m.id.hi).add(m.id.lo);
    result.memories.push_back(std::move(m));
  }
  if (result.memories.empty())
    return make_error(errc::invalid_argument, "nothing to share");
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(h.value()));
  result.share_id = std::string{"sh-"} + hex;
  return result;
}

std::vector<engram_record> accept(const share& s, const std::string& receiver,
                                  double trust) {
  std::vector<engram_record> result;
  for (auto m : s.memories) {
    m.scope = memory_scope::agent(receiver);
    m.id = derive_id(m.scope, m.body);
    m.updated = {};
    m.archived = false;
    apply_trust(m, s.from, trust, s.transform);
    m.origin.hops.back().read_only = s.read_only;
    result.push_back(std::move(m));
  }
  return result;
}

namespace {

void to_proto(const share& s, v1::Share& out) {
  out.set_share_id(s.share_id);
  out.set_from(s.from);
  out.set_to(s.to);
  out.set_permission(s.read_only ? v1::SHARE_READ_ONLY : v1::SHARE_READ_WRITE);
  if (!s.transform.empty())
    out.add_transforms(s.transform);
  for (auto& m : s.memories)
    messages::to_proto(m, *out.add_memories());
  if (!s.sealed.empty())
    out.set_sealed(s.sealed);
}

expected<share> from_proto(const v1::Share& in) {
  share s;
  s.share_id = in.share_id();
  s.from = in.from();
  s.to = in.to();
  s.read_only = in.permission() == v1::SHARE_READ_ONLY;
  if (in.transforms_size() > 0)
    s.transform = in.transforms(0);
  if (s.share_id.rfind("sh-", 0) != 0)
    return make_error(errc::invalid_field,
                      "share id '" + s.share_id + "' does not start with sh-");
  if (auto ok = validate_id(s.from, "sharing agent id"); !ok)
    return ok.error_value();
  s.sealed = in.sealed();
  if (!s.sealed.empty() && in.memories_size() > 0)
    return make_error(errc::invalid_field,
                      "share " + s.share_id
                          + " is sealed and holds memories in the clear");
  for (auto& m : in.memories()) {
    auto rec = messages::from_proto(m);
    if (!rec)
      return make_error(rec.error_value().code,
                        "share " + s.share_id + ": "
                            + rec.error_value().message);
    s.memories.push_back(std::move(*rec));
  }
  return s;
}

} // namespace

expected<share> seal_share(const share& inner, const e2e::key_pair& keys,
                           const e2e::key_binding& sender_key,
                           const e2e::key_binding& recipient, uint64_t now_us) {
  if (inner.to != recipient.agent)
    return make_error(errc::invalid_argument,
                      "share " + inner.share_id + " is for agent " + inner.to
                          + ", the key is agent " + recipient.agent + "'s");
  auto sealed
      = e2e::seal(encode(inner), keys, sender_key, recipient, now_us, "share");
  if (!sealed)
    return sealed.error_value();
  share out;
  out.share_id = inner.share_id;
  out.from = inner.from;
  out.to = inner.to;
  out.read_only = inner.read_only;
  out.transform = inner.transform;
  out.sealed = std::move(*sealed);
  return out;
}

expected<share> open_share(const share& s, const std::string& me,
                           const e2e::key_pair& keys, const e2e::trust& trust,
                           int64_t now_s) {
  if (s.sealed.empty())
    return make_error(errc::invalid_argument,
                      "share " + s.share_id + " is not sealed");
  auto opened = e2e::open(s.sealed, s.from, me, keys, trust, now_s, "share");
  if (!opened)
    return opened.error_value();
  auto inner = decode_share(opened->text);
  if (!inner)
    return make_error(errc::unauthenticated,
                      "sealed share " + s.share_id
                          + " holds no share: " + inner.error_value().message);
  if (inner->share_id != s.share_id || inner->from != s.from || inner->to != me
      || inner->read_only != s.read_only || !inner->sealed.empty())
    return make_error(errc::unauthenticated,
                      "sealed share " + s.share_id + " holds another share ("
                          + inner->share_id + " from " + inner->from + " to "
                          + inner->to + ")");
  return inner;
}

std::string encode(const share& s) {
  v1::Share msg;
  to_proto(s, msg);
  return messages::serialize(msg);
}

expected<share> decode_share(std::string_view bytes) {
  v1::Share msg;
  if (auto ok = messages::parse(bytes, msg, messages::limits{}, "Share"); !ok)
    return ok.error_value();
  return from_proto(msg);
}

std::string encode(const std::vector<share>& shares) {
  v1::ShareList msg;
  for (auto& s : shares)
    to_proto(s, *msg.add_shares());
  return messages::serialize(msg);
}

expected<std::vector<share>> decode_shares(std::string_view bytes) {
  v1::ShareList msg;
  if (auto ok = messages::parse(bytes, msg, messages::limits{}, "ShareList");
      !ok)
    return ok.error_value();
  std::vector<share> result;
  for (auto& s : msg.shares()) {
    auto one = from_proto(s);
    if (!one)
      return one.error_value();
    result.push_back(std::move(*one));
  }
  return result;
}

} // namespace engram::federation
