// engramd's transport security settings (part of validate(), config.cpp).

#include "apps/engramd/config_security.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>

namespace engram::engramd {

// Transport security: mutual TLS unless plaintext is asked for explicitly,
// and plaintext beyond loopback only with a second, loudly named setting.
expected<void> check_security(const settings& s, daemon_config& v) {
  auto tls = s.tls;
  if (!s.certs_dir.empty()) {
    auto in = [&](const std::string& f) {
      return s.certs_dir + "/" + f;
    };
    if (tls.certificate.empty())
      tls.certificate = in("node." + s.node_id + ".crt");
    if (tls.private_key.empty())
      tls.private_key = in("node." + s.node_id + ".key");
    if (tls.ca.empty())
      tls.ca = in("ca.crt");
    std::error_code ec;
    if (tls.crl.empty() && std::filesystem::exists(in("ca.crl"), ec))
      tls.crl = in("ca.crl");
  }
  if (s.insecure && tls.enabled())
    return make_error(errc::invalid_argument,
                      "security.insecure (--insecure) and TLS "
                      "(distribution.auth mtls, --certs-dir) are both set: "
                      "choose one");
  if (!s.insecure && !tls.enabled())
    return make_error(
        errc::invalid_argument,
        "no transport security: give the node its certificate "
        "(--certs-dir DIR, or [distribution.auth] method = { mtls = { "
        "certificate, private_key, ca } }; make them with `engramd cert`), "
        "or run in plaintext with --insecure ([security] insecure = true)");
  if (s.insecure) {
    auto& h = v.listen.host;
    // A literal loopback address (a name could resolve anywhere).
    in_addr v4{};
    bool loopback = h == "::1" || h == "localhost"
                    || (::inet_pton(AF_INET, h.c_str(), &v4) == 1
                        && (ntohl(v4.s_addr) >> 24) == 127);
    if (!loopback && !s.insecure_beyond_loopback)
      return make_error(
          errc::invalid_argument,
          "listen " + s.listen
              + ": plaintext (--insecure) is refused on an address beyond "
                "loopback: anyone who reaches it is a full peer; use TLS, or "
                "set security.insecure_beyond_loopback = true "
                "(--insecure-beyond-loopback) if the network is trusted");
    v.insecure = true;
    return {};
  }
  for (auto [what, file] : {std::pair<const char*, const std::string*>{
                                "certificate", &tls.certificate},
                            {"private_key", &tls.private_key},
                            {"ca", &tls.ca}})
    if (file->empty())
      return make_error(errc::invalid_argument,
                        "distribution.auth.method.mtls." + std::string{what}
                            + ": not set (TLS needs a certificate, a private "
                              "key and the cluster's CA)");
  if (tls.min_version != "1.3" && tls.min_version != "1.2")
    return make_error(errc::invalid_argument,
                      "distribution.encryption.in_transit.min_tls_version: '"
                          + tls.min_version + "' (1.3 or 1.2)");
  for (auto& suite : tls.cipher_suites)
    if (std::find(actors::tls13_suites().begin(), actors::tls13_suites().end(),
                  suite)
        == actors::tls13_suites().end())
      return make_error(
          errc::invalid_argument,
          "distribution.encryption.in_transit.cipher_suites: '" + suite
              + "' is not a TLS 1.3 suite (TLS_AES_256_GCM_SHA384, "
                "TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256)");
  v.tls = std::move(tls);
  if (s.handshake_timeout_ms < 100 || s.handshake_timeout_ms > 60'000)
    return make_error(errc::invalid_argument,
                      "security.handshake_timeout_ms must be 100 to 60000");
  if (s.max_unauthenticated < 1 || s.max_unauthenticated > 100'000)
    return make_error(errc::invalid_argument,
                      "security.max_unauthenticated must be 1 to 100000");
  if (s.max_unauthenticated_per_source < 1
      || s.max_unauthenticated_per_source > s.max_unauthenticated)
    return make_error(errc::invalid_argument,
                      "security.max_unauthenticated_per_source must be 1 to "
                      "security.max_unauthenticated");
  v.limits.handshake_timeout
      = std::chrono::milliseconds{s.handshake_timeout_ms};
  v.limits.max_unauthenticated = static_cast<size_t>(s.max_unauthenticated);
  v.limits.max_unauthenticated_per_source
      = static_cast<size_t>(s.max_unauthenticated_per_source);
  return {};
}

} // namespace engram::engramd
