#pragma once

// The swarm's workload: the writes, shares, tells and broadcasts a driver
// actor issues, what became of each, and the rows of the time series.

#include "actors/types.hpp"
#include "apps/swarm/options.hpp"
#include "core/engram.hpp"

#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>

#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace engram::swarm {

/// One write of the workload (Agent scope): a fact, belief, episode or
/// skill, on a contended key with probability `conflict_rate`.
engram_record make_write(const options& o, std::mt19937_64& rng, size_t issued,
                         uint64_t now_us);

struct acked_write {
  size_t agent;
  engram_id id;
  /// Instance-scoped: the node of the instance that holds it (else none).
  std::optional<size_t> node;
};

/// What the driver actor saw of the writes it was handed. Every write of
/// the workload is one of: not issued (its node was down: the agent's
/// program waits), acknowledged, refused (nothing stored), stored but not
/// confirmed at its level, or of unknown outcome (no answer: a timeout or
/// its node crashed while it was in flight).
struct write_log {
  size_t issued = 0;
  size_t not_issued = 0;
  std::vector<acked_write> acked;
  size_t refused = 0;
  std::vector<acked_write> not_confirmed;
  size_t unknown = 0;
  size_t tells_acked = 0;
  size_t tells_refused = 0;
  size_t shares_accepted = 0;
  size_t shares_refused = 0;
  size_t broadcasts_acked = 0;
  size_t broadcasts_refused = 0;
  /// Agents that accepted a share (with at least one memory in it).
  std::set<size_t> receivers;
};

using write_atom = caf::atom_constant<caf::atom("write")>;

/// Counts a write's failure as what it says about the write: stored but
/// not confirmed (its id kept: it must reach every replica), refused
/// (nothing stored), or unknown (no answer from the node, or a timeout).
void classify(write_log& log, const caf::error& err, size_t agent);

/// What the workload's writes came to, for the report (the ones still
/// unanswered at the end count as unknown).
std::string outcomes(const write_log& log, size_t writes);

/// One row of --csv: cumulative counts since the run started. A field a
/// mode does not measure is left empty.
struct sample_row {
  double t_ms = 0;
  size_t issued = 0;
  size_t acked = 0;
  size_t refused = 0;
  size_t not_confirmed = 0;
  size_t unknown = 0;
  std::optional<uint64_t> frames;
  std::optional<uint64_t> dropped;
  std::optional<uint64_t> bytes;
  std::optional<size_t> converged;
  std::optional<size_t> contested;
  bool partitioned = false;
  bool crashed = false;
};

inline constexpr const char* csv_header
    = "t_ms,issued,acked,refused,not_confirmed,unknown,frames,dropped,bytes,"
      "converged_agents,contested,partitioned,crashed\n";

template<class T>
std::string field(const std::optional<T>& x) {
  return x ? std::to_string(*x) : std::string{};
}

std::string csv_line(const sample_row& r);

void fill_outcomes(sample_row& row, const write_log& log);

/// Issues writes (learn requests), shares, tells and broadcasts, and
/// records what became of them.
caf::behavior driver(caf::event_based_actor* self,
                     std::shared_ptr<write_log> log);

} // namespace engram::swarm
