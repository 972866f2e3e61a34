#include "apps/engram/sealing.hpp"

#include <unistd.h>

#include <chrono>

#include "api/auth.hpp"

namespace engram::cli {

uint64_t now_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

int64_t now_s() { return static_cast<int64_t>(now_us() / 1'000'000); }

trust_anchor load_trust(const common_options& opts) {
  trust_anchor t;
  t.insecure = opts.insecure;
  t.agent_signed_only = opts.agent_signed_only;
  auto path = !opts.ca.empty()          ? opts.ca
              : !opts.certs_dir.empty() ? opts.certs_dir + "/ca.crt"
                                        : std::string{};
  if (path.empty())
    return t;
  auto ca = pki::load_certificate(path);
  if (!ca)
    throw failure{exit_usage, ca.error_value().message};
  t.ca = std::move(*ca);
  auto dir = path.substr(0, path.find_last_of('/') + 1);
  auto crl_path = dir + "ca.crl";
  if (::access(crl_path.c_str(), F_OK) == 0) {
    auto crl = pki::load_revocation_list(crl_path);
    if (!crl)
      throw failure{exit_usage, crl.error_value().message};
    if (!crl->issued_by(*t.ca))
      throw failure{exit_usage, "the revocation list " + crl_path
                                    + " is not signed by the CA " + path};
    t.crl = std::move(*crl);
  }
  return t;
}

e2e::key_pair load_keys(const std::string& path) {
  auto keys = e2e::load_key(path);
  if (!keys)
    throw failure{exit_usage, keys.error_value().message};
  return std::move(*keys);
}

/// The binding in an answer of the key routes.
e2e::key_binding binding_of(const json& answer) {
  auto raw = api::base64_decode(text_of(answer, "binding"));
  auto b = raw ? e2e::decode_binding(*raw)
               : expected<e2e::key_binding>{raw.error_value()};
  if (!b)
    throw failure{exit_failed, "the node answered with no key binding"};
  return std::move(*b);
}

/// Agent `agent`'s published binding, checked against the CA.
e2e::key_binding checked_key(session& s, const std::string& agent,
                             const trust_anchor& t) {
  auto b = binding_of(s.get(s.agent_path("/keys/" + agent)));
  if (auto ok = e2e::verify(b, agent, t.get(), now_s()); !ok)
    throw failure{exit_failed, ok.error_value().message};
  return b;
}

e2e::key_binding own_key(session& s, const e2e::key_pair& keys,
                         const std::string& key_file, const trust_anchor& t) {
  auto mine = checked_key(s, s.agent(), t);
  if (mine.public_key != keys.public_key())
    throw failure{exit_failed, "the key in " + key_file
                                   + " is not the one agent " + s.agent()
                                   + " published (engram key publish "
                                   + key_file + ")"};
  return mine;
}

} // namespace engram::cli
