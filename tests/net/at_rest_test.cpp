// Encryption at rest with real engramd processes: what a node writes into
// its data directory (table files, write-ahead log, MANIFEST, LOG) holds
// none of the memories it keeps; it starts only with its master key, a key
// file anyone else may read is refused, and `engramd rekey` rotates the
// keys with every memory still served.

#include <boost/test/unit_test.hpp>
#include <sys/stat.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "cluster.hpp"
#include "http/server.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A master key file in hex, readable by its owner only.
std::string key_file(const std::string& path, char digit) {
  std::ofstream{path} << std::string(64, digit) << '\n';
  ::chmod(path.c_str(), 0600);
  return path;
}

std::vector<std::string> args_of(cluster& c) {
  auto args = c.argv("n1", {});
  args.erase(args.begin()); // the program itself
  return args;
}

} // namespace

BOOST_AUTO_TEST_SUITE(at_rest)

BOOST_AUTO_TEST_CASE(a_node_encrypted_at_rest_leaves_no_memory_readable) {
  cluster c;
  const std::string canary = "CANARY-Hq93v";
  auto k1 = key_file(c.dir.sub("k1.key"), '1');
  auto k2 = key_file(c.dir.sub("k2.key"), '2');
  c.common = {"--master-key", "file:" + k1};
  auto dir = c.dir.sub("n1");
  // Twenty memories flushed to table files (SIGTERM), twenty more left in
  // the write-ahead log (SIGKILL).
  for (int round = 0; round < 2; ++round) {
    auto i = c.start("n1", {});
    auto inst = c.instance(i, "ann", "main");
    for (int k = 0; k < 20; ++k)
      c.learn(inst, fact_of("secret-" + canary + std::to_string(round) + "-"
                                + std::to_string(k),
                            "the value is " + canary));
    c.nodes[i].proc.signal(round == 0 ? SIGTERM : SIGKILL);
    BOOST_REQUIRE(c.nodes[i].proc.wait(10s));
    c.nodes.clear();
  }
  auto found = files_containing(dir, canary);
  BOOST_CHECK_MESSAGE(found.empty(), "the canary is in "
                                         << found.size() << " files, e.g. "
                                         << (found.empty() ? "" : found[0]));
  BOOST_CHECK(files_containing(dir, "the value is").empty());
  // Without its key, with another key, with a key file others may read:
  // refused, naming why (never the key).
  c.common.clear();
  auto none = run(args_of(c), c.dir.sub("none.log"));
  BOOST_CHECK_EQUAL(none.first, 3);
  BOOST_CHECK_MESSAGE(
      none.second.find("encrypted at rest") != std::string::npos, none.second);
  c.common = {"--master-key", "file:" + k2};
  auto wrong = run(args_of(c), c.dir.sub("wrong.log"));
  BOOST_CHECK_EQUAL(wrong.first, 3);
  BOOST_CHECK_MESSAGE(wrong.second.find("master key") != std::string::npos
                          && wrong.second.find(std::string(64, '2'))
                                 == std::string::npos,
                      wrong.second);
  ::chmod(k1.c_str(), 0644);
  c.common = {"--master-key", "file:" + k1};
  auto exposed = run(args_of(c), c.dir.sub("exposed.log"));
  BOOST_CHECK_EQUAL(exposed.first, 2);
  BOOST_CHECK_MESSAGE(exposed.second.find(k1) != std::string::npos,
                      exposed.second);
  ::chmod(k1.c_str(), 0600);
  // Rotated to k2 (the store is not rewritten): k1 no longer opens it, k2
  // serves every memory, and a write after it is kept.
  auto rekeyed = run({"rekey", "--data-dir", dir, "--master-key", "file:" + k1,
                      "--new-master-key", "file:" + k2},
                     c.dir.sub("rekey.log"));
  BOOST_CHECK_EQUAL(rekeyed.first, 0);
  BOOST_CHECK_MESSAGE(rekeyed.second.find("data key 2 active")
                          != std::string::npos,
                      rekeyed.second);
  auto old = run(args_of(c), c.dir.sub("old.log"));
  BOOST_CHECK_EQUAL(old.first, 3);
  c.common = {"--master-key", "file:" + k2};
  auto i = c.start("n1", {});
  auto inst = c.instance(i, "ann", "main");
  BOOST_CHECK_EQUAL(c.count(inst), 40u);
  c.learn(inst, fact_of("after", "rekey"));
  BOOST_CHECK_EQUAL(c.count(inst), 41u);
}

// A Vault of the test's own speaking the KV version 2 subset engramd uses:
// GET /v1/<mount>/data/<path> with X-Vault-Token.
struct fake_vault {
  std::string token = "s.test-token";
  std::string key_hex = std::string(64, '7');
  std::atomic<int> reads{0};
  std::unique_ptr<http::server> server;

  explicit fake_vault(test_pki& pki) {
    pki.node("vault");
    http::server_config cfg;
    cfg.certificate = pki.dir() + "/node.vault.crt";
    cfg.private_key = pki.dir() + "/node.vault.key";
    cfg.ca = pki.dir() + "/ca.crt";
    auto started = http::server::start(
        cfg, [this](http::request req, std::shared_ptr<http::responder> out) {
          ++reads;
          if (req.header("x-vault-token") != token) {
            out->send({403,
                       "application/json",
                       {},
                       R"({"errors":["permission denied"]})"});
          } else if (req.method == "GET"
                     && req.path == "/v1/secret/data/engram/master") {
            out->send({200,
                       "application/json",
                       {},
                       R"({"data":{"data":{"key":")" + key_hex
                           + R"("},"metadata":{"version":3}}})"});
          } else {
            out->send({404, "application/json", {}, R"({"errors":[]})"});
          }
        });
    if (!started)
      BOOST_FAIL(started.error_value().message);
    server = std::move(*started);
  }

  std::string url() const {
    return "https://127.0.0.1:" + std::to_string(server->port());
  }
};

BOOST_AUTO_TEST_CASE(the_master_key_can_come_from_vault) {
  cluster c;
  fake_vault vault{c.pki};
  auto config = c.dir.sub("vault.toml");
  std::ofstream{config} << "[distribution.encryption.at_rest]\n"
                        << "algorithm = \"aes256gcm\"\n"
                        << "key_management = { vault = { url = \""
                        << vault.url() << "\", ca = \"" << c.pki.dir()
                        << "/ca.crt\" } }\n";
  c.common = {"--config", config};
  c.env["n1"] = {"VAULT_TOKEN=" + vault.token};
  auto i = c.start("n1", {});
  BOOST_CHECK_GE(vault.reads.load(), 1);
  auto inst = c.instance(i, "ann", "main");
  c.learn(inst, fact_of("kept", "under a key from vault"));
  c.nodes[i].proc.signal(SIGTERM);
  BOOST_REQUIRE(c.nodes[i].proc.wait(10s));
  c.nodes.clear();
  BOOST_CHECK(files_containing(c.dir.sub("n1"), "under a key from").empty());
  // A wrong token, an unreachable Vault, a missing secret, plain HTTP
  // beyond loopback: refused at start (exit 2), naming Vault and why,
  // never the token.
  auto attempt
      = [&](const std::vector<std::string>& env,
            const std::vector<std::string>& extra, const std::string& log) {
          auto args = c.argv("n1", {});
          args.insert(args.end(), extra.begin(), extra.end());
          process p{args, c.dir.sub(log), env};
          auto rc = p.wait(20s);
          BOOST_REQUIRE(rc);
          return std::make_pair(*rc, p.output());
        };
  auto wrong = attempt({"VAULT_TOKEN=s.wrong"}, {}, "wrong.log");
  BOOST_CHECK_EQUAL(wrong.first, 2);
  BOOST_CHECK_MESSAGE(wrong.second.find("Vault refused the token")
                              != std::string::npos
                          && wrong.second.find("s.wrong") == std::string::npos,
                      wrong.second);
  auto none = attempt({}, {}, "none.log");
  BOOST_CHECK_EQUAL(none.first, 2);
  BOOST_CHECK_MESSAGE(none.second.find("VAULT_TOKEN") != std::string::npos,
                      none.second);
  auto ca = c.pki.dir() + "/ca.crt";
  auto gone = attempt({"VAULT_TOKEN=" + vault.token, "VAULT_CACERT=" + ca},
                      {"--master-key", "vault:https://127.0.0.1:1/v1/secret/"
                                       "data/engram/master"},
                      "gone.log");
  BOOST_CHECK_EQUAL(gone.first, 2);
  BOOST_CHECK_MESSAGE(gone.second.find("cannot connect") != std::string::npos,
                      gone.second);
  auto missing
      = attempt({"VAULT_TOKEN=" + vault.token, "VAULT_CACERT=" + ca},
                {"--master-key",
                 "vault:" + vault.url() + "/v1/secret/data/engram/other#key"},
                "missing.log");
  BOOST_CHECK_EQUAL(missing.first, 2);
  BOOST_CHECK_MESSAGE(missing.second.find("no such secret")
                          != std::string::npos,
                      missing.second);
  auto plain = attempt({"VAULT_TOKEN=" + vault.token},
                       {"--master-key", "vault:http://10.0.0.1:8200/v1/secret/"
                                        "data/engram/master"},
                       "plain.log");
  BOOST_CHECK_EQUAL(plain.first, 2);
  BOOST_CHECK_MESSAGE(plain.second.find("plain HTTP beyond loopback")
                          != std::string::npos,
                      plain.second);
  // The --master-key form reads the same secret: the node serves what it
  // kept.
  c.common.clear();
  c.common = {"--master-key",
              "vault:" + vault.url() + "/v1/secret/data/engram/master#key"};
  c.env["n1"] = {"VAULT_TOKEN=" + vault.token, "VAULT_CACERT=" + ca};
  auto j = c.start("n1", {});
  BOOST_CHECK_EQUAL(c.count(c.instance(j, "ann", "main")), 1u);
}

// The master key derived in a PKCS#11 token (SoftHSM in a directory of the
// test's own): engramd pkcs11-keygen makes the token's key, the node runs
// with key_management = { pkcs11 = { ... } } and finds its memories again
// after a restart; a wrong PIN is refused at start.
BOOST_AUTO_TEST_CASE(the_master_key_can_come_from_a_pkcs11_token) {
  cluster c;
  const std::string module = "/usr/lib/softhsm/libsofthsm2.so";
  fs::create_directories(c.dir.sub("tokens"));
  std::ofstream{c.dir.sub("softhsm2.conf")}
      << "directories.tokendir = " << c.dir.sub("tokens")
      << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  std::vector<std::string> env{"SOFTHSM2_CONF=" + c.dir.sub("softhsm2.conf")};
  {
    process init{{"/usr/bin/softhsm2-util", "--init-token", "--free", "--label",
                  "engram", "--pin", "112233", "--so-pin", "332211"},
                 c.dir.sub("init.log"),
                 env};
    BOOST_REQUIRE_EQUAL(init.wait(20s).value_or(-1), 0);
  }
  std::ofstream{c.dir.sub("pin")} << "112233\n";
  ::chmod(c.dir.sub("pin").c_str(), 0600);
  auto uri = "pkcs11:token=engram;object=engram-master?module-path=" + module
             + "&pin-source=file:" + c.dir.sub("pin");
  {
    process keygen{
        {engramd, "pkcs11-keygen", "--uri", uri}, c.dir.sub("keygen.log"), env};
    BOOST_REQUIRE_EQUAL(keygen.wait(20s).value_or(-1), 0);
    BOOST_CHECK_MESSAGE(keygen.output().find("created the key")
                            != std::string::npos,
                        keygen.output());
  }
  auto config = c.dir.sub("pkcs11.toml");
  std::ofstream{config} << "[distribution.encryption.at_rest]\n"
                        << "key_management = { pkcs11 = { module = \"" << module
                        << "\", token = \"engram\", key_label = "
                        << "\"engram-master\", pin_file = \""
                        << c.dir.sub("pin") << "\" } }\n";
  c.common = {"--config", config};
  c.env["n1"] = env;
  for (int round = 0; round < 2; ++round) {
    auto i = c.start("n1", {});
    auto inst = c.instance(i, "ann", "main");
    c.learn(inst, fact_of("k" + std::to_string(round), "kept in a token"));
    BOOST_CHECK_EQUAL(c.count(inst), static_cast<size_t>(round + 1));
    c.nodes[i].proc.signal(SIGTERM);
    BOOST_REQUIRE(c.nodes[i].proc.wait(10s));
    c.nodes.clear();
  }
  BOOST_CHECK(files_containing(c.dir.sub("n1"), "kept in a token").empty());
  std::ofstream{c.dir.sub("pin"), std::ios::trunc} << "000000\n";
  process wrong{c.argv("n1", {}), c.dir.sub("wrong.log"), env};
  BOOST_CHECK_EQUAL(wrong.wait(20s).value_or(-1), 2);
  BOOST_CHECK_MESSAGE(wrong.output().find("CKR_PIN_INCORRECT")
                          != std::string::npos,
                      wrong.output());
}

BOOST_AUTO_TEST_SUITE_END()
