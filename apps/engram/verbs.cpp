#include "apps/engram/verbs.hpp"

#include <iostream>

namespace engram::cli {

std::map<std::string, std::string> verbs::filter() const {
  std::map<std::string, std::string> q;
  if (!type.empty()) {
    if (auto t = api::parse_memory_type(type); !t)
      throw failure{exit_usage, "--" + t.error_value().message};
    q["type"] = type;
  }
  if (!subject.empty()) {
    require_text(subject, "--subject");
    q["subject"] = subject;
  }
  if (!relation.empty()) {
    require_text(relation, "--relation");
    q["relation"] = relation;
  }
  if (contested)
    q["contested"] = "true";
  if (limit > 0)
    q["limit"] = std::to_string(limit);
  return q;
}

void verbs::add_filter_options(CLI::App* cmd) {
  cmd->add_option("--type", type, "instant, episodic, semantic, procedural");
  cmd->add_option("--subject", subject, "beliefs about this subject");
  cmd->add_option("--relation", relation, "... and this relation");
  cmd->add_option("--limit", limit, "at most this many")
      ->check(CLI::NonNegativeNumber);
}

int verbs::learned(const json& answer) const {
  if (opts.json)
    std::cout << show(answer) << '\n';
  else
    std::cout << text_of(answer, "id") << '\n';
  return 0;
}

int verbs::learn_record(session& s, json body) const {
  body["confidence"] = confidence;
  if (!fed_id.empty())
    body["federation"] = fed_id;
  else if (instance_scope)
    body["scope"] = "instance";
  else if (universal)
    body["scope"] = "universal"; // decided by consensus
  return learned(s.post(s.agent_path("/memories"), body));
}

} // namespace engram::cli
