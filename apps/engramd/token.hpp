#pragma once

// engramd token: the cluster's shared key and the bearer tokens it signs
// (the spec's AuthMethod::SharedKey) for clients of the HTTP API.
//   engramd token create-key --key-file F        32 random bytes, 0600
//   engramd token issue --key-file F --agent A [--ttl 1h] [--role R]...
//   engramd token grant --key-file F --agent A --allow OP:KIND...
//                       [--federation FED]... [--ttl 1h]
// A token names its agent and expires; engramd refuses one valid for
// longer than its token_ttl. `grant` prints a capability token (egc1.…)
// allowing only what --allow names, which its holder may narrow further
// before handing it on (`engram token attenuate`).
//   engramd token revoke --revoked-file F (--token T | --id ID)
// adds a token's id to the file `[distribution.auth] revoked_tokens` names:
// engramd refuses it from then on (the file is read again when it changes).

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace engram::engramd {

struct token_options {
  std::string key_file;
  std::string agent;
  std::string ttl = "1h";
  std::vector<std::string> roles;
  std::vector<std::string> allow;
  std::vector<std::string> federations;
  std::string revoked_file;
  std::string token;
  std::string id;
};

/// The `token` subcommand and its own subcommands, filling `opts`.
CLI::App* add_token_command(CLI::App& app, token_options& opts);

/// Runs the `token` subcommand parsed into `cmd`: 0 on success (issue
/// prints the token on stdout), 2 for a bad argument, 1 when it could not
/// be done (the reason on stderr).
int run_token(const CLI::App& cmd, const token_options& opts);

} // namespace engram::engramd
