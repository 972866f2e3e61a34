// bench_persistence: the durable store.
//   synced_engrams_per_s       engrams durably stored, synced batches of 256
//   recovery_s_1m              reopen a store of 1 M engrams until queries
//                              are served (load into a replica)
//   bytes_per_engram_overhead  resident memory per engram of the recovered
//                              replica, minus its payload
//   encrypted_vs_plain_synced  synced_engrams_per_s of a store encrypted at
//                              rest ÷ of a plain one, measured in one run
//                              (rounds alternate between the two)
//   encrypted_vs_plain_recovery  recovery_s_1m encrypted ÷ plain, one run
#include "persistence/allocator.hpp"
#include "persistence/store.hpp"

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "crypto/aead.hpp"

using namespace engram;

namespace {

constexpr size_t payload = 256;

engram_record make(size_t key) {
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent("bench-agent");
  e.body = fact{"key" + std::to_string(key), std::string(payload, 'p')};
  e.confidence = 0.9;
  return e;
}

std::string scratch(const char* name) {
  auto dir = std::filesystem::temp_directory_path()
             / (std::string{"engram-bench-"} + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

size_t resident_bytes() {
  std::ifstream status{"/proc/self/statm"};
  size_t pages = 0;
  size_t resident = 0;
  status >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Puts the engrams `key(0)`..`key(count - 1)` into `mem` and records them
// in batches of `batch`.
template<class KeyFn>
void record_batches(persistence::store& db, replica& mem, size_t count,
                    size_t batch, KeyFn key) {
  for (size_t i = 0; i < count;) {
    replica_delta group;
    for (size_t j = 0; j < batch && i < count; ++j)
      join_deltas(group, *mem.put(make(key(i++))));
    if (!db.record(group, mem))
      std::abort();
  }
}

// Synced batches of 256 writes; `key(i)` names the i-th engram written,
// after `preload` engrams were stored unmeasured.
template<class KeyFn>
void synced_batches(benchmark::State& state, const char* name,
                    const char* counter, size_t preload, KeyFn key) {
  auto path = scratch(name);
  auto db = persistence::store::open(persistence::store_options{path}, 1);
  if (!db)
    std::abort();
  system_physical_clock wall;
  hybrid_logical_clock hlc{wall};
  replica mem{1, hlc};
  record_batches(**db, mem, preload, 256, [](size_t i) {
    return i;
  });
  size_t next = 0;
  for (auto _ : state) {
    state.PauseTiming();
    replica_delta batch;
    for (int i = 0; i < 256; ++i)
      join_deltas(batch, *mem.put(make(key(next++))));
    state.ResumeTiming();
    if (!(*db)->record(batch, mem))
      state.SkipWithError("record failed");
  }
  state.counters[counter]
      = benchmark::Counter(static_cast<double>(state.iterations()) * 256,
                           benchmark::Counter::kIsRate);
  db->reset();
  std::filesystem::remove_all(path);
}

void BM_synced_batches(benchmark::State& state) {
  synced_batches(state, "synced", "synced_engrams_per_s", 0, [](size_t i) {
    return i;
  });
}
BENCHMARK(BM_synced_batches)->UseRealTime()->MinTime(3);

// Updates of engrams already stored (100 k keys), same batches.
void BM_synced_updates(benchmark::State& state) {
  constexpr size_t keys = 100'000;
  synced_batches(state, "updates", "synced_updates_per_s", keys, [](size_t i) {
    return (i * 7919) % keys;
  });
}
BENCHMARK(BM_synced_updates)->UseRealTime()->MinTime(3);

void BM_recovery_1m(benchmark::State& state) {
  constexpr size_t n = 1'000'000;
  // The allocator policy engramd runs with (persistence/allocator.hpp).
  persistence::tune_allocator();
  auto path = scratch("recovery");
  {
    // Setup without sync: this measures reopening, not writing.
    persistence::store_options opts{path};
    opts.sync = false;
    auto db = persistence::store::open(opts, 1);
    system_physical_clock wall;
    hybrid_logical_clock hlc{wall};
    replica mem{1, hlc};
    record_batches(**db, mem, n, 1024, [](size_t i) {
      return i;
    });
  }
  for (auto _ : state) {
    malloc_trim(0);
    auto before = resident_bytes();
    auto start = std::chrono::steady_clock::now();
    auto db = persistence::store::open(persistence::store_options{path}, 1);
    system_physical_clock wall;
    hybrid_logical_clock hlc{wall};
    auto mem = std::make_unique<replica>(1, hlc);
    auto report = (*db)->load(*mem);
    if (!report || report->engrams != n)
      state.SkipWithError("load failed");
    // Serving: a point read through the replica.
    if (!mem->get(
            derive_id(memory_scope::agent("bench-agent"), fact{"key7", ""})))
      state.SkipWithError("query failed");
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                              - start)
                    .count();
    // Count what the replica holds: close the store, and return what the
    // allocator keeps cached from the decoding's temporaries.
    db->reset();
    malloc_trim(0);
    auto after = resident_bytes();
    state.counters["recovery_s_1m"] = secs;
    auto per_engram = static_cast<double>(after - before) / n;
    // Payload: the 256 B value and the key ("keyNNNNNN").
    state.counters["bytes_per_engram"] = per_engram;
    state.counters["bytes_per_engram_overhead"] = per_engram - payload - 9;
    // What the replica's packed form accounts for itself.
    state.counters["replica_bytes_per_engram"]
        = static_cast<double>(mem->memory_bytes()) / n;
    state.counters["blob_bytes_per_engram"]
        = static_cast<double>(mem->live_bytes()) / n;
  }
  std::filesystem::remove_all(path);
}
BENCHMARK(BM_recovery_1m)->Iterations(1)->Unit(benchmark::kSecond);

// -- encryption at rest: the same work on a plain and an encrypted store ----

persistence::store_options options_for(const std::string& path, bool sealed,
                                       bool sync = true) {
  persistence::store_options opts{path};
  opts.sync = sync;
  if (sealed)
    opts.master_key = *crypto::key256::from_bytes(std::string(32, 'm'));
  return opts;
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

// Synced batches of 256 new engrams into a plain and an encrypted store,
// rounds alternating between them (a drift of the machine hits both).
void BM_encrypted_vs_plain_synced(benchmark::State& state) {
  constexpr int rounds = 9;
  constexpr int batches = 40;
  for (auto _ : state) {
    std::vector<double> ratios;
    std::vector<double> plain_rates;
    std::vector<double> sealed_rates;
    struct side {
      std::string path;
      std::unique_ptr<persistence::store> db;
      std::unique_ptr<replica> mem;
      size_t next = 0;
    };
    system_physical_clock wall;
    hybrid_logical_clock hlc{wall};
    side sides[2];
    for (int s = 0; s < 2; ++s) {
      sides[s].path = scratch(s == 0 ? "plain-synced" : "sealed-synced");
      auto db = persistence::store::open(options_for(sides[s].path, s == 1), 1);
      if (!db)
        std::abort();
      sides[s].db = std::move(*db);
      sides[s].mem = std::make_unique<replica>(1, hlc);
    }
    std::chrono::steady_clock::duration prep[2]{};
    for (int r = 0; r < rounds; ++r) {
      double rate[2] = {0, 0};
      // Which goes first alternates too (the one before leaves its
      // flushes running).
      for (int o = 0; o < 2; ++o) {
        auto s = (o + r) % 2;
        auto& x = sides[s];
        std::chrono::steady_clock::duration spent{};
        for (int b = 0; b < batches; ++b) {
          replica_delta batch;
          for (int i = 0; i < 256; ++i)
            join_deltas(batch, *x.mem->put(make(x.next++)));
          auto start = std::chrono::steady_clock::now();
          auto pw = x.db->prepare(batch, *x.mem);
          auto mid = std::chrono::steady_clock::now();
          if (!pw || !pw->write())
            state.SkipWithError("record failed");
          prep[s] += mid - start;
          spent += std::chrono::steady_clock::now() - start;
        }
        rate[s]
            = batches * 256.0 / std::chrono::duration<double>(spent).count();
      }
      plain_rates.push_back(rate[0]);
      sealed_rates.push_back(rate[1]);
      ratios.push_back(rate[1] / rate[0]);
    }
    state.counters["plain_synced_engrams_per_s"] = median(plain_rates);
    state.counters["encrypted_synced_engrams_per_s"] = median(sealed_rates);
    state.counters["encrypted_vs_plain_synced"] = median(ratios);
    // Where the difference is: building the batch (sealing) vs writing it.
    auto per_batch = [&](std::chrono::steady_clock::duration d) {
      return std::chrono::duration<double, std::micro>(d).count()
             / (rounds * batches);
    };
    state.counters["plain_prepare_us_per_batch"] = per_batch(prep[0]);
    state.counters["encrypted_prepare_us_per_batch"] = per_batch(prep[1]);
    for (auto& x : sides) {
      x.db.reset();
      std::filesystem::remove_all(x.path);
    }
  }
}
BENCHMARK(BM_encrypted_vs_plain_synced)->Iterations(1)->UseRealTime();

// What encryption at rest adds per value: one record-sized value (350 B)
// sealed with AES-256-GCM under its key as associated data, and opened.
void BM_seal_record(benchmark::State& state) {
  auto key = *crypto::key256::random();
  std::string value(350, 'r');
  std::string aad = std::string{"\x01"} + "engram/0123456789abcdef";
  for (auto _ : state) {
    auto sealed = crypto::seal(key, 1, value, aad);
    benchmark::DoNotOptimize(sealed);
  }
}
BENCHMARK(BM_seal_record);

void BM_open_record(benchmark::State& state) {
  auto key = *crypto::key256::random();
  std::string aad = std::string{"\x01"} + "engram/0123456789abcdef";
  auto sealed = *crypto::seal(key, 1, std::string(350, 'r'), aad);
  for (auto _ : state) {
    auto opened = crypto::open(key, sealed, aad);
    benchmark::DoNotOptimize(opened);
  }
}
BENCHMARK(BM_open_record);

// Reopening a store of 1 M engrams until queries are served, plain and
// encrypted, three times each, alternating.
void BM_encrypted_vs_plain_recovery(benchmark::State& state) {
  constexpr size_t n = 1'000'000;
  persistence::tune_allocator();
  std::string paths[2]
      = {scratch("plain-recovery"), scratch("sealed-recovery")};
  for (int s = 0; s < 2; ++s) {
    auto db = persistence::store::open(options_for(paths[s], s == 1, false), 1);
    if (!db)
      std::abort();
    system_physical_clock wall;
    hybrid_logical_clock hlc{wall};
    replica mem{1, hlc};
    record_batches(**db, mem, n, 1024, [](size_t i) {
      return i;
    });
  }
  for (auto _ : state) {
    std::vector<double> secs[2];
    for (int r = 0; r < 3; ++r)
      for (int s = 0; s < 2; ++s) {
        malloc_trim(0);
        auto start = std::chrono::steady_clock::now();
        auto db = persistence::store::open(options_for(paths[s], s == 1), 1);
        if (!db)
          std::abort();
        system_physical_clock wall;
        hybrid_logical_clock hlc{wall};
        auto mem = std::make_unique<replica>(1, hlc);
        auto report = (*db)->load(*mem);
        if (!report || report->engrams != n || !report->corrupt.empty())
          state.SkipWithError("load failed");
        if (!mem->get(derive_id(memory_scope::agent("bench-agent"),
                                fact{"key7", ""})))
          state.SkipWithError("query failed");
        secs[s].push_back(std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - start)
                              .count());
      }
    state.counters["plain_recovery_s_1m"] = median(secs[0]);
    state.counters["encrypted_recovery_s_1m"] = median(secs[1]);
    state.counters["encrypted_vs_plain_recovery"]
        = median(secs[1]) / median(secs[0]);
  }
  for (auto& p : paths)
    std::filesystem::remove_all(p);
}
BENCHMARK(BM_encrypted_vs_plain_recovery)
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

} // namespace

BENCHMARK_MAIN();
