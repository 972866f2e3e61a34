// The engram CLI against real engramd processes: every verb, --json
// output, and the exit codes of failures (refused 1, usage 2, node down 3,
// no answer in time 4, stored but not confirmed 5).

#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <fstream>

#include "cluster.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const std::string engram_cli = ENGRAM_CLI_PATH;

struct cli_result {
  int code = -1;
  std::string out;

  // The JSON printed on stdout (a failure's message follows on stderr,
  // which the log interleaves after it).
  json parsed() const {
    try {
      return json::parse(out);
    } catch (const std::exception&) {
    }
    try {
      return json::parse(out.substr(0, out.find('\n')));
    } catch (const std::exception&) {
      BOOST_ERROR("not JSON: " << out);
      return json{};
    }
  }
};

// A cluster (its nodes started by the test) and the CLI to drive it.
struct cli_base {
  cluster c;

  // Runs `engram --node <node i> args...` to completion (bounded).
  cli_result run(size_t i, std::vector<std::string> args) {
    static std::atomic<int> seq{0};
    auto log = c.dir.sub("cli-" + std::to_string(seq++) + ".out");
    std::vector<std::string> argv{engram_cli, "--node", c.api_address(i)};
    // Mutual TLS as the agent the command acts as (certificates made here).
    std::string agent = "admin";
    for (size_t k = 0; k + 1 < args.size(); ++k)
      if (args[k] == "--agent" && validate_name(args[k + 1], "agent"))
        agent = args[k + 1];
    c.pki.client(agent);
    argv.insert(argv.end(), {"--certs-dir", c.pki.dir()});
    argv.insert(argv.end(), args.begin(), args.end());
    engram::apps::process p{argv, log};
    auto rc = p.wait(30s);
    if (!rc)
      BOOST_FAIL("engram did not exit: " << args.front());
    return {*rc, p.output()};
  }

  // Retries `args` until it succeeds (the directory needs a moment to tell
  // a node where an agent runs); bounded.
  cli_result until_ok(size_t i, std::vector<std::string> args) {
    cli_result r;
    until([&] {
      r = run(i, args);
      return r.code == 0;
    });
    return r;
  }
};

// Two nodes, n2 seeded with n1.
struct cli_fixture : cli_base {
  size_t n1 = c.start("n1", {});
  size_t n2 = c.start("n2", {c.nodes[n1].port});
};

} // namespace

BOOST_AUTO_TEST_SUITE(engram_cli)

BOOST_FIXTURE_TEST_CASE(every_verb_works_against_real_nodes, cli_fixture) {
  // learn / believe / query, plain and JSON.
  auto learned = run(n1, {"--agent", "alice", "learn", "user.name", "Bob"});
  BOOST_REQUIRE_EQUAL(learned.code, 0);
  BOOST_CHECK_EQUAL(learned.out.size(), 33u); // 32 hex digits and a newline
  BOOST_REQUIRE_EQUAL(run(n1, {"--agent", "alice", "believe", "sky", "color",
                               "blue", "--confidence", "0.6"})
                          .code,
                      0);
  auto plain = run(n1, {"--agent", "alice", "query"});
  BOOST_CHECK(plain.out.find("fact user.name=Bob") != std::string::npos);
  auto q = run(n1, {"--agent", "alice", "--json", "query", "--subject", "sky"});
  BOOST_REQUIRE_EQUAL(q.code, 0);
  auto views = q.parsed();
  BOOST_REQUIRE_EQUAL(views.size(), 1u);
  BOOST_CHECK_EQUAL(views[0]["object"], "blue");
  BOOST_CHECK_CLOSE(views[0]["confidence"].get<double>(), 0.6, 1e-9);
  // ask across nodes: engramd answers from the agent's memory.
  auto asked = until_ok(n2, {"--agent", "bob", "ask", "alice", "user.name"});
  BOOST_CHECK_EQUAL(asked.out, "Bob\n");
  auto unknown = run(n2, {"--agent", "bob", "ask", "alice", "weather"});
  BOOST_CHECK_EQUAL(unknown.code, 1);
  BOOST_CHECK(unknown.out.find("knows nothing about 'weather'")
              != std::string::npos);
  // tell / inbox.
  until_ok(n1, {"--agent", "alice", "tell", "bob", "lunch?"});
  auto inbox = run(n2, {"--agent", "bob", "--json", "inbox"});
  BOOST_REQUIRE_EQUAL(inbox.code, 0);
  BOOST_CHECK_EQUAL(inbox.parsed(),
                    json::parse(R"([{"from":"alice","text":"lunch?"}])"));
  // Federations: create (alice leads), join (bob, on n2), collective
  // memory read with the trust model, broadcast, list.
  auto created
      = run(n1, {"--agent", "alice", "--json", "federation", "create",
                 "Research", "--member", "bob", "--trust", "uniform:0.8"});
  BOOST_REQUIRE_EQUAL(created.code, 0);
  auto fed = created.parsed()["id"].get<std::string>();
  BOOST_CHECK_EQUAL(created.parsed()["leader"], "alice");
  until_ok(n2, {"--agent", "bob", "federation", "join", fed});
  BOOST_REQUIRE_EQUAL(
      run(n2, {"--agent", "bob", "learn", "eta", "friday", "--federation", fed})
          .code,
      0);
  json seen;
  BOOST_CHECK(until([&] {
    auto r
        = run(n1, {"--agent", "alice", "--json", "query", "--federation", fed});
    seen = r.code == 0 ? r.parsed() : json::array();
    return seen.size() == 1;
  }));
  if (seen.size() == 1) {
    BOOST_CHECK_EQUAL(seen[0]["source"], "bob");
    BOOST_CHECK_CLOSE(seen[0]["confidence"].get<double>(), 0.9 * 0.8, 1e-9);
  }
  auto reached = run(n1, {"--agent", "alice", "broadcast", fed, "ship it"});
  BOOST_CHECK_EQUAL(reached.code, 0);
  BOOST_CHECK(reached.out.find("reached 1 members") != std::string::npos);
  BOOST_CHECK(run(n2, {"--agent", "bob", "inbox"}).out.find("alice: ship it")
              != std::string::npos);
  auto listed = run(n2, {"--agent", "bob", "--json", "federation", "list"});
  BOOST_REQUIRE_EQUAL(listed.code, 0);
  BOOST_CHECK_EQUAL(listed.parsed()[0]["name"], "Research");
  // Roles: bob (a member) cannot change them.
  auto refused = run(n2, {"--agent", "bob", "federation", "set-role", fed,
                          "alice", "observer"});
  BOOST_CHECK_EQUAL(refused.code, 1);
  BOOST_CHECK(refused.out.find("permission_denied") != std::string::npos);
  // Sharing with PII redaction, accepted with trust.
  run(n1, {"--agent", "alice", "learn", "contact", "mail eve@example.com"});
  auto shared = run(n1, {"--agent", "alice", "share", "--with", "bob",
                         "--redact-pii", "--type", "semantic"});
  BOOST_REQUIRE_EQUAL(shared.code, 0);
  auto share_id = shared.out.substr(0, shared.out.size() - 1);
  auto pending = run(n2, {"--agent", "bob", "--json", "shares"});
  BOOST_REQUIRE_EQUAL(pending.code, 0);
  BOOST_REQUIRE_EQUAL(pending.parsed().size(), 1u);
  BOOST_CHECK(pending.out.find("eve@example.com") == std::string::npos);
  BOOST_CHECK(pending.out.find("mail [email]") != std::string::npos);
  auto accepted = run(
      n2, {"--agent", "bob", "accept", "alice", share_id, "--trust", "0.5"});
  BOOST_CHECK_EQUAL(accepted.code, 0);
  BOOST_CHECK(run(n2, {"--agent", "bob", "query"}).out.find("reported by alice")
              != std::string::npos);
  // Conflicts (none pending), sync, status.
  auto conflicts = run(n1, {"--agent", "alice", "--json", "conflicts", "list"});
  BOOST_CHECK_EQUAL(conflicts.code, 0);
  BOOST_CHECK_EQUAL(conflicts.parsed(), json::array());
  BOOST_CHECK_EQUAL(run(n1, {"--agent", "alice", "sync"}).code, 0);
  auto status = run(n1, {"--json", "status"});
  BOOST_REQUIRE_EQUAL(status.code, 0);
  BOOST_CHECK_EQUAL(status.parsed()["node"], "n1");
  // forget
  auto id = learned.out.substr(0, 32);
  BOOST_CHECK_EQUAL(run(n1, {"--agent", "alice", "forget", id}).code, 0);
  BOOST_CHECK(run(n1, {"--agent", "alice", "query"}).out.find("user.name")
              == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(failures_have_clear_messages_and_exit_codes,
                        cli_fixture) {
  auto no_agent = run(n1, {"query"});
  BOOST_CHECK_EQUAL(no_agent.code, 2);
  BOOST_CHECK(no_agent.out.find("pass --agent") != std::string::npos);
  BOOST_CHECK_EQUAL(run(n1, {"--agent", "a", "frobnicate"}).code, 2);
  auto bad_trust = run(
      n1, {"--agent", "a", "federation", "create", "X", "--trust", "blind:1"});
  BOOST_CHECK_EQUAL(bad_trust.code, 2);
  BOOST_CHECK(bad_trust.out.find("uniform:T") != std::string::npos);
  auto bad_id = run(n1, {"--agent", "a", "forget", "xyz"});
  BOOST_CHECK_EQUAL(bad_id.code, 2);
  auto nobody = run(n1, {"--agent", "a", "tell", "nobody", "hi"});
  BOOST_CHECK_EQUAL(nobody.code, 1);
  BOOST_CHECK(nobody.out.find("no reachable node hosts agent nobody")
              != std::string::npos);
  auto help = run(n1, {"--help"});
  BOOST_CHECK_EQUAL(help.code, 0);
  auto version = run(n1, {"--version"});
  BOOST_CHECK_EQUAL(version.code, 0);
  BOOST_CHECK(version.out.find("engram 0.") != std::string::npos);
  // Global options anywhere on the line, after the verb too.
  auto late
      = run(n1, {"learn", "late.flag", "x", "--agent", "alice", "--json"});
  BOOST_CHECK_EQUAL(late.code, 0);
  BOOST_CHECK_EQUAL(late.parsed()["id"].get<std::string>().size(), 32u);
  BOOST_CHECK(help.out.find("federation") != std::string::npos);
  // A node that is down: exit 3, and --json still prints an object.
  c.nodes[n2].proc.signal(SIGKILL);
  BOOST_REQUIRE(c.nodes[n2].proc.wait(5s));
  auto down = run(n2, {"--agent", "a", "--json", "query"});
  BOOST_CHECK_EQUAL(down.code, 3);
  BOOST_CHECK_MESSAGE(down.out.find("cannot connect to 127.0.0.1:")
                          != std::string::npos,
                      down.out);
}

// Three nodes, Quorum writes. A write whose replicas stop answering after
// it was planned is stored on its coordinator but not confirmed (exit 5,
// "stored": true, its id); a write whose level cannot be met is refused
// before anything is stored (exit 1, "stored": false). Only the first
// reaches every node once they are back.
BOOST_FIXTURE_TEST_CASE(a_write_outcome_is_unambiguous, cli_base) {
  {
    std::ofstream cfg{c.dir.sub("slow.toml")};
    // Frozen peers stay "live" for 10 s: the write below is planned, then
    // waits for confirmations that do not come within its timeout.
    cfg << "heartbeat_ms = 200\nconnection_timeout_ms = 10000\n"
        << "[replication]\nwrite_timeout_ms = 600\n";
  }
  c.common = {"--config",
              c.dir.sub("slow.toml"),
              "--member",
              "n1",
              "--member",
              "n2",
              "--member",
              "n3",
              "--replication-factor",
              "3",
              "--consistency",
              "quorum"};
  auto n1 = c.start("n1", {});
  auto n2 = c.start("n2", {c.nodes[n1].port});
  auto n3 = c.start("n3", {c.nodes[n1].port, c.nodes[n2].port});
  auto& cl = c;
  auto& cli_of = *this;
  auto first = cli_of.until_ok(n3, {"--agent", "ann", "learn", "k0", "v0"});
  BOOST_REQUIRE_EQUAL(first.code, 0);
  // Both other replicas freeze: the write is stored on n3 only.
  cl.nodes[n1].proc.signal(SIGSTOP);
  cl.nodes[n2].proc.signal(SIGSTOP);
  auto unconfirmed
      = cli_of.run(n3, {"--agent", "ann", "--json", "learn", "k1", "v1"});
  BOOST_CHECK_EQUAL(unconfirmed.code, 5);
  auto j = unconfirmed.parsed();
  BOOST_CHECK_EQUAL(j["code"], "not_confirmed");
  BOOST_CHECK_EQUAL(j["stored"], true);
  BOOST_REQUIRE(j.contains("id"));
  BOOST_CHECK_EQUAL(j["id"].get<std::string>().size(), 32u);
  cl.nodes[n1].proc.signal(SIGCONT);
  cl.nodes[n2].proc.signal(SIGCONT);
  // It reaches both once they are back.
  auto holds = [&](size_t i, const std::string& key) {
    auto r = cli_of.run(
        i, {"--agent", "ann", "--json", "query", "--consistency", "local"});
    if (r.code != 0)
      return false;
    for (auto& v : r.parsed())
      if (v.value("key", "") == key)
        return true;
    return false;
  };
  BOOST_CHECK(until(
      [&] {
        return holds(n1, "k1") && holds(n2, "k1");
      },
      20s));
  // Both other replicas gone (n3 knows them down): refused at once,
  // nothing stored.
  cl.nodes[n1].proc.signal(SIGKILL);
  cl.nodes[n2].proc.signal(SIGKILL);
  BOOST_REQUIRE(until([&] {
    auto r = cli_of.run(n3, {"--json", "status"});
    if (r.code != 0)
      return false;
    auto j = r.parsed();
    for (auto& s : j["sessions"])
      if (s["established"].get<bool>())
        return false;
    size_t down = 0;
    for (auto& p : j["peers"])
      if (p["up"].get<bool>())
        return false;
      else
        ++down;
    return down == 2;
  }));
  auto refused
      = cli_of.run(n3, {"--agent", "ann", "--json", "learn", "k2", "v2"});
  BOOST_CHECK_EQUAL(refused.code, 1);
  auto r = refused.parsed();
  BOOST_CHECK_EQUAL(r["code"], "unavailable");
  BOOST_CHECK_EQUAL(r["stored"], false);
  BOOST_CHECK(r["error"].get<std::string>().find("nothing was stored")
              != std::string::npos);
  BOOST_CHECK(holds(n3, "k1"));
  BOOST_CHECK(!holds(n3, "k2"));
}

// Ids, keys and agent names must be UTF-8 (refused otherwise, exit 1);
// values and message texts are bytes: JSON shows them with U+FFFD in place
// of what is not UTF-8 (a fact's value also as value_base64), and never
// aborts.
BOOST_FIXTURE_TEST_CASE(bytes_that_are_not_utf8_never_abort_the_cli,
                        cli_fixture) {
  const std::string raw = "\xff\xfe bytes";
  BOOST_REQUIRE_EQUAL(run(n1, {"--agent", "ann", "learn", "note", raw}).code,
                      0);
  auto q = run(n1, {"--agent", "ann", "--json", "query"});
  BOOST_REQUIRE_EQUAL(q.code, 0);
  auto views = q.parsed();
  BOOST_REQUIRE_EQUAL(views.size(), 1u);
  BOOST_CHECK_EQUAL(views[0]["value_base64"], "//4gYnl0ZXM=");
  BOOST_CHECK_EQUAL(run(n1, {"--agent", "ann", "query"}).code, 0);
  auto bad_key = run(n1, {"--agent", "ann", "learn", "k\xff", "v"});
  BOOST_CHECK_EQUAL(bad_key.code, 2);
  BOOST_CHECK(bad_key.out.find("the key is not valid UTF-8")
              != std::string::npos);
  auto bad_agent = run(n1, {"--agent", "a\xc3\x28", "learn", "k", "v"});
  BOOST_CHECK_EQUAL(bad_agent.code, 2);
  BOOST_CHECK(bad_agent.out.find("--agent may hold only letters")
              != std::string::npos);
  auto status = run(n1, {"--json", "status"});
  BOOST_CHECK_EQUAL(status.code, 0);
  BOOST_CHECK_EQUAL(status.parsed()["agents"], json::array({"ann"}));
  BOOST_REQUIRE_EQUAL(run(n1, {"--agent", "bob", "learn", "x", "y"}).code, 0);
  until_ok(n1, {"--agent", "ann", "tell", "bob", raw});
  auto inbox = run(n1, {"--agent", "bob", "--json", "inbox"});
  BOOST_CHECK_EQUAL(inbox.code, 0);
  BOOST_CHECK_EQUAL(inbox.parsed().size(), 1u);
}

// An agent's inbox is part of its replicated memory: a message told
// through n2 is read through n1, once; the read mark replicates (a sync on
// n2 brings it, and n2's inbox is then empty) and survives a restart.
BOOST_FIXTURE_TEST_CASE(an_inbox_is_replicated_and_read_once, cli_fixture) {
  // bob runs on both nodes.
  BOOST_REQUIRE_EQUAL(run(n1, {"--agent", "bob", "learn", "x", "1"}).code, 0);
  BOOST_REQUIRE_EQUAL(run(n2, {"--agent", "bob", "learn", "y", "2"}).code, 0);
  until_ok(n2, {"--agent", "alice", "tell", "bob", "hi from n2"});
  json read_on_n1;
  BOOST_REQUIRE(until([&] {
    auto r = run(n1, {"--agent", "bob", "--json", "inbox"});
    read_on_n1 = r.code == 0 ? r.parsed() : json::array();
    return !read_on_n1.empty();
  }));
  BOOST_CHECK_EQUAL(read_on_n1,
                    json::parse(R"([{"from":"alice","text":"hi from n2"}])"));
  // n2 learns of the read mark by sync: nothing to read there.
  BOOST_REQUIRE_EQUAL(run(n2, {"--agent", "bob", "sync"}).code, 0);
  auto on_n2 = run(n2, {"--agent", "bob", "--json", "inbox"});
  BOOST_REQUIRE_EQUAL(on_n2.code, 0);
  BOOST_CHECK_EQUAL(on_n2.parsed(), json::array());
  // Nor after n1 restarts.
  auto port = c.nodes[n1].port;
  c.nodes[n1].proc.signal(SIGTERM);
  BOOST_REQUIRE(c.nodes[n1].proc.wait(10s));
  auto back = c.start("n1", {c.nodes[n2].port}, port);
  auto again = run(back, {"--agent", "bob", "--json", "inbox"});
  BOOST_REQUIRE_EQUAL(again.code, 0);
  BOOST_CHECK_EQUAL(again.parsed(), json::array());
}

// push_delay_ms holds a change that long before it is pushed (anti-entropy
// is far away): the peer does not have it after a third of the delay, and
// has it soon after the delay.
BOOST_FIXTURE_TEST_CASE(push_delay_holds_changes_that_long, cli_base) {
  {
    std::ofstream cfg{c.dir.sub("slow.toml")};
    cfg << "[sessions]\npush_delay_ms = 3000\nanti_entropy_ms = 600000\n";
  }
  c.common = {"--config", c.dir.sub("slow.toml")};
  auto n1 = c.start("n1", {});
  auto n2 = c.start("n2", {c.nodes[n1].port});
  BOOST_REQUIRE_EQUAL(run(n2, {"--agent", "ann", "learn", "first", "1"}).code,
                      0);
  auto holds = [&](size_t i, const std::string& key) {
    auto r = run(
        i, {"--agent", "ann", "--json", "query", "--consistency", "local"});
    if (r.code != 0)
      return false;
    for (auto& v : r.parsed())
      if (v.value("key", "") == key)
        return true;
    return false;
  };
  // Both host ann and their sessions are up once "first" crossed.
  BOOST_REQUIRE_EQUAL(run(n1, {"--agent", "ann", "sync"}).code, 0);
  BOOST_REQUIRE(until(
      [&] {
        return holds(n1, "first");
      },
      10s));
  auto learned = std::chrono::steady_clock::now();
  BOOST_REQUIRE_EQUAL(run(n1, {"--agent", "ann", "learn", "held", "1"}).code,
                      0);
  // Not there for the first second (polled, not slept through).
  while (std::chrono::steady_clock::now() - learned < 1s)
    BOOST_REQUIRE(!holds(n2, "held"));
  BOOST_CHECK(until(
      [&] {
        return holds(n2, "held");
      },
      10s));
}

// A node that accepts the connection but never answers (frozen): the
// client gives up after its timeout with exit 4, not 3.
BOOST_FIXTURE_TEST_CASE(a_frozen_node_times_out_with_exit_4, cli_fixture) {
  c.nodes[n2].proc.signal(SIGSTOP);
  auto frozen = run(n2, {"--timeout", "1500", "--json", "status"});
  c.nodes[n2].proc.signal(SIGCONT);
  BOOST_CHECK_EQUAL(frozen.code, 4);
  BOOST_CHECK_EQUAL(frozen.parsed()["exit"], 4);
}

BOOST_AUTO_TEST_SUITE_END()

// End-to-end encryption through the CLI and real nodes: alice (on n1)
// tells bob, whose memory n2 and n3 hold; the nodes vouch for the agents'
// public keys and carry only the sealed text — none of the three data
// directories nor any log holds the plaintext — and bob opens it on n3
// with his key file. With e2e required, a plaintext tell and a share are
// refused by the sender's node.
BOOST_AUTO_TEST_SUITE(e2e_net)

BOOST_FIXTURE_TEST_CASE(a_sealed_tell_is_read_only_by_its_recipient, cli_base) {
  c.common = {"--e2e-required", "true"};
  auto n1 = c.start("n1", {});
  auto n2 = c.start("n2", {c.nodes[n1].port});
  auto n3 = c.start("n3", {c.nodes[n1].port, c.nodes[n2].port});
  auto alice_key = c.dir.sub("alice.key");
  auto bob_key = c.dir.sub("bob.key");
  BOOST_REQUIRE_EQUAL(
      run(n1, {"--agent", "alice", "key", "new", alice_key}).code, 0);
  BOOST_REQUIRE_EQUAL(run(n2, {"--agent", "bob", "key", "new", bob_key}).code,
                      0);
  // bob runs on n2 and n3; each agent publishes its key through its node.
  BOOST_REQUIRE_EQUAL(run(n2, {"--agent", "bob", "learn", "x", "1"}).code, 0);
  BOOST_REQUIRE_EQUAL(run(n3, {"--agent", "bob", "learn", "y", "2"}).code, 0);
  auto published = run(n1, {"--agent", "alice", "key", "publish", alice_key});
  BOOST_REQUIRE_MESSAGE(published.code == 0, published.out);
  // With its client certificate, the CLI signs the key as the agent: no
  // node vouches, and a client may trust only such keys.
  BOOST_CHECK(published.out.find("signed by the agent's certificate")
              != std::string::npos);
  BOOST_REQUIRE_EQUAL(
      run(n2, {"--agent", "bob", "key", "publish", bob_key}).code, 0);
  // alice finds bob's key through n1, checked against the CA.
  auto shown = until_ok(n1, {"--agent", "alice", "--json",
                             "--agent-signed-only", "key", "show", "bob"});
  BOOST_CHECK_EQUAL(shown.parsed()["agent_signed"], true);
  BOOST_CHECK_EQUAL(shown.parsed()["vouched"], true);
  // Plaintext does not leave n1.
  auto plain = run(n1, {"--agent", "alice", "tell", "bob", "in the clear"});
  BOOST_CHECK_EQUAL(plain.code, 1);
  BOOST_CHECK(plain.out.find("end-to-end encryption is required")
              != std::string::npos);
  auto share = run(n1, {"--agent", "alice", "share", "--with", "bob"});
  BOOST_CHECK_EQUAL(share.code, 1);
  BOOST_CHECK(share.out.find("end-to-end encryption is required")
              != std::string::npos);
  const std::string canary = "canary-e2e-5b1f: the vault opens at dawn";
  auto told = until_ok(n1, {"--agent", "alice", "--agent-signed-only", "tell",
                            "bob", canary, "--seal", alice_key});
  BOOST_CHECK(told.out.find("told bob (sealed)") != std::string::npos);
  // Both replicas of bob's memory hold the message: sync them.
  BOOST_REQUIRE_EQUAL(run(n2, {"--agent", "bob", "sync"}).code, 0);
  BOOST_REQUIRE_EQUAL(run(n3, {"--agent", "bob", "sync"}).code, 0);
  // A key file others may read is refused before anything is read.
  auto loose = c.dir.sub("loose.key");
  std::filesystem::copy_file(bob_key, loose);
  std::filesystem::permissions(loose, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  auto refused = run(n3, {"--agent", "bob", "inbox", "--key", loose});
  BOOST_CHECK_EQUAL(refused.code, 2);
  BOOST_CHECK(refused.out.find("chmod 600") != std::string::npos);
  // bob's two replicas hold the sealed text (its prefix), and no store,
  // WAL or log of the three nodes holds the plaintext.
  const std::string sealed_prefix{"\0e2e\x02", 5};
  BOOST_CHECK(!files_containing(c.dir.sub("n2"), sealed_prefix).empty());
  BOOST_CHECK(!files_containing(c.dir.sub("n3"), sealed_prefix).empty());
  for (auto& dir : {c.dir.sub("n1"), c.dir.sub("n2"), c.dir.sub("n3")})
    BOOST_CHECK_MESSAGE(files_containing(dir, "canary-e2e-5b1f").empty(),
                        dir << " holds the plaintext");
  for (auto& log : {"n1.log", "n2.log", "n3.log"}) {
    std::ifstream in{c.dir.sub(log), std::ios::binary};
    std::string bytes{std::istreambuf_iterator<char>{in}, {}};
    BOOST_CHECK_MESSAGE(
        !bytes.empty() && bytes.find("canary-e2e-5b1f") == std::string::npos,
        log << " holds the plaintext (or is missing)");
  }
  json read;
  BOOST_REQUIRE(until([&] {
    auto r = run(n3, {"--agent", "bob", "--json", "inbox", "--key", bob_key});
    read = r.code == 0 ? r.parsed() : json::array();
    return !read.empty();
  }));
  BOOST_REQUIRE_EQUAL(read.size(), 1u);
  BOOST_CHECK_EQUAL(read[0]["from"], "alice");
  BOOST_CHECK_EQUAL(read[0]["text"], canary);
  BOOST_CHECK_EQUAL(read[0]["sealed"], true);
  BOOST_CHECK(read[0].contains("sealed_us"));
  // A reply sealed to alice, read with a key she never published: it does
  // not open, and says why.
  until_ok(n3, {"--agent", "bob", "tell", "alice", "reply", "--seal", bob_key});
  auto other_key = c.dir.sub("other.key");
  BOOST_REQUIRE_EQUAL(
      run(n1, {"--agent", "alice", "key", "new", other_key}).code, 0);
  json wrong;
  BOOST_REQUIRE(until([&] {
    auto r
        = run(n1, {"--agent", "alice", "--json", "inbox", "--key", other_key});
    wrong = r.code == 0 ? r.parsed() : json::array();
    return !wrong.empty();
  }));
  BOOST_CHECK(wrong[0].value("error", "").find("another key")
              != std::string::npos);
  BOOST_CHECK(!wrong[0].contains("text"));
  // Read is read, but what did not open is kept whole.
  BOOST_CHECK(wrong[0].value("sealed_base64", "").size() > 100);
  // A sealed share: alice's node prepares it (the filter, what may be
  // passed on), the CLI seals it; bob's nodes hold it sealed until bob's
  // CLI opens it and accepts what it opened.
  BOOST_REQUIRE_EQUAL(
      run(n1, {"--agent", "alice", "learn", "plan", "canary-share-9c2d"}).code,
      0);
  auto shared = until_ok(n1, {"--agent", "alice", "--json", "share", "--with",
                              "bob", "--seal", alice_key});
  auto share_id = shared.parsed().value("share", "");
  BOOST_REQUIRE(!share_id.empty());
  BOOST_CHECK_EQUAL(shared.parsed()["sealed"], true);
  cli_result listed;
  BOOST_REQUIRE(until([&] {
    listed = run(n2, {"--agent", "bob", "shares"});
    return listed.out.find(share_id + "  from alice, sealed")
           != std::string::npos;
  }));
  BOOST_REQUIRE_EQUAL(run(n2, {"--agent", "bob", "sync"}).code, 0);
  BOOST_REQUIRE_EQUAL(run(n3, {"--agent", "bob", "sync"}).code, 0);
  for (auto& dir : {c.dir.sub("n2"), c.dir.sub("n3")})
    BOOST_CHECK_MESSAGE(files_containing(dir, "canary-share-9c2d").empty(),
                        dir << " holds the sealed share's plaintext");
  auto blind = run(n2, {"--agent", "bob", "accept", "alice", share_id});
  BOOST_CHECK_EQUAL(blind.code, 1);
  BOOST_CHECK(blind.out.find("sealed end to end") != std::string::npos);
  auto accepted = run(n2, {"--agent", "bob", "accept", "alice", share_id,
                           "--key", bob_key, "--trust", "0.5"});
  BOOST_REQUIRE_MESSAGE(accepted.code == 0, accepted.out);
  BOOST_CHECK(accepted.out.find("accepted 1 memories") != std::string::npos);
  BOOST_REQUIRE(until([&] {
    auto q = run(n3, {"--agent", "bob", "query"});
    return q.out.find("canary-share-9c2d") != std::string::npos;
  }));
}

// A federation sealed end to end over real processes, through the CLI:
// the leader makes its key, a member writes sealed values another reads;
// no data directory holds the plaintext; a member removed cannot read
// what is written after the next key.
BOOST_FIXTURE_TEST_CASE(a_sealed_federation_through_the_cli, cli_base) {
  auto n1 = c.start("n1", {});
  auto n2 = c.start("n2", {c.nodes[n1].port});
  std::map<std::string, std::string> key_of;
  std::map<std::string, size_t> node_of{
      {"alice", n1}, {"bob", n2}, {"carol", n2}};
  for (auto& [agent, node] : node_of) {
    key_of[agent] = c.dir.sub(agent + ".key");
    BOOST_REQUIRE_EQUAL(
        run(node, {"--agent", agent, "key", "new", key_of[agent]}).code, 0);
    auto published
        = run(node, {"--agent", agent, "key", "publish", key_of[agent]});
    BOOST_REQUIRE_MESSAGE(published.code == 0, published.out);
  }
  auto as = [&](const std::string& agent, std::vector<std::string> args) {
    std::vector<std::string> all{"--agent", agent};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  };
  auto created
      = run(n1, as("alice", {"--json", "federation", "create", "Circle",
                             "--member", "bob", "--member", "carol", "--e2e"}));
  BOOST_REQUIRE_MESSAGE(created.code == 0, created.out);
  auto fed = created.parsed()["id"].get<std::string>();
  BOOST_CHECK_EQUAL(created.parsed()["e2e"], true);
  for (auto* agent : {"bob", "carol"})
    until_ok(n2, as(agent, {"federation", "join", fed}));
  // Nothing is written before the leader's first key.
  auto early = run(n2, as("bob", {"learn", "plan", "x", "--federation", fed}));
  BOOST_CHECK_EQUAL(early.code, 1);
  BOOST_CHECK(early.out.find("has not made its key yet") != std::string::npos);
  auto rekeyed = until_ok(
      n1, as("alice", {"federation", "rekey", fed, "--key", key_of["alice"]}));
  BOOST_CHECK(rekeyed.out.find("key epoch 1") != std::string::npos);
  const std::string canary = "canary-fed-7c2e: meet at the old mill";
  until_ok(n2, as("bob", {"learn", "plan", canary, "--federation", fed, "--key",
                          key_of["bob"]}));
  auto read_as
      = [&](const std::string& agent, size_t node, const std::string& key) {
          auto r = run(node, as(agent, {"--json", "query", "--federation", fed,
                                        "--key", key_of[agent]}));
          if (r.code != 0)
            return std::string{};
          for (auto& f : r.parsed())
            if (f["key"] == key && f.contains("value"))
              return f["value"].get<std::string>();
          return std::string{};
        };
  BOOST_CHECK(until([&] {
    return read_as("carol", n2, "plan") == canary;
  }));
  BOOST_CHECK(until([&] {
    return read_as("alice", n1, "plan") == canary;
  }));
  auto plain
      = run(n2, as("bob", {"learn", "note", "clear", "--federation", fed}));
  BOOST_CHECK_EQUAL(plain.code, 1);
  BOOST_CHECK(plain.out.find("not sealed with its key") != std::string::npos);
  for (auto& dir : {c.dir.sub("n1"), c.dir.sub("n2")})
    BOOST_CHECK_MESSAGE(files_containing(dir, "canary-fed-7c2e").empty(),
                        dir << " holds the plaintext");
  // carol removed: no writes until the next key, which she never gets.
  BOOST_REQUIRE_EQUAL(
      run(n1, as("alice", {"federation", "remove", fed, "carol"})).code, 0);
  BOOST_CHECK(until([&] {
    auto r = run(n2, as("bob", {"learn", "after", "x", "--federation", fed,
                                "--key", key_of["bob"]}));
    return r.code != 0 && r.out.find("no longer a member") != std::string::npos;
  }));
  auto second = until_ok(
      n1, as("alice", {"federation", "rekey", fed, "--key", key_of["alice"]}));
  BOOST_CHECK(second.out.find("key epoch 2") != std::string::npos);
  until_ok(n2, as("bob", {"learn", "after", "moved to noon", "--federation",
                          fed, "--key", key_of["bob"]}));
  BOOST_CHECK(until([&] {
    return read_as("alice", n1, "after") == "moved to noon";
  }));
  auto carol_reads = run(n2, as("carol", {"query", "--federation", fed, "--key",
                                          key_of["carol"]}));
  BOOST_CHECK_NE(carol_reads.code, 0);
}

BOOST_AUTO_TEST_SUITE_END()
