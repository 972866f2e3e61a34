#pragma once

// The client API of a node: HTTP/JSON routes (/v1/…) over the node's
// actors, behind authentication and access control. Each request is
// authenticated (a shared-key token, a JWT, or a client certificate), acts
// as exactly the agent its credential names (a route naming another agent
// is refused), is checked against the access policy (default deny), and
// only then reaches the node — through the agent's instance, which stamps
// the authenticated agent on everything it writes, tells, shares and asks
// a federation. Clients never reach the node actor or any internal actor
// interface.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/access.hpp"
#include "api/auth.hpp"
#include "http/server.hpp"

namespace caf {
class actor_system;
} // namespace caf

namespace engram::actors {
class node;
} // namespace engram::actors

namespace engram::gateway {

/// How clients authenticate.
struct auth_config {
  /// SharedKey: the cluster's shared key (empty: tokens not accepted).
  std::string shared_key;
  /// OAuth/OIDC: the identity provider's keys (null: JWTs not accepted).
  std::shared_ptr<const api::jwks> jwks;
  api::jwt_policy jwt;
  /// MTLS: client certificates of the cluster's CA accepted.
  bool client_certificates = true;
  /// No credential is accepted for longer than this.
  std::chrono::seconds token_ttl{3600};
  /// Token ids revoked before they expire (null: none). Used on the
  /// server's thread only.
  std::shared_ptr<api::revocation_list> revoked;
};

/// Fields of a log event.
using fields = std::vector<std::pair<std::string, std::string>>;

struct gateway_config {
  auth_config auth;
  api::access_policy access = api::access_policy::agents_on_their_own();
  /// How long a request may wait for the node.
  std::chrono::milliseconds timeout{10000};
  /// Requests per second per agent (a token bucket of twice as many);
  /// beyond: 429.
  double rate_per_agent = 2000;
  /// Requests in flight at once; beyond: 503.
  size_t max_in_flight = 4096;
  /// Streams (watch) open at once; beyond: 503.
  size_t max_streams = 1024;
  /// engramd's version, for status.
  std::string version;
  /// Told about refusals (api_refused, api_denied).
  std::function<void(const std::string& event, const fields&)> on_event;
};

/// One route: a method, a path pattern ("/v1/agents/{agent}/memories"),
/// the operation it performs.
struct route_info {
  std::string method;
  std::string pattern;
  api::operation op;
};

/// Every route the API serves (the OpenAPI document lists the same).
const std::vector<route_info>& routes();

/// What serves `n`'s client API (for http::server::start): the admission
/// (authentication and the agent's rate, from the header alone: nothing
/// unauthenticated is read further) and the handler. `n` and `sys` must
/// outlive the server.
struct service {
  http::handler handler;
  http::admission admission;
};

service make_service(caf::actor_system& sys, actors::node& n,
                     gateway_config cfg);

} // namespace engram::gateway
