// The child of the crash test: opens the store, recovers its replica, then
// writes engrams forever, printing one line per acknowledged (durably
// recorded) write:  ack <key> <dot counter> <hash of the encoded engram>
// until the parent kills it with SIGKILL.
//
//   engram_crash_child <store path> <seed> [queued]
//
// `queued`: as the runtime's agents write, a partition without index and
// log, batches prepared here and written by a write queue on its thread
// (up to 16 in flight), each acknowledged from the queue's callback.
// ENGRAM_CRASH_MASTER_KEY (64 hex digits): the store is encrypted at rest
// with that master key.
#include "core/hash.hpp"
#include "messages/codec.hpp"
#include "persistence/store.hpp"
#include "persistence/write_queue.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "crypto/key_source.hpp"

using namespace engram;

int main(int argc, char** argv) {
  bool queued = argc == 4 && std::strcmp(argv[3], "queued") == 0;
  if (argc != 3 && !queued) {
    std::fprintf(stderr,
                 "usage: engram_crash_child <store path> <seed> [queued]\n");
    return 2;
  }
  persistence::store_options opts{argv[1]};
  if (queued)
    opts.keeps = persistence::partition_options{false, false};
  if (auto* key = std::getenv("ENGRAM_CRASH_MASTER_KEY")) {
    auto master = crypto::parse_key_text(key);
    if (!master) {
      std::fprintf(stderr, "ENGRAM_CRASH_MASTER_KEY: %s\n",
                   master.error_value().to_string().c_str());
      return 2;
    }
    opts.master_key = *master;
  }
  auto database = persistence::database::open(opts);
  if (!database) {
    std::fprintf(stderr, "open: %s\n",
                 database.error_value().to_string().c_str());
    return 1;
  }
  auto db = persistence::store::attach(*database, "", 1, opts.keeps);
  if (!db) {
    std::fprintf(stderr, "open: %s\n", db.error_value().to_string().c_str());
    return 1;
  }
  system_physical_clock wall;
  hybrid_logical_clock hlc{wall};
  replica mem{1, hlc};
  if (auto loaded = (*db)->load(mem); !loaded) {
    std::fprintf(stderr, "load: %s\n",
                 loaded.error_value().to_string().c_str());
    return 1;
  }
  persistence::write_queue writes{*database};
  std::atomic<int> in_flight{0};
  std::mt19937_64 rng{std::strtoull(argv[2], nullptr, 10)};
  auto next_key = mem.size();
  for (;;) {
    // Mostly new engrams, sometimes an update of an older one.
    auto key_index
        = (next_key > 0 && rng() % 10 < 3) ? rng() % next_key : next_key++;
    engram_record e;
    e.type = memory_type::semantic;
    e.scope = memory_scope::agent("crash");
    e.body = fact{
        "k" + std::to_string(key_index),
        std::string(1 + rng() % 300, static_cast<char>('a' + rng() % 26))};
    e.confidence = static_cast<double>(rng() % 101) / 100.0;
    auto delta = mem.put(std::move(e));
    if (!delta)
      return 1;
    auto& v = delta->entries.front().versions.front();
    v1::Engram encoded;
    messages::to_proto(v.value, encoded);
    auto ack = [key_index, counter = v.tag.counter,
                hash = hash_string(messages::serialize(encoded))] {
      std::printf("ack k%llu %llu %016llx\n",
                  static_cast<unsigned long long>(key_index),
                  static_cast<unsigned long long>(counter),
                  static_cast<unsigned long long>(hash));
      std::fflush(stdout);
    };
    if (!queued) {
      auto recorded = (*db)->record(*delta, mem);
      if (!recorded) {
        std::fprintf(stderr, "record: %s\n",
                     recorded.error_value().to_string().c_str());
        return 1;
      }
      ack();
      continue;
    }
    auto batch = (*db)->prepare(*delta, mem);
    if (!batch) {
      std::fprintf(stderr, "prepare: %s\n",
                   batch.error_value().to_string().c_str());
      return 1;
    }
    while (in_flight.load() >= 16)
      std::this_thread::yield();
    ++in_flight;
    writes.submit(std::move(*batch), [ack, &in_flight](expected<void> ok) {
      if (!ok) {
        std::fprintf(stderr, "write: %s\n",
                     ok.error_value().to_string().c_str());
        std::_Exit(1);
      }
      ack();
      --in_flight;
    });
  }
}
