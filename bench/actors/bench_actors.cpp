// bench_actors: the actor runtime in one process.
//
//   local_ask_p50_us          memory-API query answered by an agent (instance
//                             actor → agent actor → back), p50 / p99
//   swarm_agents_per_process  instance actors alive in one process whose
//                             agents sync with a second node, and the memory
//                             each costs
//   converge_ms_local         1 000 instances of 100 agents on 4 in-process
//                             nodes, 10 000 concurrent writes: last write
//                             acknowledged → every agent's replicas equal
//   idle_sync_bytes           bytes of one anti-entropy round between two
//                             replicas holding the same 1 M engrams
#include "actors/internal/context.hpp" // the store layout the actors use
#include "actors/node.hpp"
#include "persistence/store.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>

using namespace engram;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

struct bench_config : caf::actor_system_config {
  bench_config() { actors::register_types(*this); }
};

std::string scratch(const char* name) {
  auto path = std::filesystem::temp_directory_path()
              / ("engram-bench-actors-" + std::string{name} + "-"
                 + std::to_string(::getpid()));
  std::filesystem::remove_all(path);
  return path.string();
}

size_t resident_bytes() {
  std::ifstream statm{"/proc/self/statm"};
  size_t pages = 0;
  size_t resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

actors::node_config node_cfg(const std::string& dir, const std::string& id) {
  actors::node_config c;
  c.node_id = id;
  c.data_dir = dir + "/" + id;
  // Throughput of the runtime, not of fsync (bench_persistence has that).
  c.sync_writes = false;
  c.sessions.push_delay = 2ms;
  return c;
}

std::unique_ptr<actors::node> must_start(caf::actor_system& sys,
                                         actors::node_config c) {
  auto n = actors::node::start(sys, std::move(c));
  if (!n) {
    std::fprintf(stderr, "%s\n", n.error_value().to_string().c_str());
    std::abort();
  }
  return std::move(*n);
}

engram_record fact_of(const std::string& key, std::string value) {
  engram_record e;
  e.type = memory_type::semantic;
  e.body = fact{key, std::move(value)};
  e.confidence = 0.9;
  return e;
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  return xs[static_cast<size_t>(p * static_cast<double>(xs.size() - 1))];
}

// -- local ask
// ------------------------------------------------------------------

// An agent program written as an actor asks its memory `n` times in a row
// (each request sent when the previous answer arrived); returns the round
// trips in microseconds.
std::vector<double> ask_from_actor(caf::actor_system& sys,
                                   const actors::memory& mem, size_t n) {
  auto latencies = std::make_shared<std::vector<double>>();
  auto done = std::make_shared<std::atomic<bool>>(false);
  query_filter filter;
  filter.limit = 1;
  sys.spawn([=, &mem](caf::event_based_actor* self) {
    auto next = std::make_shared<std::function<void()>>();
    *next = [=, &mem] {
      if (latencies->size() == n) {
        done->store(true);
        *next = nullptr; // break the cycle
        return;
      }
      auto t0 = clk::now();
      mem.query_async(
          self, filter, [=](expected<std::vector<memory_view>> res) {
            latencies->push_back(
                std::chrono::duration<double, std::micro>(clk::now() - t0)
                    .count());
            if (!res || res->size() != 1)
              std::abort();
            (*next)();
          });
    };
    (*next)();
  });
  while (!done->load())
    std::this_thread::sleep_for(1ms);
  return *latencies;
}

void BM_local_ask(benchmark::State& state) {
  auto dir = scratch("ask");
  bench_config cfg;
  caf::actor_system sys{cfg};
  {
    auto n = must_start(sys, node_cfg(dir, "n1"));
    auto mem = n->open("planner", "i1").value();
    for (int i = 0; i < 10; ++i)
      (void)mem.learn(fact_of("k" + std::to_string(i), "value"));
    query_filter filter;
    filter.limit = 1;
    std::vector<double> blocking_us;
    std::vector<double> actor_us;
    for (auto _ : state) {
      // From an agent written as an actor (the swarm's case).
      auto xs = ask_from_actor(sys, mem, 1000);
      actor_us.insert(actor_us.end(), xs.begin(), xs.end());
      // From a plain thread through the blocking API: adds the wake-up of
      // the calling thread and of an idle scheduler worker.
      for (int i = 0; i < 100; ++i) {
        auto t0 = clk::now();
        auto res = mem.query(filter);
        blocking_us.push_back(
            std::chrono::duration<double, std::micro>(clk::now() - t0).count());
        if (!res || res->size() != 1)
          state.SkipWithError("query failed");
      }
    }
    state.counters["local_ask_p50_us"] = percentile(actor_us, 0.5);
    state.counters["local_ask_p99_us"] = percentile(actor_us, 0.99);
    state.counters["blocking_ask_p50_us"] = percentile(blocking_us, 0.5);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_local_ask)->Iterations(20)->UseRealTime();

// -- swarm
// ------------------------------------------------------------------------

void BM_swarm(benchmark::State& state) {
  const size_t instances = static_cast<size_t>(state.range(0));
  constexpr size_t agents = 1000;
  auto dir = scratch("swarm");
  bench_config cfg;
  caf::actor_system sys{cfg};
  for (auto _ : state) {
    auto a = must_start(sys, node_cfg(dir, "A"));
    auto b = must_start(sys, node_cfg(dir, "B"));
    // B hosts every agent once; A hosts the swarm.
    std::vector<actors::memory> on_b;
    for (size_t g = 0; g < agents; ++g)
      on_b.push_back(b->open("agent-" + std::to_string(g), "b").value());
    actors::connect(*a, *b);
    malloc_trim(0);
    auto before = resident_bytes();
    auto t0 = clk::now();
    caf::scoped_actor self{sys};
    for (size_t i = 0; i < instances; ++i)
      self->request(a->handle(), 10s, actors::instance_atom::value,
                    "agent-" + std::to_string(i % agents),
                    "i" + std::to_string(i))
          .receive([](actors::instance_actor&) {},
                   [&](caf::error& e) {
                     state.SkipWithError(to_string(e).c_str());
                   });
    auto spawn_s = std::chrono::duration<double>(clk::now() - t0).count();
    malloc_trim(0);
    auto after = resident_bytes();
    auto status = a->status();
    // Working sync: instances spread over the swarm learn; the facts reach
    // node B's replicas of their agents.
    std::mt19937_64 rng{7};
    std::vector<size_t> probes;
    for (int p = 0; p < 100; ++p) {
      auto i = rng() % instances;
      actors::memory mem{sys, a->dir(), "agent-" + std::to_string(i % agents),
                         "i" + std::to_string(i), 10s};
      if (!mem.learn(fact_of("probe-" + std::to_string(p), "x")))
        state.SkipWithError("learn failed");
      probes.push_back(i % agents);
    }
    size_t arrived = 0;
    auto deadline = clk::now() + 30s;
    for (size_t p = 0; p < probes.size() && clk::now() < deadline;) {
      auto views = on_b[probes[p]].query();
      bool found = false;
      if (views)
        for (auto& v : *views)
          if (auto f = std::get_if<fact>(&v.value.body);
              f && f->key == "probe-" + std::to_string(p))
            found = true;
      if (found) {
        ++arrived;
        ++p;
      } else {
        std::this_thread::sleep_for(1ms);
      }
    }
    state.counters["swarm_agents_per_process"]
        = arrived == probes.size() && status && status->instances == instances
              ? static_cast<double>(instances)
              : 0;
    state.counters["bytes_per_instance_actor"]
        = static_cast<double>(after - before) / static_cast<double>(instances);
    state.counters["spawn_s"] = spawn_s;
    state.counters["probes_synced"] = static_cast<double>(arrived);
    on_b.clear();
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_swarm)
    ->Arg(100'000)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

// -- convergence -------------------------------------------------------------

void BM_converge_local(benchmark::State& state) {
  constexpr size_t nodes = 4;
  constexpr size_t agents = 100;
  constexpr size_t instances = 1000;
  constexpr size_t writes = 10'000;
  auto dir = scratch("converge");
  bench_config cfg;
  caf::actor_system sys{cfg};
  for (auto _ : state) {
    std::vector<std::unique_ptr<actors::node>> ns;
    for (size_t n = 0; n < nodes; ++n)
      ns.push_back(must_start(sys, node_cfg(dir, "n" + std::to_string(n))));
    for (size_t x = 0; x < nodes; ++x)
      for (size_t y = x + 1; y < nodes; ++y)
        actors::connect(*ns[x], *ns[y]);
    std::vector<actors::instance_actor> insts;
    for (size_t i = 0; i < instances; ++i) {
      auto& n = *ns[i % nodes];
      auto mem = n.open("agent-" + std::to_string(i % agents),
                        "i" + std::to_string(i));
      insts.push_back(*mem->actor());
    }
    std::vector<std::vector<actors::agent_actor>> replicas(agents);
    for (size_t g = 0; g < agents; ++g)
      for (auto& n : ns)
        replicas[g].push_back(*n->agent("agent-" + std::to_string(g)));
    std::this_thread::sleep_for(500ms); // handshakes done
    // 10 000 concurrent writes: random instances, keys shared by the
    // agent's instances (so replicas merge and resolve conflicts).
    auto started = clk::now();
    auto acked = std::make_shared<std::atomic<size_t>>(0);
    auto last_ack = std::make_shared<std::atomic<int64_t>>(0);
    sys.spawn([=](caf::event_based_actor* self) {
      std::mt19937_64 rng{11};
      for (size_t w = 0; w < writes; ++w) {
        auto& inst = insts[rng() % instances];
        self->request(inst, 60s, actors::learn_atom::value,
                      fact_of("k" + std::to_string(rng() % 50),
                              "v" + std::to_string(w)),
                      false)
            .then([=](engram_id) {
              last_ack->store(clk::now().time_since_epoch().count());
              acked->fetch_add(1);
            });
      }
    });
    while (acked->load() < writes)
      std::this_thread::sleep_for(100us);
    auto last = clk::time_point{clk::duration{last_ack->load()}};
    // Converged: every agent's replicas on all nodes have equal digests.
    caf::scoped_actor self{sys};
    auto converged = [&] {
      // Ask every replica at once, then compare.
      using handle = decltype(self->request(
          replicas[0][0], 10s, actors::digest_atom::value, std::string{}));
      std::vector<std::vector<handle>> asks(agents);
      for (size_t g = 0; g < agents; ++g)
        for (auto& r : replicas[g])
          asks[g].push_back(
              self->request(r, 10s, actors::digest_atom::value, std::string{}));
      bool equal = true;
      for (auto& per_agent : asks) {
        std::optional<uint64_t> first;
        for (auto& h : per_agent)
          h.receive(
              [&](uint64_t d, causal_context&) {
                if (!first)
                  first = d;
                else if (*first != d)
                  equal = false;
              },
              [&](caf::error&) {
                equal = false;
              });
      }
      return equal;
    };
    auto deadline = clk::now() + 60s;
    while (!converged() && clk::now() < deadline)
      std::this_thread::sleep_for(200us);
    auto ms
        = std::chrono::duration<double, std::milli>(clk::now() - last).count();
    state.counters["converge_ms_local"] = clk::now() < deadline ? ms : -1;
    state.counters["writes_per_s"]
        = static_cast<double>(writes)
          / std::chrono::duration<double>(last - started).count();
    insts.clear();
    replicas.clear();
    ns.clear();
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_converge_local)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// -- idle sync
// ------------------------------------------------------------------

// Writes the same `n` engrams into node A's and node B's partition of one
// agent, as if they had synced before (A wrote, B merged).
void prepopulate(const std::string& dir, size_t n) {
  auto open = [&](const std::string& node) {
    persistence::store_options opts{dir + "/" + node};
    opts.sync = false;
    auto db = persistence::database::open(opts);
    auto st = persistence::store::attach(
        *db, actors::agent_partition("bench"),
        actors::replica_of(node, actors::agent_partition("bench")),
        actors::in_memory_replica);
    return std::move(*st);
  };
  auto sa = open("A");
  auto sb = open("B");
  system_physical_clock wall;
  hybrid_logical_clock hlc{wall};
  replica ra{actors::replica_of("A", actors::agent_partition("bench")), hlc};
  replica rb{actors::replica_of("B", actors::agent_partition("bench")), hlc};
  constexpr size_t batch = 4096;
  for (size_t i = 0; i < n; i += batch) {
    replica_delta group;
    for (size_t j = i; j < std::min(n, i + batch); ++j) {
      auto e = fact_of("key" + std::to_string(j), std::string(64, 'v'));
      e.scope = memory_scope::agent("bench");
      join_deltas(group, *ra.put(std::move(e)));
    }
    (void)sa->record(group, ra);
    (void)rb.join(group);
    (void)sb->record(group, rb);
  }
}

void BM_idle_sync_bytes(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  auto dir = scratch("idle");
  prepopulate(dir, n);
  bench_config cfg;
  caf::actor_system sys{cfg};
  for (auto _ : state) {
    auto ca = node_cfg(dir, "A");
    auto cb = node_cfg(dir, "B");
    ca.sessions.anti_entropy_interval = 200ms;
    cb.sessions.anti_entropy_interval = 200ms;
    auto a = must_start(sys, ca);
    auto b = must_start(sys, cb);
    (void)a->agent("bench");
    (void)b->agent("bench");
    actors::connect(*a, *b);
    auto stats = [&](actors::node& x) {
      auto st = x.status();
      return st && !st->session_details.empty() ? st->session_details.front()
                                                : actors::session_stats{};
    };
    // Wait for the handshake and the first rounds, then measure a window.
    auto deadline = clk::now() + 120s;
    while (stats(*a).idle_rounds < 2 && clk::now() < deadline)
      std::this_thread::sleep_for(10ms);
    auto sa0 = stats(*a);
    auto sb0 = stats(*b);
    std::this_thread::sleep_for(2s);
    auto sa1 = stats(*a);
    auto sb1 = stats(*b);
    auto rounds = (sa1.rounds - sa0.rounds) + (sb1.rounds - sb0.rounds);
    auto bytes
        = (sa1.bytes_out - sa0.bytes_out) + (sa1.bytes_in - sa0.bytes_in);
    bool idle = sa1.idle_rounds - sa0.idle_rounds == sa1.rounds - sa0.rounds
                && rounds > 0;
    state.counters["idle_sync_bytes"]
        = idle ? static_cast<double>(bytes) / static_cast<double>(rounds) : -1;
    state.counters["rounds"] = static_cast<double>(rounds);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_idle_sync_bytes)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

} // namespace

BENCHMARK_MAIN();
