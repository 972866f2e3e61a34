#pragma once

// The engram CLI's verbs, by group. Each `add_*_verbs` adds its
// subcommands to the app; the one parsed sets `verbs::run`.

#include "apps/engram/client.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace engram::cli {

/// What the verbs fill while parsing, and the verb that runs.
struct verbs {
  explicit verbs(common_options& o) : opts(o) {
    // nop
  }

  common_options& opts;
  std::string a1, a2, a3, fed_id, reason = "forgotten via the CLI";
  std::string with, transform, trust_spec, role = "member", beliefs;
  std::string type, subject, relation, consistency;
  /// An agent's key file (end-to-end encryption): to seal a tell with, to
  /// open the inbox with.
  std::string key_file;
  std::vector<std::string> members;
  double confidence = 0.9, trust = 1.0;
  int64_t limit = 0, ask_timeout_ms = 5000, ttl_seconds = 86400,
          narrow_ttl_seconds = 0;
  uint64_t conflict_id = 0;
  bool contested = false, instance_scope = false, universal = false,
       writable = false, redact = false, e2e = false;
  /// The verb to run once connected.
  std::function<int(session&)> run;
  /// A verb that needs no node (token attenuate).
  std::function<int()> offline;
  std::vector<std::string> allow, types, sources, federations;
  /// The verb writes (its failures say whether anything was stored).
  bool writing = false;

  /// The query parameters the filter options give (checked).
  std::map<std::string, std::string> filter() const;

  /// Adds --type, --subject, --relation, --limit to a verb.
  void add_filter_options(CLI::App* cmd);

  /// Prints a write's answer (its engram id); exit code 0.
  int learned(const json& answer) const;

  /// Learns `body` (a fact or a belief, as the API takes it) as the agent:
  /// into --federation's Collective memory, this instance's memory
  /// (--instance-scope), or the agent's.
  int learn_record(session& s, json body) const;

  // The verbs' callbacks run after the functions that add them returned:
  // whatever they use lives here, never in those functions' locals.
};

/// status, learn, believe, query, forget, sync, conflicts.
void add_memory_verbs(CLI::App& app, verbs& v);

/// share, shares, accept, decline.
void add_sharing_verbs(CLI::App& app, verbs& v);

/// federation (create, invite, uninvite, join, leave, show, list,
/// set-role, remove), broadcast.
void add_federation_verbs(CLI::App& app, verbs& v);

/// tell (--seal), ask, inbox (--key), key (new, publish, show).
void add_message_verbs(CLI::App& app, verbs& v);

/// token attenuate (offline).
void add_token_verbs(CLI::App& app, verbs& v);

} // namespace engram::cli
