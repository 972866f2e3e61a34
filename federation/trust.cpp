#include "federation/trust.hpp"

#include "core/overload.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <utility>

namespace engram::federation {

namespace {

double clamp01(double x) {
  if (!(x >= 0)) // NaN too
    return 0;
  return std::min(1.0, x);
}

expected<void> unit(double x, const std::string& field) {
  if (!(x >= 0 && x <= 1))
    return make_error(errc::invalid_confidence, "trust model: " + field
                                                    + " must be in [0, 1], not "
                                                    + std::to_string(x));
  return {};
}

constexpr double us_per_hour = 3'600'000'000.0;

} // namespace

expected<void> validate(const trust_model& model) {
  return std::visit(
      overload{
          [](const uniform_trust& m) -> expected<void> {
            return unit(m.level, "uniform level");
          },
          [](const per_agent_trust& m) -> expected<void> {
            for (auto& [agent, level] : m.levels)
              if (auto ok = unit(level, "trust in " + agent); !ok)
                return ok;
            return unit(m.fallback, "fallback");
          },
          [](const reputation_trust& m) -> expected<void> {
            for (auto [x, name] :
                 {std::pair{m.initial, "initial"}, std::pair{m.decay, "decay"},
                  std::pair{m.boost_on_verification, "boost_on_verification"},
                  std::pair{m.penalty_on_contradiction,
                            "penalty_on_contradiction"}})
              if (auto ok = unit(x, name); !ok)
                return ok;
            return {};
          },
          [](const transitive_trust& m) -> expected<void> {
            for (auto& [agent, level] : m.direct_trust)
              if (auto ok = unit(level, "direct trust in " + agent); !ok)
                return ok;
            if (m.max_hops == 0)
              return make_error(errc::invalid_argument,
                                "trust model: max_hops must be at least 1");
            return unit(m.trust_decay_per_hop, "trust_decay_per_hop");
          },
      },
      model);
}

const char* model_name(const trust_model& model) noexcept {
  static const char* names[]
      = {"uniform", "per_agent", "reputation", "transitive"};
  return names[model.index()];
}

trust_book::trust_book(trust_model model) : model_(std::move(model)) {
  // nop
}

double trust_book::reputation_at(const score& s, uint64_t now_us) const {
  auto& m = std::get<reputation_trust>(model_);
  double hours = now_us > s.at_us
                     ? static_cast<double>(now_us - s.at_us) / us_per_hour
                     : 0.0;
  return clamp01(m.initial
                 + (s.value - m.initial) * std::pow(1.0 - m.decay, hours));
}

void trust_book::adjust(const std::string& source, uint64_t now_us,
                        double delta) {
  auto* m = std::get_if<reputation_trust>(&model_);
  if (m == nullptr)
    return;
  auto i = reputation_.find(source);
  double current
      = i == reputation_.end() ? m->initial : reputation_at(i->second, now_us);
  reputation_[source] = score{clamp01(current + delta), now_us};
}

void trust_book::verified(const std::string& source, uint64_t now_us) {
  if (auto* m = std::get_if<reputation_trust>(&model_))
    adjust(source, now_us, m->boost_on_verification);
}

void trust_book::contradicted(const std::string& source, uint64_t now_us) {
  if (auto* m = std::get_if<reputation_trust>(&model_))
    adjust(source, now_us, -m->penalty_on_contradiction);
}

void trust_book::declare(const std::string& agent,
                         const std::map<std::string, double>& direct) {
  auto& edges = web_[agent];
  edges.clear();
  for (auto& [to, level] : direct)
    edges[to] = clamp01(level);
}

double trust_book::trust(const std::string& source, uint64_t now_us) const {
  return std::visit(
      overload{
          [&](const uniform_trust& m) {
            return clamp01(m.level);
          },
          [&](const per_agent_trust& m) {
            auto i = m.levels.find(source);
            return clamp01(i == m.levels.end() ? m.fallback : i->second);
          },
          [&](const reputation_trust& m) {
            auto i = reputation_.find(source);
            return i == reputation_.end() ? clamp01(m.initial)
                                          : reputation_at(i->second, now_us);
          },
          [&](const transitive_trust& m) {
            // Best path of at most max_hops hops (Bellman-Ford by hops: the
            // graph is small, a federation's members).
            std::map<std::string, double> best;
            std::map<std::string, double> frontier;
            for (auto& [to, level] : m.direct_trust)
              frontier[to] = std::max(frontier[to], clamp01(level));
            for (auto& [node, value] : frontier)
              best[node] = value;
            for (size_t hop = 2; hop <= m.max_hops && !frontier.empty();
                 ++hop) {
              std::map<std::string, double> next;
              for (auto& [node, value] : frontier) {
                auto edges = web_.find(node);
                if (edges == web_.end())
                  continue;
                for (auto& [to, level] : edges->second) {
                  auto via = value * level * m.trust_decay_per_hop;
                  if (via > best[to]) {
                    best[to] = via;
                    next[to] = std::max(next[to], via);
                  }
                }
              }
              frontier = std::move(next);
            }
            auto i = best.find(source);
            return i == best.end() ? 0.0 : clamp01(i->second);
          },
      },
      model_);
}

void apply_trust(engram_record& memory, const std::string& source, double trust,
                 const std::string& transform) {
  trust = clamp01(trust);
  memory.epistemic = epistemic_status::reported(source, trust);
  memory.confidence = clamp01(memory.confidence * trust);
  if (memory.origin.origin_agent.empty())
    memory.origin.origin_agent = source;
  memory.origin.hops.push_back(provenance_hop{source, trust, transform});
}

} // namespace engram::federation
