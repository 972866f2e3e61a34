// The CLI's token verbs: token attenuate (narrows a capability token before
// it is handed on; needs no node and no key).

#include "apps/engram/verbs.hpp"

#include <ctime>
#include <iostream>

#include "api/capability.hpp"

namespace engram::cli {

void add_token_verbs(CLI::App& app, verbs& v) {
  auto& opts = v.opts;
  auto* token = app.add_subcommand("token", "capability tokens");
  token->require_subcommand(1);
  auto* att = token->add_subcommand(
      "attenuate",
      "print the capability token of --token (or ENGRAM_TOKEN) narrowed: "
      "only what every --allow, --type, --source and --federation permit, "
      "for --ttl at most; whoever gets it cannot widen it again");
  att->add_option("--allow", v.allow,
                  "OPERATION:SCOPE_KIND still allowed (repeatable)");
  att->add_option("--type", v.types,
                  "a memory type still allowed (repeatable)");
  att->add_option("--source", v.sources,
                  "a client address or CIDR it may be used from (repeatable)");
  att->add_option("--federation", v.federations,
                  "a federation it stays valid for (repeatable)");
  att->add_option("--ttl", v.narrow_ttl_seconds,
                  "seconds from now it stays valid (0: unchanged)")
      ->check(CLI::Range(int64_t{0}, int64_t{366} * 86400));
  att->callback([&] {
    v.offline = [&] {
      if (opts.token.empty())
        throw failure{exit_usage,
                      "no token to attenuate: --token TOKEN or ENGRAM_TOKEN"};
      api::capability_caveat c;
      c.allow = v.allow;
      c.memory_types = v.types;
      c.sources = v.sources;
      c.federations = v.federations;
      if (v.narrow_ttl_seconds > 0)
        c.expires_at
            = static_cast<int64_t>(std::time(nullptr)) + v.narrow_ttl_seconds;
      auto narrowed = api::attenuate_capability(opts.token, c);
      if (!narrowed)
        throw failure{exit_usage, narrowed.error_value().message};
      std::cout << *narrowed << '\n';
      return 0;
    };
  });
}

} // namespace engram::cli
