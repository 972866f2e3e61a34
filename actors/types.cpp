#include "actors/types.hpp"

#include "messages/codec.hpp"
#include "messages/envelope.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>

#include "engram/v1/api.pb.h"

namespace engram::actors {

// -- registration -----------------------------------------------------------

namespace {

// One list, so registration and the round-trip test cannot drift apart.
template<class F>
void for_each_type(F f) {
  f(static_cast<wire_frame*>(nullptr), "engram.wire_frame");
  f(static_cast<engram_id*>(nullptr), "engram.id");
  f(static_cast<std::vector<engram_id>*>(nullptr), "engram.id_list");
  f(static_cast<engram_record*>(nullptr), "engram.record");
  f(static_cast<replica_delta*>(nullptr), "engram.delta");
  f(static_cast<causal_context*>(nullptr), "engram.causal_context");
  f(static_cast<conflict*>(nullptr), "engram.conflict");
  f(static_cast<memory_view*>(nullptr), "engram.memory_view");
  f(static_cast<pending_question*>(nullptr), "engram.pending_question");
  f(static_cast<query_filter*>(nullptr), "engram.query_filter");
  f(static_cast<merge_summary*>(nullptr), "engram.merge_summary");
  f(static_cast<sync_config*>(nullptr), "engram.sync_config");
  f(static_cast<sync_result*>(nullptr), "engram.sync_result");
  f(static_cast<session_stats*>(nullptr), "engram.session_stats");
  f(static_cast<clock_offset*>(nullptr), "engram.clock_offset");
  f(static_cast<node_status*>(nullptr), "engram.node_status");
  f(static_cast<federation::federation_command*>(nullptr),
    "engram.federation_command");
  f(static_cast<federation::federation_state*>(nullptr),
    "engram.federation_state");
  f(static_cast<federation::share*>(nullptr), "engram.share");
  f(static_cast<std::vector<federation::share>*>(nullptr), "engram.share_list");
  f(static_cast<peer_actor*>(nullptr), "engram.peer_actor");
  f(static_cast<instance_actor*>(nullptr), "engram.instance_actor");
  f(static_cast<agent_actor*>(nullptr), "engram.agent_actor");
  f(static_cast<session_actor*>(nullptr), "engram.session_actor");
  f(static_cast<node_actor*>(nullptr), "engram.node_actor");
}

} // namespace

void register_types(caf::actor_system_config& cfg) {
  for_each_type([&](auto* tag, const char* name) {
    using type = std::remove_pointer_t<decltype(tag)>;
    cfg.add_message_type<type>(name);
  });
}

std::vector<std::string> registered_type_names() {
  std::vector<std::string> result;
  for_each_type([&](auto*, const char* name) {
    result.emplace_back(name);
  });
  return result;
}

// -- errors -----------------------------------------------------------------

namespace {

constexpr auto error_category = caf::atom("engram");

} // namespace

caf::error to_caf(const error& e) {
  if (e.subject.empty())
    return caf::error{static_cast<uint8_t>(e.code), error_category,
                      caf::make_message(e.message)};
  return caf::error{static_cast<uint8_t>(e.code), error_category,
                    caf::make_message(e.message, e.subject)};
}

bool is_engram_error(const caf::error& e) {
  return e && e.category() == error_category;
}

error from_caf(const caf::error& e) {
  if (e.category() == error_category) {
    std::string message;
    std::string subject;
    if (e.context().match_elements<std::string>()) {
      message = e.context().get_as<std::string>(0);
    } else if (e.context().match_elements<std::string, std::string>()) {
      message = e.context().get_as<std::string>(0);
      subject = e.context().get_as<std::string>(1);
    }
    return error{static_cast<errc>(e.code()), std::move(message),
                 std::move(subject)};
  }
  if (e.category() == caf::atom("system")) {
    auto code = static_cast<caf::sec>(e.code());
    if (code == caf::sec::request_timeout)
      return error{errc::timeout, "no answer within the timeout"};
    if (code == caf::sec::request_receiver_down
        || code == caf::sec::remote_linking_failed)
      return error{errc::unavailable, "the receiver is gone: " + to_string(e)};
  }
  return error{errc::unavailable, to_string(e)};
}

// -- serialization ----------------------------------------------------------

namespace detail {

namespace {

const messages::limits bounds{};

template<class Proto>
expected<void> parse_as(const std::string& bytes, Proto& out,
                        const char* what) {
  return messages::parse(bytes, out, bounds, what);
}

} // namespace

caf::error load_error(const char* type, const error& e) {
  return caf::make_error(caf::sec::invalid_argument,
                         std::string{type} + ": " + e.to_string());
}

std::string encode(const engram_record& x) {
  v1::Engram pb;
  messages::to_proto(x, pb);
  return messages::serialize(pb);
}

expected<engram_record> decode_engram(const std::string& bytes) {
  v1::Engram pb;
  if (auto ok = parse_as(bytes, pb, "Engram"); !ok)
    return ok.error_value();
  // The memory API sends drafts: no id yet, placeholder scopes.
  return messages::from_proto(pb, bounds, messages::record_check::draft);
}

std::string encode(const replica_delta& x) { return messages::encode_delta(x); }

expected<replica_delta> decode_delta(const std::string& bytes) {
  return messages::decode_delta(bytes, bounds);
}

std::string encode(const causal_context& x) {
  v1::CausalContext pb;
  messages::to_proto(x, pb);
  return messages::serialize(pb);
}

expected<causal_context> decode_context(const std::string& bytes) {
  v1::CausalContext pb;
  if (auto ok = parse_as(bytes, pb, "CausalContext"); !ok)
    return ok.error_value();
  return messages::from_proto(pb, bounds);
}

std::string encode(const conflict& x) {
  v1::Conflict pb;
  messages::to_proto(x, pb);
  return messages::serialize(pb);
}

expected<conflict> decode_conflict(const std::string& bytes) {
  v1::Conflict pb;
  if (auto ok = parse_as(bytes, pb, "Conflict"); !ok)
    return ok.error_value();
  return messages::from_proto(pb, bounds);
}

std::string encode(const memory_view& x) {
  v1::MemoryView pb;
  messages::to_proto(version{x.tag, 0, x.value}, *pb.mutable_version());
  pb.set_contested(x.contested);
  pb.set_consensus(x.consistency == guarantee::consensus);
  return messages::serialize(pb);
}

expected<memory_view> decode_view(const std::string& bytes) {
  v1::MemoryView pb;
  if (auto ok = parse_as(bytes, pb, "MemoryView"); !ok)
    return ok.error_value();
  auto v = messages::from_proto(pb.version(), bounds);
  if (!v)
    return v.error_value();
  return memory_view{std::move(v->value), v->tag, pb.contested(),
                     pb.consensus() ? guarantee::consensus : guarantee::crdt};
}

std::string encode(const pending_question& x) {
  v1::PendingQuestion pb;
  messages::to_proto(x.subject, *pb.mutable_conflict());
  pb.set_question(x.question.question);
  for (auto& option : x.question.options)
    pb.add_options(option);
  return messages::serialize(pb);
}

expected<pending_question> decode_question(const std::string& bytes) {
  v1::PendingQuestion pb;
  if (auto ok = parse_as(bytes, pb, "PendingQuestion"); !ok)
    return ok.error_value();
  auto c = messages::from_proto(pb.conflict(), bounds);
  if (!c)
    return c.error_value();
  pending_question result;
  result.subject = std::move(*c);
  result.question.question = pb.question();
  result.question.options.assign(pb.options().begin(), pb.options().end());
  return result;
}

std::string encode(const query_filter& x) {
  v1::QueryFilter pb;
  if (x.type)
    pb.set_type(static_cast<v1::MemoryType>(*x.type));
  if (x.kind)
    pb.set_scope_kind(messages::kind_to_proto(*x.kind));
  pb.set_subject(x.subject);
  pb.set_relation(x.relation);
  if (x.since) {
    pb.mutable_since()->set_wall_us(x.since->wall_us);
    pb.mutable_since()->set_logical(x.since->logical);
  }
  if (x.until) {
    pb.mutable_until()->set_wall_us(x.until->wall_us);
    pb.mutable_until()->set_logical(x.until->logical);
  }
  pb.set_contested_only(x.contested_only);
  pb.set_include_archived(x.include_archived);
  pb.set_include_forgotten(x.include_forgotten);
  pb.set_limit(x.limit);
  return messages::serialize(pb);
}

expected<query_filter> decode_filter(const std::string& bytes) {
  v1::QueryFilter pb;
  if (auto ok = parse_as(bytes, pb, "QueryFilter"); !ok)
    return ok.error_value();
  query_filter result;
  if (pb.has_type()) {
    if (pb.type() < 0 || static_cast<size_t>(pb.type()) >= memory_type_count)
      return make_error(errc::invalid_field,
                        "unknown memory type " + std::to_string(pb.type()));
    result.type = static_cast<memory_type>(pb.type());
  }
  if (pb.has_scope_kind()) {
    auto kind = messages::kind_from_proto(pb.scope_kind());
    if (!kind)
      return kind.error_value();
    result.kind = *kind;
  }
  result.subject = pb.subject();
  result.relation = pb.relation();
  if (pb.has_since())
    result.since = hlc_timestamp{pb.since().wall_us(), pb.since().logical()};
  if (pb.has_until())
    result.until = hlc_timestamp{pb.until().wall_us(), pb.until().logical()};
  result.contested_only = pb.contested_only();
  result.include_archived = pb.include_archived();
  result.include_forgotten = pb.include_forgotten();
  result.limit = pb.limit();
  return result;
}

} // namespace detail

} // namespace engram::actors
