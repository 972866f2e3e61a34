// The child of the crash test: opens the store, recovers its replica, then
// writes engrams forever, printing one line per acknowledged (durably
// recorded) write:  ack <key> <dot counter> <hash of the encoded engram>
// until the parent kills it with SIGKILL.
//
//   engram_crash_child <store path> <seed>
#include "core/hash.hpp"
#include "messages/codec.hpp"
#include "persistence/store.hpp"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

using namespace engram;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: engram_crash_child <store path> <seed>\n");
    return 2;
  }
  auto db = persistence::store::open(persistence::store_options{argv[1]}, 1);
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
    auto recorded = (*db)->record(*delta, mem);
    if (!recorded) {
      std::fprintf(stderr, "record: %s\n",
                   recorded.error_value().to_string().c_str());
      return 1;
    }
    auto& v = delta->entries.front().versions.front();
    v1::Engram encoded;
    messages::to_proto(v.value, encoded);
    std::printf("ack k%llu %llu %016llx\n",
                static_cast<unsigned long long>(key_index),
                static_cast<unsigned long long>(v.tag.counter),
                static_cast<unsigned long long>(
                    hash_string(messages::serialize(encoded))));
    std::fflush(stdout);
  }
}
