// engram: the command-line client of a running engramd. It reaches the
// node's actor over CAF's network layer and acts as one instance ("cli" by
// default) of an agent: learn, query, forget, share, accept/decline, sync,
// federations, tell/ask/broadcast, conflicts, status.
//
//   engram --node 127.0.0.1:7420 --agent alice learn user.name Bob
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

#include <caf/actor_system.hpp>

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

  CLI::App app{"engram: talk to a running engramd (learn, query, share, "
               "federations, messages, conflicts)"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  app.add_option("--node", opts.node,
                 "engramd address HOST:PORT (or "
                 "ENGRAM_NODE)");
  app.add_option("--agent", opts.agent, "act as this agent (or ENGRAM_AGENT)");
  app.add_option("--instance", opts.instance, "as this instance of the agent");
  app.add_flag("--json", opts.json, "print JSON");
  app.add_option("--timeout", opts.timeout_ms, "ms to wait for the node")
      ->check(CLI::PositiveNumber);
  app.add_option("--certs-dir", opts.certs_dir,
                 "mutual TLS with client.<agent>.crt/.key (client.admin "
                 "without --agent) and ca.crt of DIR (or ENGRAM_CERTS_DIR)");
  app.add_flag("--insecure", opts.insecure,
               "plaintext, to a node run with --insecure");

  verbs v{opts};
  add_memory_verbs(app, v);
  add_sharing_verbs(app, v);
  add_federation_verbs(app, v);
  add_message_verbs(app, v);
  auto& run = v.run;
  auto& writing = v.writing;

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e);
    return rc == 0 ? 0 : exit_usage;
  }
  try {
    if (!run)
      throw failure{exit_usage, "nothing to do (see --help)"};
    client_config cfg{client_tls(opts)};
    caf::actor_system sys{cfg};
    session s{sys, opts};
    return run(s);
  } catch (const failure& f) {
    if (opts.json)
      std::cout << failure_json(f, writing)
                       .dump(-1, ' ', false, json::error_handler_t::replace)
                << '\n';
    std::cerr << "engram: " << f.message << '\n';
    return f.code;
  }
}
