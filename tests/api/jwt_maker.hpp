#pragma once

// An identity provider for tests: RSA-2048 and EC P-256 keys, their JWKS
// document, and JWTs signed with them (RS256, ES256) — or forged ones
// (alg none, HS256 over the public key, another key's signature).

#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdexcept>
#include <string>

#include "api/auth.hpp"

namespace engram::testing {

class identity_provider {
public:
  identity_provider() {
    rsa_ = EVP_RSA_gen(2048);
    ec_ = EVP_EC_gen("P-256");
    if (!rsa_ || !ec_)
      throw std::runtime_error("cannot make test keys");
  }

  ~identity_provider() {
    EVP_PKEY_free(rsa_);
    EVP_PKEY_free(ec_);
  }

  identity_provider(const identity_provider&) = delete;
  identity_provider& operator=(const identity_provider&) = delete;

  /// The JWKS document: kid "rsa-1" (RSA) and "ec-1" (EC).
  std::string jwks() const {
    nlohmann::json keys = nlohmann::json::array();
    keys.push_back(
        {{"kty", "RSA"},
         {"kid", "rsa-1"},
         {"use", "sig"},
         {"n", api::base64url_encode(bn(rsa_, OSSL_PKEY_PARAM_RSA_N))},
         {"e", api::base64url_encode(bn(rsa_, OSSL_PKEY_PARAM_RSA_E))}});
    unsigned char point[65];
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(ec_, OSSL_PKEY_PARAM_PUB_KEY, point,
                                    sizeof(point), &len);
    std::string p{reinterpret_cast<char*>(point), len};
    keys.push_back({{"kty", "EC"},
                    {"kid", "ec-1"},
                    {"crv", "P-256"},
                    {"x", api::base64url_encode(p.substr(1, 32))},
                    {"y", api::base64url_encode(p.substr(33, 32))}});
    return nlohmann::json{{"keys", keys}}.dump();
  }

  /// A JWT with these claims, signed as `alg` says ("RS256", "ES256",
  /// "none", "HS256" — the latter keyed with the RSA public key's PEM, the
  /// key-confusion attack) under header kid `kid`.
  std::string sign(const nlohmann::json& claims, const std::string& alg,
                   const std::string& kid) const {
    nlohmann::json header{{"alg", alg}, {"typ", "JWT"}, {"kid", kid}};
    auto data = api::base64url_encode(header.dump()) + "."
                + api::base64url_encode(claims.dump());
    std::string sig;
    if (alg == "RS256")
      sig = digest_sign(rsa_, data);
    else if (alg == "ES256")
      sig = raw_ecdsa(digest_sign(ec_, data));
    else if (alg == "HS256")
      sig = api::hmac_sha256(public_pem(rsa_), data);
    return data + "." + api::base64url_encode(sig);
  }

  /// Claims valid now for `agent`.
  static nlohmann::json claims(const std::string& agent, int64_t now,
                               const std::string& iss = "https://idp.test",
                               const std::string& aud = "engram") {
    return {{"iss", iss},
            {"aud", aud},
            {"sub", agent},
            {"iat", now},
            {"exp", now + 600}};
  }

private:
  static std::string bn(EVP_PKEY* k, const char* name) {
    BIGNUM* x = nullptr;
    EVP_PKEY_get_bn_param(k, name, &x);
    std::string out(static_cast<size_t>(BN_num_bytes(x)), '\0');
    BN_bn2bin(x, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(x);
    return out;
  }

  static std::string digest_sign(EVP_PKEY* k, const std::string& data) {
    auto* ctx = EVP_MD_CTX_new();
    size_t len = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k);
    EVP_DigestSign(ctx, nullptr, &len,
                   reinterpret_cast<const unsigned char*>(data.data()),
                   data.size());
    std::string out(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                   reinterpret_cast<const unsigned char*>(data.data()),
                   data.size());
    out.resize(len);
    EVP_MD_CTX_free(ctx);
    return out;
  }

  static std::string raw_ecdsa(const std::string& der) {
    auto* p = reinterpret_cast<const unsigned char*>(der.data());
    auto* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    std::string out(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig),
                 reinterpret_cast<unsigned char*>(out.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig),
                 reinterpret_cast<unsigned char*>(out.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    return out;
  }

  static std::string public_pem(EVP_PKEY* k) {
    auto* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, k);
    char* data = nullptr;
    auto n = BIO_get_mem_data(bio, &data);
    std::string out{data, static_cast<size_t>(n)};
    BIO_free(bio);
    return out;
  }

  EVP_PKEY* rsa_ = nullptr;
  EVP_PKEY* ec_ = nullptr;
};

} // namespace engram::testing
