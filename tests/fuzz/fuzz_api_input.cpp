// What a client API request can carry, from hostile bytes: bearer tokens
// (shared-key, capability and JWT), JWKS documents, sealed values, saved
// keyrings and key texts (what a damaged data directory or a bad key source
// holds), JSON bodies of learn
// requests, query parameters, percent-encoded paths, base64, permissions and
// CIDR blocks. Every input is refused or accepted cleanly: no crash, no
// undefined behaviour, no unbounded work.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "api/access.hpp"
#include "api/auth.hpp"
#include "api/capability.hpp"
#include "api/json.hpp"
#include "crypto/aead.hpp"
#include "crypto/key_source.hpp"
#include "crypto/keyring.hpp"
#include "crypto/pkcs11.hpp"
#include "http/server.hpp"

using namespace engram;

namespace {

const api::jwks& keys() {
  static const api::jwks* k = [] {
    auto parsed = api::jwks::parse(
        R"({"keys":[{"kty":"EC","kid":"ec-1","crv":"P-256",)"
        R"("x":"fHOgWwrbZUi2-OqDGzqlQAFMogecuInFvWGO_TGnhKs",)"
        R"("y":"8EMRMP3E6a-A2SIZz_lUd9B5DDvWJa8mvWX-lNHyQzk"}]})");
    return new api::jwks(std::move(parsed.value()));
  }();
  return *k;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  const std::string key(32, 'k');
  auto now = int64_t{1'800'000'000};
  (void)api::verify_token(key, in, now, std::chrono::hours{1});
  (void)api::verify_capability(key, in, now, std::chrono::hours{1});
  static const auto master = crypto::key256::from_bytes(key).value();
  (void)crypto::open(master, in, "aad");
  (void)crypto::keyring::load(in, master);
  (void)crypto::parse_key_text(in);
  (void)crypto::parse_pkcs11_uri("pkcs11:" + in);
  // The input as a caveat its holder MAC'd correctly: only the caveat's
  // own checks stand between it and the request.
  static const std::string grant
      = api::issue_capability(
            key, api::capability_grant{"alice", {"query:*"}, {}, now, now + 60})
            .value();
  auto mac = api::base64url_decode(grant.substr(grant.rfind('.') + 1));
  auto segment = api::base64url_encode(in);
  auto chained = grant.substr(0, grant.rfind('.')) + "." + segment + "."
                 + api::base64url_encode(api::hmac_sha256(*mac, segment));
  (void)api::verify_capability(key, chained, now, std::chrono::hours{1});
  api::jwt_policy policy{"https://idp", "engram"};
  (void)api::verify_jwt(keys(), policy, in, now, std::chrono::hours{1});
  (void)api::jwks::parse(in);
  (void)api::base64url_decode(in);
  (void)api::base64_decode(in);
  (void)http::percent_decode(in, true);
  (void)api::permission::parse(in);
  (void)api::address_in("10.1.2.3", in);
  (void)api::address_in(in, "10.0.0.0/8");
  auto body = nlohmann::json::parse(in, nullptr, false);
  if (!body.is_discarded()) {
    (void)api::record_of(body);
    if (body.is_object()) {
      std::map<std::string, std::string> params;
      for (auto& [k, v] : body.items())
        params[k] = v.is_string() ? v.get<std::string>() : v.dump();
      (void)api::filter_of(params);
    }
  }
  (void)api::parse_trust(in);
  return 0;
}
