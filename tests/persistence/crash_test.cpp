// Crash test with real processes: a child writes and acknowledges engrams
// in a loop and is killed with SIGKILL at random moments, many cycles; after
// every restart every acknowledged engram is present and byte-identical.
// ENGRAM_CRASH_CYCLES sets the number of cycles (soak: tests/persistence/
// soak.sh). The same with the store encrypted at rest.
#include "core/hash.hpp"
#include "messages/codec.hpp"
#include "persistence/store.hpp"

#include <boost/test/unit_test.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "crypto/key_source.hpp"
#include "temp_dir.hpp"

using namespace engram;

namespace {

struct acked {
  uint64_t counter = 0;
  uint64_t hash = 0;
};

// Runs the child until it has acknowledged `acks` writes (or died), then
// kills it. Returns the acknowledged writes in order.
std::vector<std::pair<std::string, acked>> run_child(const std::string& path,
                                                     uint64_t seed, size_t acks,
                                                     bool queued,
                                                     const char* master_key) {
  int fds[2];
  BOOST_REQUIRE(pipe(fds) == 0);
  auto pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    auto seed_text = std::to_string(seed);
    if (master_key != nullptr)
      setenv("ENGRAM_CRASH_MASTER_KEY", master_key, 1);
    else
      unsetenv("ENGRAM_CRASH_MASTER_KEY");
    execl(ENGRAM_CRASH_CHILD, ENGRAM_CRASH_CHILD, path.c_str(),
          seed_text.c_str(), queued ? "queued" : static_cast<char*>(nullptr),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::vector<std::pair<std::string, acked>> result;
  auto* in = fdopen(fds[0], "r");
  char line[256];
  while (result.size() < acks && std::fgets(line, sizeof(line), in)) {
    char key[64];
    unsigned long long counter = 0;
    unsigned long long hash = 0;
    if (std::sscanf(line, "ack %63s %llu %llx", key, &counter, &hash) == 3)
      result.emplace_back(key, acked{counter, hash});
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  std::fclose(in);
  BOOST_REQUIRE_MESSAGE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                        "the child died on its own (status " << status << ")");
  return result;
}

} // namespace

BOOST_AUTO_TEST_SUITE(store_crash)

// Kills the child (writing synchronously, or through a write queue) at
// random moments, then checks every acknowledged write is stored.
void crash_cycles(bool queued, bool encrypted = false) {
  // The master key in hex (the child reads it from its environment).
  const char* master_hex = encrypted ? "0123456789abcdef0123456789abcdef"
                                       "0123456789abcdef0123456789abcdef"
                                     : nullptr;
  size_t cycles = 12;
  if (auto env = std::getenv("ENGRAM_CRASH_CYCLES"))
    cycles = std::strtoull(env, nullptr, 10);
  test::temp_dir dir;
  auto path = dir.sub("db");
  std::mt19937_64 rng{20261124};
  std::map<std::string, acked> latest; // key -> last acknowledged write
  size_t total_acks = 0;
  for (size_t cycle = 0; cycle < cycles; ++cycle) {
    auto seed = rng();
    BOOST_TEST_CONTEXT("cycle " << cycle << ", child seed " << seed) {
      // Kill after 1..200 acknowledged writes: the kill lands while the
      // child is in the middle of its next write.
      for (auto& [key, ack] :
           run_child(path, seed, 1 + rng() % 200, queued, master_hex)) {
        latest[key] = ack;
        ++total_acks;
      }
      persistence::store_options opts{path};
      if (queued)
        opts.keeps = persistence::partition_options{false, false};
      if (encrypted)
        opts.master_key = *crypto::parse_key_text(master_hex);
      auto db = persistence::store::open(opts, 1);
      BOOST_REQUIRE_MESSAGE(db, (db ? "" : db.error_value().to_string()));
      system_physical_clock wall;
      hybrid_logical_clock hlc{wall};
      replica mem{1, hlc};
      auto report = (*db)->load(mem);
      BOOST_REQUIRE(report);
      BOOST_REQUIRE(report->corrupt.empty());
      for (auto& [key, ack] : latest) {
        auto id = derive_id(memory_scope::agent("crash"), fact{key, ""});
        auto got = mem.versions(id);
        BOOST_REQUIRE_MESSAGE(got && got->size() == 1,
                              "acknowledged engram " << key << " is missing");
        auto& v = got->front();
        // A later write of the same key may have been durable but not yet
        // acknowledged when the kill came; never an older one.
        BOOST_REQUIRE_GE(v.tag.counter, ack.counter);
        if (v.tag.counter == ack.counter) {
          v1::Engram encoded;
          messages::to_proto(v.value, encoded);
          BOOST_REQUIRE_EQUAL(hash_string(messages::serialize(encoded)),
                              ack.hash);
        }
      }
    }
  }
  BOOST_TEST_MESSAGE(total_acks << " acknowledged writes over " << cycles
                                << " SIGKILLs");
  BOOST_CHECK_GT(total_acks, cycles);
}

BOOST_AUTO_TEST_CASE(acknowledged_writes_survive_sigkill_at_random_moments) {
  crash_cycles(false);
}

BOOST_AUTO_TEST_CASE(writes_acknowledged_by_a_write_queue_survive_sigkill) {
  crash_cycles(true);
}

BOOST_AUTO_TEST_CASE(encrypted_writes_survive_sigkill_at_random_moments) {
  crash_cycles(false, true);
  crash_cycles(true, true);
}

BOOST_AUTO_TEST_SUITE_END()
