#include "apps/engram/sealing.hpp"

#include "federation/sealed.hpp"

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

namespace {

std::string fed_state_path(session& s, const std::string& fed) {
  if (auto ok = validate_name(fed, "federation"); !ok)
    throw failure{exit_usage, ok.error_value().message};
  return s.agent_path("/federations/" + http::percent_encode(fed));
}

std::string unbase64(const json& j, const std::string& what) {
  auto bytes = j.is_string() ? api::base64_decode(j.get<std::string>())
                             : expected<std::string>{make_error(
                                 errc::invalid_argument, "not a string")};
  if (!bytes)
    throw failure{exit_failed, "the node's answer: " + what + " is not base64"};
  return std::move(*bytes);
}

} // namespace

federation::group_keys keys_of(const json& state) {
  federation::group_keys out;
  if (!state.value("e2e", false) || !state.contains("keys"))
    throw failure{exit_failed, "federation " + text_of(state, "id")
                                   + " is not sealed end to end"};
  auto& k = state["keys"];
  out.epoch = k.value("epoch", uint64_t{0});
  out.sealed_by = k.value("sealed_by", std::string{});
  if (k.contains("sealed_base64"))
    for (auto& [member, text] : k["sealed_base64"].items())
      out.sealed.emplace(member, unbase64(text, "a sealed key"));
  if (k.contains("chain_base64"))
    out.chain = unbase64(k["chain_base64"], "the chain of keys");
  return out;
}

std::pair<std::map<uint64_t, std::string>, json>
held_group_keys(session& s, const std::string& fed, const e2e::key_pair& keys,
                const trust_anchor& t) {
  auto state = s.get(fed_state_path(s, fed));
  auto k = keys_of(state);
  auto held = federation::open_group_keys(text_of(state, "id"), k, s.agent(),
                                          keys, t.get(), now_s());
  if (!held)
    throw failure{exit_failed, held.error_value().message};
  return {std::move(*held), std::move(state)};
}

uint64_t rotate_group_key(session& s, const std::string& fed,
                          const e2e::key_pair& keys,
                          const std::string& key_file, const trust_anchor& t) {
  auto state = s.get(fed_state_path(s, fed));
  auto k = keys_of(state);
  std::map<uint64_t, std::string> older;
  if (k.epoch > 0) {
    auto held = federation::open_group_keys(text_of(state, "id"), k, s.agent(),
                                            keys, t.get(), now_s());
    if (!held)
      throw failure{exit_failed, held.error_value().message};
    older = std::move(*held);
  }
  auto mine = own_key(s, keys, key_file, t);
  std::map<std::string, e2e::key_binding> members;
  for (auto& m : state["members"]) {
    auto id = text_of(m, "agent");
    members.emplace(id, checked_key(s, id, t));
  }
  auto next
      = federation::next_group_keys(text_of(state, "id"), k.epoch, s.agent(),
                                    keys, mine, members, older, now_us());
  if (!next)
    throw failure{exit_failed, next.error_value().message};
  json sealed = json::object();
  for (auto& [member, text] : next->sealed)
    sealed[member] = api::base64(text);
  s.call("PUT", fed_state_path(s, fed) + "/keys",
         {{"epoch", next->epoch},
          {"sealed_base64", sealed},
          {"chain_base64", api::base64(next->chain)}});
  return next->epoch;
}

} // namespace engram::cli
