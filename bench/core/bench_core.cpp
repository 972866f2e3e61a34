// bench_core: batched delta-engram joins into one replica, one core, no I/O.
//
// Workload (the same as bench/peers/keyed_updates.mjs runs on Yjs and
// Automerge): a writer holds 100 k semantic facts with 256-byte values; a
// receiving replica holds the same state; the writer updates random keys, 64
// updates per batch (one delta group per batch); we time the receiver's
// joins. Counter: merges_per_s. BM_vs_peers runs the peer script in the same
// run and reports vs_yjs / vs_automerge (our rate ÷ theirs).
#include "core/replica.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "peers/peers.hpp"

using namespace engram;

namespace {

constexpr size_t keys = 100'000;
constexpr size_t batch = 64;
constexpr size_t payload = 256;

std::string value_of(uint64_t n) {
  auto prefix = "v" + std::to_string(n) + "-";
  std::string result;
  result.reserve(payload);
  while (result.size() < payload)
    result += prefix;
  result.resize(payload);
  return result;
}

engram_record make(size_t key, uint64_t n) {
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent("bench-agent");
  e.body = fact{"key" + std::to_string(key), value_of(n)};
  e.confidence = 0.9;
  return e;
}

// Writer and receiver holding the same 100 k engrams, plus batches of
// updates not yet delivered.
struct workload {
  system_physical_clock wall;
  hybrid_logical_clock writer_clock{wall};
  hybrid_logical_clock reader_clock{wall};
  replica writer{1, writer_clock};
  replica reader{2, reader_clock};
  std::mt19937_64 rng{42};
  uint64_t n = 0;

  workload() {
    replica_delta all;
    for (size_t k = 0; k < keys; ++k) {
      auto d = writer.put(make(k, ++n));
      if (!d)
        std::abort();
    }
    if (!reader.join(writer.full_state()))
      std::abort();
  }

  std::vector<replica_delta> make_batches(size_t count) {
    std::vector<replica_delta> result;
    result.reserve(count);
    for (size_t b = 0; b < count; ++b) {
      replica_delta group;
      for (size_t i = 0; i < batch; ++i) {
        auto d = writer.put(make(rng() % keys, ++n));
        if (!d)
          std::abort();
        join_deltas(group, *d);
      }
      result.push_back(std::move(group));
    }
    return result;
  }
};

workload& shared_workload() {
  static auto w = std::make_unique<workload>();
  return *w;
}

// Joins `batches` into the reader, moving them (`owning`) or not; returns
// the merges applied and the seconds it took.
std::pair<double, double>
join_all(workload& w, std::vector<replica_delta>& batches, bool owning) {
  auto start = std::chrono::steady_clock::now();
  double merged = 0;
  for (auto& b : batches) {
    auto report = owning ? w.reader.join(std::move(b))
                         : w.reader.join(static_cast<const replica_delta&>(b));
    if (!report)
      std::abort();
    merged += static_cast<double>(report->applied);
  }
  auto secs
      = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  return {merged, secs};
}

// Merges per second of joins that own (`owning`) or copy their batches.
void merge_batches(benchmark::State& state, bool owning) {
  auto& w = shared_workload();
  constexpr size_t per_iteration = 200;
  double total_merges = 0;
  double total_secs = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto batches = w.make_batches(per_iteration);
    state.ResumeTiming();
    auto [merges, secs] = join_all(w, batches, owning);
    total_merges += merges;
    total_secs += secs;
  }
  state.counters["merges_per_s"] = total_merges / total_secs;
  state.counters["engrams"] = static_cast<double>(w.reader.size());
  state.SetItemsProcessed(static_cast<int64_t>(total_merges));
}

void BM_merge_batches(benchmark::State& state) { merge_batches(state, true); }
BENCHMARK(BM_merge_batches)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_merge_batches_copying(benchmark::State& state) {
  merge_batches(state, false);
}
BENCHMARK(BM_merge_batches_copying)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_vs_peers(benchmark::State& state) {
  using engram::bench::json_number;
  for (auto _ : state) {
    // Our rate, measured right before the peers in the same process run.
    auto& w = shared_workload();
    std::vector<double> ours;
    for (int i = 0; i < 5; ++i) {
      auto batches = w.make_batches(200);
      auto [merges, secs] = join_all(w, batches, true);
      ours.push_back(merges / secs);
    }
    std::sort(ours.begin(), ours.end());
    auto our_rate = ours[ours.size() / 2];
    auto out = engram::bench::run_peers("--batches 200 --automerge-batches 10");
    auto yjs = json_number(out, "yjs", "updates_per_s");
    auto am = json_number(out, "automerge", "updates_per_s");
    if (yjs <= 0 || am <= 0) {
      state.SkipWithError("peers did not run: npm install in bench/peers");
      return;
    }
    state.counters["merges_per_s"] = our_rate;
    state.counters["yjs_updates_per_s"] = yjs;
    state.counters["automerge_updates_per_s"] = am;
    state.counters["vs_yjs"] = our_rate / yjs;
    state.counters["vs_automerge"] = our_rate / am;
  }
}
BENCHMARK(BM_vs_peers)->Iterations(1)->Unit(benchmark::kSecond);

} // namespace

BENCHMARK_MAIN();
