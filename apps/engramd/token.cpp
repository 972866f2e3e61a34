#include "apps/engramd/token.hpp"

#include "apps/engramd/config.hpp"
#include "core/scope.hpp"

#include <cstdio>
#include <ctime>

#include "api/auth.hpp"
#include "api/capability.hpp"

namespace engram::engramd {

CLI::App* add_token_command(CLI::App& app, token_options& o) {
  auto* token = app.add_subcommand(
      "token", "the shared key and the bearer tokens of the client API");
  token->require_subcommand(1);
  auto* key = token->add_subcommand("create-key",
                                    "write a new shared key (0600; never over "
                                    "an existing file)");
  key->add_option("--key-file", o.key_file, "where")->required();
  auto* issue = token->add_subcommand(
      "issue", "print a token acting as an agent, signed with the shared key");
  issue->add_option("--key-file", o.key_file, "the shared key")->required();
  issue->add_option("--agent", o.agent, "the agent it acts as")->required();
  issue->add_option("--ttl", o.ttl, "valid for (e.g. 15m, 1h; default 1h)");
  issue->add_option("--role", o.roles, "a role it carries (repeatable)");
  auto* grant = token->add_subcommand(
      "grant", "print a capability token: acting as an agent, allowed only "
               "what --allow names; its holder may narrow it further");
  grant->add_option("--key-file", o.key_file, "the shared key")->required();
  grant->add_option("--agent", o.agent, "the agent it acts as")->required();
  grant
      ->add_option("--allow", o.allow,
                   "OPERATION:SCOPE_KIND it allows, '*' for any, e.g. "
                   "query:agent (repeatable)")
      ->required();
  grant->add_option("--federation", o.federations,
                    "only for this federation (repeatable)");
  grant->add_option("--ttl", o.ttl, "valid for (e.g. 15m, 1h; default 1h)");
  auto* revoke = token->add_subcommand(
      "revoke", "refuse a token from now on, before it expires");
  revoke
      ->add_option("--revoked-file", o.revoked_file,
                   "the file [distribution.auth] revoked_tokens names")
      ->required();
  auto* by_token = revoke->add_option("--token", o.token, "the token");
  auto* by_id = revoke->add_option("--id", o.id, "or its id");
  by_token->excludes(by_id);
  return token;
}

int run_token(const CLI::App& cmd, const token_options& o) {
  auto fail = [](int code, const std::string& why) {
    std::fprintf(stderr, "engramd token: %s\n", why.c_str());
    return code;
  };
  if (cmd.got_subcommand("create-key")) {
    if (auto ok = api::create_shared_key(o.key_file); !ok)
      return fail(1, ok.error_value().message);
    std::printf("engramd token: shared key written to %s (0600)\n",
                o.key_file.c_str());
    return 0;
  }
  if (cmd.got_subcommand("revoke")) {
    std::string id = o.id;
    if (!o.token.empty()) {
      auto from = api::token_id_of(o.token);
      if (!from)
        return fail(2, "--token: " + from.error_value().message);
      id = *from;
    }
    if (id.empty())
      return fail(2, "revoke needs --token or --id");
    if (auto ok = api::revoke_token_id(o.revoked_file, id); !ok)
      return fail(1, ok.error_value().message);
    std::printf("engramd token: token %s revoked (in %s)\n", id.c_str(),
                o.revoked_file.c_str());
    return 0;
  }
  if (auto ok = validate_name(o.agent, "--agent"); !ok)
    return fail(2, ok.error_value().message);
  for (auto& r : o.roles)
    if (auto ok = validate_name(r, "--role"); !ok)
      return fail(2, ok.error_value().message);
  auto ttl = parse_duration(o.ttl);
  if (!ttl || *ttl < std::chrono::seconds{1})
    return fail(2, "--ttl '" + o.ttl + "' is not a duration (e.g. 15m, 1h)");
  auto key = api::load_shared_key(o.key_file);
  if (!key)
    return fail(1, key.error_value().message);
  auto now = static_cast<int64_t>(std::time(nullptr));
  auto expires
      = now + std::chrono::duration_cast<std::chrono::seconds>(*ttl).count();
  if (cmd.got_subcommand("grant")) {
    auto t = api::issue_capability(
        *key,
        api::capability_grant{o.agent, o.allow, o.federations, now, expires});
    if (!t)
      return fail(2, "--allow: " + t.error_value().message);
    std::printf("%s\n", t->c_str());
    return 0;
  }
  api::token_claims c;
  c.agent = o.agent;
  c.issued_at = now;
  c.expires_at = expires;
  c.roles = o.roles;
  std::printf("%s\n", api::issue_token(*key, c).c_str());
  return 0;
}

} // namespace engram::engramd
