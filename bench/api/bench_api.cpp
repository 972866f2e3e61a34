// The client API's figures, in one run against a real engramd (durable
// writes, TLS 1.3) and, for the peer ratio, a real Redis 7 with
// appendfsync always on the same machine:
//   fsync_floor_us          one 256-byte write + fdatasync (the floor of a
//                           durable write), p50
//   api_learn_p50_us        one client, kept-alive, POST learn, p50 (target:
//                           ≤ 2 × the floor: api_learn_vs_fsync ≤ 2)
//   api_query_p50_us        GET memories?limit=10, p50
//   api_learns_per_s_64c    64 clients (64 agents, shared-key tokens), 5 s,
//                           driven as redis-benchmark drives Redis: one
//                           thread, 64 connections, one request in flight
//                           on each
//   redis_sets_per_s_64c    redis-benchmark -c 64 -t set -d 256
//   api_vs_redis_64c        the ratio (target ≥ 0.5)
//   idle_connections_held   kept-alive TLS connections opened and held (from
//                           two addresses: one may hold half the cap)
//   status_with_idle_ok     1 when a client from a third address is served
//                           while they are held
//   rss_kib_per_connection  engramd's RSS growth per held connection
// Run: build/bench/bench_api --benchmark_filter=BM_api (see bench/README.md).

#include "apps/common/certs.hpp"
#include "apps/common/process.hpp"

#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "api/auth.hpp"
#include "http/client.hpp"

using namespace engram;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return -1;
  std::sort(xs.begin(), xs.end());
  return xs[static_cast<size_t>(p * static_cast<double>(xs.size() - 1))];
}

double us_since(clk::time_point t0) {
  return std::chrono::duration<double, std::micro>(clk::now() - t0).count();
}

long rss_kib(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stol(line.substr(6));
  return -1;
}

// p50 of a 256-byte write + fdatasync in `dir` (the same file system as
// engramd's store).
double fsync_floor_us(const std::string& dir) {
  auto path = dir + "/floor";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::string block(256, 'x');
  std::vector<double> us;
  for (int i = 0; i < 500; ++i) {
    auto t0 = clk::now();
    if (::write(fd, block.data(), block.size()) < 0 || ::fdatasync(fd) != 0)
      break;
    us.push_back(us_since(t0));
  }
  ::close(fd);
  return percentile(us, 0.5);
}

// redis-benchmark's SET requests per second at 64 clients against a Redis
// with appendfsync always (-1 when Redis is not installed).
double redis_sets_per_s(const std::string& dir) {
  if (!fs::exists("/usr/bin/redis-server")
      || !fs::exists("/usr/bin/redis-benchmark"))
    return -1;
  auto port = std::to_string(23000 + (::getpid() % 2000));
  fs::create_directories(dir + "/redis");
  apps::process redis{{"/usr/bin/redis-server", "--port", port, "--bind",
                       "127.0.0.1", "--dir", dir + "/redis", "--appendonly",
                       "yes", "--appendfsync", "always", "--save", ""},
                      dir + "/redis.log"};
  std::this_thread::sleep_for(500ms);
  auto out = dir + "/redis-benchmark.out";
  apps::process bench{{"/usr/bin/redis-benchmark", "-h", "127.0.0.1", "-p",
                       port, "-c", "64", "-n", "100000", "-t", "set", "-d",
                       "256", "-q"},
                      out};
  bench.wait(120s);
  std::ifstream in{out};
  std::string text{std::istreambuf_iterator<char>{in}, {}};
  // The last figure printed (progress lines come first).
  std::regex figure{R"(SET: ([0-9.]+) requests per second)"};
  double rate = -1;
  for (auto i = std::sregex_iterator{text.begin(), text.end(), figure};
       i != std::sregex_iterator{}; ++i)
    rate = std::stod((*i)[1]);
  return rate;
}

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// One connection of the load generator: connect, handshake, then POST
// learns back to back until the deadline.
struct load_client : std::enable_shared_from_this<load_client> {
  load_client(asio::io_context& io, asio::ssl::context& tls, std::string agent,
              std::string auth, clk::time_point deadline,
              std::atomic<uint64_t>& done, std::atomic<uint64_t>& failed)
      : stream(io, tls), agent(std::move(agent)), auth(std::move(auth)),
        deadline(deadline), done(done), failed(failed) {}

  void start(const asio::ip::tcp::endpoint& to) {
    auto self = shared_from_this();
    beast::get_lowest_layer(stream).async_connect(
        to, [self](beast::error_code ec) {
          if (ec)
            return self->fail(ec);
          self->stream.async_handshake(asio::ssl::stream_base::client,
                                       [self](beast::error_code ec) {
                                         if (ec)
                                           return self->fail(ec);
                                         self->next();
                                       });
        });
  }

  void next() {
    if (clk::now() >= deadline)
      return;
    req = {bhttp::verb::post, "/v1/agents/" + agent + "/memories", 11};
    req.set(bhttp::field::host, "127.0.0.1");
    req.set(bhttp::field::authorization, auth);
    req.set(bhttp::field::content_type, "application/json");
    req.body() = "{\"key\":\"k" + std::to_string(i++) + "\",\"value\":\""
                 + std::string(200, 'v') + "\"}";
    req.prepare_payload();
    auto self = shared_from_this();
    bhttp::async_write(stream, req, [self](beast::error_code ec, size_t) {
      if (ec)
        return self->fail(ec);
      self->res = {};
      bhttp::async_read(self->stream, self->buffer, self->res,
                        [self](beast::error_code ec, size_t) {
                          if (ec)
                            return self->fail(ec);
                          if (self->res.result_int() == 201)
                            ++self->done;
                          else
                            ++self->failed;
                          self->next();
                        });
    });
  }

  void fail(beast::error_code ec = {}) {
    if (failed++ == 0)
      std::fprintf(stderr, "bench_api: a client failed: %s\n",
                   ec.message().c_str());
  }

  beast::ssl_stream<beast::tcp_stream> stream;
  std::string agent;
  std::string auth;
  clk::time_point deadline;
  std::atomic<uint64_t>& done;
  std::atomic<uint64_t>& failed;
  bhttp::request<bhttp::string_body> req;
  bhttp::response<bhttp::string_body> res;
  beast::flat_buffer buffer;
  int i = 0;
};

// Learns per second of `clients` connections driven by one thread.
double learns_per_s(uint16_t port, const std::string& ca,
                    const std::function<std::string(const std::string&)>& auth,
                    int clients, std::chrono::seconds how_long,
                    uint64_t& failures) {
  asio::io_context io;
  asio::ssl::context tls{asio::ssl::context::tls_client};
  SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_3_VERSION);
  tls.load_verify_file(ca);
  tls.set_verify_mode(asio::ssl::verify_peer);
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> failed{0};
  auto deadline = clk::now() + how_long;
  asio::ip::tcp::endpoint to{asio::ip::make_address("127.0.0.1"), port};
  auto t0 = clk::now();
  for (int c = 0; c < clients; ++c) {
    auto agent = "c" + std::to_string(c);
    std::make_shared<load_client>(io, tls, agent, auth(agent), deadline, done,
                                  failed)
        ->start(to);
  }
  io.run();
  failures = failed;
  return static_cast<double>(done)
         / std::chrono::duration<double>(clk::now() - t0).count();
}

// A TLS connection from `source` to 127.0.0.1:`port` (handshake done), or
// nullptr.
SSL* connect_from(SSL_CTX* ctx, const char* source, uint16_t port, int& fd) {
  fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return nullptr;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0
      || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return nullptr;
  }
  auto* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    SSL_free(ssl);
    ::close(fd);
    return nullptr;
  }
  return ssl;
}

void BM_api(benchmark::State& state) {
  std::signal(SIGPIPE, SIG_IGN); // a refused connection is counted, not fatal
  auto dir = (fs::temp_directory_path()
              / ("engram-bench-api-" + std::to_string(::getpid())))
                 .string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto tls = apps::make_cluster_certs(dir + "/certs", {"n1"}, "bench");
  auto key_file = dir + "/certs/shared.key";
  if (auto ok = api::create_shared_key(key_file); !ok) {
    state.SkipWithError(ok.error_value().message.c_str());
    return;
  }
  auto key = api::load_shared_key(key_file);
  std::ofstream{dir + "/engramd.toml"}
      << "[distribution.auth]\nshared_key = \"" << key_file
      << "\"\n[api]\nrate_per_agent = 0\nmax_connections = 100000\n"
         "max_connections_per_source = 100000\n";
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
  apps::process node{
      {ENGRAMD_PATH, "--config", dir + "/engramd.toml", "--node-id", "n1",
       "--data-dir", dir + "/n1", "--listen", "127.0.0.1:0", "--certs-dir",
       dir + "/certs", "--api-listen", "127.0.0.1:0", "--api-port-file",
       dir + "/n1.api", "--port-file", dir + "/n1.port", "--log-level", "warn"},
      dir + "/n1.log"};
  auto port = apps::read_port(dir + "/n1.api");
  auto now = static_cast<int64_t>(std::time(nullptr));
  auto token = [&](const std::string& agent) {
    return "Bearer " + api::issue_token(*key, {agent, now, now + 3000, {}});
  };
  http::client_config cfg;
  cfg.port = port;
  cfg.ca = dir + "/certs/ca.crt";
  cfg.timeout = 10s;
  auto body = [](int i) {
    return "{\"key\":\"k" + std::to_string(i) + "\",\"value\":\""
           + std::string(200, 'v') + "\"}";
  };
  for (auto _ : state) {
    state.counters["fsync_floor_us"] = fsync_floor_us(dir);
    // One client.
    auto conn = http::connection::open(cfg);
    if (!conn) {
      state.SkipWithError(conn.error_value().message.c_str());
      return;
    }
    std::vector<std::pair<std::string, std::string>> auth{
        {"Authorization", token("a0")}};
    std::vector<double> learn_us;
    for (int i = 0; i < 1000; ++i) {
      auto t0 = clk::now();
      auto r = conn->request("POST", "/v1/agents/a0/memories", body(i), auth);
      if (!r || r->status != 201) {
        state.SkipWithError("a learn failed");
        return;
      }
      learn_us.push_back(us_since(t0));
    }
    std::vector<double> query_us;
    for (int i = 0; i < 1000; ++i) {
      auto t0 = clk::now();
      auto r
          = conn->request("GET", "/v1/agents/a0/memories?limit=10", {}, auth);
      if (!r || r->status != 200) {
        state.SkipWithError("a query failed");
        return;
      }
      query_us.push_back(us_since(t0));
    }
    state.counters["api_learn_p50_us"] = percentile(learn_us, 0.5);
    state.counters["api_learn_vs_fsync"]
        = percentile(learn_us, 0.5) / state.counters["fsync_floor_us"];
    state.counters["api_query_p50_us"] = percentile(query_us, 0.5);
    // 64 clients, 64 agents, 5 s.
    uint64_t failures = 0;
    state.counters["api_learns_per_s_64c"] = learns_per_s(
        port, cfg.ca, token, 64, std::chrono::seconds{5}, failures);
    state.counters["api_failures_64c"] = static_cast<double>(failures);
    auto redis = redis_sets_per_s(dir);
    state.counters["redis_sets_per_s_64c"] = redis;
    state.counters["api_vs_redis_64c"]
        = redis > 0 ? state.counters["api_learns_per_s_64c"] / redis : -1;
    // Idle TLS connections (handshake done, then silent) held, and what
    // each costs the node. (Plain OpenSSL here: one descriptor each.)
    auto before = rss_kib(node.pid());
    auto* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, cfg.ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    std::vector<std::pair<int, SSL*>> idle;
    size_t wanted = std::min<size_t>(10'000, lim.rlim_cur - 500);
    for (size_t i = 0; i < wanted; ++i) {
      int fd = -1;
      auto* ssl
          = connect_from(ctx, i % 2 == 0 ? "127.0.0.1" : "127.0.0.3", port, fd);
      if (ssl == nullptr)
        break;
      idle.emplace_back(fd, ssl);
    }
    std::this_thread::sleep_for(1s);
    auto after = rss_kib(node.pid());
    state.counters["idle_connections_held"] = static_cast<double>(idle.size());
    state.counters["rss_kib_per_connection"]
        = idle.empty() ? -1
                       : static_cast<double>(after - before)
                             / static_cast<double>(idle.size());
    // ...and a client from another address still gets through.
    int fd = -1;
    bool served = false;
    if (auto* ssl = connect_from(ctx, "127.0.0.2", port, fd)) {
      auto req = "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Authorization: "
                 + token("a0") + "\r\nConnection: close\r\n\r\n";
      char buf[64] = {};
      served = SSL_write(ssl, req.data(), static_cast<int>(req.size())) > 0
               && SSL_read(ssl, buf, sizeof(buf) - 1) > 12
               && std::string{buf}.rfind("HTTP/1.1 200", 0) == 0;
      SSL_free(ssl);
      ::close(fd);
    }
    state.counters["status_with_idle_ok"] = served;
    for (auto& [fd, ssl] : idle) {
      SSL_free(ssl);
      ::close(fd);
    }
    SSL_CTX_free(ctx);
  }
  fs::remove_all(dir);
}

BENCHMARK(BM_api)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
