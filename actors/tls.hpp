#pragma once

// Transport security: mutual TLS between nodes (and between a client and a
// node) through CAF's openssl module, closed where CAF 0.17 leaves it open.
// CAF falls back to anonymous TLS 1.2 when no keys are set and never sets a
// minimum version; a node configured for TLS here always has a certificate,
// a key and a CA (checked before anything starts: CAF terminates the
// process on a missing file), and this process's OpenSSL policy refuses
// anything below the configured minimum version and any suite not listed.
// Unauthenticated bytes then never reach CAF's BASP parser: the TLS
// handshake refuses a peer without a certificate of the cluster's CA.

#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace caf {
class actor_system_config;
} // namespace caf

namespace engram::actors {

/// Where a process's certificate, key, CA and revocation list are, and the
/// TLS policy (the spec's InTransitEncryption).
struct tls_config {
  std::string certificate;
  std::string private_key;
  std::string ca;
  /// A revocation list of the CA (empty: none).
  std::string crl;
  /// "1.3" (the default) or "1.2".
  std::string min_version = "1.3";
  /// TLS 1.3 suites (OpenSSL names, e.g. TLS_AES_256_GCM_SHA384); empty:
  /// every TLS 1.3 suite of tls13_suites().
  std::vector<std::string> cipher_suites;

  /// True when any file is set (then all three must be).
  bool enabled() const noexcept {
    return !certificate.empty() || !private_key.empty() || !ca.empty();
  }
};

/// The TLS 1.3 suites this build accepts in `cipher_suites`.
const std::vector<std::string>& tls13_suites();

/// What a certificate must be for: a node (its id named in it) or a client
/// agent.
enum class tls_role { node, client };

/// Checks a TLS configuration before anything starts: the certificate, key
/// and CA are set and readable, the key is private (mode 0600) and belongs
/// to the certificate, which the CA issued for `id` in `role`, is valid now
/// and not revoked; the version and suites are ones this build enforces.
/// The error names the file or setting and what is wrong with it.
expected<void> check_tls(const tls_config& tls, tls_role role,
                         const std::string& id);

/// Sets this process's TLS policy — the minimum version and the suites — for
/// every TLS connection OpenSSL makes from now on. Call once, first thing
/// (before anything else uses OpenSSL).
expected<void> apply_tls_policy(const tls_config& tls);

/// What a TLS probe found.
enum class probe_result { ok, unreachable, no_handshake };

/// Whether a TLS handshake with `host:port`, with this certificate and CA,
/// completes within `timeout` (unreachable: no TCP connection at all).
/// CAF 0.17 starts a handshake it never gives up on (and spins on) against
/// a peer that accepts connections but never answers, a frozen process:
/// connect_remote probes first.
probe_result tls_probe(const std::string& host, uint16_t port,
                       const tls_config& tls,
                       std::chrono::milliseconds timeout);

/// What a node signs to prove its id: `purpose` ("node-proof": a node
/// answering a connecting peer's challenge; "peer": a node asking to be a
/// peer), the challenge, who claims and who is asked, and the public key
/// the claimer signs its envelopes with (bound to its certificate so).
std::string proof_message(const std::string& purpose,
                          const std::string& challenge,
                          const std::string& claimer,
                          const std::string& verifier,
                          const std::string& signing_key = {});

/// Limits on connections that have not completed the TLS handshake (CAF
/// accepts without limit: idle or slow connections could exhaust the node's
/// file descriptors and lock peers and clients out).
struct connection_limits {
  /// A connection that has not completed the handshake by then is dropped.
  std::chrono::milliseconds handshake_timeout{5000};
  /// At most this many such connections at once, and from one address.
  size_t max_unauthenticated = 512;
  size_t max_unauthenticated_per_source = 64;
};

/// Turns the limits on for every connection this process accepts from now
/// on (a node serving mutual TLS; `on_refused` is told about refusals, at
/// most once a second: the reason and the source address).
void limit_connections(
    const connection_limits& limits,
    std::function<void(const std::string& reason, const std::string& source)>
        on_refused
    = nullptr);

/// True when the peer certificate of the TLS connection `ssl` (an SSL*)
/// is in the revocation list configure_tls loaded.
bool revoked_peer(void* ssl);

/// From now on, a connection this process accepts on local port `port`
/// (the mesh's) completes its TLS handshake only with a node certificate:
/// clients, whose certificates open the client API, never reach the node's
/// actors (logged like other refusals).
void mesh_accepts_nodes_only(uint16_t port);

/// From now on, a TLS connection CAF dials from this process completes
/// only with a server presenting a node certificate (a node dials nodes).
void dial_nodes_only();

/// Who the peer of a live TLS connection is, by its certificate.
struct tls_peer_identity {
  /// "node" or "client" (pki::to_string of the certificate's role).
  std::string role;
  std::string id;
};

/// The identity that the certificate of the peer at `addr`:`port` names, on
/// this process's live TLS connections: each connection's peer certificate
/// is recorded when its handshake completes and forgotten when the
/// connection closes. CAF tells which connection carries a node's messages
/// (the middleman actor's `get_atom` answers with its remote address and
/// port); this binds the node to a certificate. Empty when no live
/// connection has that peer, or when connections to it disagree.
std::optional<tls_peer_identity> tls_peer_at(const std::string& addr,
                                             uint16_t port);

/// Why the connection to `addr`:`port` (a node's, as CAF reports it) is not
/// node `node_id`'s by its TLS certificate; empty when it is.
std::string not_node_connection(const std::string& addr, uint16_t port,
                                const std::string& node_id);

/// Loads CAF's openssl module with the certificate, key and CA: publish and
/// connect_remote (actors/net.hpp) then speak mutual TLS only. Call after
/// configure_network and check_tls.
void configure_tls(caf::actor_system_config& cfg, const tls_config& tls);

} // namespace engram::actors
