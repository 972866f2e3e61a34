#pragma once

// End-to-end encryption for the CLI's verbs (tell --seal, inbox --key,
// share --seal, accept --key, key ...): the agent's key file, and the
// bindings nodes hand out, each checked here against the cluster's CA.

#include "apps/engram/client.hpp"
#include "federation/membership.hpp"

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "e2e/e2e.hpp"
#include "pki/pki.hpp"

namespace engram::cli {

uint64_t now_us();
int64_t now_s();

/// What bindings are checked against: the CA the node's certificate
/// chains to (--ca, or ca.crt of --certs-dir); unvouched bindings only
/// with --insecure (a node without TLS has nothing to vouch with).
struct trust_anchor {
  std::optional<pki::certificate> ca;
  /// The CA's revocation list (ca.crl beside the CA, when there is one).
  std::optional<pki::revocation_list> crl;
  bool insecure = false;
  bool agent_signed_only = false;

  e2e::trust get() const {
    return {ca ? &*ca : nullptr, crl ? &*crl : nullptr, insecure,
            agent_signed_only};
  }
};

trust_anchor load_trust(const common_options& opts);

/// The agent's key file (a bad one: exit 2, saying why).
e2e::key_pair load_keys(const std::string& path);

/// The binding in an answer of the key routes.
e2e::key_binding binding_of(const json& answer);

/// Agent `agent`'s published binding, checked against the CA.
e2e::key_binding checked_key(session& s, const std::string& agent,
                             const trust_anchor& t);

/// This agent's published binding, checked, which must be the key of
/// `keys` (read from `key_file`).
e2e::key_binding own_key(session& s, const e2e::key_pair& keys,
                         const std::string& key_file, const trust_anchor& t);

/// A federation sealed end to end: its state's keys as the API shows them
/// (base64 decoded).
federation::group_keys keys_of(const json& state);

/// The keys of federation `fed` this agent holds, by epoch, opened with
/// `keys`; and the federation's state they were read from.
std::pair<std::map<uint64_t, std::string>, json>
held_group_keys(session& s, const std::string& fed, const e2e::key_pair& keys,
                const trust_anchor& t);

/// Leader: makes the federation's next key, sealed to every member's
/// published key (checked); returns its epoch.
uint64_t rotate_group_key(session& s, const std::string& fed,
                          const e2e::key_pair& keys,
                          const std::string& key_file, const trust_anchor& t);

} // namespace engram::cli
