#pragma once

// The cluster's public-key infrastructure (OpenSSL EVP and X.509; no CAF, no
// network): a certificate authority per cluster, a certificate per node
// (its node id in a subject alternative name), a certificate per client
// agent, a revocation list; checking a peer's certificate against them;
// signing and verifying the greeting's challenge with a certificate's key.
//
// Names in certificates: a node's id is the URI SAN `urn:engram:node:<id>`,
// a client agent's `urn:engram:agent:<id>`; `--host` names are DNS or IP
// SANs. Keys are ECDSA P-256; signatures ECDSA with SHA-256.

#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace engram::pki {

/// Who a certificate is for.
enum class role : uint8_t { ca, node, client };

const char* to_string(role r) noexcept;

/// A loaded certificate (X.509).
class certificate {
public:
  certificate();
  ~certificate();
  certificate(certificate&&) noexcept;
  certificate& operator=(certificate&&) noexcept;
  certificate(const certificate&);
  certificate& operator=(const certificate&);

  /// Parses one PEM certificate; `what` names it in errors.
  static expected<certificate> from_pem(std::string_view pem,
                                        const std::string& what);

  std::string to_pem() const;

  /// The node id (or agent id for a client certificate) it names; empty
  /// when it names none.
  std::string id() const;

  /// What the certificate is for (from its SAN and basic constraints).
  pki::role role() const;

  /// Its subject's common name.
  std::string common_name() const;

  /// DNS and IP subject alternative names.
  std::vector<std::string> hosts() const;

  /// Validity, in seconds since the epoch.
  int64_t not_before() const;
  int64_t not_after() const;

  /// The serial number, hex.
  std::string serial() const;

  /// SHA-256 of the DER encoding, hex (what `list` shows).
  std::string fingerprint() const;

  void* native() const noexcept { return x509_; }

  /// Takes ownership of an OpenSSL X509*.
  explicit certificate(void* x509) noexcept : x509_(x509) {}

private:
  void* x509_ = nullptr;
};

/// A private key (ECDSA P-256).
class private_key {
public:
  private_key();
  ~private_key();
  private_key(private_key&&) noexcept;
  private_key& operator=(private_key&&) noexcept;
  private_key(const private_key&) = delete;
  private_key& operator=(const private_key&) = delete;

  static expected<private_key> generate();

  /// Parses a PEM private key; `what` names it in errors.
  static expected<private_key> from_pem(std::string_view pem,
                                        const std::string& what);

  std::string to_pem() const;

  /// ECDSA-SHA256 signature of `data`.
  expected<std::string> sign(std::string_view data) const;

  /// True when `cert` holds this key's public half.
  bool matches(const certificate& cert) const;

  void* native() const noexcept { return pkey_; }

  /// Takes ownership of an OpenSSL EVP_PKEY*.
  explicit private_key(void* pkey) noexcept : pkey_(pkey) {}

private:
  void* pkey_ = nullptr;
};

/// A certificate revocation list issued by the cluster's CA.
class revocation_list {
public:
  revocation_list();
  ~revocation_list();
  revocation_list(revocation_list&&) noexcept;
  revocation_list& operator=(revocation_list&&) noexcept;
  revocation_list(const revocation_list&) = delete;
  revocation_list& operator=(const revocation_list&) = delete;

  static expected<revocation_list> from_pem(std::string_view pem,
                                            const std::string& what);

  std::string to_pem() const;

  /// True when it lists `cert`'s serial number.
  bool revokes(const certificate& cert) const;
  /// True when `ca` issued and signed it (a list of another CA, or one
  /// whose signature does not verify, revokes nothing of ours).
  bool issued_by(const certificate& ca) const;

  size_t size() const;

  void* native() const noexcept { return crl_; }

  /// Takes ownership of an OpenSSL X509_CRL*.
  explicit revocation_list(void* crl) noexcept : crl_(crl) {}

private:
  void* crl_ = nullptr;
};

/// What a new certificate is made with.
struct issue_options {
  /// Validity from now (a node's or client's; a CA's is ten times this).
  std::chrono::hours lifetime{24 * 365};
  /// Start of validity relative to now (negative: in the past; tests make
  /// expired certificates with it).
  std::chrono::seconds starts_in{-60};
  /// DNS names or IP addresses the node is reached at.
  std::vector<std::string> hosts;
};

/// A self-signed CA certificate for a cluster named `name`.
expected<certificate> make_ca(const private_key& key, const std::string& name,
                              const issue_options& opts = {});

/// A certificate for `id` (a node id or client agent id, checked against
/// the ids' character set) signed by the CA.
expected<certificate> issue(const certificate& ca, const private_key& ca_key,
                            role r, const std::string& id,
                            const private_key& subject_key,
                            const issue_options& opts = {});

/// A revocation list signed by the CA, listing `revoked` (and what `base`
/// listed).
expected<revocation_list> revoke(const certificate& ca,
                                 const private_key& ca_key,
                                 const std::vector<certificate>& revoked,
                                 const revocation_list* base = nullptr);

/// Checks that `cert` is signed by `ca`, valid at `now_s` (seconds since the
/// epoch), not revoked by `crl` (when given), for `expected_role`, and
/// names `expected_id` (when not empty). The error (`unauthenticated`) says
/// which check failed.
expected<void> verify(const certificate& cert, const certificate& ca,
                      const revocation_list* crl, int64_t now_s,
                      role expected_role, const std::string& expected_id = {});

/// Verifies an ECDSA-SHA256 `signature` of `data` by `cert`'s key.
bool verify_signature(const certificate& cert, std::string_view data,
                      std::string_view signature);

/// `n` random bytes from OpenSSL's CSPRNG.
std::string random_bytes(size_t n);

// -- files --------------------------------------------------------------

/// Reads a certificate file.
expected<certificate> load_certificate(const std::string& path);

/// Reads a private key file: refused when group or others may read it.
expected<private_key> load_private_key(const std::string& path);

/// Reads a revocation list file.
expected<revocation_list> load_revocation_list(const std::string& path);

/// Writes `text` to `path` with mode `mode` (0600 for keys, 0644 for
/// certificates): refused when the file exists and `overwrite` is false.
expected<void> write_file(const std::string& path, const std::string& text,
                          unsigned mode, bool overwrite);

} // namespace engram::pki
