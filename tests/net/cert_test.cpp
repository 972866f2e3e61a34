// engramd cert: a CA, node and client certificates that OpenSSL's own tool
// accepts (and rejects once revoked); keys 0600; nothing overwritten
// without --overwrite; bad ids and missing CAs refused with a clear error.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cluster.hpp"

using namespace engram;
using namespace engram::test;

namespace {

// A program on the PATH.
std::string on_path(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin";
  for (size_t from = 0; from <= path.size();) {
    auto to = path.find(':', from);
    if (to == std::string::npos)
      to = path.size();
    auto candidate = path.substr(from, to - from) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    from = to + 1;
  }
  return name;
}

// Runs a program to completion (bounded): exit code and output.
std::pair<int, std::string> run_program(std::vector<std::string> argv,
                                        const std::string& log) {
  argv[0] = on_path(argv[0]);
  process p{argv, log};
  auto rc = p.wait(20s);
  if (!rc)
    BOOST_FAIL(argv[0] + " did not exit");
  return {*rc, p.output()};
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return 0;
  return st.st_mode & 0777;
}

// engramd with `args`, its output in a log of its own.
std::pair<int, std::string> engramd_run(const temp_dir& dir,
                                        const std::vector<std::string>& args) {
  static int n = 0;
  return run(args, dir.sub("engramd-" + std::to_string(++n) + ".log"));
}

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, {}};
}

} // namespace

BOOST_AUTO_TEST_SUITE(cert_tooling)

BOOST_AUTO_TEST_CASE(certificates_are_made_listed_and_revoked) {
  temp_dir dir;
  auto certs = dir.sub("certs");
  auto [rc, out] = engramd_run(
      dir, {"cert", "create-ca", "--certs-dir", certs, "--name", "lab"});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  BOOST_CHECK_EQUAL(mode_of(certs + "/ca.key"), 0600u);
  BOOST_CHECK_EQUAL(mode_of(certs + "/ca.crt"), 0644u);
  std::tie(rc, out)
      = engramd_run(dir, {"cert", "create-node", "n1", "--host", "127.0.0.1",
                          "--host", "n1.lab", "--certs-dir", certs});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  BOOST_CHECK_EQUAL(mode_of(certs + "/node.n1.key"), 0600u);
  std::tie(rc, out)
      = engramd_run(dir, {"cert", "create-node", "n2", "--certs-dir", certs});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  std::tie(rc, out) = engramd_run(
      dir, {"cert", "create-client", "planner", "--certs-dir", certs});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  BOOST_CHECK_EQUAL(mode_of(certs + "/client.planner.key"), 0600u);
  // OpenSSL's own tool trusts them, with the node id in the SAN.
  std::tie(rc, out) = run_program({"openssl", "verify", "-CAfile",
                                   certs + "/ca.crt", certs + "/node.n1.crt"},
                                  dir.sub("verify.log"));
  BOOST_CHECK_MESSAGE(rc == 0, out);
  std::tie(rc, out)
      = run_program({"openssl", "x509", "-noout", "-ext", "subjectAltName",
                     "-in", certs + "/node.n1.crt"},
                    dir.sub("x509.log"));
  BOOST_CHECK_MESSAGE(out.find("URI:urn:engram:node:n1") != std::string::npos
                          && out.find("IP Address:127.0.0.1")
                                 != std::string::npos
                          && out.find("DNS:n1.lab") != std::string::npos,
                      out);
  // list shows each with its id and status.
  std::tie(rc, out) = engramd_run(dir, {"cert", "list", "--certs-dir", certs});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  for (auto s : {"node.n1.crt", "node.n2.crt", "client.planner.crt", "ca.crt"})
    BOOST_CHECK_MESSAGE(out.find(s) != std::string::npos, out);
  BOOST_CHECK_MESSAGE(out.find("revoked") == std::string::npos, out);
  // Revoked: in the list, and OpenSSL refuses it with the CRL.
  std::tie(rc, out) = engramd_run(
      dir, {"cert", "revoke", certs + "/node.n2.crt", "--certs-dir", certs});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  std::tie(rc, out) = engramd_run(dir, {"cert", "list", "--certs-dir", certs});
  BOOST_CHECK_MESSAGE(out.find("revoked") != std::string::npos, out);
  std::tie(rc, out) = run_program({"openssl", "verify", "-crl_check",
                                   "-CRLfile", certs + "/ca.crl", "-CAfile",
                                   certs + "/ca.crt", certs + "/node.n2.crt"},
                                  dir.sub("verify2.log"));
  BOOST_CHECK_MESSAGE(rc != 0 && out.find("revoked") != std::string::npos, out);
  std::tie(rc, out) = run_program({"openssl", "verify", "-crl_check",
                                   "-CRLfile", certs + "/ca.crl", "-CAfile",
                                   certs + "/ca.crt", certs + "/node.n1.crt"},
                                  dir.sub("verify3.log"));
  BOOST_CHECK_MESSAGE(rc == 0, out);
}

BOOST_AUTO_TEST_CASE(nothing_is_overwritten_and_bad_input_is_named) {
  temp_dir dir;
  auto certs = dir.sub("certs");
  // No CA yet: named.
  auto [rc, out]
      = engramd_run(dir, {"cert", "create-node", "n1", "--certs-dir", certs});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(out.find("ca.crt") != std::string::npos, out);
  std::tie(rc, out)
      = engramd_run(dir, {"cert", "create-ca", "--certs-dir", certs});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  auto ca_key = slurp(certs + "/ca.key");
  // A second CA would replace the first: refused, the key unchanged.
  std::tie(rc, out)
      = engramd_run(dir, {"cert", "create-ca", "--certs-dir", certs});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(out.find("--overwrite") != std::string::npos, out);
  BOOST_CHECK(slurp(certs + "/ca.key") == ca_key);
  std::tie(rc, out)
      = engramd_run(dir, {"cert", "create-node", "n1", "--certs-dir", certs});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  auto key = slurp(certs + "/node.n1.key");
  std::tie(rc, out)
      = engramd_run(dir, {"cert", "create-node", "n1", "--certs-dir", certs});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK(slurp(certs + "/node.n1.key") == key);
  std::tie(rc, out) = engramd_run(
      dir, {"cert", "create-node", "n1", "--certs-dir", certs, "--overwrite"});
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK(slurp(certs + "/node.n1.key") != key);
  // Ids outside the node-id character set, and bad hosts.
  for (std::string bad : {"../n1", "a b", "n1/x"}) {
    std::tie(rc, out)
        = engramd_run(dir, {"cert", "create-node", bad, "--certs-dir", certs});
    BOOST_CHECK_EQUAL(rc, 1);
    BOOST_CHECK_MESSAGE(out.find("node id") != std::string::npos, out);
  }
  std::tie(rc, out) = engramd_run(dir, {"cert", "create-node", "n3", "--host",
                                        "a b", "--certs-dir", certs});
  BOOST_CHECK_EQUAL(rc, 1);
  // A CA key others may read is refused.
  ::chmod((certs + "/ca.key").c_str(), 0644);
  std::tie(rc, out)
      = engramd_run(dir, {"cert", "create-node", "n4", "--certs-dir", certs});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(out.find("chmod 600") != std::string::npos, out);
  // Wrong flags: exit 2.
  std::tie(rc, out)
      = engramd_run(dir, {"cert", "create-node", "--certs-dir", certs});
  BOOST_CHECK_EQUAL(rc, 2);
  std::tie(rc, out) = engramd_run(dir, {"cert", "frobnicate"});
  BOOST_CHECK_EQUAL(rc, 2);
}

BOOST_AUTO_TEST_SUITE_END()
