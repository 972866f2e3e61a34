#pragma once

// engramd's configuration: the TOML file and the flags as given
// (`settings`), and what the daemon runs with once every value was checked
// (`daemon_config`). Pure: no actor system, no network (DNS seeds are
// resolved by an injected function), so every rule is unit-tested
// (tests/apps). Every error names the key it is about.

#include "actors/api.hpp"
#include "actors/endpoint.hpp"
#include "actors/tls.hpp"
#include "apps/engramd/vault.hpp"
#include "core/error.hpp"
#include "core/placement.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/gateway.hpp"
#include "http/server.hpp"

namespace engram::engramd {

/// The client API as given: [api]; [distribution.auth] token_ttl,
/// shared_key, oauth, client_certificates; [distribution.access_control].
struct api_settings {
  bool enabled = true;
  /// Empty: the node's host, the node's port + 1000 (7420: 8420; any free
  /// port when the node's is 0).
  std::string listen;
  /// Where the API's port is written once listening (tests use port 0).
  std::string port_file;
  int64_t max_connections = 16384;
  int64_t max_connections_per_source = 4096;
  int64_t max_body_bytes = 1 << 20;
  int64_t idle_timeout_ms = 60'000;
  double rate_per_agent = 2000;
  /// No credential is accepted for longer ("1h").
  std::string token_ttl = "1h";
  /// SharedKey: the file of the cluster's shared key (engramd token
  /// create-key).
  std::string shared_key;
  /// Revoked tokens: a file of token ids, one a line (engramd token
  /// revoke), read again when it changes.
  std::string revoked_tokens;
  /// OAuth/OIDC: a JWKS file, the issuer, the audience, the agent claim.
  std::string jwks;
  std::string issuer;
  std::string audience;
  std::string agent_claim = "sub";
  /// MTLS: client certificates of the cluster's CA.
  bool client_certificates = true;
  /// Access control: "deny" (default) or "allow"; the model ("" for the
  /// built-in one: every agent on its own memory), and its parts.
  std::string default_policy = "deny";
  std::string model;
  std::map<std::string, std::vector<std::string>> roles;
  std::map<std::string, std::vector<std::string>> assignments;
  std::map<std::string, std::vector<std::string>> capabilities;
  /// ABAC: the policies file (relative: to the config file's directory).
  std::string abac_policies;
};

/// Everything engramd can be told, as given: the file's values, then the
/// flags' (a flag replaces the file's value).
struct settings {
  std::string node_id;
  std::string listen = "127.0.0.1:7420";
  std::string data_dir;
  std::vector<std::string> peers;
  std::string log_level = "info";
  bool sync_writes = true;
  int64_t heartbeat_ms = 200;
  int64_t connection_timeout_ms = 1000;
  /// Nodes whose clocks differ by more do not sync (CockroachDB's
  /// max-offset).
  int64_t max_clock_offset_ms = 500;
  /// CAF scheduler threads (0: CAF's default, one per core, at least 4).
  int64_t threads = 0;
  actors::session_settings sessions;
  /// [consensus]: the Universal scope's Raft group.
  actors::consensus_config consensus;
  std::string port_file;
  /// Placement: the cluster's node ids, replication and partitioning.
  std::vector<std::string> members;
  int64_t replication_factor = 0;
  std::string replication_strategy = "symmetric";
  std::string consistency = "one";
  int64_t write_timeout_ms = 2000;
  int64_t promote_after_ms = 0;
  std::string shard_key;
  std::vector<shard_config> shards;
  std::string partition_strategy = "hash";
  int64_t partition_count = 1;
  int64_t bucket_ms = 3'600'000;
  /// The spec's `DistributionConfig` ([distribution]).
  bool distribution_enabled = true;
  /// Seeds from distribution.federation.discovery (added to `peers`; a
  /// --peer flag replaces both).
  std::vector<std::string> discovered;
  std::string scope_defaults = "spec";
  std::string crdt = "mvr";
  /// Transport security: [distribution.auth] method = { mtls = { ... } },
  /// [distribution.encryption.in_transit], or a certificates directory
  /// (--certs-dir: node.<id>.crt, node.<id>.key, ca.crt, ca.crl if any).
  actors::tls_config tls;
  std::string certs_dir;
  /// Plaintext between nodes: only when asked for ([security] insecure,
  /// --insecure), and beyond loopback only with insecure_beyond_loopback.
  bool insecure = false;
  bool insecure_beyond_loopback = false;
  /// Connections that have not completed the TLS handshake: dropped after
  /// handshake_timeout_ms, at most max_unauthenticated at once and
  /// max_unauthenticated_per_source from one address ([security]).
  int64_t handshake_timeout_ms = 5000;
  int64_t max_unauthenticated = 512;
  int64_t max_unauthenticated_per_source = 64;
  /// Sign every envelope to a peer and take only signed ones ([security]
  /// sign_envelopes; off only to measure what it costs).
  bool sign_envelopes = true;
  /// Only tells and shares sealed end to end leave this node
  /// ([distribution.encryption.e2e], --e2e-required).
  bool e2e_required = false;
  api_settings api;
  /// Encryption at rest: where the store's master key comes from
  /// ([distribution.encryption.at_rest] key_management, --master-key), as
  /// crypto::load_master_key reads it (file:PATH, env:NAME,
  /// command:PROGRAM ARG...); empty keeps the store plain.
  std::string master_key;
  /// Or from HashiCorp Vault (key_management = { vault = { ... } }).
  std::optional<vault_source> vault;
};

/// What the daemon runs with.
struct daemon_config {
  /// The node's configuration, without the callbacks the daemon adds (its
  /// log, its agents' defaults: see `agent_defaults`).
  actors::node_config node;
  actors::endpoint listen;
  std::vector<actors::endpoint> seeds;
  /// One of trace, debug, info, warn, error, off.
  std::string log_level;
  std::chrono::milliseconds heartbeat{200};
  std::chrono::milliseconds connection_timeout{1000};
  /// Scheduler threads (0: CAF's default, one per core, at least 4).
  size_t threads = 0;
  std::string port_file;
  scope_defaults scopes;
  crdt_strategy crdt = crdt_strategy::mvr;
  /// Mutual TLS (its files checked at start: actors::check_tls), unless
  /// `insecure`.
  actors::tls_config tls;
  bool insecure = false;
  actors::connection_limits limits;
  /// The client API (its TLS files are the node's: see `tls`).
  bool api_enabled = true;
  actors::endpoint api_listen;
  std::string api_port_file;
  http::server_config api_server;
  gateway::gateway_config api;
};

/// Reads the TOML file at `path` into `s` (over what `s` holds). Every key
/// must be known: a misspelt key is an error, never silently ignored;
/// features not built yet are refused naming the key.
expected<void> load_file(const std::string& path, settings& s);

/// Resolves a seed ("host:port", "dns:name:port") to endpoints.
using seed_resolver
    = std::function<expected<std::vector<actors::endpoint>>(std::string_view)>;

/// Checks every value of `s` and builds the daemon's configuration; the
/// first error names its key. Seeds are resolved by `resolve` (DNS by
/// default).
expected<daemon_config> validate(const settings& s, const seed_resolver& resolve
                                                    = actors::resolve_seed);

/// "500ms", "30s", "1m", "1h": a positive number and a unit, at most 30
/// days.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& x);

/// The configuration of an agent hosted by the daemon: its memory answers
/// asks (the daemon's agents have no program of their own), with the
/// configured scope defaults and CRDT strategy (federations keep their
/// own rules).
actors::agent_config agent_defaults(const daemon_config& cfg,
                                    const std::string& agent_id);

} // namespace engram::engramd
