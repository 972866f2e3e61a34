// An agent's public key for end-to-end encryption: the binding a node
// vouched for (e2e::key_binding), kept as a reserved fact of the agent's
// memory ("_e2e.key") and replicated like any write, so every node holding
// the agent answers for it. Publishing again replaces it (newest wins).

#include "actors/internal/agent_state.hpp"

namespace engram::actors {

namespace {

const std::string& key_fact() {
  static const std::string key = "_e2e.key";
  return key;
}

} // namespace

bool is_key(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  return f != nullptr && f->key == key_fact();
}

engram_record key_record(const std::string& agent, std::string binding) {
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent(agent);
  e.body = fact{key_fact(), std::move(binding)};
  e.confidence = 1.0;
  e.origin.origin_agent = agent;
  return e;
}

caf::result<std::string> key_of(agent_ptr self) {
  auto& st = self->state;
  auto e = st.mem->get(
      derive_id(memory_scope::agent(st.cfg.agent_id), fact{key_fact(), {}}));
  if (!e || e->tombstone || !is_key(*e))
    return to_caf(make_error(errc::unknown_engram,
                             "agent " + st.cfg.agent_id
                                 + " has published no key for end-to-end "
                                   "encryption (engram key publish)"));
  return std::get<fact>(e->body).value;
}

} // namespace engram::actors
