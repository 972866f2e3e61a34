#include "apps/engramd/cert.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "pki/pki.hpp"

namespace engram::engramd {

namespace {

namespace fs = std::filesystem;

std::string ca_key_path(const cert_options& o) {
  return o.ca_key.empty() ? o.certs_dir + "/ca.key" : o.ca_key;
}

std::string date(int64_t t) {
  auto tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
  return buf;
}

int fail(const std::string& why) {
  std::fprintf(stderr, "engramd cert: %s\n", why.c_str());
  return 1;
}

int fail(const error& e) { return fail(e.message); }

pki::issue_options issue_opts(const cert_options& o) {
  pki::issue_options opts;
  opts.lifetime = std::chrono::hours{24} * o.lifetime_days;
  opts.hosts = o.hosts;
  return opts;
}

// Writes a key (0600) and its certificate (0644); the key first, and
// neither when either exists (unless overwriting).
int write_pair(const cert_options& o, const std::string& base,
               const pki::private_key& key, const pki::certificate& cert) {
  auto key_path = base + ".key";
  auto crt_path = base + ".crt";
  if (!o.overwrite)
    for (auto& p : {key_path, crt_path})
      if (fs::exists(p))
        return fail(p + " exists (--overwrite replaces it)");
  if (auto ok = pki::write_file(key_path, key.to_pem(), 0600, o.overwrite); !ok)
    return fail(ok.error_value());
  if (auto ok = pki::write_file(crt_path, cert.to_pem(), 0644, o.overwrite);
      !ok)
    return fail(ok.error_value());
  std::printf("wrote %s and %s (id %s, expires %s UTC)\n", crt_path.c_str(),
              key_path.c_str(), cert.id().empty() ? "-" : cert.id().c_str(),
              date(cert.not_after()).c_str());
  return 0;
}

int ensure_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return fail("cannot create " + dir + ": " + ec.message());
  return 0;
}

int create_ca(const cert_options& o) {
  if (auto rc = ensure_dir(o.certs_dir); rc != 0)
    return rc;
  auto key = pki::private_key::generate();
  if (!key)
    return fail(key.error_value());
  auto ca = pki::make_ca(*key, o.name, issue_opts(o));
  if (!ca)
    return fail(ca.error_value());
  auto key_path = ca_key_path(o);
  auto crt_path = o.certs_dir + "/ca.crt";
  if (!o.overwrite)
    for (auto& p : {key_path, crt_path})
      if (fs::exists(p))
        return fail(p
                    + " exists (--overwrite replaces it, and every "
                      "certificate it issued stops being trusted)");
  if (auto ok = pki::write_file(key_path, key->to_pem(), 0600, o.overwrite);
      !ok)
    return fail(ok.error_value());
  if (auto ok = pki::write_file(crt_path, ca->to_pem(), 0644, o.overwrite); !ok)
    return fail(ok.error_value());
  std::printf("wrote %s and %s (cluster %s)\n", crt_path.c_str(),
              key_path.c_str(), o.name.c_str());
  return 0;
}

// The cluster's CA certificate and key (what issuing and revoking sign
// with).
struct ca_pair {
  pki::certificate cert;
  pki::private_key key;
};

expected<ca_pair> load_ca(const cert_options& o) {
  auto ca = pki::load_certificate(o.certs_dir + "/ca.crt");
  if (!ca)
    return ca.error_value();
  auto ca_key = pki::load_private_key(ca_key_path(o));
  if (!ca_key)
    return ca_key.error_value();
  return ca_pair{std::move(*ca), std::move(*ca_key)};
}

int create_leaf(const cert_options& o, pki::role r) {
  auto ca = load_ca(o);
  if (!ca)
    return fail(ca.error_value());
  auto key = pki::private_key::generate();
  if (!key)
    return fail(key.error_value());
  auto cert = pki::issue(ca->cert, ca->key, r, o.id, *key, issue_opts(o));
  if (!cert)
    return fail(cert.error_value());
  auto base
      = o.certs_dir + "/" + (r == pki::role::node ? "node." : "client.") + o.id;
  return write_pair(o, base, *key, *cert);
}

int revoke(const cert_options& o) {
  auto ca = load_ca(o);
  if (!ca)
    return fail(ca.error_value());
  auto cert = pki::load_certificate(o.file);
  if (!cert)
    return fail(cert.error_value());
  auto crl_path = o.certs_dir + "/ca.crl";
  std::optional<pki::revocation_list> base;
  if (fs::exists(crl_path)) {
    auto old = pki::load_revocation_list(crl_path);
    if (!old)
      return fail(old.error_value());
    base = std::move(*old);
  }
  auto crl = pki::revoke(ca->cert, ca->key, {*cert}, base ? &*base : nullptr);
  if (!crl)
    return fail(crl.error_value());
  if (auto ok = pki::write_file(crl_path, crl->to_pem(), 0644, true); !ok)
    return fail(ok.error_value());
  std::printf("revoked %s (serial %s); %s lists %zu certificates: give it to "
              "every node (security.crl)\n",
              o.file.c_str(), cert->serial().c_str(), crl_path.c_str(),
              crl->size());
  return 0;
}

int list(const cert_options& o) {
  std::error_code ec;
  if (!fs::is_directory(o.certs_dir, ec))
    return fail(o.certs_dir + " is not a directory");
  auto ca = pki::load_certificate(o.certs_dir + "/ca.crt");
  std::optional<pki::revocation_list> crl;
  if (auto c = pki::load_revocation_list(o.certs_dir + "/ca.crl"); c)
    crl = std::move(*c);
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator{o.certs_dir, ec})
    if (e.path().extension() == ".crt")
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::printf("%-22s %-7s %-16s %-17s %-10s %s\n", "file", "role", "id",
              "expires (UTC)", "status", "hosts");
  auto now = static_cast<int64_t>(std::time(nullptr));
  for (auto& f : files) {
    auto cert = pki::load_certificate(f.string());
    if (!cert) {
      std::printf("%-22s unreadable: %s\n", f.filename().c_str(),
                  cert.error_value().message.c_str());
      continue;
    }
    std::string status = "ok";
    if (!ca) {
      status = "no CA";
    } else if (auto ok = pki::verify(*cert, *ca, crl ? &*crl : nullptr, now,
                                     cert->role(), cert->id());
               !ok) {
      auto& m = ok.error_value().message;
      status = m.find("revoked") != std::string::npos   ? "revoked"
               : m.find("expired") != std::string::npos ? "expired"
                                                        : "untrusted";
    }
    // A key beside it must be its own and private.
    auto key_path = f;
    key_path.replace_extension(".key");
    if (status == "ok" && fs::exists(key_path)) {
      auto key = pki::load_private_key(key_path.string());
      if (!key)
        status = "bad key";
      else if (!key->matches(*cert))
        status = "key mismatch";
    }
    std::string hosts;
    for (auto& h : cert->hosts())
      hosts += (hosts.empty() ? "" : ",") + h;
    std::printf("%-22s %-7s %-16s %-17s %-10s %s\n", f.filename().c_str(),
                pki::to_string(cert->role()),
                cert->id().empty() ? "-" : cert->id().c_str(),
                date(cert->not_after()).c_str(), status.c_str(), hosts.c_str());
  }
  return 0;
}

} // namespace

CLI::App* add_cert_command(CLI::App& app, cert_options& o) {
  auto* cert = app.add_subcommand(
      "cert", "the cluster's certificates: a CA, one per node, one per "
              "client agent (keys written 0600, never replaced without "
              "--overwrite)");
  cert->require_subcommand(1);
  auto common = [&](CLI::App* sub) {
    sub->add_option("--certs-dir", o.certs_dir, "the certificates directory")
        ->required();
    sub->add_option("--ca-key", o.ca_key,
                    "the CA's key (default: CERTS_DIR/ca.key)");
  };
  auto issuing = [&](CLI::App* sub) {
    common(sub);
    sub->add_option("--lifetime-days", o.lifetime_days,
                    "validity in days (a CA: ten times this)")
        ->check(CLI::Range(1, 36500));
    sub->add_flag("--overwrite", o.overwrite, "replace existing files");
  };
  auto* ca = cert->add_subcommand("create-ca", "make the cluster's CA");
  issuing(ca);
  ca->add_option("--name", o.name, "the cluster's name");
  auto* node = cert->add_subcommand("create-node",
                                    "make a node's certificate (its id in it)");
  node->add_option("node_id", o.id, "the node id")->required();
  node->add_option("--host", o.hosts,
                   "a DNS name or IP address the node is reached at "
                   "(repeatable)");
  issuing(node);
  auto* client = cert->add_subcommand("create-client",
                                      "make a client agent's certificate");
  client->add_option("agent_id", o.id, "the agent id")->required();
  issuing(client);
  auto* rev = cert->add_subcommand(
      "revoke", "revoke a certificate (adds it to CERTS_DIR/ca.crl)");
  rev->add_option("file", o.file, "the certificate to revoke")->required();
  common(rev);
  auto* ls = cert->add_subcommand(
      "list", "list the certificates, their ids, expiry and status");
  ls->add_option("--certs-dir", o.certs_dir, "the certificates directory")
      ->required();
  return cert;
}

int run_cert(const CLI::App& cmd, const cert_options& o) {
  if (cmd.got_subcommand("create-ca"))
    return create_ca(o);
  if (cmd.got_subcommand("create-node"))
    return create_leaf(o, pki::role::node);
  if (cmd.got_subcommand("create-client"))
    return create_leaf(o, pki::role::client);
  if (cmd.got_subcommand("revoke"))
    return revoke(o);
  if (cmd.got_subcommand("list"))
    return list(o);
  return fail("no such cert command");
}

} // namespace engram::engramd
