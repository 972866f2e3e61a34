#pragma once

// The engram CLI's shared parts: exit codes and failures, the session with
// a node's client API (HTTPS, as one agent: a bearer token or the agent's
// client certificate), rendering memories as text or JSON, and checking
// arguments. The verbs are in the *_verbs.cpp files. No CAF: the CLI is a
// client of the API like any other.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/json.hpp"
#include "http/client.hpp"

namespace engram::cli {

using json = nlohmann::json;

constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;
constexpr int exit_timeout = 4;
constexpr int exit_not_confirmed = 5;

/// A failure with its exit code, and the error it came from (when the node
/// answered with one).
struct failure {
  int code;
  std::string message;
  std::optional<error> cause = std::nullopt;
};

inline int exit_code_of(const error& e) {
  switch (e.code) {
    case errc::timeout: return exit_timeout;
    case errc::not_confirmed: return exit_not_confirmed;
    default: return exit_failed;
  }
}

[[noreturn]] inline void fail(const error& e) {
  throw failure{exit_code_of(e), e.to_string(), e};
}

/// The JSON a failed command prints: the message, the exit code, the
/// error's name and, for a write, whether it was stored ("stored": true
/// when stored but not confirmed, false when refused, null when unknown)
/// and the id of its engram.
json failure_json(const failure& f, bool writing);

/// The options every verb shares.
struct common_options {
  std::string node = "127.0.0.1:8420";
  std::string agent;
  std::string instance = "cli";
  bool json = false;
  int64_t timeout_ms = 5000;
  /// A bearer token (engramd token issue, or a JWT).
  std::string token;
  /// The agent's client certificate: client.<agent>.crt / .key
  /// (client.admin without an agent) and ca.crt of this directory.
  std::string certs_dir;
  /// The CA the node's certificate must chain to (default:
  /// <certs_dir>/ca.crt).
  std::string ca;
  /// Plaintext HTTP, to a node run with --insecure.
  bool insecure = false;
  /// End to end: trust only keys agents signed with their own
  /// certificates, no node's vouching.
  bool agent_signed_only = false;
};

/// A session with one node's client API, acting as the agent the
/// credential names.
class session {
public:
  explicit session(const common_options& opts);

  /// The agent acted as (--agent is needed).
  const std::string& agent() const;

  /// "/v1/agents/<agent>" + suffix.
  std::string agent_path(const std::string& suffix) const;

  /// A request; the answer's JSON (null when it has none). A failure
  /// throws: the node's error (exit 1, 4 or 5), a connection failure
  /// (exit 3), no answer in time (exit 4). `extra_ms` extends the timeout
  /// (an ask waits for its answer).
  json call(const std::string& method, const std::string& path,
            const json& body = nullptr,
            const std::map<std::string, std::string>& query = {},
            int64_t extra_ms = 0);

  json get(const std::string& path,
           const std::map<std::string, std::string>& query = {}) {
    return call("GET", path, nullptr, query);
  }

  json post(const std::string& path, const json& body = json::object()) {
    return call("POST", path, body);
  }

private:
  const common_options& opts_;
  http::client_config cfg_;
  std::string authorization_;
};

// -- rendering ----------------------------------------------------------------
//
// JSON as the client API renders it (api/json.hpp); text for a terminal.

/// Text for a terminal: bytes that are not UTF-8 print as '?'.
std::string printable(const std::string& text);
/// One memory (the API's JSON) as a line.
std::string line_of(const json& memory);
/// A federation (the API's JSON): JSON, or a few lines.
void print_state(const json& st, bool as_json);
/// JSON as printed: invalid UTF-8 replaced, never an abort.
std::string show(const json& j, int indent = -1);
/// A JSON string field, or "".
std::string text_of(const json& j, const char* name);

// -- checking arguments
// --------------------------------------------------------

/// Keys, subjects and relations are UTF-8 text: refused here (bad usage)
/// rather than by the node.
void require_text(const std::string& x, const char* what);

} // namespace engram::cli
