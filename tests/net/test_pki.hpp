#pragma once

// Certificates made by a test: a CA of its own in a temp directory, node
// and client certificates made on demand (files as `engramd cert` writes
// them: ca.crt, node.<id>.crt/.key, client.<id>.crt/.key), and this
// process's TLS policy set before anything uses OpenSSL.

#include "actors/tls.hpp"

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <set>
#include <string>

#include "pki/pki.hpp"

namespace engram::test {

class test_pki {
public:
  explicit test_pki(std::string dir) : dir_(std::move(dir)) {
    static bool policy = [] {
      return static_cast<bool>(actors::apply_tls_policy({}));
    }();
    if (!policy)
      BOOST_FAIL("cannot set the TLS policy");
    std::filesystem::create_directories(dir_);
    ca_key_ = must(pki::private_key::generate());
    ca_ = must(pki::make_ca(ca_key_, "test"));
    write("ca.key", ca_key_.to_pem(), 0600);
    write("ca.crt", ca_.to_pem(), 0644);
  }

  const std::string& dir() const noexcept { return dir_; }

  /// Makes (once) node `id`'s certificate and key.
  void node(const std::string& id) { make(pki::role::node, id); }

  /// Makes (once) client agent `id`'s certificate and key.
  void client(const std::string& id) { make(pki::role::client, id); }

  /// Node `id`'s TLS configuration (its files made if needed): an actor
  /// system hosting that node speaks TLS with it.
  actors::tls_config node_tls(const std::string& id) {
    return tls_of(pki::role::node, id);
  }

  /// A client's TLS configuration (its files made if needed).
  actors::tls_config client_tls(const std::string& id) {
    return tls_of(pki::role::client, id);
  }

  const pki::certificate& ca() const noexcept { return ca_; }

  const pki::private_key& ca_key() const noexcept { return ca_key_; }

private:
  actors::tls_config tls_of(pki::role r, const std::string& id) {
    make(r, id);
    auto base = dir_ + (r == pki::role::node ? "/node." : "/client.") + id;
    actors::tls_config t;
    t.certificate = base + ".crt";
    t.private_key = base + ".key";
    t.ca = dir_ + "/ca.crt";
    return t;
  }

  template<class T>
  static T must(expected<T> x) {
    if (!x)
      BOOST_FAIL(x.error_value().to_string());
    return std::move(*x);
  }

  void write(const std::string& name, const std::string& text, unsigned mode) {
    if (auto ok = pki::write_file(dir_ + "/" + name, text, mode, true); !ok)
      BOOST_FAIL(ok.error_value().to_string());
  }

  void make(pki::role r, const std::string& id) {
    auto base = std::string{r == pki::role::node ? "node." : "client."} + id;
    if (!made_.insert(base).second)
      return;
    auto key = must(pki::private_key::generate());
    // Nodes are reached at 127.0.0.1: their API's clients check that name.
    pki::issue_options opts;
    if (r == pki::role::node)
      opts.hosts = {"127.0.0.1", "localhost"};
    auto cert = must(pki::issue(ca_, ca_key_, r, id, key, opts));
    write(base + ".key", key.to_pem(), 0600);
    write(base + ".crt", cert.to_pem(), 0644);
  }

  std::string dir_;
  pki::private_key ca_key_;
  pki::certificate ca_;
  std::set<std::string> made_;
};

} // namespace engram::test
