#pragma once

// The engram CLI's shared parts: exit codes and failures, the connection to
// a node (acting as one instance of an agent), rendering memories as text
// or JSON, and parsing arguments. The verbs are in the *_verbs.cpp files.

#include "actors/net.hpp"
#include "apps/common/client_config.hpp"
#include "federation/codec.hpp"
#include "federation/membership.hpp"
#include "federation/share.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

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

namespace engram::cli {

using json = nlohmann::json;

constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;
constexpr int exit_timeout = 4;
constexpr int exit_not_confirmed = 5;

using apps::client_config;

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
inline json failure_json(const failure& f, bool writing) {
  json out{{"error", f.message}, {"exit", f.code}};
  if (!f.cause)
    return out;
  out["code"] = to_string(f.cause->code);
  if (!writing)
    return out;
  switch (f.cause->code) {
    case errc::not_confirmed: out["stored"] = true; break;
    case errc::timeout: out["stored"] = nullptr; break;
    default: out["stored"] = false; break;
  }
  if (!f.cause->subject.empty())
    out["id"] = f.cause->subject;
  return out;
}

template<class T>
T value_or_fail(expected<T> x) {
  if (!x)
    fail(x.error_value());
  return std::move(*x);
}

/// The options every verb shares.
struct common_options {
  std::string node = "127.0.0.1:7420";
  std::string agent;
  std::string instance = "cli";
  bool json = false;
  int64_t timeout_ms = 5000;
  /// Mutual TLS with client.<agent>.crt / .key (client.admin without an
  /// agent) and ca.crt of this directory; or plaintext, when asked for.
  std::string certs_dir;
  bool insecure = false;
};

/// The client's TLS configuration from `opts` (none: --insecure); a
/// failure (exit_usage) when neither is given or a file is unusable.
actors::tls_config client_tls(const common_options& opts);

/// A connection to one engramd, acting as one instance of an agent.
class session {
public:
  session(caf::actor_system& sys, const common_options& opts)
      : sys_(sys), opts_(opts), timeout_(opts.timeout_ms) {
    auto at = actors::parse_endpoint(opts.node);
    if (!at)
      throw failure{exit_usage, "--node: " + at.error_value().message};
    auto remote = actors::connect_remote(sys, *at, timeout_);
    if (!remote) {
      auto& e = remote.error_value();
      // Connected, but the node did not answer in time: a timeout, not an
      // unreachable node.
      if (e.code == errc::timeout)
        throw failure{exit_timeout,
                      "engramd at " + opts.node + " did not answer within "
                          + std::to_string(opts.timeout_ms) + " ms",
                      e};
      throw failure{exit_unreachable,
                    "cannot reach engramd at " + opts.node + ": " + e.message,
                    e};
    }
    node_ = remote->hdl;
    node_id_ = remote->id;
  }

  const std::string& node_id() const { return node_id_; }
  actors::node_actor node() const { return node_; }

  /// The instance this client acts as (needs --agent).
  actors::instance_actor instance() {
    if (inst_)
      return *inst_;
    if (opts_.agent.empty())
      throw failure{exit_usage,
                    "this command acts as an agent: pass --agent NAME (or set "
                    "ENGRAM_AGENT)"};
    if (auto ok = validate_name(opts_.agent, "--agent"); !ok)
      throw failure{exit_usage, ok.error_value().message};
    inst_ = call<actors::instance_actor>(node_, actors::instance_atom::value,
                                         opts_.agent, opts_.instance);
    return *inst_;
  }

  /// Sends a request and waits for the answer (bounded); failures throw.
  template<class R, class Handle, class... Ts>
  R call(const Handle& dest, Ts&&... xs) {
    return call_for<R>(timeout_, dest, std::forward<Ts>(xs)...);
  }

  template<class R, class Handle, class... Ts>
  R call_for(std::chrono::milliseconds timeout, const Handle& dest,
             Ts&&... xs) {
    caf::scoped_actor self{sys_};
    std::optional<R> result;
    error err{errc::timeout, "no answer from engramd at " + opts_.node
                                 + " within " + std::to_string(timeout.count())
                                 + " ms"};
    self->request(dest, timeout, std::forward<Ts>(xs)...)
        .receive(
            [&](R& r) {
              result = std::move(r);
            },
            [&](caf::error& e) {
              err = actors::from_caf(e);
            });
    if (!result)
      fail(err);
    return std::move(*result);
  }

  /// A command to federation `fed_id` as the --agent (the node sets the
  /// command's agent to the instance's: no other name can be claimed).
  federation::federation_state fed(const std::string& fed_id,
                                   federation::command_kind what) {
    return call<federation::federation_state>(
        instance(), actors::federation_atom::value, fed_id,
        federation::federation_command{opts_.agent, std::move(what)});
  }

private:
  caf::actor_system& sys_;
  const common_options& opts_;
  std::chrono::milliseconds timeout_;
  actors::node_actor node_;
  std::string node_id_;
  std::optional<actors::instance_actor> inst_;
};

// -- rendering ----------------------------------------------------------------
//
// JSON as the client API renders it (api/json.hpp); text for a terminal.

using api::to_json;
std::string printable(const std::string& text);
std::string line_of(const memory_view& v);
void print_state(const federation::federation_state& st, bool as_json);
/// JSON as printed: invalid UTF-8 replaced, never an abort.
std::string show(const json& j, int indent = -1);

// -- parsing ------------------------------------------------------------------

federation::trust_model parse_trust(const std::string& text);
memory_type parse_type(const std::string& text);
/// Keys, subjects and relations are UTF-8 text: refused here (bad usage)
/// rather than by the wire.
void require_text(const std::string& x, const char* what);
engram_record keyed(content body, double confidence);
uint64_t now_us();

} // namespace engram::cli
