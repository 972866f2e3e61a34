#include "apps/swarm/simulation.hpp"

#include "federation/membership.hpp"

#include <caf/send.hpp>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <tuple>

namespace engram::swarm {

run_result simulation::run() {
  run_result result;
  auto& o = opts_;
  // The fault schedule, from the seed.
  std::uniform_int_distribution<int64_t> skew{-o.skew_ms, o.skew_ms};
  for (size_t i = 0; i < o.nodes; ++i)
    skew_us_.push_back(o.skew_ms > 0 ? skew(rng_) * 1000 : 0);
  auto w = o.workload_ms;
  int64_t part_from = w * (20 + static_cast<int64_t>(rng_() % 20)) / 100;
  // Half of the runs heal only when the workload is over: concurrent
  // writes are left for the heal to merge (and conflicts to resolve).
  int64_t part_to
      = rng_() % 2 == 0
            ? w
            : part_from + w * (20 + static_cast<int64_t>(rng_() % 20)) / 100;
  size_t crashed = o.nodes > 1 ? rng_() % o.nodes : 0;
  int64_t crash_at = w * (30 + static_cast<int64_t>(rng_() % 30)) / 100;
  int64_t restart_at
      = crash_at + w * (10 + static_cast<int64_t>(rng_() % 20)) / 100;
  // Nodes, links, agents.
  nodes_.resize(o.nodes);
  up_.assign(o.nodes, true);
  for (size_t i = 0; i < o.nodes; ++i)
    start_node(i);
  for (auto [i, j] : neighbours())
    link(i, j);
  world_.run();
  for (size_t i = 0; i < o.nodes; ++i)
    open_instances(i);
  auto log = std::make_shared<write_log>();
  driver_ = world_.system().spawn(driver, log);
  // The swarm's federation: the first agents (up to eight), led by a0, each
  // a member on its first replica's node.
  size_t members = o.broadcast_rate > 0 ? std::min<size_t>(8, o.agents) : 0;
  std::string fed;
  if (members > 1) {
    federation::federation_config fc;
    fc.name = "swarm";
    for (size_t m = 0; m < members; ++m)
      fc.initial_members.push_back("a" + std::to_string(m));
    auto st = federation::federation_state::create(fc, world_.wall()->now_us());
    if (!st)
      throw std::runtime_error(st.error_value().to_string());
    fed = st->id();
    auto home = [&](size_t m) {
      return instances_[{m, replicas_of(m)[0]}];
    };
    namespace cmd = federation::cmd;
    using command = federation::federation_command;
    gather<federation::federation_state>(
        std::vector<actors::instance_actor>{home(0)},
        actors::federation_atom::value, fed, command{"a0", cmd::create{*st}});
    for (size_t m = 1; m < members; ++m) {
      bool joined = false;
      for (int attempt = 0; attempt < 50 && !joined; ++attempt) {
        advance(ms{50});
        joined = gather<federation::federation_state>(
                     std::vector<actors::instance_actor>{home(m)},
                     actors::federation_atom::value, fed,
                     command{"a" + std::to_string(m), cmd::join{}})[0]
                     .has_value();
      }
      if (!joined)
        throw std::runtime_error("a" + std::to_string(m)
                                 + " could not join the swarm's federation");
    }
    // Every member's node knows every member before the workload starts (a
    // broadcast goes to the members its node knows of).
    auto everyone = [&] {
      for (size_t m = 0; m < members; ++m) {
        auto st = gather<federation::federation_state>(
            std::vector<actors::instance_actor>{home(m)},
            actors::federation_atom::value, fed,
            command{"a" + std::to_string(m), cmd::read_state{}})[0];
        if (!st || st->members().size() != members)
          return false;
      }
      return true;
    };
    for (int i = 0; i < 200 && !everyone(); ++i)
      advance(ms{50});
    if (!everyone())
      throw std::runtime_error("the swarm's federation did not reach every "
                               "member's node");
  }
  csv_ << csv_header;
  // The workload: writes spread over the workload time, faults on schedule.
  const ms step{10};
  auto steps = static_cast<size_t>(std::max<int64_t>(1, w / step.count()));
  size_t issued = 0;
  bool partitioned = false;
  std::uniform_real_distribution<double> coin{0, 1};
  for (size_t s = 0; s < steps; ++s) {
    auto t = static_cast<int64_t>(s) * step.count();
    // Faults on schedule; each change is a row of the series (exact fault
    // windows in the CSV and the plot).
    if (o.partition && !partitioned && t >= part_from && t < part_to) {
      set_partition(true);
      partitioned = true;
      sample(log, converged_agents().first);
    } else if (partitioned && t >= part_to) {
      set_partition(false);
      partitioned = false;
      sample(log, converged_agents().first);
    }
    if (o.crash && o.nodes > 1 && up_[crashed] && t >= crash_at
        && t < restart_at) {
      crash(crashed);
      sample(log, converged_agents().first);
    }
    if (o.crash && o.nodes > 1 && !up_[crashed] && t >= restart_at) {
      restart(crashed);
      sample(log, converged_agents().first);
    }
    auto due = o.writes * (s + 1) / steps;
    for (; issued < due; ++issued) {
      auto a = static_cast<size_t>(rng_() % o.agents);
      auto rs = replicas_of(a);
      auto r = rs[rng_() % rs.size()];
      auto e = make_write(o, rng_, issued, world_.wall()->now_us());
      bool in_instance = coin(rng_) < o.instance_share;
      if (in_instance)
        e.scope = memory_scope::instance({});
      if (!up_[r]) {
        ++log->not_issued; // the node is down: the agent's program waits
        continue;
      }
      ++log->issued;
      caf::anon_send(driver_, write_atom::value, instances_[{a, r}], e,
                     static_cast<uint64_t>(a), static_cast<uint64_t>(r),
                     in_instance);
      auto other = [&] {
        auto b = static_cast<size_t>(rng_() % o.agents);
        auto bs = replicas_of(b);
        return std::make_pair(b, bs[rng_() % bs.size()]);
      };
      if (o.share_rate > 0 && coin(rng_) < o.share_rate) {
        auto [b, rb] = other();
        if (b != a && up_[rb])
          caf::anon_send(driver_, actors::share_atom::value, instances_[{a, r}],
                         "a" + std::to_string(a), "a" + std::to_string(b),
                         instances_[{b, rb}], static_cast<uint64_t>(b));
      }
      if (members > 1 && coin(rng_) < o.broadcast_rate) {
        auto m = static_cast<size_t>(rng_() % members);
        auto home = replicas_of(m)[0];
        if (up_[home])
          caf::anon_send(driver_, actors::broadcast_atom::value,
                         instances_[{m, home}], fed);
      }
      if (o.tell_rate > 0 && coin(rng_) < o.tell_rate) {
        auto [b, rb] = other();
        (void)rb;
        caf::anon_send(driver_, actors::tell_atom::value, instances_[{a, r}],
                       "a" + std::to_string(b));
      }
    }
    advance(step);
    if (s % 50 == 0) {
      sample(log, converged_agents().first);
      if (!o.quiet && o.seeds == 1 && ::isatty(2))
        std::fprintf(stderr, "\r[%-40s] %3zu%%",
                     std::string(40 * (s + 1) / steps, '#').c_str(),
                     100 * (s + 1) / steps);
    }
  }
  if (!o.quiet && o.seeds == 1 && ::isatty(2))
    std::fprintf(stderr, "\r%60s\r", "");
  // Heal everything, then let anti-entropy converge.
  set_partition(false);
  if (!up_[crashed])
    restart(crashed);
  advance(ms{50});
  auto healed = world_.now();
  auto [equal, state_hash] = converged_agents();
  while (equal < o.agents && world_.now() - healed < ms{o.heal_limit_ms}) {
    advance(ms{100});
    std::tie(equal, state_hash) = converged_agents();
    sample(log, equal);
  }
  sample(log, equal);
  if (members > 1)
    advance(ms{1500}); // broadcasts queued for members back only now
  result.converge_ms
      = equal == o.agents ? static_cast<double>((world_.now() - healed).count())
                          : -1;
  if (equal < o.agents)
    result.failures.push_back(
        std::to_string(o.agents - equal) + " agents' replicas still differ "
        + std::to_string(o.heal_limit_ms) + " ms after the heal");
  // Invariants on what every replica holds.
  std::vector<actors::agent_actor> dests;
  std::vector<std::pair<size_t, size_t>> owner;
  for (size_t a = 0; a < o.agents; ++a)
    for (auto r : replicas_of(a)) {
      dests.push_back(agents_[{a, r}]);
      owner.push_back({a, r});
    }
  auto views = gather<std::vector<memory_view>>(
      dests, actors::query_atom::value, query_filter{},
      actors::code_of(consistency_level::local));
  std::map<std::pair<size_t, size_t>, std::map<engram_id, size_t>> held;
  size_t contested = 0, lost = 0, bad_resolution = 0;
  for (size_t k = 0; k < dests.size(); ++k) {
    if (!views[k]) {
      result.failures.push_back("agent a" + std::to_string(owner[k].first)
                                + " on " + node_id(owner[k].second)
                                + " did not answer");
      continue;
    }
    auto& ids = held[owner[k]];
    std::map<engram_id, std::vector<const memory_view*>> by_id;
    for (auto& v : *views[k]) {
      ++ids[v.value.id];
      by_id[v.value.id].push_back(&v);
    }
    for (auto& [id, vs] : by_id) {
      if (vs.size() < 2)
        continue;
      bool is_fact = std::holds_alternative<fact>(vs[0]->value.body);
      bool all_contested = std::all_of(vs.begin(), vs.end(), [](auto* v) {
        return v->contested;
      });
      if (is_fact || !all_contested)
        ++bad_resolution;
      else if (owner[k].second == replicas_of(owner[k].first)[0])
        ++contested;
    }
  }
  // Instance-scoped writes stay in their instance: never in the agent's
  // replicas, always in the instance (unless its node crashed: the
  // instance's memory is on that node's store and comes back with it).
  std::vector<actors::instance_actor> inst_dests;
  std::vector<const acked_write*> inst_writes;
  size_t leaked = 0;
  // A write stored but not confirmed at its level reaches every replica
  // too once they are back.
  size_t unconfirmed_lost = 0;
  for (auto& wr : log->not_confirmed)
    for (auto r : replicas_of(wr.agent))
      if (held[{wr.agent, r}].count(wr.id) == 0)
        ++unconfirmed_lost;
  if (unconfirmed_lost > 0)
    result.failures.push_back(std::to_string(unconfirmed_lost)
                              + " writes stored but not confirmed missing from "
                                "a replica");
  for (auto& wr : log->acked) {
    if (!wr.node) {
      for (auto r : replicas_of(wr.agent))
        if (held[{wr.agent, r}].count(wr.id) == 0)
          ++lost;
      continue;
    }
    for (auto r : replicas_of(wr.agent))
      leaked += held[{wr.agent, r}].count(wr.id);
    inst_dests.push_back(instances_[{wr.agent, *wr.node}]);
    inst_writes.push_back(&wr);
  }
  query_filter own;
  own.kind = scope_kind::instance;
  auto inst_views = gather<std::vector<memory_view>>(
      inst_dests, actors::query_atom::value, own);
  for (size_t k = 0; k < inst_dests.size(); ++k)
    if (!inst_views[k]
        || std::none_of(inst_views[k]->begin(), inst_views[k]->end(),
                        [&](auto& v) {
                          return v.value.id == inst_writes[k]->id;
                        }))
      ++lost;
  if (leaked > 0)
    result.failures.push_back(std::to_string(leaked)
                              + " Instance-scope memories found in agent "
                                "replicas");
  // Shares: every replica of an agent that accepted one holds memories
  // reported by another agent.
  size_t unshared = 0;
  for (size_t k = 0; k < dests.size(); ++k)
    if (views[k] && log->receivers.count(owner[k].first) > 0
        && std::none_of(views[k]->begin(), views[k]->end(), [](auto& v) {
             return v.value.epistemic.kind == epistemic_kind::reported;
           }))
      ++unshared;
  if (unshared > 0)
    result.failures.push_back(std::to_string(unshared)
                              + " replicas of agents that accepted a share "
                                "hold nothing reported");
  // Tells: every acknowledged one is in the agent's inbox, once. An inbox
  // is part of the agent's replicated memory (the replicas converged above),
  // so it is read on one replica per agent; reading marks the messages read
  // everywhere. With crashes, a tell whose acknowledgement the crash took
  // may be there too.
  std::vector<actors::agent_actor> inbox_dests;
  for (size_t a = 0; a < o.agents; ++a)
    inbox_dests.push_back(agents_[{a, replicas_of(a)[0]}]);
  auto inboxes = gather<std::vector<std::string>>(inbox_dests,
                                                  actors::inbox_atom::value);
  size_t delivered = 0, news = 0;
  for (auto& in : inboxes)
    if (in)
      for (size_t i = 0; i + 1 < in->size(); i += 2)
        ++((*in)[i + 1] == "news" ? news : delivered);
  // Broadcasts: every other member gets each one (queued while it was
  // unreachable), unless a crash took the queue on the sender's node.
  auto expected_news = log->broadcasts_acked * (members > 0 ? members - 1 : 0);
  if (o.crash ? news > expected_news : news != expected_news)
    result.failures.push_back(std::to_string(log->broadcasts_acked)
                              + " broadcasts acknowledged to "
                              + std::to_string(members - 1) + " members, "
                              + std::to_string(news) + " in their inboxes");
  bool tells_ok
      = o.crash ? delivered >= log->tells_acked
                      && delivered <= log->tells_acked + log->tells_refused
                : delivered == log->tells_acked;
  if (!tells_ok)
    result.failures.push_back(std::to_string(log->tells_acked)
                              + " tells acknowledged, "
                              + std::to_string(delivered) + " in inboxes");
  if (lost > 0)
    result.failures.push_back(std::to_string(lost)
                              + " acknowledged writes missing from a replica");
  if (bad_resolution > 0)
    result.failures.push_back(
        std::to_string(bad_resolution)
        + " engrams not resolved per config (a fact with several versions "
          "or uncontested belief alternatives)");
  result.ok = result.failures.empty();
  // The report: everything in it follows from (seed, build, options).
  std::ostringstream r;
  r << "engram-swarm seed=" << seed_ << " agents=" << o.agents
    << " nodes=" << o.nodes << " writes=" << o.writes << '\n';
  r << "faults: loss=" << o.loss << " dup=" << o.dup << " delay=" << o.delay;
  if (o.partition)
    r << " partition=" << (o.one_way ? "one-way" : "halves") << '@' << part_from
      << ".." << part_to << "ms";
  if (o.crash && o.nodes > 1)
    r << " crash=" << node_id(crashed) << '@' << crash_at << ".." << restart_at
      << "ms";
  if (o.skew_ms > 0)
    r << " skew=+-" << o.skew_ms << "ms";
  r << '\n';
  r << outcomes(*log, o.writes) << '\n';
  r << "frames=" << frames(false) << " dropped=" << frames(true)
    << " bytes=" << bytes() << '\n';
  if (o.share_rate > 0 || o.tell_rate > 0)
    r << "shares_accepted=" << log->shares_accepted
      << " shares_refused=" << log->shares_refused
      << " tells_acked=" << log->tells_acked << " tells_delivered=" << delivered
      << " tells_refused=" << log->tells_refused << '\n';
  if (members > 1)
    r << "broadcasts_acked=" << log->broadcasts_acked
      << " broadcasts_refused=" << log->broadcasts_refused
      << " broadcast_deliveries=" << news << '\n';
  r << "converged_after_heal_ms=" << result.converge_ms
    << " contested_engrams=" << contested << '\n';
  r << "invariants: " << (result.ok ? "ok" : "FAILED") << '\n';
  r << "state_hash=" << hex(state_hash) << '\n';
  result.report = r.str();
  result.report_hash = fnv1a(result.report);
  return result;
}

} // namespace engram::swarm
