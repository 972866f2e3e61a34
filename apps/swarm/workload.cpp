#include "apps/swarm/workload.hpp"

#include "actors/api.hpp"

#include <cstdio>

namespace engram::swarm {

engram_record make_write(const options& o, std::mt19937_64& rng, size_t issued,
                         uint64_t now_us) {
  std::uniform_real_distribution<double> coin{0, 1};
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent({});
  e.confidence = 0.5 + 0.5 * coin(rng);
  bool hot = coin(rng) < o.conflict_rate;
  auto kind = coin(rng);
  auto tag = std::to_string(issued);
  if (kind < o.episodic_share) {
    e.type = memory_type::episodic;
    e.body = episode{hot ? "ep-hot" + std::to_string(rng() % 2) : "ep-" + tag,
                     {event{hlc_timestamp{now_us, 0}, "e" + tag}}};
  } else if (kind < o.episodic_share + o.procedural_share) {
    e.type = memory_type::procedural;
    e.body = skill{hot ? "sk-hot" + std::to_string(rng() % 2) : "sk-" + tag,
                   {refinement{static_cast<uint32_t>(issued), "r" + tag}}};
  } else if (coin(rng) < o.belief_share) {
    e.body = belief{hot ? "hot" + std::to_string(rng() % 2) : "s" + tag, "is",
                    "v" + tag};
  } else {
    e.body
        = fact{hot ? "hot" + std::to_string(rng() % 4) : "k" + tag, "v" + tag};
  }
  return e;
}

void classify(write_log& log, const caf::error& err, size_t agent) {
  auto e = actors::from_caf(err);
  if (!actors::is_engram_error(err) || e.code == errc::timeout) {
    ++log.unknown;
  } else if (e.code == errc::not_confirmed) {
    auto id = engram_id::parse(e.subject);
    log.not_confirmed.push_back({agent, id ? *id : engram_id{}, std::nullopt});
  } else {
    ++log.refused;
  }
}

// What the workload's writes came to, for the report (the ones still
// unanswered at the end count as unknown).
std::string outcomes(const write_log& log, size_t writes) {
  auto answered
      = log.acked.size() + log.refused + log.not_confirmed.size() + log.unknown;
  auto pending = log.issued > answered ? log.issued - answered : 0;
  return "writes=" + std::to_string(writes)
         + " issued=" + std::to_string(log.issued)
         + " acked=" + std::to_string(log.acked.size())
         + " refused=" + std::to_string(log.refused)
         + " not_confirmed=" + std::to_string(log.not_confirmed.size())
         + " unknown=" + std::to_string(log.unknown + pending)
         + " not_issued=" + std::to_string(log.not_issued) + " (node down)";
}

std::string csv_line(const sample_row& r) {
  char t[32];
  std::snprintf(t, sizeof(t), "%.0f", r.t_ms);
  return std::string{t} + ',' + std::to_string(r.issued) + ','
         + std::to_string(r.acked) + ',' + std::to_string(r.refused) + ','
         + std::to_string(r.not_confirmed) + ',' + std::to_string(r.unknown)
         + ',' + field(r.frames) + ',' + field(r.dropped) + ',' + field(r.bytes)
         + ',' + field(r.converged) + ',' + field(r.contested) + ','
         + (r.partitioned ? "1" : "0") + ',' + (r.crashed ? "1" : "0") + '\n';
}

void fill_outcomes(sample_row& row, const write_log& log) {
  row.issued = log.issued;
  row.acked = log.acked.size();
  row.refused = log.refused;
  row.not_confirmed = log.not_confirmed.size();
  row.unknown = log.unknown;
}

caf::behavior driver(caf::event_based_actor* self,
                     std::shared_ptr<write_log> log) {
  return {
      [=](write_atom, const actors::instance_actor& inst, engram_record& e,
          uint64_t agent, uint64_t node, bool in_instance) {
        self->request(inst, caf::infinite, actors::learn_atom::value,
                      std::move(e), true)
            .then(
                [=](engram_id id) {
                  std::optional<size_t> where;
                  if (in_instance)
                    where = static_cast<size_t>(node);
                  log->acked.push_back({static_cast<size_t>(agent), id, where});
                },
                [=](caf::error& err) {
                  classify(*log, err, static_cast<size_t>(agent));
                });
      },
      [=](actors::tell_atom, const actors::instance_actor& inst,
          const std::string& to) {
        self->request(inst, caf::infinite, actors::tell_atom::value, to,
                      std::string{"hello"})
            .then(
                [=](bool) {
                  ++log->tells_acked;
                },
                [=](caf::error&) {
                  ++log->tells_refused;
                });
      },
      [=](actors::broadcast_atom, const actors::instance_actor& inst,
          const std::string& fed) {
        self->request(inst, caf::infinite, actors::broadcast_atom::value, fed,
                      std::string{"news"})
            .then(
                [=](uint64_t) {
                  ++log->broadcasts_acked;
                },
                [=](caf::error&) {
                  ++log->broadcasts_refused;
                });
      },
      [=](actors::share_atom, const actors::instance_actor& from_inst,
          const std::string& from, const std::string& to,
          const actors::instance_actor& to_inst, uint64_t to_agent) {
        query_filter f;
        f.type = memory_type::semantic;
        f.limit = 2;
        self->request(from_inst, caf::infinite, actors::share_atom::value, to,
                      f, std::string{"redact_pii"}, true)
            .then(
                [=](std::string& id) {
                  self->request(to_inst, caf::infinite,
                                actors::accept_atom::value, from, id, 0.8)
                      .then(
                          [=](uint64_t n) {
                            if (n != 0) {
                              ++log->shares_accepted;
                              log->receivers.insert(
                                  static_cast<size_t>(to_agent));
                            }
                          },
                          [=](caf::error&) {
                            ++log->shares_refused;
                          });
                },
                [=](caf::error&) {
                  ++log->shares_refused;
                });
      },
  };
}

} // namespace engram::swarm
