// The closed door between nodes: an engramd with certificates accepts only
// mutual TLS 1.3 from a holder of a certificate of its cluster's CA. Each
// outsider below is refused during the handshake — TLS 1.2, an anonymous
// cipher, no client certificate, another CA's certificate, an expired one,
// plaintext, the 32-byte BASP packet that crashed CAF 0.17 and a header
// claiming a 4 GiB payload — and afterwards the node is up, its memory
// bounded, and a real client still gets through.

#include <caf/event_based_actor.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "cluster.hpp"
#include "crypto/sign.hpp"
#include "http/client.hpp"

using namespace engram;
using namespace engram::test;

namespace {

// A TCP connection to 127.0.0.1:port, from `from` when given (another
// loopback address: its ports are not the ones tests pick to listen on).
int tcp_connect(uint16_t port, const char* from = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (from != nullptr) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval bound{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof(bound));
  return fd;
}

struct client_hello {
  std::string cert; // empty: no client certificate
  std::string key;
  std::string ca;
  int max_version = TLS1_3_VERSION;
  std::string ciphers{}; // TLS 1.2 cipher list (empty: OpenSSL's default)
};

// Whether the node accepts a TLS client configured as `h`: the handshake
// completes and the connection stays open (TLS 1.3 reports a refused client
// certificate only after the client's side of the handshake).
bool accepted(uint16_t port, const client_hello& h) {
  int fd = tcp_connect(port);
  if (fd < 0)
    return false;
  auto* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_max_proto_version(ctx, h.max_version);
  if (!h.ciphers.empty())
    SSL_CTX_set_cipher_list(ctx, h.ciphers.c_str());
  if (!h.cert.empty()) {
    SSL_CTX_use_certificate_file(ctx, h.cert.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(ctx, h.key.c_str(), SSL_FILETYPE_PEM);
  }
  if (!h.ca.empty())
    SSL_CTX_load_verify_locations(ctx, h.ca.c_str(), nullptr);
  auto* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  bool ok = SSL_connect(ssl) == 1;
  if (ok) {
    // Open means: nothing arrives (BASP waits for the client) and nothing
    // closes within a moment.
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 500) == 1) {
      char buf[64];
      ok = SSL_read(ssl, buf, sizeof(buf)) > 0;
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  ::close(fd);
  return ok;
}

// Sends raw bytes in plaintext; true when the node closes the connection
// (or never answers) instead of taking them.
bool closed_after(uint16_t port, const std::string& bytes) {
  int fd = tcp_connect(port);
  if (fd < 0)
    return true;
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  char buf[256];
  auto n = ::recv(fd, buf, sizeof(buf), 0);
  ::close(fd);
  // A TLS alert (the node reads a ClientHello that is not one) or a close.
  return n <= 0 || static_cast<unsigned char>(buf[0]) == 0x15;
}

// The resident memory of a process, in kB.
long rss_kb(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stol(line.substr(6));
  return -1;
}

// A BASP header (CAF 0.17): operation, padding, flags, payload length,
// operation data, source and destination node ids and actor ids.
std::string basp_header(uint8_t operation, uint32_t payload_len,
                        uint64_t operation_data) {
  std::string h(32, '\0');
  h[0] = static_cast<char>(operation);
  for (int i = 0; i < 4; ++i)
    h[4 + i] = static_cast<char>((payload_len >> (24 - 8 * i)) & 0xff);
  for (int i = 0; i < 8; ++i)
    h[8 + i] = static_cast<char>((operation_data >> (56 - 8 * i)) & 0xff);
  return h;
}

// How many of `n` connections this process may open (its descriptor
// limit raised as far as allowed), keeping 300 descriptors spare.
size_t connections_possible(size_t n) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, n + 1'000);
  ::setrlimit(RLIMIT_NOFILE, &lim);
  ::getrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur > 300 ? std::min<size_t>(n, lim.rlim_cur - 300) : 0;
}

// Up to `n` idle TCP connections to `port` (as many as this process may
// open), from 127.0.0.2: one source address, and not the ports other
// tests pick.
std::vector<int> idle_connections(uint16_t port, size_t n) {
  std::vector<int> idle;
  auto wanted = connections_possible(n);
  for (size_t i = 0; i < wanted; ++i) {
    int fd = tcp_connect(port, "127.0.0.2");
    if (fd < 0)
      break;
    idle.push_back(fd);
  }
  return idle;
}

} // namespace

BOOST_AUTO_TEST_SUITE(tls)

BOOST_AUTO_TEST_CASE(only_mutual_tls_13_with_the_clusters_ca_gets_in) {
  cluster c;
  auto n1 = c.start("n1", {});
  auto port = c.nodes[n1].port;
  auto& certs = c.pki.dir();
  c.pki.node("probe");
  c.pki.client("probe");
  client_hello good{certs + "/node.probe.crt", certs + "/node.probe.key",
                    certs + "/ca.crt"};
  BOOST_REQUIRE(accepted(port, good)); // the control: a member of the mesh
  // A client certificate of the CA: it opens the client API, not the mesh.
  client_hello as_client{certs + "/client.probe.crt",
                         certs + "/client.probe.key", certs + "/ca.crt"};
  BOOST_CHECK(!accepted(port, as_client));
  BOOST_CHECK(until(
      [&] {
        return c.nodes[n1].proc.output().find(
                   "a client certificate opens the client API, not the mesh")
               != std::string::npos;
      },
      5s));
  // TLS 1.2 only, with a valid certificate.
  auto tls12 = good;
  tls12.max_version = TLS1_2_VERSION;
  BOOST_CHECK(!accepted(port, tls12));
  // An anonymous cipher (what CAF falls back to without keys).
  auto anon = tls12;
  anon.cert.clear();
  anon.ciphers = "aNULL:@SECLEVEL=0";
  BOOST_CHECK(!accepted(port, anon));
  // No client certificate.
  auto nocert = good;
  nocert.cert.clear();
  BOOST_CHECK(!accepted(port, nocert));
  // Another cluster's CA.
  temp_dir other_dir;
  test_pki other{other_dir.sub("certs")};
  other.client("probe");
  client_hello foreign{other.dir() + "/client.probe.crt",
                       other.dir() + "/client.probe.key",
                       other.dir() + "/ca.crt"};
  BOOST_CHECK(!accepted(port, foreign));
  // An expired certificate of the right CA.
  pki::issue_options old;
  old.starts_in = std::chrono::hours{-48};
  old.lifetime = std::chrono::hours{24};
  auto key = pki::private_key::generate();
  BOOST_REQUIRE(key);
  auto expired = pki::issue(c.pki.ca(), c.pki.ca_key(), pki::role::client,
                            "old", *key, old);
  BOOST_REQUIRE(expired);
  BOOST_REQUIRE(pki::write_file(certs + "/client.old.crt", expired->to_pem(),
                                0644, true));
  BOOST_REQUIRE(
      pki::write_file(certs + "/client.old.key", key->to_pem(), 0600, true));
  auto stale = good;
  stale.cert = certs + "/client.old.crt";
  stale.key = certs + "/client.old.key";
  BOOST_CHECK(!accepted(port, stale));
  // Plaintext: BASP's bytes never reach BASP — the 32-byte server-handshake
  // header that crashed CAF 0.17, a header claiming 4 GiB, garbage.
  auto rss_before = rss_kb(c.nodes[n1].proc.pid());
  BOOST_CHECK(closed_after(port, basp_header(1, 0, 3)));
  BOOST_CHECK(closed_after(port, basp_header(0, 0xffffffffu, 0)));
  BOOST_CHECK(closed_after(port, std::string(32, '\xff')));
  BOOST_CHECK(closed_after(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  // The node is up, its memory bounded, and real clients still get in.
  BOOST_CHECK_EQUAL(::kill(c.nodes[n1].proc.pid(), 0), 0);
  auto rss_after = rss_kb(c.nodes[n1].proc.pid());
  BOOST_CHECK_MESSAGE(rss_after < rss_before + 64 * 1024,
                      "RSS " << rss_before << " kB -> " << rss_after << " kB");
  BOOST_CHECK(accepted(port, good));
  // Refusals in the handshake are logged with OpenSSL's reason.
  BOOST_CHECK_MESSAGE(
      until(
          [&] {
            return c.nodes[n1].proc.output().find(
                       "event=connection_refused node=n1 source=")
                       != std::string::npos
                   && c.nodes[n1].proc.output().find(
                          "reason=\"TLS handshake refused: ")
                          != std::string::npos;
          },
          5s),
      c.nodes[n1].proc.output());
  auto inst = c.instance(n1, "planner", "main");
  c.learn(inst, fact_of("still", "here"));
  BOOST_CHECK_EQUAL(c.count(inst), 1u);
}

// A peer that answers a TLS handshake a byte at a time (each within any
// per-call timeout) cannot hold a node's network thread: the handshake
// CAF runs on a blocking socket is bounded in total, here in this process
// as in engramd (the same interposed SSL_connect).
BOOST_AUTO_TEST_CASE(a_trickling_handshake_is_bounded_in_total) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a))
                == 0);
  BOOST_REQUIRE(::listen(listener, 1) == 0);
  socklen_t len = sizeof(a);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  std::atomic<bool> stop{false};
  std::atomic<int> trickled{0};
  std::thread trickler{[&] {
    int conn = ::accept(listener, nullptr, nullptr);
    if (conn < 0)
      return;
    // A handshake record announcing 16 KiB, then its bytes one by one,
    // every 200 ms, for up to 12 s.
    std::string head{"\x16\x03\x03\x40\x00", 5};
    ::send(conn, head.data(), head.size(), MSG_NOSIGNAL);
    for (int i = 0; i < 60 && !stop; ++i) {
      std::this_thread::sleep_for(200ms);
      if (::send(conn, "x", 1, MSG_NOSIGNAL) != 1)
        break;
      ++trickled;
    }
    ::close(conn);
  }};
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  auto* ctx = SSL_CTX_new(TLS_client_method());
  auto* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  auto t0 = std::chrono::steady_clock::now();
  auto result = SSL_connect(ssl);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
  stop = true;
  BOOST_CHECK(result != 1);
  BOOST_CHECK_LT(took, 5000);         // bounded in total (3 s)...
  BOOST_CHECK_GE(took, 2500);         // ...not failed at once
  BOOST_CHECK_GE(trickled.load(), 5); // the peer kept trickling meanwhile
  // The socket is handed back as it came: blocking.
  BOOST_CHECK_EQUAL(::fcntl(fd, F_GETFL, 0) & O_NONBLOCK, 0);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  ::close(fd);
  trickler.join();
  ::close(listener);
}

// OpenSSL's own client, as an operator would try it: TLS 1.2 is refused.
BOOST_AUTO_TEST_CASE(openssl_s_client_with_tls_12_is_refused) {
  cluster c;
  auto n1 = c.start("n1", {});
  c.pki.client("probe");
  auto& certs = c.pki.dir();
  auto log = c.dir.sub("s_client.log");
  process p{
      {"/bin/sh", "-c",
       "openssl s_client -connect 127.0.0.1:" + std::to_string(c.nodes[n1].port)
           + " -tls1_2 -cert " + certs + "/client.probe.crt -key " + certs
           + "/client.probe.key -CAfile " + certs + "/ca.crt < /dev/null"},
      log};
  auto rc = p.wait(20s);
  BOOST_REQUIRE(rc);
  BOOST_CHECK_NE(*rc, 0);
  auto out = p.output();
  BOOST_CHECK_MESSAGE(out.find("alert protocol version") != std::string::npos
                          || out.find("no protocols available")
                                 != std::string::npos,
                      out);
}

BOOST_AUTO_TEST_CASE(start_up_refuses_unusable_tls_files) {
  temp_dir dir;
  test_pki pki{dir.sub("certs")};
  pki.node("n1");
  pki.node("n2");
  auto start = [&](std::vector<std::string> extra,
                   const std::string& listen = "127.0.0.1:0") {
    std::vector<std::string> args{"--node-id",   "n1",       "--data-dir",
                                  dir.sub("n1"), "--listen", listen};
    args.insert(args.end(), extra.begin(), extra.end());
    static int n = 0;
    return run(args, dir.sub("start-" + std::to_string(++n) + ".log"));
  };
  auto mtls = [&](const std::string& cert, const std::string& key,
                  const std::string& ca) {
    auto toml = dir.sub("tls.toml");
    std::ofstream{toml, std::ios::trunc}
        << "[distribution.auth]\nmethod = { mtls = { certificate = \"" << cert
        << "\", private_key = \"" << key << "\", ca = \"" << ca << "\" } }\n";
    return std::vector<std::string>{"--config", toml};
  };
  auto& d = pki.dir();
  // No security at all: refused, saying how to get it.
  auto none = start({});
  BOOST_CHECK_EQUAL(none.first, 2);
  BOOST_CHECK(none.second.find("no transport security") != std::string::npos);
  // A missing key file, an unreadable one, one of another certificate, a
  // certificate naming another node, a missing CA.
  auto missing
      = start(mtls(d + "/node.n1.crt", d + "/nope.key", d + "/ca.crt"));
  BOOST_CHECK_EQUAL(missing.first, 3);
  BOOST_CHECK_MESSAGE(missing.second.find("nope.key") != std::string::npos,
                      missing.second);
  ::chmod((d + "/node.n2.key").c_str(), 0644);
  auto readable
      = start(mtls(d + "/node.n2.crt", d + "/node.n2.key", d + "/ca.crt"));
  BOOST_CHECK_EQUAL(readable.first, 3);
  BOOST_CHECK_MESSAGE(readable.second.find("chmod 600") != std::string::npos,
                      readable.second);
  ::chmod((d + "/node.n2.key").c_str(), 0600);
  auto mismatch
      = start(mtls(d + "/node.n1.crt", d + "/node.n2.key", d + "/ca.crt"));
  BOOST_CHECK_EQUAL(mismatch.first, 3);
  BOOST_CHECK_MESSAGE(mismatch.second.find("does not belong")
                          != std::string::npos,
                      mismatch.second);
  auto other_node
      = start(mtls(d + "/node.n2.crt", d + "/node.n2.key", d + "/ca.crt"));
  BOOST_CHECK_EQUAL(other_node.first, 3);
  BOOST_CHECK_MESSAGE(other_node.second.find("not 'n1'") != std::string::npos,
                      other_node.second);
  auto no_ca
      = start(mtls(d + "/node.n1.crt", d + "/node.n1.key", d + "/x.crt"));
  BOOST_CHECK_EQUAL(no_ca.first, 3);
  // Plaintext beyond loopback needs its own flag.
  auto wide = start({"--insecure"}, "0.0.0.0:0");
  BOOST_CHECK_EQUAL(wide.first, 2);
  BOOST_CHECK(wide.second.find("beyond loopback") != std::string::npos);
}

// Holding a certificate of the CA is not enough to be a peer: a node proves
// the node id it claims — its certificate must name it, the signature of a
// fresh challenge must verify with it, each challenge counts once — and a
// revoked certificate is refused in the TLS handshake already. Every
// refusal is logged with its reason.
BOOST_AUTO_TEST_CASE(a_peer_proves_the_node_id_it_claims) {
  cluster c;
  auto& d = c.pki.dir();
  c.pki.node("n3");
  // n3's certificate is revoked before n1 starts (n1 reads ca.crl).
  auto n3_cert = pki::load_certificate(d + "/node.n3.crt");
  BOOST_REQUIRE(n3_cert);
  auto crl = pki::revoke(c.pki.ca(), c.pki.ca_key(), {*n3_cert});
  BOOST_REQUIRE(crl);
  BOOST_REQUIRE(pki::write_file(d + "/ca.crl", crl->to_pem(), 0644, true));
  auto n1 = c.start("n1", {});
  c.start("n2", {c.nodes[n1].port}); // a peer, so n1 serves the mesh
  auto node1 = c.node(n1);
  auto challenge = [&] {
    auto x = call<std::string>(c.sys, node1, 5s, actors::challenge_atom::value);
    BOOST_REQUIRE(x);
    return *x;
  };
  auto me = caf::actor_cast<actors::peer_actor>(node1); // any peer handle
  auto n2_key = pki::load_private_key(d + "/node.n2.key");
  BOOST_REQUIRE(n2_key);
  auto n2_pem = pki::load_certificate(d + "/node.n2.crt")->to_pem();
  // The key a claimer signs its envelopes with (bound by its proof).
  auto env_key = crypto::signing_key::generate();
  BOOST_REQUIRE(env_key);
  auto ek = env_key->public_key();
  auto claim = [&](const std::string& as, const std::string& cert_pem,
                   const std::string& nonce, const std::string& sig) {
    caf::anon_send(node1, actors::peer_atom::value, as, me, cert_pem, nonce,
                   sig, ek);
  };
  auto log_has = [&](const std::string& text) {
    return until(
        [&] {
          return c.nodes[n1].proc.output().find(text) != std::string::npos;
        },
        5s);
  };
  // n2's certificate claiming to be n9.
  auto nonce = challenge();
  claim("n9", n2_pem, nonce,
        *n2_key->sign(actors::proof_message("peer", nonce, "n9", "n1", ek)));
  BOOST_CHECK(log_has("event=peer_refused node=n1 peer=n9 reason=the "
                      "certificate names node 'n2', not 'n9'"));
  // A signature of another key.
  auto other_key = pki::private_key::generate();
  nonce = challenge();
  claim("n2", n2_pem, nonce,
        *other_key->sign(actors::proof_message("peer", nonce, "n2", "n1", ek)));
  BOOST_CHECK(log_has("peer=n2 reason=the signature does not verify"));
  // A challenge not given here, and one used twice.
  claim("n2", n2_pem, std::string(32, 'x'),
        *n2_key->sign(actors::proof_message("peer", std::string(32, 'x'), "n2",
                                            "n1", ek)));
  // A valid proof without an envelope-signing key (n1 signs its own).
  nonce = challenge();
  caf::anon_send(
      node1, actors::peer_atom::value, std::string{"n2"}, me, n2_pem, nonce,
      *n2_key->sign(actors::proof_message("peer", nonce, "n2", "n1")),
      std::string{});
  BOOST_CHECK(log_has("peer=n2 reason=no envelope-signing key"));
  BOOST_CHECK(log_has("reason=the challenge was not given here"));
  // No proof at all.
  caf::anon_send(node1, actors::peer_atom::value, std::string{"n7"}, me);
  BOOST_CHECK(log_has("peer=n7 reason=no proof of identity"));
  // n2's own valid proof, passed on over a connection that is not n2's
  // (this test's: a client certificate), as a node standing between two
  // others would relay it: the proof is bound to the connection's
  // certificate.
  {
    caf::scoped_actor relay{c.sys};
    auto dummy = c.sys.spawn([]() -> caf::behavior {
      return {[](int) {}};
    });
    auto mine = caf::actor_cast<actors::peer_actor>(dummy);
    nonce = challenge();
    relay->send(
        node1, actors::peer_atom::value, std::string{"n2"}, mine, n2_pem, nonce,
        *n2_key->sign(actors::proof_message("peer", nonce, "n2", "n1", ek)),
        ek);
    BOOST_CHECK(log_has("peer=n2 reason=the proof came over a connection "
                        "(127.0.0.1:"));
    BOOST_CHECK(log_has("whose certificate names node 'test-harness', not "
                        "node 'n2'"));
    // A handle of another process than the one asking.
    nonce = challenge();
    relay->send(
        node1, actors::peer_atom::value, std::string{"n2"}, me, n2_pem, nonce,
        *n2_key->sign(actors::proof_message("peer", nonce, "n2", "n1", ek)),
        ek);
    BOOST_CHECK(log_has(
        "peer=n2 reason=the peer's handle is not of the process that asked"));
    caf::anon_send_exit(dummy, caf::exit_reason::user_shutdown);
  }
  // A revoked certificate: n3 gets through TLS (CAF checks no CRL) but is
  // no peer of n1; n2, proven, is.
  // (n3 itself refuses to start with its own certificate revoked: it runs
  // from a directory without the list.)
  auto d3 = c.dir.sub("certs-n3");
  std::filesystem::create_directories(d3);
  for (auto f : {"ca.crt", "node.n3.crt", "node.n3.key"})
    std::filesystem::copy_file(d + "/" + f, d3 + "/" + f);
  auto refused = run({"--node-id", "n3", "--data-dir", c.dir.sub("n3x"),
                      "--certs-dir", d, "--check-config"},
                     c.dir.sub("n3-check.log"));
  BOOST_CHECK_EQUAL(refused.first, 3);
  BOOST_CHECK_MESSAGE(refused.second.find("revoked") != std::string::npos,
                      refused.second);
  process n3{{engramd, "--node-id", "n3", "--data-dir", c.dir.sub("n3"),
              "--listen", "127.0.0.1:0", "--certs-dir", d3, "--peer",
              "127.0.0.1:" + std::to_string(c.nodes[n1].port)},
             c.dir.sub("n3.log")};
  // (refused in the TLS handshake: n1 checks its revocation list there;
  // n3 keeps trying while n2 becomes a peer)
  BOOST_CHECK(until(
      [&] {
        return n3.output().find("event=listening") != std::string::npos;
      },
      10s));
  std::this_thread::sleep_for(2s);
  BOOST_CHECK(until([&] {
    auto st = call<actors::node_status>(c.sys, node1, 5s,
                                        actors::status_atom::value);
    return st
           && std::find(st->peers_up.begin(), st->peers_up.end(), "n2")
                  != st->peers_up.end();
  }));
  auto st
      = call<actors::node_status>(c.sys, node1, 5s, actors::status_atom::value);
  BOOST_REQUIRE(st);
  for (auto& p : st->peers_up)
    BOOST_CHECK_MESSAGE(p == "n2", "a peer that proved nothing: " << p);
}

// Connections that never complete a TLS handshake cannot lock peers and
// clients out: beyond the caps they are refused at once, the rest dropped
// after the handshake timeout; the node's descriptors stay bounded. The
// idle ones come from one address (127.0.0.2), the real client from
// another.
BOOST_AUTO_TEST_CASE(idle_connections_cannot_lock_anyone_out) {
  cluster c;
  auto toml = c.dir.sub("limits.toml");
  std::ofstream{toml} << "[security]\nhandshake_timeout_ms = 500\n"
                         "max_unauthenticated = 100\n"
                         "max_unauthenticated_per_source = 20\n";
  c.common = {"--config", toml};
  auto n1 = c.start("n1", {});
  auto port = c.nodes[n1].port;
  // As many idle connections as this process may open, up to 20 000.
  auto idle = idle_connections(port, 20'000);
  BOOST_TEST_MESSAGE(idle.size() << " idle connections");
  BOOST_REQUIRE_GE(idle.size(),
                   std::min<size_t>(1000, connections_possible(20'000)));
  auto open_count = [&] {
    size_t n = 0;
    for (auto fd : idle) {
      char b;
      auto r = ::recv(fd, &b, 1, MSG_DONTWAIT);
      n += r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : 0;
    }
    return n;
  };
  // The node keeps at most the per-source cap of them...
  BOOST_CHECK(until(
      [&] {
        return open_count() <= 20;
      },
      10s));
  // ...a real client still gets through...
  auto inst = c.instance(n1, "planner", "main");
  c.learn(inst, fact_of("through", "yes"));
  BOOST_CHECK_EQUAL(c.count(inst), 1u);
  // ...and those it kept go after the handshake timeout.
  BOOST_CHECK(until(
      [&] {
        return open_count() == 0;
      },
      5s));
  for (auto fd : idle)
    ::close(fd);
  auto fds = 0;
  for (auto& e : std::filesystem::directory_iterator{
           "/proc/" + std::to_string(c.nodes[n1].proc.pid()) + "/fd"}) {
    (void)e;
    ++fds;
  }
  BOOST_CHECK_LT(fds, 300);
  BOOST_CHECK(c.nodes[n1].proc.output().find("event=connection_refused")
              != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

// The client API's door: 10 000 idle connections (TCP only, never a TLS
// handshake) from one address neither exhaust the node's descriptors nor
// keep a real client out: at the API's connection cap the oldest idle one
// goes, and those left go after the handshake timeout.
BOOST_AUTO_TEST_CASE(idle_api_clients_cannot_lock_anyone_out) {
  cluster c;
  auto toml = c.dir.sub("api.toml");
  std::ofstream{toml} << "[api]\nmax_connections = 1000\n"
                         "max_connections_per_source = 1000\n";
  c.common = {"--config", toml};
  auto n1 = c.start("n1", {});
  auto port = c.nodes[n1].api_port;
  auto wanted = connections_possible(10'000);
  auto idle = idle_connections(port, wanted);
  BOOST_TEST_MESSAGE(idle.size() << " idle API connections");
  BOOST_REQUIRE_GE(idle.size(), std::min<size_t>(2000, wanted));
  // A real client gets through, with its certificate.
  c.pki.client("alice");
  http::client_config api;
  api.port = port;
  api.ca = c.pki.dir() + "/ca.crt";
  api.certificate = c.pki.dir() + "/client.alice.crt";
  api.private_key = c.pki.dir() + "/client.alice.key";
  for (int i = 0; i < 3; ++i) {
    auto r = http::send(api, "GET", "/v1/status");
    BOOST_REQUIRE_MESSAGE(r, (r ? "" : r.error_value().message));
    BOOST_CHECK_EQUAL(r->status, 200);
  }
  auto fds = [&] {
    size_t n = 0;
    for (auto& e : std::filesystem::directory_iterator{
             "/proc/" + std::to_string(c.nodes[n1].proc.pid()) + "/fd"}) {
      (void)e;
      ++n;
    }
    return n;
  };
  BOOST_CHECK_LT(fds(), 1000u + 300u);
  for (auto fd : idle)
    ::close(fd);
}
