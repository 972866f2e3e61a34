// bench_net: Engram across processes on this machine (engramd over CAF's
// network layer, 127.0.0.1).
//
//   remote_ask_p50_us / _p99_us  a client asks an agent instance on an
//                                engramd process (query, 256 B fact)
//   tcp_p50_us, ask_vs_tcp       a plain TCP ping-pong of 256 B in the same
//                                run, and the ratio
//   remote_engrams_per_s         an in-process node learns engrams (256 B)
//                                that its sessions push to an engramd peer
//                                in batches: first write → peer holds all
//   converge_ms_8x10k            8 engramd nodes, 10 000 concurrent updates
//                                through all of them: last acknowledgement →
//                                every replica's digest equal
#include "actors/internal/context.hpp" // the store layout the actors use
#include "actors/net.hpp"
#include "apps/common/certs.hpp"
#include "apps/common/process.hpp"
#include "persistence/store.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace engram;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

struct bench_config : caf::actor_system_config {
  /// Mutual TLS with `tls` (plaintext when empty).
  explicit bench_config(const actors::tls_config& tls = {}) {
    actors::register_types(*this);
    actors::configure_network(*this);
    if (tls.enabled())
      actors::configure_tls(*this, tls);
  }
};

std::string scratch(const char* name) {
  auto path = fs::temp_directory_path()
              / ("engram-bench-net-" + std::string{name} + "-"
                 + std::to_string(::getpid()));
  fs::remove_all(path);
  fs::create_directories(path);
  return path.string();
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  return xs[static_cast<size_t>(p * static_cast<double>(xs.size() - 1))];
}

engram_record fact_of(const std::string& key, size_t bytes, char fill = 'v') {
  engram_record e;
  e.type = memory_type::semantic;
  e.body = fact{key, std::string(bytes, fill)};
  e.confidence = 0.9;
  return e;
}

// engramd processes in a scratch directory.
struct cluster {
  std::string dir;
  std::vector<apps::process> procs;
  std::vector<uint16_t> ports;
  std::string threads = "0";
  /// The certificates directory (nodes run with mutual TLS), or empty
  /// (--insecure).
  std::string certs;
  /// With TLS: nodes sign their envelopes.
  bool sign_envelopes = true;

  explicit cluster(const char* name, int threads_per_node = 0)
      : dir(scratch(name)), threads(std::to_string(threads_per_node)) {}

  ~cluster() {
    for (auto& p : procs)
      p.signal(SIGTERM);
    for (auto& p : procs)
      p.wait(10s);
    fs::remove_all(dir);
  }

  uint16_t start(const std::string& id, const std::vector<uint16_t>& seeds) {
    std::vector<std::string> argv{
        ENGRAMD_PATH,    "--node-id",    id,
        "--data-dir",    dir + "/" + id, "--listen",
        "127.0.0.1:0",   "--port-file",  dir + "/" + id + ".port",
        "--sync-writes", "false",        "--log-level",
        "warn",          "--threads",    threads};
    if (certs.empty()) {
      argv.push_back("--insecure");
    } else {
      argv.push_back("--certs-dir");
      argv.push_back(certs);
      argv.push_back("--sign-envelopes");
      argv.push_back(sign_envelopes ? "true" : "false");
    }
    for (auto s : seeds) {
      argv.push_back("--peer");
      argv.push_back("127.0.0.1:" + std::to_string(s));
    }
    procs.emplace_back(argv, dir + "/" + id + ".log");
    ports.push_back(apps::read_port(dir + "/" + id + ".port"));
    return ports.back();
  }
};

// -- plain TCP ping-pong, for scale
// ----------------------------------------------

std::vector<double> tcp_pingpong(size_t rounds, size_t bytes) {
  int server = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len);
  ::listen(server, 1);
  auto read_all = [](int fd, char* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      auto r = ::read(fd, buf + got, n - got);
      if (r <= 0)
        return false;
      got += static_cast<size_t>(r);
    }
    return true;
  };
  std::thread echo{[&] {
    int fd = ::accept(server, nullptr, nullptr);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::vector<char> buf(bytes);
    while (read_all(fd, buf.data(), bytes))
      if (::write(fd, buf.data(), bytes) < 0)
        break;
    ::close(fd);
  }};
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::vector<char> buf(bytes, 'x');
  std::vector<double> us;
  for (size_t i = 0; i < rounds; ++i) {
    auto t0 = clk::now();
    if (::write(fd, buf.data(), bytes) < 0 || !read_all(fd, buf.data(), bytes))
      break;
    us.push_back(
        std::chrono::duration<double, std::micro>(clk::now() - t0).count());
  }
  ::close(fd);
  echo.join();
  ::close(server);
  return us;
}

// -- remote ask
// -----------------------------------------------------------------

void BM_remote_ask(benchmark::State& state) {
  cluster c{"ask", 1};
  auto port = c.start("n1", {});
  bench_config cfg;
  caf::actor_system sys{cfg};
  auto remote = actors::connect_remote(sys, {"127.0.0.1", port});
  if (!remote) {
    state.SkipWithError(remote.error_value().to_string().c_str());
    return;
  }
  caf::scoped_actor self{sys};
  actors::instance_actor inst;
  self->request(remote->hdl, 5s, actors::instance_atom::value,
                std::string{"planner"}, std::string{"i1"})
      .receive(
          [&](actors::instance_actor& x) {
            inst = x;
          },
          [&](caf::error&) {});
  self->request(inst, 5s, actors::learn_atom::value, fact_of("k", 256), false)
      .receive([](engram_id) {}, [](caf::error&) {});
  query_filter filter;
  filter.limit = 1;
  std::vector<double> us;
  for (auto _ : state) {
    auto t0 = clk::now();
    self->request(inst, 5s, actors::query_atom::value, filter)
        .receive([](std::vector<memory_view>&) {},
                 [&](caf::error&) {
                   state.SkipWithError("ask failed");
                 });
    us.push_back(
        std::chrono::duration<double, std::micro>(clk::now() - t0).count());
  }
  auto tcp = tcp_pingpong(us.size(), 256);
  state.counters["remote_ask_p50_us"] = percentile(us, 0.5);
  state.counters["remote_ask_p99_us"] = percentile(us, 0.99);
  state.counters["tcp_p50_us"] = percentile(tcp, 0.5);
  state.counters["ask_vs_tcp"] = percentile(us, 0.5) / percentile(tcp, 0.5);
}
BENCHMARK(BM_remote_ask)->Iterations(5000)->UseRealTime();

// -- one-way deltas
// ----------------------------------------------------------------

// The store of node "source" at `dir`, holding `n` facts (256 B) of agent
// "bulk", written as the node would.
void fill_source_store(const std::string& dir, size_t n) {
  persistence::store_options opts{dir};
  opts.sync = false;
  auto db = persistence::database::open(opts);
  auto partition = actors::agent_partition("bulk");
  auto st = persistence::store::attach(*db, partition,
                                       actors::replica_of("source", partition),
                                       actors::in_memory_replica);
  system_physical_clock wall;
  hybrid_logical_clock hlc{wall};
  replica mem{actors::replica_of("source", partition), hlc};
  for (size_t i = 0; i < n; i += 4096) {
    replica_delta group;
    for (size_t j = i; j < std::min(n, i + 4096); ++j) {
      auto e = fact_of("key" + std::to_string(j), 256);
      e.scope = memory_scope::agent("bulk");
      join_deltas(group, *mem.put(std::move(e)));
    }
    (void)(*st)->record(group, mem);
  }
}

// The agent `name`'s actor on the node `hdl` (empty when it did not
// answer).
actors::agent_actor agent_on(caf::scoped_actor& self,
                             const actors::node_actor& hdl,
                             const std::string& name) {
  actors::agent_actor out;
  self->request(hdl, 5s, actors::agent_atom::value, name)
      .receive(
          [&](actors::agent_actor& a) {
            out = a;
          },
          [](caf::error&) {});
  return out;
}

// A replica's digest (0 when it did not answer).
uint64_t digest_of(caf::scoped_actor& self, const actors::agent_actor& a) {
  uint64_t d = 0;
  self->request(a, 10s, actors::digest_atom::value, std::string{})
      .receive(
          [&](uint64_t x, causal_context&) {
            d = x;
          },
          [](caf::error&) {});
  return d;
}

// Engrams per second of a pull of `n` that started at `t0`, once `remote`
// holds `target` (-1 when it did not within 120 s).
double pulled_per_s(caf::scoped_actor& self, const actors::agent_actor& remote,
                    uint64_t target, size_t n, clk::time_point t0) {
  auto deadline = t0 + 120s;
  while (digest_of(self, remote) != target && clk::now() < deadline)
    std::this_thread::sleep_for(1ms);
  auto secs = std::chrono::duration<double>(clk::now() - t0).count();
  return clk::now() < deadline ? static_cast<double>(n) / secs : -1;
}

// A node whose store holds `n` engrams (256 B) of agent "bulk" joins an empty
// engramd peer: time until the peer's replica equals it (the pull streams
// in batches of 1 024 versions, acknowledged).
void BM_remote_engrams(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  cluster c{"oneway"};
  fill_source_store(c.dir + "/source", n);
  auto port = c.start("sink", {});
  bench_config cfg;
  caf::actor_system sys{cfg};
  actors::node_config nc;
  nc.node_id = "source";
  nc.data_dir = c.dir + "/source";
  nc.sync_writes = false;
  nc.sessions.anti_entropy_interval = 200ms;
  auto src = actors::node::start(sys, nc);
  auto sink = actors::connect_remote(sys, {"127.0.0.1", port});
  if (!src || !sink) {
    state.SkipWithError("cannot start");
    return;
  }
  caf::scoped_actor self{sys};
  auto remote_agent = agent_on(self, sink->hdl, "bulk");
  auto local_agent = (*src)->agent("bulk").value(); // loads the store
  auto target = digest_of(self, local_agent);
  for (auto _ : state) {
    auto t0 = clk::now();
    actors::peer_keeper keeper{sys, **src, {{"127.0.0.1", port}}, nullptr};
    state.counters["remote_engrams_per_s"]
        = pulled_per_s(self, remote_agent, target, n, t0);
    if (auto st = (*src)->status()) {
      uint64_t resent = 0;
      for (auto& s : st->session_details)
        resent += s.retransmits;
      state.counters["retransmits"] = static_cast<double>(resent);
    }
  }
}
BENCHMARK(BM_remote_engrams)
    ->Arg(100'000)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

// -- 8 nodes
// ---------------------------------------------------------------------------

void BM_converge_8x10k(benchmark::State& state) {
  constexpr size_t nodes = 8;
  const size_t writes = static_cast<size_t>(state.range(0));
  // Eight processes share two cores: one scheduler thread each.
  cluster c{"converge", 1};
  std::vector<uint16_t> seeds;
  for (size_t i = 0; i < nodes; ++i)
    seeds.push_back(c.start("n" + std::to_string(i), seeds));
  bench_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::vector<actors::instance_actor> insts;
  std::vector<actors::agent_actor> replicas;
  for (size_t i = 0; i < nodes; ++i) {
    auto remote = actors::connect_remote(sys, {"127.0.0.1", c.ports[i]});
    if (!remote) {
      state.SkipWithError("cannot connect");
      return;
    }
    self->request(remote->hdl, 5s, actors::instance_atom::value,
                  std::string{"swarm"}, "i" + std::to_string(i))
        .receive(
            [&](actors::instance_actor& x) {
              insts.push_back(x);
            },
            [](caf::error&) {});
    self->request(remote->hdl, 5s, actors::agent_atom::value,
                  std::string{"swarm"})
        .receive(
            [&](actors::agent_actor& x) {
              replicas.push_back(x);
            },
            [](caf::error&) {});
  }
  std::this_thread::sleep_for(1s); // all sessions greeted
  for (auto _ : state) {
    auto acked = std::make_shared<std::atomic<size_t>>(0);
    auto last = std::make_shared<std::atomic<int64_t>>(0);
    sys.spawn([=](caf::event_based_actor* writer) {
      std::mt19937_64 rng{5};
      for (size_t w = 0; w < writes; ++w)
        writer
            ->request(insts[w % nodes], 60s, actors::learn_atom::value,
                      fact_of("k" + std::to_string(rng() % 1000), 64,
                              static_cast<char>('a' + w % 26)),
                      false)
            .then([=](engram_id) {
              last->store(clk::now().time_since_epoch().count());
              ++*acked;
            });
    });
    auto t0 = clk::now();
    auto deadline = clk::now() + 120s;
    while (acked->load() < writes && clk::now() < deadline)
      std::this_thread::sleep_for(1ms);
    state.counters["writes_per_s"]
        = static_cast<double>(acked->load())
          / std::chrono::duration<double>(clk::now() - t0).count();
    deadline = clk::now() + 60s;
    auto converged = [&] {
      using handle = decltype(self->request(
          replicas[0], 10s, actors::digest_atom::value, std::string{}));
      std::vector<handle> asks;
      for (auto& r : replicas)
        asks.push_back(
            self->request(r, 10s, actors::digest_atom::value, std::string{}));
      std::vector<uint64_t> ds;
      for (auto& h : asks)
        h.receive(
            [&](uint64_t d, causal_context&) {
              ds.push_back(d);
            },
            [](caf::error&) {});
      return ds.size() == nodes
             && std::all_of(ds.begin(), ds.end(), [&](uint64_t d) {
                  return d == ds.front();
                });
    };
    while (!converged() && clk::now() < deadline)
      std::this_thread::sleep_for(1ms);
    auto end = clk::now();
    if (end >= deadline) { // say what did not converge
      for (size_t i = 0; i < nodes; ++i) {
        self->request(replicas[i], 10s, actors::digest_atom::value,
                      std::string{})
            .receive(
                [&](uint64_t d, causal_context& ctx) {
                  std::fprintf(stderr, "n%zu digest %016llx context %s\n", i,
                               static_cast<unsigned long long>(d),
                               ctx.clock().to_string().c_str());
                },
                [](caf::error&) {});
      }
    }
    state.counters["acked"] = static_cast<double>(acked->load());
    auto last_ack = clk::time_point{clk::duration{last->load()}};
    state.counters["converge_ms_8x10k"]
        = end < deadline
              ? std::chrono::duration<double, std::milli>(end - last_ack)
                    .count()
              : -1;
  }
}
BENCHMARK(BM_converge_8x10k)
    ->Arg(10'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// -- partition heal
// ----------------------------------------------------------------

// Three engramd; n3 is frozen (SIGSTOP) until its peers drop it, 1 000
// writes land on n1 meanwhile, then n3 resumes: the anti-entropy rounds
// n3's sessions start until every replica is equal (heal_rounds), and the
// time from the resume to that moment.
void BM_heal(benchmark::State& state) {
  cluster c{"heal"};
  std::vector<uint16_t> seeds;
  for (int i = 1; i <= 3; ++i)
    seeds.push_back(c.start("n" + std::to_string(i), seeds));
  bench_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::vector<actors::node_actor> nodes;
  std::vector<actors::agent_actor> replicas;
  actors::instance_actor writer;
  for (size_t i = 0; i < 3; ++i) {
    auto remote = actors::connect_remote(sys, {"127.0.0.1", c.ports[i]});
    if (!remote) {
      state.SkipWithError("cannot connect");
      return;
    }
    nodes.push_back(remote->hdl);
    self->request(remote->hdl, 5s, actors::agent_atom::value,
                  std::string{"heal"})
        .receive(
            [&](actors::agent_actor& x) {
              replicas.push_back(x);
            },
            [](caf::error&) {});
  }
  self->request(nodes[0], 5s, actors::instance_atom::value, std::string{"heal"},
                std::string{"w"})
      .receive(
          [&](actors::instance_actor& x) {
            writer = x;
          },
          [](caf::error&) {});
  std::this_thread::sleep_for(1s); // sessions greeted
  auto rounds_of = [&](const actors::node_actor& n) {
    std::vector<uint64_t> rounds;
    self->request(n, 5s, actors::status_atom::value)
        .receive(
            [&](actors::node_status& st) {
              for (auto& s : st.session_details)
                rounds.push_back(s.rounds);
            },
            [](caf::error&) {});
    return rounds;
  };
  auto digests_equal = [&] {
    std::vector<uint64_t> ds;
    for (auto& r : replicas)
      self->request(r, 5s, actors::digest_atom::value, std::string{})
          .receive(
              [&](uint64_t d, causal_context&) {
                ds.push_back(d);
              },
              [](caf::error&) {});
    return ds.size() == 3 && ds[0] == ds[1] && ds[1] == ds[2];
  };
  for (auto _ : state) {
    auto before = rounds_of(nodes[2]);
    c.procs[2].signal(SIGSTOP);
    std::this_thread::sleep_for(1500ms); // heartbeats drop n3
    for (int i = 0; i < 1000; ++i)
      self->request(writer, 10s, actors::learn_atom::value,
                    fact_of("k" + std::to_string(i), 64), false)
          .receive([](engram_id) {}, [](caf::error&) {});
    c.procs[2].signal(SIGCONT);
    auto t0 = clk::now();
    auto deadline = t0 + 30s;
    // The client lost n3 too: reach it anew once it is back.
    while (clk::now() < deadline) {
      auto remote = actors::connect_remote(sys, {"127.0.0.1", c.ports[2]}, 1s);
      if (!remote)
        continue;
      nodes[2] = remote->hdl;
      self->request(nodes[2], 5s, actors::agent_atom::value,
                    std::string{"heal"})
          .receive(
              [&](actors::agent_actor& x) {
                replicas[2] = x;
              },
              [](caf::error&) {});
      break;
    }
    while (!digests_equal() && clk::now() < deadline)
      std::this_thread::sleep_for(2ms);
    auto ms = std::chrono::duration<double, std::milli>(clk::now() - t0);
    auto after = rounds_of(nodes[2]);
    uint64_t most = 0;
    for (size_t i = 0; i < std::min(before.size(), after.size()); ++i)
      most = std::max(most, after[i] - before[i]);
    state.counters["heal_rounds"]
        = clk::now() < deadline ? static_cast<double>(most) : -1;
    state.counters["heal_ms"] = clk::now() < deadline ? ms.count() : -1;
  }
}
BENCHMARK(BM_heal)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// -- secure vs plain
// ---------------------------------------------------------------

// The same remote asks and the same one-way pull, once over plaintext and
// once over mutual TLS 1.3 (certificates made here), in one run: the ratios
// are what TLS costs.
struct transport_figures {
  double ask_p50_us = 0;
  double engrams_per_s = 0;
  double connect_ms = 0;
};

/// One engramd ("sink") and a client connected to it, plaintext or mutual
/// TLS; both transports run at once so that their asks can interleave.
struct transport_rig {
  bool secure;
  cluster c;
  actors::tls_config tls;
  uint16_t port = 0;
  bench_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  actors::remote_node remote;
  actors::instance_actor inst;
  std::vector<double> asks_us;
  transport_figures out;

  bool signs;

  transport_rig(bool secure_transport, size_t engrams, bool sign = true)
      : secure(secure_transport), c(!secure ? "plain"
                                    : sign  ? "secure"
                                            : "secure-unsigned",
                                    1),
        tls(secure ? apps::make_cluster_certs(c.dir + "/certs",
                                              {"sink", "source"}, "bench")
                   : actors::tls_config{}),
        cfg(tls), sys(cfg), self(sys), signs(sign) {
    c.certs = secure ? c.dir + "/certs" : "";
    c.sign_envelopes = sign;
    fill_source_store(c.dir + "/source", engrams);
    port = c.start("sink", {});
    // Connecting: the median of 20 fresh connections' handshakes.
    std::vector<double> connects;
    for (int i = 0; i < 20; ++i) {
      bench_config once_cfg{tls};
      caf::actor_system once{once_cfg};
      auto t0 = clk::now();
      if (actors::connect_remote(once, {"127.0.0.1", port}))
        connects.push_back(
            std::chrono::duration<double, std::milli>(clk::now() - t0).count());
    }
    out.connect_ms = percentile(connects, 0.5);
    auto r = actors::connect_remote(sys, {"127.0.0.1", port});
    if (!r)
      return;
    remote = *r;
    self->request(remote.hdl, 5s, actors::instance_atom::value,
                  std::string{"planner"}, std::string{"i1"})
        .receive(
            [&](actors::instance_actor& x) {
              inst = x;
            },
            [&](caf::error&) {});
    self->request(inst, 5s, actors::learn_atom::value, fact_of("k", 256), false)
        .receive([](engram_id) {}, [](caf::error&) {});
  }

  /// `n` asks (a query of one memory), each timed.
  void ask(int n) {
    if (!inst)
      return;
    query_filter filter;
    filter.limit = 1;
    for (int i = 0; i < n; ++i) {
      auto t0 = clk::now();
      self->request(inst, 5s, actors::query_atom::value, filter)
          .receive([](std::vector<memory_view>&) {}, [&](caf::error&) {});
      asks_us.push_back(
          std::chrono::duration<double, std::micro>(clk::now() - t0).count());
    }
  }

  /// The pull: an in-process source node joins the sink and sends it its
  /// `engrams`.
  void pull(size_t engrams) {
    out.ask_p50_us = percentile(asks_us, 0.5);
    if (!inst)
      return;
    actors::node_config nc;
    nc.node_id = "source";
    nc.data_dir = c.dir + "/source";
    nc.sync_writes = false;
    nc.sessions.anti_entropy_interval = 200ms;
    nc.sign_envelopes = signs;
    if (secure) {
      nc.tls.certificate = c.dir + "/certs/node.source.crt";
      nc.tls.private_key = c.dir + "/certs/node.source.key";
      nc.tls.ca = c.dir + "/certs/ca.crt";
    }
    // A node's actor system speaks TLS with the node's own certificate.
    bench_config src_cfg{nc.tls};
    caf::actor_system src_sys{src_cfg};
    auto src = actors::node::start(src_sys, nc);
    if (!src)
      return;
    auto remote_agent = agent_on(self, remote.hdl, "bulk");
    auto local_agent = (*src)->agent("bulk").value();
    auto target = digest_of(self, local_agent);
    auto t0 = clk::now();
    actors::peer_keeper keeper{src_sys, **src, {{"127.0.0.1", port}}, nullptr};
    out.engrams_per_s = pulled_per_s(self, remote_agent, target, engrams, t0);
  }
};

void BM_secure_vs_plain(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    transport_rig plain_rig{false, n};
    transport_rig secure_rig{true, n};
    // 2 000 asks each, in alternating rounds of 100: both transports see
    // the same machine (caches, frequency, neighbours) at the same time.
    for (int round = 0; round < 20; ++round) {
      plain_rig.ask(100);
      secure_rig.ask(100);
    }
    plain_rig.pull(n);
    secure_rig.pull(n);
    auto& plain = plain_rig.out;
    auto& secure = secure_rig.out;
    state.counters["plain_engrams_per_s"] = plain.engrams_per_s;
    state.counters["secure_engrams_per_s"] = secure.engrams_per_s;
    state.counters["secure_vs_plain_engrams"]
        = secure.engrams_per_s / plain.engrams_per_s;
    state.counters["plain_ask_p50_us"] = plain.ask_p50_us;
    state.counters["secure_ask_p50_us"] = secure.ask_p50_us;
    state.counters["secure_vs_plain_ask_p50"]
        = secure.ask_p50_us / plain.ask_p50_us;
    state.counters["connect_ms_plain"] = plain.connect_ms;
    state.counters["connect_ms_secure"] = secure.connect_ms;
  }
}
BENCHMARK(BM_secure_vs_plain)
    ->Arg(100'000)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

// The same pull over mutual TLS, with every envelope signed (Ed25519) and
// checked against the sender's replay window, and without: what signing
// costs.
void BM_signed_vs_plain(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    transport_rig unsigned_rig{true, n, false};
    transport_rig signed_rig{true, n, true};
    for (int round = 0; round < 10; ++round) {
      unsigned_rig.ask(100);
      signed_rig.ask(100);
    }
    unsigned_rig.pull(n);
    signed_rig.pull(n);
    auto& plain = unsigned_rig.out;
    auto& sig = signed_rig.out;
    state.counters["unsigned_engrams_per_s"] = plain.engrams_per_s;
    state.counters["signed_engrams_per_s"] = sig.engrams_per_s;
    state.counters["signed_vs_plain_engrams"]
        = sig.engrams_per_s / plain.engrams_per_s;
    state.counters["signed_vs_plain_ask_p50"]
        = sig.ask_p50_us / plain.ask_p50_us;
  }
}
BENCHMARK(BM_signed_vs_plain)
    ->Arg(100'000)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

} // namespace

BENCHMARK_MAIN();
