#pragma once

// Trust (the spec's "Trust Model"): how much an agent believes what another
// agent reports. Pure: time is passed in (microseconds of an HLC or wall
// clock), no I/O.

#include "core/engram.hpp"
#include "core/error.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace engram::federation {

/// Every member trusted alike.
struct uniform_trust {
  double level = 0.8;
};

/// Trust per agent; agents not listed get `fallback`.
struct per_agent_trust {
  std::map<std::string, double> levels;
  double fallback = 0.0;
};

/// Trust earned: every source starts at `initial`; a verified report raises
/// it by `boost_on_verification`, a contradicted one lowers it by
/// `penalty_on_contradiction` (both clamped to [0, 1]); with time it decays
/// back toward `initial`, losing the fraction `decay` of its distance per
/// hour.
struct reputation_trust {
  double initial = 0.5;
  double decay = 0.05;
  double boost_on_verification = 0.1;
  double penalty_on_contradiction = 0.2;
};

/// A web of trust: this agent's `direct_trust`, and what other agents
/// declared they trust (learned with `declare`). Trust in an agent reached
/// over a path is the product of the trusts along it, times
/// `trust_decay_per_hop` for every hop beyond the first; the best path of
/// at most `max_hops` hops counts.
struct transitive_trust {
  std::map<std::string, double> direct_trust;
  double trust_decay_per_hop = 0.8;
  size_t max_hops = 3;
};

using trust_model = std::variant<uniform_trust, per_agent_trust,
                                 reputation_trust, transitive_trust>;

/// Checks a model's numbers (every level and factor in [0, 1], max_hops at
/// least 1); errors name the field.
expected<void> validate(const trust_model& model);

/// Returns "uniform", "per_agent", "reputation" or "transitive".
const char* model_name(const trust_model& model) noexcept;

/// One agent's trust in others under a model, with the state the model
/// keeps (reputations, the web of trust).
class trust_book {
public:
  explicit trust_book(trust_model model = uniform_trust{});

  /// The trust in `source` at time `now_us`, in [0, 1].
  double trust(const std::string& source, uint64_t now_us) const;

  /// A report of `source` was verified / contradicted at `now_us`
  /// (Reputation; other models ignore it).
  void verified(const std::string& source, uint64_t now_us);
  void contradicted(const std::string& source, uint64_t now_us);

  /// `agent` declares whom it trusts directly (Transitive: the web grows).
  void declare(const std::string& agent,
               const std::map<std::string, double>& direct);

  const trust_model& model() const noexcept { return model_; }

private:
  struct score {
    double value = 0;
    uint64_t at_us = 0;
  };

  double reputation_at(const score& s, uint64_t now_us) const;

  void adjust(const std::string& source, uint64_t now_us, double delta);

  trust_model model_;
  std::map<std::string, score> reputation_;
  std::map<std::string, std::map<std::string, double>> web_;
};

/// The spec's `apply_trust`: a memory received from `source` becomes
/// Reported{source, trust}, its confidence is multiplied by `trust`, and its
/// provenance gains a hop (source, trust, transform) — the origin is set to
/// `source` when the memory had none.
void apply_trust(engram_record& memory, const std::string& source, double trust,
                 const std::string& transform = {});

} // namespace engram::federation
