#include "api/auth.hpp"

#include "core/scope.hpp"

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "pki/pki.hpp"

namespace engram::api {

using json = nlohmann::json;

namespace {

error refused(std::string message) {
  return make_error(errc::unauthenticated, std::move(message));
}

// The whole file, or an error naming it.
expected<std::string> read_file(const std::string& path, const char* what) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::invalid_argument,
                      std::string{"cannot read "} + what + " '" + path + "'");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A JSON object from untrusted text (no exceptions escape).
expected<json> parse_object(std::string_view text, const char* what) {
  auto j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(errc::parse_error,
                      std::string{what} + " is not a JSON object");
  return j;
}

template<class T>
bool get_to(const json& j, const char* name, T& out) {
  auto i = j.find(name);
  if (i == j.end())
    return false;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!i->is_string())
      return false;
  } else {
    if (!i->is_number_integer())
      return false;
  }
  out = i->get<T>();
  return true;
}

std::vector<std::string> string_list(const json& j, const char* name) {
  std::vector<std::string> out;
  auto i = j.find(name);
  if (i != j.end() && i->is_array())
    for (auto& x : *i)
      if (x.is_string())
        out.push_back(x.get<std::string>());
  return out;
}

} // namespace

// -- encodings
// ------------------------------------------------------------------

std::string base64url_encode(std::string_view bytes) {
  static constexpr char digits[]
      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) {
    return uint32_t{static_cast<unsigned char>(bytes[k])};
  };
  for (; i + 2 < bytes.size(); i += 3) {
    auto n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6)
      out += digits[(n >> shift) & 63];
  }
  if (auto rest = bytes.size() - i; rest > 0) {
    uint32_t n = at(i) << 16;
    if (rest == 2)
      n |= at(i + 1) << 8;
    out += digits[(n >> 18) & 63];
    out += digits[(n >> 12) & 63];
    if (rest == 2)
      out += digits[(n >> 6) & 63];
  }
  return out;
}

namespace {

// Base64 of either alphabet: standard (+/, padding to a multiple of four)
// or url (-_, padding optional).
expected<std::string> decode64(std::string_view text, bool url) {
  auto value = [url](char c) -> int {
    if (c >= 'A' && c <= 'Z')
      return c - 'A';
    if (c >= 'a' && c <= 'z')
      return c - 'a' + 26;
    if (c >= '0' && c <= '9')
      return c - '0' + 52;
    if (c == (url ? '-' : '+'))
      return 62;
    if (c == (url ? '_' : '/'))
      return 63;
    return -1;
  };
  if (!url && text.size() % 4 != 0)
    return make_error(errc::parse_error, "base64 text of a bad length");
  if (url && text.find('=') != std::string_view::npos)
    return make_error(errc::parse_error, "base64url text has no padding");
  for (int pad = 0; pad < 2 && !text.empty() && text.back() == '='; ++pad)
    text.remove_suffix(1);
  if (text.size() % 4 == 1)
    return make_error(errc::parse_error, "base64 text of a bad length");
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (auto c : text) {
    auto v = value(c);
    if (v < 0)
      return make_error(errc::parse_error, "not base64 text");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // The bits left over must be zero: one text per byte string (a MAC's
  // encoding is not malleable).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
    return make_error(errc::parse_error, "not canonical base64 text");
  return out;
}

} // namespace

expected<std::string> base64url_decode(std::string_view text) {
  return decode64(text, true);
}

expected<std::string> base64_decode(std::string_view text) {
  return decode64(text, false);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
       &len);
  return std::string{reinterpret_cast<char*>(mac), len};
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size()
         && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// -- shared-key tokens
// ----------------------------------------------------------

namespace {

constexpr std::string_view token_prefix = "egk1.";
constexpr int64_t clock_skew_s = 30;

} // namespace

expected<std::string> load_shared_key(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return make_error(errc::invalid_argument,
                      "cannot read the shared key '" + path + "'");
  if ((st.st_mode & 077) != 0)
    return make_error(errc::invalid_argument,
                      "the shared key '" + path
                          + "' may be read by others: make it 0600");
  auto key = read_file(path, "the shared key");
  if (!key)
    return key;
  if (key->size() < 32)
    return make_error(errc::invalid_argument,
                      "the shared key '" + path + "' is shorter than 32 bytes");
  return key;
}

expected<void> create_shared_key(const std::string& path) {
  auto fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_error(errc::invalid_argument,
                      "cannot create the shared key '" + path
                          + "' (it exists, or the directory is not writable)");
  auto key = pki::random_bytes(32);
  auto n = ::write(fd, key.data(), key.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(key.size()))
    return make_error(errc::storage_failed,
                      "cannot write the shared key '" + path + "'");
  return {};
}

std::string new_token_id() {
  unsigned char raw[8];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    throw std::runtime_error("the random generator failed");
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (auto b : raw) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

expected<std::string> token_id_of(std::string_view token) {
  auto first = token.find('.');
  if (first == std::string_view::npos)
    return make_error(errc::invalid_argument, "not an Engram token");
  auto second = token.find('.', first + 1);
  auto part = token.substr(first + 1, second == std::string_view::npos
                                          ? std::string_view::npos
                                          : second - first - 1);
  auto raw = base64url_decode(part);
  if (!raw)
    return make_error(errc::invalid_argument, "not an Engram token");
  auto j = parse_object(*raw, "the token's claims");
  std::string id;
  if (!j || (!get_to(*j, "jti", id) && !get_to(*j, "id", id)) || id.empty())
    return make_error(errc::invalid_argument,
                      "the token carries no id (issued by an older engramd?)");
  return id;
}

expected<revocation_list> revocation_list::load(std::string path) {
  revocation_list r;
  r.path_ = std::move(path);
  if (r.path_.empty())
    return r;
  std::ifstream in{r.path_};
  if (!in)
    return make_error(errc::invalid_argument,
                      "cannot read the revoked tokens file '" + r.path_ + "'");
  r.reload();
  return r;
}

void revocation_list::reload() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0)
    return; // gone: the last list stays
  auto mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000
               + st.st_mtim.tv_nsec;
  if (mtime == mtime_ns_ && static_cast<int64_t>(st.st_size) == size_)
    return;
  std::ifstream in{path_};
  if (!in)
    return;
  std::vector<std::string> ids;
  for (std::string line; std::getline(in, line) && ids.size() < 1'000'000;) {
    if (auto hash = line.find('#'); hash != std::string::npos)
      line.resize(hash);
    while (!line.empty()
           && std::isspace(static_cast<unsigned char>(line.back())))
      line.pop_back();
    size_t start = 0;
    while (start < line.size()
           && std::isspace(static_cast<unsigned char>(line[start])))
      ++start;
    if (start < line.size())
      ids.push_back(line.substr(start));
  }
  std::sort(ids.begin(), ids.end());
  ids_ = std::move(ids);
  mtime_ns_ = mtime;
  size_ = static_cast<int64_t>(st.st_size);
}

bool revocation_list::revoked(const std::string& id) {
  if (path_.empty() || id.empty())
    return false;
  auto now = std::chrono::steady_clock::now();
  if (now - checked_ >= std::chrono::seconds{1}) {
    checked_ = now;
    reload();
  }
  return std::binary_search(ids_.begin(), ids_.end(), id);
}

expected<void> revoke_token_id(const std::string& path, const std::string& id) {
  if (id.empty() || id.find_first_of("\r\n#") != std::string::npos)
    return make_error(errc::invalid_argument, "not a token id");
  int fd
      = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_error(errc::invalid_argument,
                      "cannot write the revoked tokens file '" + path + "'");
  auto line = id + "\n";
  bool ok = ::write(fd, line.data(), line.size())
                == static_cast<ssize_t>(line.size())
            && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok)
    return make_error(errc::storage_failed,
                      "cannot write the revoked tokens file '" + path + "'");
  return {};
}

std::string issue_token(std::string_view key, const token_claims& claims) {
  json j{{"sub", claims.agent},
         {"jti", claims.id.empty() ? new_token_id() : claims.id},
         {"iat", claims.issued_at},
         {"exp", claims.expires_at}};
  if (!claims.roles.empty())
    j["roles"] = claims.roles;
  auto body = std::string{token_prefix} + base64url_encode(j.dump());
  return body + "." + base64url_encode(hmac_sha256(key, body));
}

expected<token_claims> verify_token(std::string_view key,
                                    std::string_view token, int64_t now,
                                    std::chrono::seconds max_ttl) {
  if (token.substr(0, token_prefix.size()) != token_prefix)
    return refused("not an Engram token (egk1.…)");
  auto dot = token.rfind('.');
  if (dot == std::string_view::npos || dot < token_prefix.size())
    return refused("a malformed token");
  auto body = token.substr(0, dot);
  auto mac = base64url_decode(token.substr(dot + 1));
  if (!mac || !equal_constant_time(*mac, hmac_sha256(key, body)))
    return refused("the token's signature does not verify");
  auto raw = base64url_decode(body.substr(token_prefix.size()));
  if (!raw)
    return refused("a malformed token");
  auto j = parse_object(*raw, "the token's claims");
  if (!j)
    return refused(j.error_value().message);
  token_claims c;
  if (!get_to(*j, "sub", c.agent) || !get_to(*j, "iat", c.issued_at)
      || !get_to(*j, "exp", c.expires_at))
    return refused("the token lacks sub, iat or exp");
  if (auto ok = validate_name(c.agent, "agent id"); !ok)
    return refused("the token's agent: " + ok.error_value().message);
  c.roles = string_list(*j, "roles");
  (void)get_to(*j, "jti", c.id); // tokens of older builds carry none
  if (c.expires_at <= now)
    return refused("the token expired");
  if (c.issued_at > now + clock_skew_s)
    return refused("the token is issued in the future");
  if (c.expires_at - c.issued_at > max_ttl.count())
    return refused("the token is valid for longer than token_ttl ("
                   + std::to_string(max_ttl.count()) + " s)");
  return c;
}

// -- JWKS and JWT
// ---------------------------------------------------------------

struct jwks::key {
  std::string kty; // "RSA" or "EC"
  EVP_PKEY* pkey = nullptr;
  ~key() { EVP_PKEY_free(pkey); }
};

jwks::jwks() = default;
jwks::~jwks() = default;
jwks::jwks(jwks&&) noexcept = default;
jwks& jwks::operator=(jwks&&) noexcept = default;

size_t jwks::size() const { return keys_.size(); }

const jwks::key* jwks::find(const std::string& kid) const {
  auto i = keys_.find(kid);
  return i == keys_.end() ? nullptr : i->second.get();
}

namespace {

// An EVP_PKEY from OSSL parameters (public key).
EVP_PKEY* key_from(const char* type, OSSL_PARAM_BLD* bld) {
  EVP_PKEY* out = nullptr;
  auto* params = OSSL_PARAM_BLD_to_param(bld);
  auto* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
    EVP_PKEY_fromdata(ctx, &out, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return out;
}

expected<EVP_PKEY*> rsa_key(const json& k) {
  std::string n64, e64;
  if (!get_to(k, "n", n64) || !get_to(k, "e", e64))
    return make_error(errc::invalid_argument, "an RSA key without n or e");
  auto n = base64url_decode(n64);
  auto e = base64url_decode(e64);
  if (!n || !e || n->size() < 256)
    return make_error(errc::invalid_argument,
                      "an RSA key that is malformed or under 2048 bits");
  auto* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                         static_cast<int>(n->size()), nullptr);
  auto* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                         static_cast<int>(e->size()), nullptr);
  auto* bld = OSSL_PARAM_BLD_new();
  EVP_PKEY* pkey = nullptr;
  if (bn_n && bn_e && bld
      && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1
      && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
    pkey = key_from("RSA", bld);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  if (pkey == nullptr)
    return make_error(errc::invalid_argument, "an unusable RSA key");
  return pkey;
}

expected<EVP_PKEY*> ec_key(const json& k) {
  std::string crv, x64, y64;
  if (!get_to(k, "crv", crv) || crv != "P-256")
    return make_error(errc::invalid_argument, "an EC key not on P-256");
  if (!get_to(k, "x", x64) || !get_to(k, "y", y64))
    return make_error(errc::invalid_argument, "an EC key without x or y");
  auto x = base64url_decode(x64);
  auto y = base64url_decode(y64);
  if (!x || !y || x->size() != 32 || y->size() != 32)
    return make_error(errc::invalid_argument, "a malformed EC key");
  std::string point = "\x04" + *x + *y;
  auto* bld = OSSL_PARAM_BLD_new();
  EVP_PKEY* pkey = nullptr;
  if (bld
      && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                         "prime256v1", 0)
             == 1
      && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                          point.data(), point.size())
             == 1)
    pkey = key_from("EC", bld);
  OSSL_PARAM_BLD_free(bld);
  if (pkey == nullptr)
    return make_error(errc::invalid_argument,
                      "an EC key whose point is not on P-256");
  return pkey;
}

// The DER encoding of an ECDSA signature given as r || s (JWS, 64 bytes).
std::string der_of_raw_ecdsa(std::string_view raw) {
  std::string out;
  if (raw.size() != 64)
    return out;
  auto* sig = ECDSA_SIG_new();
  auto* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32,
                      nullptr);
  auto* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32,
                      32, nullptr);
  if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
    r = s = nullptr; // owned by sig
    unsigned char* der = nullptr;
    auto n = i2d_ECDSA_SIG(sig, &der);
    if (n > 0)
      out.assign(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(sig);
  return out;
}

bool verify_sha256(EVP_PKEY* pkey, std::string_view data,
                   std::string_view sig) {
  auto* ctx = EVP_MD_CTX_new();
  bool ok
      = ctx
        && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pkey) == 1
        && EVP_DigestVerify(
               ctx, reinterpret_cast<const unsigned char*>(sig.data()),
               sig.size(), reinterpret_cast<const unsigned char*>(data.data()),
               data.size())
               == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

} // namespace

expected<jwks> jwks::parse(std::string_view text) {
  auto doc = parse_object(text, "the JWKS document");
  if (!doc)
    return doc.error_value();
  auto keys = doc->find("keys");
  if (keys == doc->end() || !keys->is_array())
    return make_error(errc::parse_error, "the JWKS document has no keys");
  jwks out;
  for (auto& k : *keys) {
    if (!k.is_object())
      return make_error(errc::parse_error, "a JWKS key is not an object");
    std::string kid, kty;
    if (!get_to(k, "kid", kid) || kid.empty())
      return make_error(errc::invalid_argument, "a JWKS key without a kid");
    if (!get_to(k, "kty", kty))
      return make_error(errc::invalid_argument,
                        "JWKS key '" + kid + "' has no kty");
    expected<EVP_PKEY*> pkey
        = make_error(errc::invalid_argument, "JWKS key '" + kid + "': kty "
                                                 + kty + " is not RSA or EC");
    if (kty == "RSA")
      pkey = rsa_key(k);
    else if (kty == "EC")
      pkey = ec_key(k);
    if (!pkey)
      return make_error(errc::invalid_argument,
                        "JWKS key '" + kid
                            + "': " + pkey.error_value().message);
    auto entry = std::make_unique<key>();
    entry->kty = kty;
    entry->pkey = *pkey;
    out.keys_[kid] = std::move(entry);
  }
  return out;
}

expected<jwks> jwks::load(const std::string& path) {
  auto text = read_file(path, "the JWKS file");
  if (!text)
    return text.error_value();
  auto keys = parse(*text);
  if (!keys)
    return make_error(keys.error_value().code,
                      "the JWKS file '" + path
                          + "': " + keys.error_value().message);
  return keys;
}

expected<principal> verify_jwt(const jwks& keys, const jwt_policy& policy,
                               std::string_view token, int64_t now,
                               std::chrono::seconds max_ttl) {
  auto d1 = token.find('.');
  auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos
      || token.find('.', d2 + 1) != std::string_view::npos)
    return refused("a malformed JWT (not header.claims.signature)");
  auto header_raw = base64url_decode(token.substr(0, d1));
  auto claims_raw = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64url_decode(token.substr(d2 + 1));
  if (!header_raw || !claims_raw || !sig)
    return refused("a malformed JWT (not base64url)");
  auto header = parse_object(*header_raw, "the JWT header");
  if (!header)
    return refused(header.error_value().message);
  std::string alg, kid;
  get_to(*header, "alg", alg);
  if (alg != "RS256" && alg != "ES256")
    return refused("the JWT's alg '" + alg
                   + "' is not accepted (RS256 or ES256 only)");
  if (!get_to(*header, "kid", kid))
    return refused("the JWT names no key (kid)");
  auto* k = keys.find(kid);
  if (k == nullptr)
    return refused("the JWT's key '" + kid + "' is not in the JWKS");
  if ((alg == "RS256") != (k->kty == "RSA"))
    return refused("the JWT's alg " + alg + " does not fit key '" + kid + "' ("
                   + k->kty + ")");
  auto signed_part = token.substr(0, d2);
  auto der = alg == "ES256" ? der_of_raw_ecdsa(*sig) : *sig;
  if (der.empty() || !verify_sha256(k->pkey, signed_part, der))
    return refused("the JWT's signature does not verify");
  auto claims = parse_object(*claims_raw, "the JWT claims");
  if (!claims)
    return refused(claims.error_value().message);
  auto& c = *claims;
  std::string iss;
  if (!get_to(c, "iss", iss) || iss != policy.issuer)
    return refused("the JWT's issuer is not '" + policy.issuer + "'");
  bool audience_ok = false;
  if (auto aud = c.find("aud"); aud != c.end()) {
    if (aud->is_string())
      audience_ok = aud->get<std::string>() == policy.audience;
    else if (aud->is_array())
      for (auto& a : *aud)
        audience_ok |= a.is_string() && a.get<std::string>() == policy.audience;
  }
  if (!audience_ok)
    return refused("the JWT's audience is not '" + policy.audience + "'");
  auto leeway = policy.leeway.count();
  int64_t exp = 0;
  if (!get_to(c, "exp", exp))
    return refused("the JWT has no expiry (exp)");
  if (exp + leeway <= now)
    return refused("the JWT expired");
  int64_t nbf = 0;
  if (get_to(c, "nbf", nbf) && nbf - leeway > now)
    return refused("the JWT is not valid yet (nbf)");
  int64_t iat = 0;
  bool has_iat = get_to(c, "iat", iat);
  if (has_iat && iat - leeway > now)
    return refused("the JWT is issued in the future");
  if (exp - (has_iat ? iat : now) > max_ttl.count())
    return refused("the JWT is valid for longer than token_ttl ("
                   + std::to_string(max_ttl.count()) + " s)");
  principal p;
  p.method = "jwt";
  if (!get_to(c, policy.agent_claim.c_str(), p.agent))
    return refused("the JWT has no '" + policy.agent_claim + "' claim");
  if (auto ok = validate_name(p.agent, "agent id"); !ok)
    return refused("the JWT's agent: " + ok.error_value().message);
  p.roles = string_list(c, "roles");
  p.expires_at = exp;
  return p;
}

// -- client certificates
// --------------------------------------------------------

expected<principal> principal_of_certificate(std::string_view pem,
                                             int64_t now) {
  auto cert = pki::certificate::from_pem(pem, "the client certificate");
  if (!cert)
    return refused(cert.error_value().message);
  if (cert->role() != pki::role::client)
    return refused("the client certificate is a "
                   + std::string{pki::to_string(cert->role())}
                   + " certificate, not an agent's");
  if (now < cert->not_before() || now >= cert->not_after())
    return refused("the client certificate is not valid now");
  principal p;
  p.agent = cert->id();
  p.method = "mtls";
  p.expires_at = cert->not_after();
  if (auto ok = validate_name(p.agent, "agent id"); !ok)
    return refused("the client certificate's agent: "
                   + ok.error_value().message);
  return p;
}

} // namespace engram::api
