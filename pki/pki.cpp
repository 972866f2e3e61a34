#include "pki/pki.hpp"

#include "core/scope.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace engram::pki {

namespace {

constexpr std::string_view node_uri = "urn:engram:node:";
constexpr std::string_view agent_uri = "urn:engram:agent:";

X509* x(void* p) { return static_cast<X509*>(p); }
EVP_PKEY* k(void* p) { return static_cast<EVP_PKEY*>(p); }
X509_CRL* c(void* p) { return static_cast<X509_CRL*>(p); }

// OpenSSL's queued errors, as text (and cleared).
std::string ssl_errors() {
  std::string out;
  while (auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty())
      out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

error failed(const std::string& what) {
  return make_error(errc::invalid_argument, what + ": " + ssl_errors());
}

error unauthenticated(const std::string& why) {
  ERR_clear_error();
  return make_error(errc::unauthenticated, why);
}

struct bio_deleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;

bio_ptr read_bio(std::string_view text) {
  return bio_ptr{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
}

std::string bio_text(BIO* b) {
  char* data = nullptr;
  auto n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string{data, static_cast<size_t>(n)} : std::string{};
}

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 0xf];
  }
  return out;
}

int64_t to_epoch(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1)
    return 0;
  return static_cast<int64_t>(timegm(&tm));
}

// The URI SANs of a certificate.
std::vector<std::string> uris(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr)
    return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    auto* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_URI) {
      auto* s = n->d.uniformResourceIdentifier;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  auto* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr)
    return false;
  auto ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A fresh certificate with a random serial, the validity, and a subject
// whose common name is `cn`.
X509* new_cert(const std::string& cn, const issue_options& opts,
               std::chrono::hours lifetime) {
  auto* cert = X509_new();
  if (cert == nullptr)
    return nullptr;
  X509_set_version(cert, 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f; // positive
  auto* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert), opts.starts_in.count());
  X509_gmtime_adj(
      X509_getm_notAfter(cert),
      opts.starts_in.count()
          + std::chrono::duration_cast<std::chrono::seconds>(lifetime).count());
  auto* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Engram"),
                             -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  return cert;
}

bool is_ip(const std::string& host) {
  return !host.empty()
         && (host.find(':') != std::string::npos
             || std::all_of(host.begin(), host.end(), [](char ch) {
                  return (ch >= '0' && ch <= '9') || ch == '.';
                }));
}

bool valid_host(const std::string& host) {
  if (host.empty() || host.size() > 253)
    return false;
  return std::all_of(host.begin(), host.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == ':'
           || ch == '*';
  });
}

expected<std::string> read_file(const std::string& path, const char* what) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::invalid_argument, std::string{"cannot read the "}
                                                  + what + " " + path + ": "
                                                  + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

} // namespace

const char* to_string(role r) noexcept {
  switch (r) {
    case role::ca: return "ca";
    case role::node: return "node";
    case role::client: return "client";
  }
  return "unknown";
}

// -- certificate --------------------------------------------------------------

certificate::certificate() = default;

certificate::~certificate() { X509_free(x(x509_)); }

certificate::certificate(certificate&& other) noexcept : x509_(other.x509_) {
  other.x509_ = nullptr;
}

certificate& certificate::operator=(certificate&& other) noexcept {
  std::swap(x509_, other.x509_);
  return *this;
}

certificate::certificate(const certificate& other) : x509_(other.x509_) {
  if (x509_ != nullptr)
    X509_up_ref(x(x509_));
}

certificate& certificate::operator=(const certificate& other) {
  certificate tmp{other};
  std::swap(x509_, tmp.x509_);
  return *this;
}

expected<certificate> certificate::from_pem(std::string_view pem,
                                            const std::string& what) {
  auto b = read_bio(pem);
  auto* cert = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr);
  if (cert == nullptr)
    return failed(what + " is not a PEM certificate");
  return certificate{cert};
}

std::string certificate::to_pem() const {
  bio_ptr b{BIO_new(BIO_s_mem())};
  PEM_write_bio_X509(b.get(), x(x509_));
  return bio_text(b.get());
}

std::string certificate::id() const {
  for (auto& u : uris(x(x509_))) {
    if (u.rfind(node_uri, 0) == 0)
      return u.substr(node_uri.size());
    if (u.rfind(agent_uri, 0) == 0)
      return u.substr(agent_uri.size());
  }
  return {};
}

role certificate::role() const {
  if (X509_check_ca(x(x509_)) != 0)
    return role::ca;
  for (auto& u : uris(x(x509_)))
    if (u.rfind(agent_uri, 0) == 0)
      return role::client;
  return role::node;
}

std::string certificate::common_name() const {
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(x(x509_)), NID_commonName,
                            buf, sizeof(buf));
  return buf;
}

std::vector<std::string> certificate::hosts() const {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x(x509_), NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr)
    return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    auto* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) {
      auto* s = n->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (n->type == GEN_IPADD) {
      auto* s = n->d.iPAddress;
      auto* p = ASN1_STRING_get0_data(s);
      if (ASN1_STRING_length(s) == 4) {
        out.push_back(std::to_string(p[0]) + "." + std::to_string(p[1]) + "."
                      + std::to_string(p[2]) + "." + std::to_string(p[3]));
      } else {
        out.push_back("ipv6:"
                      + hex(p, static_cast<size_t>(ASN1_STRING_length(s))));
      }
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

int64_t certificate::not_before() const {
  return to_epoch(X509_get0_notBefore(x(x509_)));
}

int64_t certificate::not_after() const {
  return to_epoch(X509_get0_notAfter(x(x509_)));
}

std::string certificate::serial() const {
  auto* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x(x509_)), nullptr);
  auto* text = BN_bn2hex(bn);
  std::string out = text != nullptr ? text : "";
  OPENSSL_free(text);
  BN_free(bn);
  std::transform(out.begin(), out.end(), out.begin(), [](char ch) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  });
  return out;
}

std::string certificate::fingerprint() const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(x(x509_), EVP_sha256(), md, &n);
  return hex(md, n);
}

// -- private_key
// ----------------------------------------------------------------

private_key::private_key() = default;

private_key::~private_key() { EVP_PKEY_free(k(pkey_)); }

private_key::private_key(private_key&& other) noexcept : pkey_(other.pkey_) {
  other.pkey_ = nullptr;
}

private_key& private_key::operator=(private_key&& other) noexcept {
  std::swap(pkey_, other.pkey_);
  return *this;
}

expected<private_key> private_key::generate() {
  auto* pkey = EVP_EC_gen("P-256");
  if (pkey == nullptr)
    return failed("cannot generate a P-256 key");
  return private_key{pkey};
}

expected<private_key> private_key::from_pem(std::string_view pem,
                                            const std::string& what) {
  auto b = read_bio(pem);
  auto* pkey = PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr);
  if (pkey == nullptr)
    return failed(what + " is not a PEM private key");
  return private_key{pkey};
}

std::string private_key::to_pem() const {
  bio_ptr b{BIO_new(BIO_s_mem())};
  PEM_write_bio_PrivateKey(b.get(), k(pkey_), nullptr, nullptr, 0, nullptr,
                           nullptr);
  return bio_text(b.get());
}

expected<std::string> private_key::sign(std::string_view data) const {
  auto* md = EVP_MD_CTX_new();
  size_t n = 0;
  std::string sig;
  bool ok
      = md != nullptr
        && EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, k(pkey_)) == 1
        && EVP_DigestSign(md, nullptr, &n,
                          reinterpret_cast<const unsigned char*>(data.data()),
                          data.size())
               == 1;
  if (ok) {
    sig.resize(n);
    ok = EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &n,
                        reinterpret_cast<const unsigned char*>(data.data()),
                        data.size())
         == 1;
    sig.resize(n);
  }
  EVP_MD_CTX_free(md);
  if (!ok)
    return failed("cannot sign");
  return sig;
}

bool private_key::matches(const certificate& cert) const {
  return pkey_ != nullptr && cert.native() != nullptr
         && X509_check_private_key(x(cert.native()), k(pkey_)) == 1;
}

// -- revocation_list
// ------------------------------------------------------------

revocation_list::revocation_list() = default;

revocation_list::~revocation_list() { X509_CRL_free(c(crl_)); }

revocation_list::revocation_list(revocation_list&& other) noexcept
    : crl_(other.crl_) {
  other.crl_ = nullptr;
}

revocation_list& revocation_list::operator=(revocation_list&& other) noexcept {
  std::swap(crl_, other.crl_);
  return *this;
}

expected<revocation_list> revocation_list::from_pem(std::string_view pem,
                                                    const std::string& what) {
  auto b = read_bio(pem);
  auto* crl = PEM_read_bio_X509_CRL(b.get(), nullptr, nullptr, nullptr);
  if (crl == nullptr)
    return failed(what + " is not a PEM revocation list");
  return revocation_list{crl};
}

std::string revocation_list::to_pem() const {
  bio_ptr b{BIO_new(BIO_s_mem())};
  PEM_write_bio_X509_CRL(b.get(), c(crl_));
  return bio_text(b.get());
}

bool revocation_list::issued_by(const certificate& ca) const {
  if (crl_ == nullptr || ca.native() == nullptr)
    return false;
  auto* issuer = X509_CRL_get_issuer(c(crl_));
  auto* key = X509_get0_pubkey(x(ca.native()));
  return issuer != nullptr && key != nullptr
         && X509_NAME_cmp(issuer, X509_get_subject_name(x(ca.native()))) == 0
         && X509_CRL_verify(c(crl_), key) == 1;
}

bool revocation_list::revokes(const certificate& cert) const {
  X509_REVOKED* entry = nullptr;
  return crl_ != nullptr && cert.native() != nullptr
         && X509_CRL_get0_by_serial(c(crl_), &entry,
                                    X509_get_serialNumber(x(cert.native())))
                == 1;
}

size_t revocation_list::size() const {
  if (crl_ == nullptr)
    return 0;
  auto* revoked = X509_CRL_get_REVOKED(c(crl_));
  return revoked == nullptr ? 0
                            : static_cast<size_t>(sk_X509_REVOKED_num(revoked));
}

// -- issuing
// ---------------------------------------------------------------------

expected<certificate> make_ca(const private_key& key, const std::string& name,
                              const issue_options& opts) {
  if (auto ok = validate_name(name, "cluster name"); !ok)
    return ok.error_value();
  auto* cert = new_cert("Engram CA " + name, opts, opts.lifetime * 10);
  if (cert == nullptr)
    return failed("cannot make a certificate");
  certificate result{cert};
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_set_pubkey(cert, k(key.native()));
  if (!add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")
      || !add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign")
      || !add_ext(cert, cert, NID_subject_key_identifier, "hash"))
    return failed("cannot add the CA's extensions");
  if (X509_sign(cert, k(key.native()), EVP_sha256()) == 0)
    return failed("cannot sign the CA certificate");
  return result;
}

expected<certificate> issue(const certificate& ca, const private_key& ca_key,
                            role r, const std::string& id,
                            const private_key& subject_key,
                            const issue_options& opts) {
  if (r == role::ca)
    return make_error(errc::invalid_argument,
                      "issue makes node and client certificates; make_ca "
                      "makes a CA");
  auto what = r == role::node ? "node id" : "agent id";
  if (auto ok = validate_name(id, what); !ok)
    return ok.error_value();
  if (!ca_key.matches(ca))
    return make_error(errc::invalid_argument,
                      "the CA key does not belong to the CA certificate");
  std::string san = std::string{"URI:"}
                    + std::string{r == role::node ? node_uri : agent_uri} + id;
  for (auto& h : opts.hosts) {
    if (!valid_host(h))
      return make_error(errc::invalid_argument,
                        "'" + h + "' is not a host name or IP address");
    san += (is_ip(h) ? ",IP:" : ",DNS:") + h;
  }
  auto* cert = new_cert(id, opts, opts.lifetime);
  if (cert == nullptr)
    return failed("cannot make a certificate");
  certificate result{cert};
  X509_set_issuer_name(cert, X509_get_subject_name(x(ca.native())));
  X509_set_pubkey(cert, k(subject_key.native()));
  auto usage = r == role::node ? "serverAuth,clientAuth" : "clientAuth";
  if (!add_ext(cert, x(ca.native()), NID_basic_constraints, "critical,CA:FALSE")
      || !add_ext(cert, x(ca.native()), NID_key_usage,
                  "critical,digitalSignature")
      || !add_ext(cert, x(ca.native()), NID_ext_key_usage, usage)
      || !add_ext(cert, x(ca.native()), NID_subject_alt_name, san)
      || !add_ext(cert, x(ca.native()), NID_authority_key_identifier,
                  "keyid:always"))
    return failed("cannot add the certificate's extensions");
  if (X509_sign(cert, k(ca_key.native()), EVP_sha256()) == 0)
    return failed("cannot sign the certificate");
  return result;
}

expected<revocation_list> revoke(const certificate& ca,
                                 const private_key& ca_key,
                                 const std::vector<certificate>& revoked,
                                 const revocation_list* base) {
  if (!ca_key.matches(ca))
    return make_error(errc::invalid_argument,
                      "the CA key does not belong to the CA certificate");
  auto* crl = X509_CRL_new();
  if (crl == nullptr)
    return failed("cannot make a revocation list");
  revocation_list result{crl};
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, X509_get_subject_name(x(ca.native())));
  auto* now = ASN1_TIME_set(nullptr, std::time(nullptr));
  auto* next = ASN1_TIME_set(nullptr, std::time(nullptr) + 365L * 86400);
  X509_CRL_set1_lastUpdate(crl, now);
  X509_CRL_set1_nextUpdate(crl, next);
  auto add = [&](const ASN1_INTEGER* serial) {
    auto* entry = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(entry, const_cast<ASN1_INTEGER*>(serial));
    X509_REVOKED_set_revocationDate(entry, now);
    X509_CRL_add0_revoked(crl, entry);
  };
  if (base != nullptr && base->native() != nullptr)
    if (auto* old = X509_CRL_get_REVOKED(c(base->native())))
      for (int i = 0; i < sk_X509_REVOKED_num(old); ++i)
        add(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(old, i)));
  for (auto& cert : revoked)
    if (base == nullptr || !base->revokes(cert))
      add(X509_get0_serialNumber(x(cert.native())));
  ASN1_TIME_free(now);
  ASN1_TIME_free(next);
  X509_CRL_sort(crl);
  if (X509_CRL_sign(crl, k(ca_key.native()), EVP_sha256()) == 0)
    return failed("cannot sign the revocation list");
  return result;
}

// -- checking
// --------------------------------------------------------------------

expected<void> verify(const certificate& cert, const certificate& ca,
                      const revocation_list* crl, int64_t now_s,
                      role expected_role, const std::string& expected_id) {
  if (cert.native() == nullptr || ca.native() == nullptr)
    return unauthenticated("no certificate");
  auto* store = X509_STORE_new();
  auto* ctx = X509_STORE_CTX_new();
  X509_STORE_add_cert(store, x(ca.native()));
  X509_STORE_CTX_init(ctx, store, x(cert.native()), nullptr);
  X509_STORE_CTX_set_time(ctx, 0, static_cast<time_t>(now_s));
  auto ok = X509_verify_cert(ctx) == 1;
  auto code = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  auto name = cert.id().empty() ? cert.common_name() : cert.id();
  if (!ok) {
    if (code == X509_V_ERR_CERT_HAS_EXPIRED)
      return unauthenticated("the certificate of " + name + " expired");
    if (code == X509_V_ERR_CERT_NOT_YET_VALID)
      return unauthenticated("the certificate of " + name
                             + " is not valid yet");
    return unauthenticated(
        "the certificate of " + name + " is not issued by this cluster's CA ("
        + std::string{X509_verify_cert_error_string(code)} + ")");
  }
  if (crl != nullptr && crl->revokes(cert))
    return unauthenticated("the certificate of " + name + " (serial "
                           + cert.serial() + ") is revoked");
  if (cert.role() != expected_role)
    return unauthenticated("the certificate of " + name + " is a "
                           + to_string(cert.role()) + " certificate, not a "
                           + to_string(expected_role) + " certificate");
  if (!expected_id.empty() && cert.id() != expected_id)
    return unauthenticated(std::string{"the certificate names "}
                           + to_string(expected_role) + " '" + cert.id()
                           + "', not '" + expected_id + "'");
  return {};
}

bool verify_signature(const certificate& cert, std::string_view data,
                      std::string_view signature) {
  if (cert.native() == nullptr)
    return false;
  auto* pub = X509_get0_pubkey(x(cert.native()));
  auto* md = EVP_MD_CTX_new();
  bool ok
      = pub != nullptr && md != nullptr
        && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, pub) == 1
        && EVP_DigestVerify(
               md, reinterpret_cast<const unsigned char*>(signature.data()),
               signature.size(),
               reinterpret_cast<const unsigned char*>(data.data()), data.size())
               == 1;
  EVP_MD_CTX_free(md);
  ERR_clear_error();
  return ok;
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                 static_cast<int>(n))
      != 1)
    throw std::runtime_error("the CSPRNG failed: " + ssl_errors());
  return out;
}

// -- files
// -----------------------------------------------------------------------

expected<certificate> load_certificate(const std::string& path) {
  auto text = read_file(path, "certificate");
  if (!text)
    return text.error_value();
  return certificate::from_pem(*text, "the certificate " + path);
}

expected<private_key> load_private_key(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return make_error(errc::invalid_argument, "cannot read the private key "
                                                  + path + ": "
                                                  + std::strerror(errno));
  if ((st.st_mode & 077) != 0)
    return make_error(errc::permission_denied,
                      "the private key " + path
                          + " may be read by others (mode "
                          + std::to_string((st.st_mode >> 6) & 7)
                          + std::to_string((st.st_mode >> 3) & 7)
                          + std::to_string(st.st_mode & 7) + "): chmod 600 it");
  auto text = read_file(path, "private key");
  if (!text)
    return text.error_value();
  return private_key::from_pem(*text, "the private key " + path);
}

expected<revocation_list> load_revocation_list(const std::string& path) {
  auto text = read_file(path, "revocation list");
  if (!text)
    return text.error_value();
  return revocation_list::from_pem(*text, "the revocation list " + path);
}

expected<void> write_file(const std::string& path, const std::string& text,
                          unsigned mode, bool overwrite) {
  auto flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
  auto fd = ::open(path.c_str(), flags, static_cast<mode_t>(mode));
  if (fd < 0)
    return make_error(
        errno == EEXIST ? errc::invalid_argument : errc::storage_failed,
        errno == EEXIST ? path + " exists (--overwrite replaces it)"
                        : "cannot write " + path + ": " + std::strerror(errno));
  // The mode holds whatever the umask (and an existing file's mode).
  bool ok = ::fchmod(fd, static_cast<mode_t>(mode)) == 0;
  size_t done = 0;
  while (ok && done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    ok = n > 0;
    if (ok)
      done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  auto err = errno;
  ::close(fd);
  if (!ok)
    return make_error(errc::storage_failed,
                      "cannot write " + path + ": " + std::strerror(err));
  return {};
}

} // namespace engram::pki
