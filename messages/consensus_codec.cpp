#include "messages/consensus_codec.hpp"

namespace engram::messages {

namespace c = consensus;

namespace {

// -- to protobuf --------------------------------------------------------------

void to_proto(const c::entry& in, v1::RaftEntry& out) {
  out.set_term(in.term);
  out.set_index(in.index);
  out.set_type(static_cast<uint32_t>(in.type));
  out.set_data(in.data);
}

void to_proto(const c::conf_state& in, v1::RaftConfState& out) {
  for (auto id : in.voters)
    out.add_voters(id);
  for (auto id : in.learners)
    out.add_learners(id);
  for (auto id : in.voters_outgoing)
    out.add_voters_outgoing(id);
  for (auto id : in.learners_next)
    out.add_learners_next(id);
  out.set_auto_leave(in.auto_leave);
}

void to_proto(const c::snapshot& in, v1::RaftSnapshot& out) {
  out.set_index(in.meta.index);
  out.set_term(in.meta.term);
  to_proto(in.meta.conf, *out.mutable_conf());
  out.set_data(in.data);
}

void to_proto(const c::message& in, v1::RaftMessage& out) {
  out.set_type(static_cast<uint32_t>(in.type));
  out.set_to(in.to);
  out.set_from(in.from);
  out.set_term(in.term);
  out.set_log_term(in.log_term);
  out.set_index(in.index);
  for (auto& e : in.entries)
    to_proto(e, *out.add_entries());
  out.set_commit(in.commit);
  if (in.snap)
    to_proto(*in.snap, *out.mutable_snapshot());
  out.set_reject(in.reject);
  out.set_reject_hint(in.reject_hint);
  out.set_context(in.context);
  for (auto id : in.voters)
    out.add_voters(id);
}

template<class Proto>
std::string serialize(const Proto& p) {
  std::string out;
  p.SerializeToString(&out);
  return out;
}

// -- from protobuf ------------------------------------------------------------

error bad(errc code, const std::string& what) { return make_error(code, what); }

expected<c::entry> from_proto(const v1::RaftEntry& in,
                              const consensus_limits& bounds) {
  if (in.type() > static_cast<uint32_t>(c::entry_type::conf_change))
    return bad(errc::invalid_field,
               "raft entry type " + std::to_string(in.type()) + " unknown");
  if (in.data().size() > bounds.max_entry_bytes)
    return bad(errc::limit_exceeded,
               "raft entry data of " + std::to_string(in.data().size())
                   + " bytes exceeds "
                   + std::to_string(bounds.max_entry_bytes));
  c::entry e;
  e.term = in.term();
  e.index = in.index();
  e.type = static_cast<c::entry_type>(in.type());
  e.data = in.data();
  if (e.type == c::entry_type::conf_change && !c::decode_conf_change(e.data))
    return bad(errc::invalid_field, "raft entry " + std::to_string(e.index)
                                        + " holds no valid membership change");
  return e;
}

expected<std::vector<c::node_id>>
members(const google::protobuf::RepeatedField<uint64_t>& ids,
        const consensus_limits& bounds, const char* what) {
  if (static_cast<size_t>(ids.size()) > bounds.max_members)
    return bad(errc::limit_exceeded, std::string{what} + " lists more than "
                                         + std::to_string(bounds.max_members)
                                         + " members");
  std::vector<c::node_id> out(ids.begin(), ids.end());
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == c::no_node)
      return bad(errc::invalid_field, std::string{what} + " lists member 0");
    if (i > 0 && out[i] <= out[i - 1])
      return bad(errc::invalid_field,
                 std::string{what} + " is not strictly ascending");
  }
  return out;
}

expected<c::conf_state> from_proto(const v1::RaftConfState& in,
                                   const consensus_limits& bounds) {
  c::conf_state cs;
  auto voters = members(in.voters(), bounds, "voters");
  if (!voters)
    return voters.error_value();
  auto learners = members(in.learners(), bounds, "learners");
  if (!learners)
    return learners.error_value();
  auto outgoing = members(in.voters_outgoing(), bounds, "outgoing voters");
  if (!outgoing)
    return outgoing.error_value();
  auto next = members(in.learners_next(), bounds, "next learners");
  if (!next)
    return next.error_value();
  cs.voters = std::move(*voters);
  cs.learners = std::move(*learners);
  cs.voters_outgoing = std::move(*outgoing);
  cs.learners_next = std::move(*next);
  cs.auto_leave = in.auto_leave();
  if (cs.voters.empty())
    return bad(errc::invalid_field, "a membership without voters");
  return cs;
}

expected<c::snapshot> from_proto(const v1::RaftSnapshot& in,
                                 const consensus_limits& bounds) {
  if (in.data().size() > bounds.max_snapshot_bytes)
    return bad(errc::limit_exceeded,
               "raft snapshot of " + std::to_string(in.data().size())
                   + " bytes exceeds "
                   + std::to_string(bounds.max_snapshot_bytes));
  c::snapshot s;
  s.meta.index = in.index();
  s.meta.term = in.term();
  if (s.meta.index == 0)
    return bad(errc::invalid_field, "raft snapshot at index 0");
  auto cs = from_proto(in.conf(), bounds);
  if (!cs)
    return cs.error_value();
  s.meta.conf = std::move(*cs);
  s.data = in.data();
  return s;
}

} // namespace

std::string encode(const c::entry& e) {
  v1::RaftEntry p;
  to_proto(e, p);
  return serialize(p);
}

std::string encode(const c::hard_state& hs) {
  v1::RaftHardState p;
  p.set_term(hs.term);
  p.set_vote(hs.vote);
  p.set_commit(hs.commit);
  return serialize(p);
}

std::string encode(const c::snapshot& s) {
  v1::RaftSnapshot p;
  to_proto(s, p);
  return serialize(p);
}

std::string encode(const c::message& m) {
  v1::RaftMessage p;
  to_proto(m, p);
  return serialize(p);
}

void to_raft_proto(const c::message& m, v1::RaftMessage& out) {
  to_proto(m, out);
}

expected<c::entry> decode_entry(std::string_view bytes,
                                const consensus_limits& bounds) {
  v1::RaftEntry p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return bad(errc::decode_failed, "not a raft entry");
  return from_proto(p, bounds);
}

expected<c::hard_state> decode_hard_state(std::string_view bytes) {
  v1::RaftHardState p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return bad(errc::decode_failed, "not a raft hard state");
  return c::hard_state{p.term(), p.vote(), p.commit()};
}

expected<c::snapshot> decode_snapshot(std::string_view bytes,
                                      const consensus_limits& bounds) {
  v1::RaftSnapshot p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return bad(errc::decode_failed, "not a raft snapshot");
  return from_proto(p, bounds);
}

namespace {

expected<c::message> message_from_proto(const v1::RaftMessage& p,
                                        const consensus_limits& bounds) {
  if (p.type() > static_cast<uint32_t>(c::msg_type::read_index_response)
      || !c::is_network_message(static_cast<c::msg_type>(p.type())))
    return bad(errc::unknown_message_type,
               "raft message type " + std::to_string(p.type())
                   + " is not one members exchange");
  if (static_cast<size_t>(p.entries_size()) > bounds.max_entries)
    return bad(errc::limit_exceeded,
               "raft message with " + std::to_string(p.entries_size())
                   + " entries exceeds " + std::to_string(bounds.max_entries));
  if (p.context().size() > bounds.max_context_bytes)
    return bad(errc::limit_exceeded, "raft message context too long");
  c::message m;
  m.type = static_cast<c::msg_type>(p.type());
  m.to = p.to();
  m.from = p.from();
  m.term = p.term();
  m.log_term = p.log_term();
  m.index = p.index();
  m.entries.reserve(static_cast<size_t>(p.entries_size()));
  for (auto& e : p.entries()) {
    auto entry = from_proto(e, bounds);
    if (!entry)
      return entry.error_value();
    m.entries.push_back(std::move(*entry));
  }
  m.commit = p.commit();
  if (p.has_snapshot()) {
    auto s = from_proto(p.snapshot(), bounds);
    if (!s)
      return s.error_value();
    m.snap = std::move(*s);
  }
  m.reject = p.reject();
  m.reject_hint = p.reject_hint();
  m.context = p.context();
  auto voters = members(p.voters(), bounds, "candidate voters");
  if (!voters)
    return voters.error_value();
  m.voters = std::move(*voters);
  return m;
}

} // namespace

expected<c::message> decode_message(std::string_view bytes,
                                    const consensus_limits& bounds) {
  v1::RaftMessage p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return bad(errc::decode_failed, "not a raft message");
  return message_from_proto(p, bounds);
}

expected<c::message> from_raft_proto(const v1::RaftMessage& in,
                                     const consensus_limits& bounds) {
  return message_from_proto(in, bounds);
}

} // namespace engram::messages
