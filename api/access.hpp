#pragma once

// Who may do what (the spec's Access Control): every client API request is
// checked against the authenticated principal — never a name the request
// claims — before anything runs. Three models:
//   * RBAC — roles grant permissions ("operation:scope_kind", '*' for any);
//     agents get roles by assignment (and from their credential);
//   * ABAC — policies with Allow/Deny effects and conditions on the
//     principal, its roles and authentication method, the operation, the
//     scope kind, the memory type, the time of day (UTC) and the source
//     address; a Deny that applies overrides any Allow;
//   * Capability — signed capability tokens (api/capability.hpp) granting
//     operations on an agent's memory, attenuable by their holder; and
//     grants of operations and scope kinds per agent in the configuration.
// A capability token's grant and caveats bound a request under every
// model.
// With `default_policy = deny` (the default) anything no rule allows is
// refused. Pure: no I/O but reading a policy file.

#include "core/error.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/auth.hpp"

namespace engram::api {

/// What a request does.
enum class operation : uint8_t {
  learn,
  query,
  forget,
  archive,
  sync,
  share,
  accept,
  decline,
  tell,
  ask,
  inbox,
  broadcast,
  watch,
  federation_create,
  federation_join,
  federation_leave,
  federation_admin,
  federation_show,
  conflicts_read,
  conflicts_answer,
  status,
  /// Publishing the agent's public key for end-to-end encryption, and
  /// reading another agent's.
  keys,
};

/// Every operation, in order.
const std::vector<operation>& all_operations();

const char* to_string(operation op) noexcept;

/// An operation by name ("learn"). Error: invalid_argument naming it.
expected<operation> parse_operation(const std::string& name);

/// Which memory an operation touches.
/// The memory a request touches. `universal`: the cluster's one Universal
/// scope (decided by consensus).
enum class scope_kind : uint8_t {
  instance,
  agent,
  collective,
  node,
  universal
};

const char* to_string(scope_kind k) noexcept;

expected<scope_kind> parse_scope_kind(const std::string& name);

/// One request to decide.
struct access_request {
  principal who;
  operation op = operation::status;
  scope_kind scope = scope_kind::agent;
  /// "instant", "episodic", "semantic" or "procedural" when the request
  /// names one (a write; a query's results are checked one by one);
  /// empty otherwise.
  std::string memory_type;
  /// The federation it concerns, if any.
  std::string federation;
  /// The client's address.
  std::string source;
  /// Seconds since the epoch (for time-of-day conditions).
  int64_t now = 0;
};

/// The outcome, with the rule that decided it (for the 403's message and
/// the log).
struct decision {
  bool allowed = false;
  std::string reason;
};

/// "operation:scope_kind" with '*' for any, e.g. "learn:agent", "query:*".
struct permission {
  std::optional<operation> op;    // nullopt: any
  std::optional<scope_kind> kind; // nullopt: any
  static expected<permission> parse(const std::string& text);
  bool covers(operation o, scope_kind k) const;
};

struct rbac_model {
  /// role id → permissions.
  std::map<std::string, std::vector<permission>> roles;
  /// agent id ("*": every agent) → role ids.
  std::map<std::string, std::vector<std::string>> assignments;
};

struct abac_condition {
  /// "principal", "role", "method", "operation", "scope_kind",
  /// "memory_type", "source" (CIDRs or addresses), "hours" ("HH:MM-HH:MM",
  /// UTC, may wrap midnight).
  std::string attribute;
  std::vector<std::string> values;
};

struct abac_policy {
  std::string name;
  bool allow = true;
  /// All must hold for the policy to apply.
  std::vector<abac_condition> conditions;
};

struct abac_model {
  std::vector<abac_policy> policies;
};

struct capability_model {
  /// agent id ("*": every agent) → what it may do.
  std::map<std::string, std::vector<permission>> grants;
};

/// The configured access control.
class access_policy {
public:
  enum class kind { rbac, abac, capability };

  /// What engramd uses when nothing is configured: RBAC with one role,
  /// "agent", granting every operation, assigned to every authenticated
  /// agent (which can only ever act as itself); default deny.
  static access_policy agents_on_their_own();

  static access_policy rbac(rbac_model m, bool default_allow = false);
  static access_policy abac(abac_model m, bool default_allow = false);
  static access_policy capability(capability_model m,
                                  bool default_allow = false);

  /// Reads ABAC policies from a TOML file: [[policy]] tables with name,
  /// effect ("allow" | "deny") and conditions (principal, role, method,
  /// operation, scope_kind, memory_type, source, hours: each a string or a
  /// list of strings). Errors name the file, the policy and the key.
  static expected<abac_model> load_abac(const std::string& path);

  /// Checks the parts of a model (unknown names, bad CIDRs or hours).
  static expected<void> check(const abac_model& m);

  kind model() const noexcept { return kind_; }

  bool default_allow() const noexcept { return default_allow_; }

  /// Decides a request.
  decision decide(const access_request& r) const;

private:
  kind kind_ = kind::rbac;
  bool default_allow_ = false;
  rbac_model rbac_;
  abac_model abac_;
  capability_model cap_;
};

/// Whether `address` (IPv4 or IPv6 text) lies in `cidr` ("10.0.0.0/8",
/// "::1/128", or a bare address). False on malformed input.
bool address_in(const std::string& address, const std::string& cidr);

} // namespace engram::api
