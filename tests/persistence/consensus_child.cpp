// The child of the consensus crash test: a single-member Raft group on a
// durable consensus log, proposing entries as fast as its store syncs and
// printing one line per entry committed and applied:  <index> <data>
// until the parent kills it with SIGKILL.
//
//   engram_consensus_child <store path> <tag>
#include "persistence/consensus_log.hpp"
#include "persistence/database.hpp"

#include <cstdio>
#include <string>

#include "consensus/raw_node.hpp"

using namespace engram;
namespace c = engram::consensus;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: engram_consensus_child <store path> <tag>\n");
    return 2;
  }
  auto db = persistence::database::open(persistence::store_options{argv[1]});
  if (!db) {
    std::fprintf(stderr, "%s\n", db.error_value().message.c_str());
    return 3;
  }
  auto log = persistence::consensus_log::open(*db, "universal");
  if (!log) {
    std::fprintf(stderr, "%s\n", log.error_value().message.c_str());
    return 4;
  }
  if ((*log)->last_index() == 0) {
    c::ready rd;
    c::snapshot s;
    s.meta.index = 1;
    s.meta.term = 1;
    s.meta.conf.voters = {1};
    rd.snap = s;
    rd.hard = c::hard_state{1, 0, 1};
    if (!(*log)->save(rd))
      return 5;
  }
  c::config cfg;
  cfg.id = 1;
  cfg.applied = (*log)->first_index() - 1;
  c::raw_node node{cfg, **log};
  node.campaign();
  std::string tag = argv[2];
  for (uint64_t n = 0;; ++n) {
    (void)node.propose(tag + "-" + std::to_string(n));
    while (node.has_ready()) {
      auto rd = node.get_ready();
      if (!(*log)->save(rd))
        return 6;
      for (auto& e : rd.committed)
        if (!e.data.empty())
          std::printf("%llu %s\n", static_cast<unsigned long long>(e.index),
                      e.data.c_str());
      std::fflush(stdout);
      node.advance(rd);
    }
  }
}
