// engram: the command-line client of a running engramd. It speaks the
// node's client API (HTTPS, docs/openapi.json) as one instance ("cli" by
// default) of an agent — the one its credential names: a bearer token
// (--token) or the agent's client certificate (--certs-dir) — learn, query,
// forget, share, accept/decline, sync, federations, tell/ask/broadcast,
// conflicts, status.
//
//   engram --node 127.0.0.1:8420 --agent alice learn user.name Bob
//   engram --agent alice --json query --subject sky
//   engram --agent alice federation create Research --member bob
//
// Exit codes: 0 done, 1 the node refused or failed the operation (the
// message says why; a refused write stored nothing), 2 bad usage, 3 the
// node cannot be reached, 4 no answer in time (for a write: its outcome is
// unknown), 5 a write stored on the node but not confirmed by as many
// replicas as its consistency level needs (do not retry it: it syncs when
// they return).

#include "apps/engram/verbs.hpp"

#include <cstdlib>
#include <iostream>

using namespace engram;
using namespace engram::cli;

int main(int argc, char** argv) {
  common_options opts;
  if (auto* env = std::getenv("ENGRAM_NODE"))
    opts.node = env;
  if (auto* env = std::getenv("ENGRAM_AGENT"))
    opts.agent = env;
  if (auto* env = std::getenv("ENGRAM_CERTS_DIR"))
    opts.certs_dir = env;
  if (auto* env = std::getenv("ENGRAM_TOKEN"))
    opts.token = env;
  if (auto* env = std::getenv("ENGRAM_CA"))
    opts.ca = env;

  CLI::App app{"engram: talk to a running engramd (learn, query, share, "
               "federations, messages, conflicts)"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", std::string{"engram "} + ENGRAM_VERSION);
  // Global options are accepted anywhere on the line, before or after the
  // verb.
  app.fallthrough();
  app.add_option("--node", opts.node,
                 "engramd's client API HOST:PORT (or ENGRAM_NODE)");
  app.add_option("--agent", opts.agent, "act as this agent (or ENGRAM_AGENT)");
  app.add_option("--instance", opts.instance, "as this instance of the agent");
  app.add_flag("--json", opts.json, "print JSON");
  app.add_option("--timeout", opts.timeout_ms, "ms to wait for the node")
      ->check(CLI::PositiveNumber);
  app.add_option("--token", opts.token,
                 "a bearer token: engramd token issue, or a JWT (or "
                 "ENGRAM_TOKEN)");
  app.add_option("--certs-dir", opts.certs_dir,
                 "the agent's client certificate client.<agent>.crt/.key "
                 "(client.admin without --agent) and ca.crt of DIR (or "
                 "ENGRAM_CERTS_DIR)");
  app.add_option("--ca", opts.ca,
                 "the CA the node's certificate must chain to (default: "
                 "DIR/ca.crt of --certs-dir; or ENGRAM_CA)");
  app.add_flag("--agent-signed-only", opts.agent_signed_only,
               "end to end: trust only keys agents signed with their own "
               "certificates (no node vouches for another agent's key)");
  app.add_flag("--insecure", opts.insecure,
               "plaintext HTTP, to a node run with --insecure (with --token)");

  verbs v{opts};
  add_memory_verbs(app, v);
  add_sharing_verbs(app, v);
  add_federation_verbs(app, v);
  add_message_verbs(app, v);
  add_token_verbs(app, v);
  auto& run = v.run;
  auto& writing = v.writing;

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e);
    return rc == 0 ? 0 : exit_usage;
  }
  try {
    if (v.offline)
      return v.offline();
    if (!run)
      throw failure{exit_usage, "nothing to do (see --help)"};
    session s{opts};
    return run(s);
  } catch (const failure& f) {
    if (opts.json)
      std::cout << show(failure_json(f, writing)) << '\n';
    std::cerr << "engram: " << f.message << '\n';
    return f.code;
  }
}
