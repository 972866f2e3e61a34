// An agent's shares: a share offered to it waits, pending, as a reserved
// fact of its memory ("_share.<id>", durable and replicated) until the
// agent accepts it (its memories stored as Reported{from, trust}) or
// declines it.

#include "actors/internal/agent_state.hpp"
#include "core/query.hpp"
#include "federation/share.hpp"

namespace engram::actors {

namespace {

engram_id pending_share_id(const std::string& agent,
                           const std::string& share_id) {
  return derive_id(memory_scope::agent(agent),
                   fact{federation::share_key_prefix() + share_id, {}});
}

// The pending share `share_id` and the id of the fact holding it.
expected<std::pair<federation::share, engram_id>>
pending_share(agent_ptr self, const std::string& share_id) {
  auto& st = self->state;
  auto key = pending_share_id(st.cfg.agent_id, share_id);
  auto pending = st.mem->get(key);
  if (!pending || pending->tombstone)
    return make_error(errc::unknown_engram, "no pending share " + share_id
                                                + " for agent "
                                                + st.cfg.agent_id);
  auto s = federation::decode_share(std::get<fact>(pending->body).value);
  if (!s)
    return s.error_value();
  return std::make_pair(std::move(*s), key);
}

} // namespace

caf::result<std::string> offer(agent_ptr self, const federation::share& s) {
  auto& st = self->state;
  if (s.to != st.cfg.agent_id)
    return to_caf(make_error(errc::invalid_argument,
                             "share " + s.share_id + " is for agent " + s.to
                                 + ", not " + st.cfg.agent_id));
  // A share id another sender's pending share holds is not taken over.
  if (auto held = pending_share(self, s.share_id);
      held && held->first.from != s.from)
    return to_caf(
        make_error(errc::invalid_argument,
                   "share " + s.share_id + " is pending from another agent"));
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent(st.cfg.agent_id);
  e.body = fact{federation::share_key_prefix() + s.share_id,
                federation::encode(s)};
  e.origin.origin_agent = s.from;
  record_and_push(self, st.mem->put(std::move(e)));
  return s.share_id;
}

std::vector<federation::share> pending_shares(agent_ptr self) {
  std::vector<federation::share> result;
  std::vector<memory_view> views;
  select(*self->state.mem, query_filter{}, views);
  for (auto& v : views) {
    auto* f = std::get_if<fact>(&v.value.body);
    if (f == nullptr || f->key.rfind(federation::share_key_prefix(), 0) != 0)
      continue;
    if (auto s = federation::decode_share(f->value))
      result.push_back(std::move(*s));
  }
  return result;
}

caf::result<uint64_t> accept_share(agent_ptr self, const std::string& from,
                                   const std::string& share_id, double trust,
                                   const federation::share* opened) {
  auto& st = self->state;
  if (!(trust >= 0 && trust <= 1))
    return to_caf(
        make_error(errc::invalid_confidence, "trust level must be in [0, 1]"));
  auto pending = pending_share(self, share_id);
  if (!pending)
    return to_caf(pending.error_value());
  auto& [s, key] = *pending;
  if (!from.empty() && from != s.from)
    return to_caf(
        make_error(errc::invalid_argument, "share " + share_id + " comes from "
                                               + s.from + ", not " + from));
  // Sealed end to end: only the recipient's client read it, and it hands
  // over what it opened — which must be this very share. (Its memories
  // are the recipient's word that the sender sealed them: the client
  // checked the seal; this node cannot.)
  if (!s.sealed.empty()) {
    if (opened == nullptr)
      return to_caf(make_error(errc::invalid_argument,
                               "share " + share_id
                                   + " is sealed end to end: open it with "
                                     "the agent's key to accept it "
                                     "(memory::accept_sealed; engram accept "
                                     "--key KEYFILE)"));
    if (opened->share_id != s.share_id || opened->from != s.from
        || opened->to != st.cfg.agent_id || opened->read_only != s.read_only
        || !opened->sealed.empty())
      return to_caf(
          make_error(errc::invalid_argument, "what was opened is not share "
                                                 + share_id + " from " + s.from
                                                 + " to " + st.cfg.agent_id));
    s.memories = opened->memories;
    s.transform = opened->transform;
  } else if (opened != nullptr) {
    return to_caf(make_error(errc::invalid_argument,
                             "share " + share_id + " is not sealed"));
  }
  uint64_t n = 0;
  for (auto& m : federation::accept(s, st.cfg.agent_id, trust)) {
    // A share brings memories, never the runtime's own facts (a key, a
    // message, a pending share, a federation's rules) nor deletions: a
    // sender (or a client handing over what it opened) could otherwise
    // plant them in the receiver's memory.
    if (m.tombstone || reserved(m) || runtime_key(m))
      continue;
    auto delta = st.mem->put(std::move(m));
    if (!delta)
      return to_caf(delta.error_value());
    record_and_push(self, std::move(delta));
    ++n;
  }
  record_and_push(self, st.mem->forget(key, "accepted"));
  return n;
}

caf::result<std::string> decline_share(agent_ptr self,
                                       const std::string& share_id) {
  auto pending = pending_share(self, share_id);
  if (!pending)
    return to_caf(pending.error_value());
  record_and_push(self, self->state.mem->forget(pending->second, "declined"));
  return share_id;
}

} // namespace engram::actors
