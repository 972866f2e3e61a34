// engramd's configuration as a pure function: TOML and flags in, the
// daemon's configuration (a node_config among it) out, every error naming
// its key. No process, no network: DNS seeds go through a resolver the
// test gives.

#include "apps/engramd/config.hpp"

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <set>
#include <string>

#include "temp_dir.hpp"

using namespace engram;
using namespace engram::engramd;
using namespace std::chrono_literals;

namespace {

// Resolves "dns:agents.internal:P" to two addresses, anything else as
// written; "dns:nowhere:P" fails.
expected<std::vector<actors::endpoint>> fake_dns(std::string_view seed) {
  std::string s{seed};
  if (s.rfind("dns:nowhere:", 0) == 0)
    return make_error(errc::invalid_argument, "cannot resolve 'nowhere'");
  if (s.rfind("dns:agents.internal:", 0) == 0) {
    auto port = static_cast<uint16_t>(std::stoi(s.substr(s.rfind(':') + 1)));
    return std::vector<actors::endpoint>{{"10.0.0.1", port},
                                         {"10.0.0.2", port}};
  }
  auto ep = actors::parse_endpoint(seed);
  if (!ep)
    return ep.error_value();
  return std::vector<actors::endpoint>{*ep};
}

struct config_fixture {
  test::temp_dir dir;
  std::string path = dir.sub("engramd.toml");

  // The settings of a file holding `toml` (after a node id and a data
  // directory); the error message when it is refused.
  expected<settings> file(const std::string& toml) {
    std::ofstream{path, std::ios::trunc} << "node_id = \"n1\"\ndata_dir = \""
                                         << dir.sub("n1") << "\"\n"
                                         << toml;
    settings s;
    if (auto ok = load_file(path, s); !ok)
      return ok.error_value();
    return s;
  }

  // The daemon's configuration of `toml`, or its error (plaintext unless
  // `toml` configures transport security itself).
  expected<daemon_config> config(const std::string& toml,
                                 bool plaintext_unless_set = true) {
    auto s = file(toml);
    if (!s)
      return s.error_value();
    if (plaintext_unless_set && !s->tls.enabled() && s->certs_dir.empty())
      s->insecure = true;
    return validate(*s, fake_dns);
  }

  // The message `toml` is refused with (fails the test when accepted).
  std::string refusal(const std::string& toml) {
    auto c = config(toml);
    if (c) {
      BOOST_ERROR("accepted: " << toml);
      return {};
    }
    return c.error_value().message;
  }
};

bool mentions(const std::string& text, const std::string& needle) {
  if (text.find(needle) != std::string::npos)
    return true;
  BOOST_TEST_MESSAGE("'" << needle << "' not in: " << text);
  return false;
}

} // namespace

BOOST_AUTO_TEST_SUITE(engramd_config_function)

BOOST_FIXTURE_TEST_CASE(a_file_becomes_the_nodes_configuration,
                        config_fixture) {
  auto c = config(R"(listen = "127.0.0.1:7420"
members = ["n1", "n2", "n3"]
max_clock_offset_ms = 250
threads = 2
[sessions]
push_delay_ms = 20
anti_entropy_ms = 1500
[distribution]
scope_defaults = "agent_shared"
[distribution.sync]
crdt = "lww"
[distribution.federation]
discovery = { seeds = ["127.0.0.1:7421"], dns = { domain = "agents.internal", port = 7422 } }
[distribution.replication]
factor = 3
consistency = "quorum"
write_timeout_ms = 1500
[distribution.partitioning]
strategy = "type"
partition_count = 4
)");
  BOOST_REQUIRE_MESSAGE(c, (c ? "" : c.error_value().message));
  auto& n = c->node;
  BOOST_CHECK_EQUAL(n.node_id, "n1");
  BOOST_CHECK(n.members == (std::vector<std::string>{"n1", "n2", "n3"}));
  BOOST_CHECK(n.max_clock_offset == 250ms);
  BOOST_CHECK(n.sessions.push_delay == 20ms);
  BOOST_CHECK(n.sessions.anti_entropy_interval == 1500ms);
  BOOST_CHECK_EQUAL(n.replication.factor, 3u);
  BOOST_CHECK(n.replication.consistency == consistency_level::quorum);
  BOOST_CHECK(n.replication.write_timeout == 1500ms);
  BOOST_CHECK(n.partitioning.strategy == partition_strategy::type);
  BOOST_CHECK_EQUAL(n.partitioning.partition_count, 4u);
  BOOST_CHECK_EQUAL(c->listen.to_string(), "127.0.0.1:7420");
  BOOST_CHECK_EQUAL(c->threads, 2u);
  // The seeds: one listed, two from DNS.
  std::set<std::string> seeds;
  for (auto& e : c->seeds)
    seeds.insert(e.to_string());
  BOOST_CHECK((seeds
               == std::set<std::string>{"127.0.0.1:7421", "10.0.0.1:7422",
                                        "10.0.0.2:7422"}));
  // The daemon's agents answer asks from memory, with these defaults.
  auto a = agent_defaults(*c, "alice");
  BOOST_CHECK(a.answer_from_memory);
  BOOST_CHECK(a.replication.strategy[static_cast<size_t>(memory_type::semantic)]
              == crdt_strategy::lww);
  auto f = agent_defaults(*c, "fed-0123");
  BOOST_CHECK(f.replication.strategy[static_cast<size_t>(memory_type::semantic)]
              == crdt_strategy::mvr);
}

BOOST_FIXTURE_TEST_CASE(every_refusal_names_its_key, config_fixture) {
  BOOST_CHECK(mentions(refusal("peerz = []\n"), "unknown key 'peerz'"));
  BOOST_CHECK(mentions(refusal("listen = \"localhost\"\n"),
                       "listen: bad address 'localhost'"));
  BOOST_CHECK(
      mentions(refusal("log_level = \"loud\"\n"), "unknown log level 'loud'"));
  BOOST_CHECK(mentions(refusal("threads = 1000\n"), "threads must be"));
  BOOST_CHECK(mentions(refusal("[replication]\nconsistency = \"most\"\n"),
                       "replication.consistency"));
  BOOST_CHECK(mentions(refusal("[partitioning]\npartition_count = 0\n"),
                       "partitioning.partition_count"));
  BOOST_CHECK(mentions(refusal("members = [\"../x\"]\n"), "members:"));
  BOOST_CHECK(mentions(refusal("[distribution.storage]\nbackend = \"redis\"\n"),
                       "not supported yet: distribution.storage.backend"));
  BOOST_CHECK(mentions(refusal("peers = [\"dns:nowhere:7420\"]\n"),
                       "peer: cannot resolve 'nowhere'"));
  BOOST_CHECK(mentions(refusal("peers = [\"127.0.0.1:1\"]\n[distribution]\n"
                               "enabled = false\n"),
                       "distribution.enabled = false"));
  BOOST_CHECK(mentions(refusal("node_id = \"x\"\n"), "node_id"));
}

BOOST_FIXTURE_TEST_CASE(every_duration_is_bounded, config_fixture) {
  BOOST_CHECK(mentions(refusal("heartbeat_ms = 9223372036854775807\n"),
                       "heartbeat_ms must be a positive number of ms, at most "
                       "60000"));
  BOOST_CHECK(mentions(refusal("heartbeat_ms = 0\n"), "heartbeat_ms"));
  BOOST_CHECK(mentions(refusal("max_clock_offset_ms = 7200000\n"),
                       "max_clock_offset_ms"));
  BOOST_CHECK(mentions(refusal("[sessions]\npeer_timeout_ms = 100\n"
                               "ping_ms = 200\n"),
                       "sessions.peer_timeout_ms must be above"));
  BOOST_CHECK(mentions(refusal("[distribution.sync]\ninterval = \"48h\"\n"),
                       "at most 86400000"));
  BOOST_CHECK(parse_duration("30s") == 30'000ms);
  BOOST_CHECK(parse_duration("1h") == 3'600'000ms);
  BOOST_CHECK(!parse_duration("0s"));
  BOOST_CHECK(!parse_duration("5 parsecs"));
  BOOST_CHECK(!parse_duration("99999999999999h"));
}

// Transport security: mutual TLS unless plaintext is asked for; plaintext
// beyond loopback only with a second setting; every TLS key checked.
BOOST_FIXTURE_TEST_CASE(transport_security_is_mutual_tls_by_default,
                        config_fixture) {
  auto none = config("", false);
  BOOST_REQUIRE(!none);
  BOOST_CHECK(mentions(none.error_value().message, "no transport security"));
  // A certificates directory names the node's files.
  auto dir_cfg = config("[security]\ncerts_dir = \"/etc/engram/certs\"\n");
  BOOST_REQUIRE_MESSAGE(dir_cfg,
                        (dir_cfg ? "" : dir_cfg.error_value().message));
  BOOST_CHECK_EQUAL(dir_cfg->tls.certificate, "/etc/engram/certs/node.n1.crt");
  BOOST_CHECK_EQUAL(dir_cfg->tls.private_key, "/etc/engram/certs/node.n1.key");
  BOOST_CHECK_EQUAL(dir_cfg->tls.ca, "/etc/engram/certs/ca.crt");
  BOOST_CHECK(!dir_cfg->insecure);
  // The spec's AuthMethod::MTLS, paths relative to the file, and the spec's
  // InTransitEncryption.
  auto mtls = config(
      "[distribution.auth]\nmethod = { mtls = { certificate = \"n1.crt\", "
      "private_key = \"n1.key\", ca = \"/pki/ca.crt\" } }\n"
      "[distribution.encryption.in_transit]\nmin_tls_version = \"1.3\"\n"
      "cipher_suites = [\"TLS_AES_256_GCM_SHA384\"]\n");
  BOOST_REQUIRE_MESSAGE(mtls, (mtls ? "" : mtls.error_value().message));
  BOOST_CHECK_EQUAL(mtls->tls.certificate, dir.sub("n1.crt"));
  BOOST_CHECK_EQUAL(mtls->tls.ca, "/pki/ca.crt");
  BOOST_CHECK(mtls->tls.cipher_suites
              == std::vector<std::string>{"TLS_AES_256_GCM_SHA384"});
  BOOST_CHECK(mentions(refusal("[distribution.auth]\nmethod = { mtls = { "
                               "certificate = \"a.crt\", private_key = "
                               "\"a.key\" } }\n"),
                       "distribution.auth.method.mtls.ca: not set"));
  BOOST_CHECK(mentions(refusal("[distribution.auth]\nmethod = { oauth = { "
                               "provider = \"x\" } }\n"),
                       "the method built is mtls"));
  BOOST_CHECK(mentions(refusal("[security]\ncerts_dir = \"/c\"\n"
                               "[distribution.encryption.in_transit]\n"
                               "min_tls_version = \"1.1\"\n"),
                       "min_tls_version: '1.1'"));
  BOOST_CHECK(mentions(refusal("[security]\ncerts_dir = \"/c\"\n"
                               "[distribution.encryption.in_transit]\n"
                               "cipher_suites = [\"RC4-MD5\"]\n"),
                       "'RC4-MD5' is not a TLS 1.3 suite"));
  BOOST_CHECK(mentions(refusal("[security]\ncerts_dir = \"/c\"\n"
                               "insecure = true\n"),
                       "choose one"));
  // Plaintext: loopback only, unless asked for twice.
  BOOST_CHECK(config("[security]\ninsecure = true\n", false));
  BOOST_CHECK(mentions(refusal("listen = \"0.0.0.0:7420\"\n[security]\n"
                               "insecure = true\n"),
                       "beyond loopback"));
  BOOST_CHECK(mentions(refusal("listen = \"127.example.com:7420\"\n"
                               "[security]\ninsecure = true\n"),
                       "beyond loopback"));
  auto wide = config("listen = \"0.0.0.0:7420\"\n[security]\ninsecure = "
                     "true\ninsecure_beyond_loopback = true\n",
                     false);
  BOOST_REQUIRE_MESSAGE(wide, (wide ? "" : wide.error_value().message));
  BOOST_CHECK(wide->insecure);
  BOOST_CHECK(mentions(refusal("[security]\ninsecur = true\n"),
                       "unknown key 'security.insecur'"));
}

BOOST_AUTO_TEST_CASE(names_have_their_character_set) {
  settings s;
  s.insecure = true;
  s.data_dir = "/tmp/x";
  for (auto* bad : {"../../etc/passwd", "a/b", "n 1", "-n"}) {
    s.node_id = bad;
    auto c = validate(s, fake_dns);
    BOOST_CHECK_MESSAGE(!c, bad);
  }
  s.node_id = "n-1.eu:a@b";
  BOOST_CHECK(validate(s, fake_dns));
}

BOOST_FIXTURE_TEST_CASE(the_consensus_table_configures_the_universal_group,
                        config_fixture) {
  auto c = config(R"([consensus]
protocol = "raft"
members = ["n1", "n2", "n3"]
election_timeout = "1500ms"
heartbeat_interval = "150ms"
)");
  BOOST_REQUIRE_MESSAGE(c, (c ? "" : c.error_value().message));
  auto& k = c->node.consensus;
  BOOST_CHECK(k.members == (std::vector<std::string>{"n1", "n2", "n3"}));
  BOOST_CHECK(k.election_timeout == 1500ms);
  BOOST_CHECK(k.heartbeat_interval == 150ms);
  // Refused with the key named: other protocols, unknown keys, timings out
  // of bounds or out of proportion.
  BOOST_CHECK(mentions(refusal("[consensus]\nprotocol = \"pbft\"\n"),
                       "not supported yet: consensus.protocol"));
  BOOST_CHECK(mentions(refusal("[consensus]\nprotocol = \"zab\"\n"),
                       "unknown protocol 'zab'"));
  BOOST_CHECK(
      mentions(refusal("[consensus]\nquorum = 2\n"), "consensus.quorum"));
  BOOST_CHECK(mentions(refusal("[consensus]\nelection_timeout = \"2h\"\n"),
                       "consensus.election_timeout"));
  BOOST_CHECK(mentions(refusal("[consensus]\nelection_timeout = \"100ms\"\n"
                               "heartbeat_interval = \"50ms\"\n"),
                       "three consensus.heartbeat_interval"));
  BOOST_CHECK(mentions(refusal("[consensus]\nelection_timeout = \"soon\"\n"),
                       "not a duration"));
}

BOOST_AUTO_TEST_SUITE_END()
