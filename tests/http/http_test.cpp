// The HTTPS server and client over real TLS on 127.0.0.1: an answer sent
// later from another thread arrives; a server certificate that does not
// name the host is refused by the client; a closed port, a silent server
// and a refused handshake give errors that say so; oversize headers and
// bodies and malformed requests get 431, 413 and 400; at the connection
// cap the oldest idle connection goes (or still in its handshake); a
// stream delivers its events.

#include <arpa/inet.h>
#include <boost/test/unit_test.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "http/client.hpp"
#include "http/server.hpp"
#include "temp_dir.hpp"
#include "test_pki.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

struct fixture {
  test::temp_dir dir;
  test::test_pki pki{dir.sub("certs")};
  std::atomic<int> requests{0};

  http::server_config server_cfg() {
    pki.node("n1");
    http::server_config c;
    c.certificate = pki.dir() + "/node.n1.crt";
    c.private_key = pki.dir() + "/node.n1.key";
    c.ca = pki.dir() + "/ca.crt";
    c.max_header_bytes = 4096;
    c.max_body_bytes = 64 * 1024;
    c.idle_timeout = 5s;
    return c;
  }

  http::client_config client_cfg(uint16_t port) {
    http::client_config c;
    c.port = port;
    c.ca = pki.dir() + "/ca.crt";
    c.timeout = 3s;
    return c;
  }

  // Echoes the request; /later answers from another thread after 50 ms;
  // /never never answers; /stream sends three events.
  http::handler handler() {
    return [this](http::request req, std::shared_ptr<http::responder> out) {
      ++requests;
      if (req.path == "/later") {
        std::thread{[out] {
          std::this_thread::sleep_for(50ms);
          out->send({200, "text/plain", {}, "later"});
        }}.detach();
        return;
      }
      if (req.path == "/never") {
        static std::vector<std::shared_ptr<http::responder>> kept;
        kept.push_back(out);
        return;
      }
      if (req.path == "/stream") {
        out->open_stream();
        for (int i = 0; i < 3; ++i)
          out->push("data: " + std::to_string(i) + "\n\n");
        out->close();
        return;
      }
      std::string seg;
      for (auto& s : req.segments)
        seg += "[" + s + "]";
      out->send(
          {200,
           "text/plain",
           {},
           req.method + " " + seg + " q=" + req.query["q"] + " body=" + req.body
               + " cert=" + (req.client_cert_pem.empty() ? "no" : "yes")});
    };
  }
};

int raw_connect(uint16_t port, const char* from = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (from != nullptr) {
    sockaddr_in b{};
    b.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &b.sin_addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof(b));
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

} // namespace

BOOST_AUTO_TEST_SUITE(http_server)

BOOST_FIXTURE_TEST_CASE(requests_are_answered_now_or_later, fixture) {
  auto srv = http::server::start(server_cfg(), handler());
  BOOST_REQUIRE_MESSAGE(srv, (srv ? "" : srv.error_value().message));
  auto c = client_cfg((*srv)->port());
  auto r = http::send(c, "POST", "/v1/a%2Fb/c?q=x%20y", "hello");
  BOOST_REQUIRE_MESSAGE(r, (r ? "" : r.error_value().message));
  BOOST_CHECK_EQUAL(r->status, 200);
  BOOST_CHECK_EQUAL(r->body, "POST [v1][a/b][c] q=x y body=hello cert=no");
  auto later = http::send(c, "GET", "/later");
  BOOST_REQUIRE(later);
  BOOST_CHECK_EQUAL(later->body, "later");
  // With a client certificate, the handler sees it.
  pki.client("alice");
  c.certificate = pki.dir() + "/client.alice.crt";
  c.private_key = pki.dir() + "/client.alice.key";
  auto with = http::send(c, "GET", "/x");
  BOOST_REQUIRE(with);
  BOOST_CHECK(with->body.find("cert=yes") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(failures_say_what_failed, fixture) {
  auto srv = http::server::start(server_cfg(), handler());
  BOOST_REQUIRE(srv);
  auto port = (*srv)->port();
  // A server whose certificate names 127.0.0.1 only, reached as
  // localhost: the client refuses it.
  {
    auto key = pki::private_key::generate();
    pki::issue_options opts;
    opts.hosts = {"127.0.0.1"};
    auto cert
        = pki::issue(pki.ca(), pki.ca_key(), pki::role::node, "n9", *key, opts);
    BOOST_REQUIRE(cert);
    BOOST_REQUIRE(
        pki::write_file(dir.sub("n9.crt"), cert->to_pem(), 0644, true));
    BOOST_REQUIRE(
        pki::write_file(dir.sub("n9.key"), key->to_pem(), 0600, true));
    auto cfg = server_cfg();
    cfg.certificate = dir.sub("n9.crt");
    cfg.private_key = dir.sub("n9.key");
    auto named = http::server::start(cfg, handler());
    BOOST_REQUIRE(named);
    auto c = client_cfg((*named)->port());
    BOOST_CHECK(http::send(c, "GET", "/x"));
    c.host = "localhost";
    auto wrong = http::send(c, "GET", "/x");
    BOOST_REQUIRE(!wrong);
    BOOST_CHECK(wrong.error_value().code == errc::unauthenticated);
    BOOST_CHECK_MESSAGE(wrong.error_value().message.find("TLS with localhost")
                            != std::string::npos,
                        wrong.error_value().message);
  }
  // Another CA's server.
  test::test_pki other{dir.sub("other")};
  auto c2 = client_cfg(port);
  c2.ca = other.dir() + "/ca.crt";
  auto foreign = http::send(c2, "GET", "/x");
  BOOST_REQUIRE(!foreign);
  BOOST_CHECK(foreign.error_value().code == errc::unauthenticated);
  // Nobody listening.
  auto closed = client_cfg(1);
  auto refused = http::send(closed, "GET", "/x");
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::unavailable);
  BOOST_CHECK_MESSAGE(
      refused.error_value().message
          == "cannot connect to 127.0.0.1:1: Connection refused",
      refused.error_value().message);
  // An answer that never comes.
  auto slow = client_cfg(port);
  slow.timeout = 300ms;
  auto never = http::send(slow, "GET", "/never");
  BOOST_REQUIRE(!never);
  BOOST_CHECK(never.error_value().code == errc::timeout);
}

BOOST_FIXTURE_TEST_CASE(bad_requests_are_bounded_and_answered, fixture) {
  auto srv = http::server::start(server_cfg(), handler());
  BOOST_REQUIRE(srv);
  auto c = client_cfg((*srv)->port());
  auto big = http::send(c, "POST", "/x", std::string(100 * 1024, 'b'));
  BOOST_REQUIRE(big);
  BOOST_CHECK_EQUAL(big->status, 413);
  BOOST_CHECK(big->body.find("payload_too_large") != std::string::npos);
  auto header
      = http::send(c, "GET", "/x", {}, {{"X-Long", std::string(8000, 'h')}});
  BOOST_REQUIRE(header);
  BOOST_CHECK_EQUAL(header->status, 431);
  auto escape = http::send(c, "GET", "/a%zz");
  BOOST_REQUIRE(escape);
  BOOST_CHECK_EQUAL(escape->status, 400);
  auto method = http::send(c, "G(T", "/x");
  BOOST_REQUIRE(method);
  BOOST_CHECK_EQUAL(method->status, 400);
  BOOST_CHECK(http::send(c, "GET", "/x")); // still serving
}

BOOST_FIXTURE_TEST_CASE(at_the_cap_the_oldest_idle_connection_goes, fixture) {
  auto cfg = server_cfg();
  cfg.plaintext = true;
  cfg.max_connections = 8;
  auto srv = http::server::start(cfg, handler());
  BOOST_REQUIRE(srv);
  auto port = (*srv)->port();
  std::vector<int> idle;
  for (int i = 0; i < 20; ++i)
    idle.push_back(raw_connect(port));
  auto c = client_cfg(port);
  c.plaintext = true;
  // A real client still gets through, and the server holds at most the cap.
  for (int i = 0; i < 5; ++i) {
    auto r = http::send(c, "GET", "/x");
    BOOST_REQUIRE_MESSAGE(r, (r ? "" : r.error_value().message));
    BOOST_CHECK_EQUAL(r->status, 200);
  }
  BOOST_CHECK_LE((*srv)->connections(), 8u);
  for (auto fd : idle)
    if (fd >= 0)
      ::close(fd);
}

// The same over TLS, with connections that never start their handshake:
// they are as evictable as idle ones, and one address cannot hold more
// than its share.
BOOST_FIXTURE_TEST_CASE(silent_handshakes_cannot_take_the_cap, fixture) {
  auto cfg = server_cfg();
  cfg.max_connections = 8;
  cfg.max_connections_per_source = 6;
  cfg.handshake_timeout = 30s; // they would stay, if nothing evicted them
  auto srv = http::server::start(cfg, handler());
  BOOST_REQUIRE(srv);
  auto port = (*srv)->port();
  std::vector<int> silent;
  for (int i = 0; i < 20; ++i) // from another address than the client's
    silent.push_back(raw_connect(port, "127.0.0.2"));
  auto c = client_cfg(port);
  for (int i = 0; i < 5; ++i) {
    auto r = http::send(c, "GET", "/x");
    BOOST_REQUIRE_MESSAGE(r, (r ? "" : r.error_value().message));
    BOOST_CHECK_EQUAL(r->status, 200);
  }
  BOOST_CHECK_LE((*srv)->connections(), 8u);
  for (auto fd : silent)
    if (fd >= 0)
      ::close(fd);
}

// The admission sees the header only: what it refuses is answered without
// its body being read, and the handler never sees it.
BOOST_FIXTURE_TEST_CASE(the_admission_decides_before_the_body, fixture) {
  std::atomic<int> admitted{0};
  auto srv = http::server::start(
      server_cfg(), handler(),
      [&](http::request& head) -> std::optional<http::response> {
        ++admitted;
        if (head.header("authorization") != "Bearer ok")
          return http::response{401, "application/json", {}, "{}"};
        head.context = std::make_shared<const int>(7);
        return std::nullopt;
      });
  BOOST_REQUIRE(srv);
  auto c = client_cfg((*srv)->port());
  auto no = http::send(c, "POST", "/x", std::string(60 * 1024, 'b'));
  BOOST_REQUIRE_MESSAGE(no, (no ? "" : no.error_value().message));
  BOOST_CHECK_EQUAL(no->status, 401);
  BOOST_CHECK_EQUAL(requests.load(), 0);
  auto yes
      = http::send(c, "POST", "/x", "body", {{"Authorization", "Bearer ok"}});
  BOOST_REQUIRE(yes);
  BOOST_CHECK_EQUAL(yes->status, 200);
  BOOST_CHECK_EQUAL(requests.load(), 1);
  BOOST_CHECK_EQUAL(admitted.load(), 2);
}

BOOST_FIXTURE_TEST_CASE(a_stream_delivers_its_events, fixture) {
  auto srv = http::server::start(server_cfg(), handler());
  BOOST_REQUIRE(srv);
  auto c = client_cfg((*srv)->port());
  auto r = http::send(c, "GET", "/stream");
  BOOST_REQUIRE_MESSAGE(r, (r ? "" : r.error_value().message));
  BOOST_CHECK_EQUAL(r->status, 200);
  BOOST_CHECK_EQUAL(r->content_type, "text/event-stream");
  BOOST_CHECK_EQUAL(r->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

BOOST_FIXTURE_TEST_CASE(unusable_tls_files_are_refused_at_start, fixture) {
  auto cfg = server_cfg();
  cfg.private_key = pki.dir() + "/missing.key";
  auto s = http::server::start(cfg, handler());
  BOOST_REQUIRE(!s);
  BOOST_CHECK(s.error_value().message.find("missing.key") != std::string::npos);
  cfg = server_cfg();
  cfg.host = "not-an-ip";
  BOOST_CHECK(!http::server::start(cfg, handler()));
}

BOOST_AUTO_TEST_SUITE_END()
