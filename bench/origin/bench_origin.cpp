// Proofs of origin per version: the leaf hash, proving a frame of a node's
// own versions (hashes, a tree, one signature), checking it as a receiver
// does (hashes, the tree, one verification, the proofs kept), and proving
// relayed versions with kept proofs. Frames of 1 024 facts of 256 bytes,
// as a pull sends them.

#include "core/hlc.hpp"
#include "core/replica.hpp"
#include "messages/codec.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <stdexcept>

#include "crypto/sign.hpp"
#include "origin/book.hpp"
#include "origin/origin.hpp"
#include "pki/pki.hpp"

using namespace engram;

namespace {

template<class T>
T must(expected<T> x) {
  if (!x)
    throw std::runtime_error(x.error_value().message);
  return std::move(*x);
}

constexpr int frame_versions = 1024;

struct world {
  pki::private_key ca_key = must(pki::private_key::generate());
  pki::certificate ca = must(pki::make_ca(ca_key, "bench"));
  system_physical_clock wall;
  hybrid_logical_clock hlc{wall};

  std::unique_ptr<origin::book> book(const std::string& node) {
    auto key = must(pki::private_key::generate());
    auto cert = must(pki::issue(ca, ca_key, pki::role::node, node, key));
    auto signer = std::make_shared<const crypto::signing_key>(
        must(crypto::signing_key::generate()));
    origin::book::config cfg;
    cfg.node = node;
    cfg.agent = "bench";
    cfg.key = signer;
    cfg.binding
        = must(origin::bind(node, cert.to_pem(), key, signer->public_key()));
    cfg.own = {replica_of(node, agent_partition("bench"))};
    cfg.trust = {&ca, nullptr};
    return std::make_unique<origin::book>(std::move(cfg));
  }

  replica_delta frame(const std::string& node, int offset = 0) {
    replica r{replica_of(node, agent_partition("bench")), hlc};
    replica_delta all;
    std::string value(256, 'v');
    for (int i = 0; i < frame_versions; ++i)
      join_deltas(all, must(r.put(engram_record{
                           {},
                           memory_type::semantic,
                           memory_scope::agent("bench"),
                           fact{"key." + std::to_string(offset + i), value}})));
    return all;
  }
};

world& shared_world() {
  static world w;
  return w;
}

void BM_origin_leaf(benchmark::State& state) {
  auto delta = shared_world().frame("n1");
  auto& v = delta.entries.front().versions.front();
  for (auto _ : state)
    benchmark::DoNotOptimize(origin::leaf(v));
}
BENCHMARK(BM_origin_leaf);

void BM_origin_prove(benchmark::State& state) {
  auto& w = shared_world();
  auto b = w.book("n1");
  auto delta = w.frame("n1");
  for (auto _ : state) {
    v1::DeltaBatch batch;
    benchmark::DoNotOptimize(b->prove(delta, batch));
  }
  state.SetItemsProcessed(state.iterations() * frame_versions);
}
BENCHMARK(BM_origin_prove)->Unit(benchmark::kMicrosecond);

void BM_origin_check(benchmark::State& state) {
  auto& w = shared_world();
  auto b1 = w.book("n1");
  auto delta = w.frame("n1");
  v1::DeltaBatch batch;
  b1->prove(delta, batch);
  // The key is checked once (then cached), as on a node.
  auto b2 = w.book("n2");
  for (auto _ : state) {
    state.PauseTiming();
    auto copy = delta;
    state.ResumeTiming();
    benchmark::DoNotOptimize(b2->check(batch, copy));
    benchmark::DoNotOptimize(b2->take_unsaved());
  }
  state.SetItemsProcessed(state.iterations() * frame_versions);
}
BENCHMARK(BM_origin_check)->Unit(benchmark::kMicrosecond);

void BM_origin_prove_relayed(benchmark::State& state) {
  auto& w = shared_world();
  auto b1 = w.book("n1");
  auto b2 = w.book("n2");
  auto delta = w.frame("n1");
  v1::DeltaBatch batch;
  b1->prove(delta, batch);
  must(b2->check(batch, delta));
  for (auto _ : state) {
    v1::DeltaBatch out;
    benchmark::DoNotOptimize(b2->prove(delta, out));
  }
  state.SetItemsProcessed(state.iterations() * frame_versions);
}
BENCHMARK(BM_origin_prove_relayed)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
