#pragma once

// Invariant checks of the consensus machine. They stay on in release
// builds: a broken invariant in consensus code must stop the process rather
// than let it acknowledge what it cannot keep. Inputs from the network never
// reach them: raw_node::step refuses malformed messages first.

#include <cstdio>
#include <cstdlib>

#define ENGRAM_CONSENSUS_CHECK(cond, what)                                     \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "consensus invariant broken at %s:%d: %s (%s)\n",   \
                   __FILE__, __LINE__, what, #cond);                           \
      std::abort();                                                            \
    }                                                                          \
  } while (false)
