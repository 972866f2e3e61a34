#pragma once

// engramd cert: the cluster's certificates (CockroachDB's `cockroach cert`
// is the model). Files in the certificates directory:
//   ca.crt, ca.key            the cluster's CA (the key may live elsewhere:
//                             --ca-key)
//   node.<id>.crt, .key       one per node; the node id in the certificate
//   client.<id>.crt, .key     one per client agent
//   ca.crl                    what `revoke` revoked
// Keys are written 0600, certificates 0644; nothing existing is replaced
// without --overwrite.

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace engram::engramd {

struct cert_options {
  std::string certs_dir;
  std::string ca_key; // default: <certs_dir>/ca.key
  std::string name = "engram";
  std::string id;
  std::vector<std::string> hosts;
  std::string file; // revoke: the certificate to revoke
  int lifetime_days = 365;
  bool overwrite = false;
};

/// The `cert` subcommand and its own subcommands, filling `opts`.
CLI::App* add_cert_command(CLI::App& app, cert_options& opts);

/// Runs the `cert` subcommand parsed into `cmd`: 0 on success, 2 for a bad
/// argument, 1 when it could not be done (the reason on stderr).
int run_cert(const CLI::App& cmd, const cert_options& opts);

} // namespace engram::engramd
