#pragma once

// Certificates for a cluster a program starts itself (engram-demo,
// engram-swarm --real): a CA of its own in `dir`, a certificate per node
// and the program's own (a node certificate: it speaks to the nodes'
// actors; and a client certificate for the client API), files as
// `engramd cert` writes them.
// The nodes then run with --certs-dir `dir`, and the program connects with
// the returned TLS configuration.

#include "actors/tls.hpp"

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "pki/pki.hpp"

namespace engram::apps {

inline actors::tls_config
make_cluster_certs(const std::string& dir,
                   const std::vector<std::string>& node_ids,
                   const std::string& client_id) {
  actors::tls_config tls;
  if (auto ok = actors::apply_tls_policy(tls); !ok)
    throw std::runtime_error(ok.error_value().message);
  std::filesystem::create_directories(dir);
  auto must = [](auto x) {
    if (!x)
      throw std::runtime_error("certificates: " + x.error_value().message);
    return std::move(*x);
  };
  auto write = [&](const std::string& name, const std::string& text,
                   unsigned mode) {
    if (auto ok = pki::write_file(dir + "/" + name, text, mode, true); !ok)
      throw std::runtime_error(ok.error_value().message);
  };
  auto ca_key = must(pki::private_key::generate());
  auto ca = must(pki::make_ca(ca_key, "local"));
  write("ca.crt", ca.to_pem(), 0644);
  auto leaf = [&](pki::role r, const std::string& id) {
    auto key = must(pki::private_key::generate());
    // Nodes are reached at 127.0.0.1 here: their API's clients check it.
    pki::issue_options opts;
    if (r == pki::role::node)
      opts.hosts = {"127.0.0.1", "localhost"};
    auto cert = must(pki::issue(ca, ca_key, r, id, key, opts));
    auto base = std::string{r == pki::role::node ? "node." : "client."} + id;
    write(base + ".key", key.to_pem(), 0600);
    write(base + ".crt", cert.to_pem(), 0644);
  };
  for (auto& id : node_ids)
    leaf(pki::role::node, id);
  // The program speaks to the nodes' actors, as a member of the mesh: a
  // node certificate of its own (the mesh refuses client certificates);
  // a client certificate too, for the client API.
  leaf(pki::role::node, client_id);
  leaf(pki::role::client, client_id);
  tls.certificate = dir + "/node." + client_id + ".crt";
  tls.private_key = dir + "/node." + client_id + ".key";
  tls.ca = dir + "/ca.crt";
  return tls;
}

} // namespace engram::apps
