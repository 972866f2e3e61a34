// bench_messages: the wire codec.
//   codec_roundtrip_ns  encode + decode of one engram delta with a 256 B value
//   wire_ratio          bytes of a SyncResponse envelope carrying 64 changed
//                       engrams (256 B values) ÷ their payload bytes
//   wire_vs_yjs         our bytes per update ÷ Yjs's, same workload, same run
#include "messages/codec.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "peers/peers.hpp"

using namespace engram;

namespace {

constexpr size_t payload = 256;

engram_record make(size_t key, char fill) {
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent("bench-agent");
  e.body = fact{"key" + std::to_string(key), std::string(payload, fill)};
  e.confidence = 0.9;
  return e;
}

void BM_codec_roundtrip(benchmark::State& state) {
  system_physical_clock wall;
  hybrid_logical_clock hlc{wall};
  replica writer{1, hlc};
  auto delta = writer.put(make(42, 'x'));
  if (!delta)
    std::abort();
  size_t bytes = 0;
  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto encoded = messages::encode_delta(*delta);
    auto decoded = messages::decode_delta(encoded);
    if (!decoded)
      state.SkipWithError("decode failed");
    bytes = encoded.size();
    benchmark::DoNotOptimize(decoded);
  }
  auto ns = std::chrono::duration<double, std::nano>(
                std::chrono::steady_clock::now() - start)
                .count();
  state.counters["codec_roundtrip_ns"]
      = ns / static_cast<double>(state.iterations());
  state.counters["encoded_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_codec_roundtrip);

// A SyncResponse with 64 changed engrams of a writer holding 100 k.
std::string sync_response_bytes() {
  system_physical_clock wall;
  hybrid_logical_clock hlc{wall};
  replica writer{1, hlc};
  for (size_t k = 0; k < 100'000; ++k)
    if (!writer.put(make(k, 'a')))
      std::abort();
  std::mt19937_64 rng{42};
  replica_delta group;
  for (int i = 0; i < 64; ++i) {
    auto d = writer.put(make(rng() % 100'000, static_cast<char>('b' + i % 20)));
    join_deltas(group, *d);
  }
  auto response = messages::make_sync_response(group, writer.context());
  return messages::serialize(messages::make_envelope(
      v1::SYNC_RESPONSE, "bench-agent", hlc.now(), response));
}

void BM_wire_ratio(benchmark::State& state) {
  std::string bytes;
  for (auto _ : state)
    bytes = sync_response_bytes();
  auto per_update = static_cast<double>(bytes.size()) / 64.0;
  state.counters["wire_ratio"] = per_update / payload;
  state.counters["bytes_per_update"] = per_update;
  auto out = engram::bench::run_peers("--batches 20 --automerge-batches 2");
  auto yjs = engram::bench::json_number(out, "yjs", "bytes_per_update");
  if (yjs > 0) {
    state.counters["yjs_bytes_per_update"] = yjs;
    state.counters["wire_vs_yjs"] = per_update / yjs;
  }
}
BENCHMARK(BM_wire_ratio)->Iterations(1)->Unit(benchmark::kSecond);

} // namespace

BENCHMARK_MAIN();
