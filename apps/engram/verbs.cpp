#include "apps/engram/verbs.hpp"

#include <iostream>

namespace engram::cli {

query_filter verbs::filter() const {
  query_filter f;
  if (!type.empty())
    f.type = parse_type(type);
  if (!subject.empty())
    require_text(subject, "--subject");
  if (!relation.empty())
    require_text(relation, "--relation");
  f.subject = subject;
  f.relation = relation;
  f.contested_only = contested;
  f.limit = static_cast<size_t>(limit);
  return f;
}

void verbs::add_filter_options(CLI::App* cmd) {
  cmd->add_option("--type", type, "instant, episodic, semantic, procedural");
  cmd->add_option("--subject", subject, "beliefs about this subject");
  cmd->add_option("--relation", relation, "... and this relation");
  cmd->add_option("--limit", limit, "at most this many")
      ->check(CLI::NonNegativeNumber);
}

int verbs::learned(session& s, const engram_id& id) const {
  if (opts.json)
    std::cout << show(json{{"id", id.to_string()}, {"node", s.node_id()}})
              << '\n';
  else
    std::cout << id.to_string() << '\n';
  return 0;
}

int verbs::learn_record(session& s, engram_record e) const {
  bool scoped = false;
  if (!fed_id.empty()) {
    e.scope = memory_scope::collective(fed_id, {opts.agent});
    scoped = true;
  } else if (instance_scope) {
    e.scope = memory_scope::instance({});
    scoped = true;
  }
  return learned(s, s.call<engram_id>(s.instance(), actors::learn_atom::value,
                                      std::move(e), scoped));
}

} // namespace engram::cli
