// engram-core-demo: the core at work. Several agents' replicas learn
// concurrently (facts, beliefs, episodes, skills), diverge, exchange deltas in
// random order with duplicates and losses, report the conflicts they detect and
// how each was resolved, and converge to identical state.
//
//   engram-core-demo [--seed N] [--replicas N] [--ops N]
#include "core/replica.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace engram;

namespace {

struct options {
  uint64_t seed = 2026;
  size_t replicas = 4;
  int ops = 400;
};

bool parse_number(const char* text, uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  auto value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0')
    return false;
  out = value;
  return true;
}

int usage(const char* error) {
  if (error)
    std::fprintf(stderr, "engram-core-demo: %s\n", error);
  std::fprintf(
      stderr,
      "usage: engram-core-demo [--seed N] [--replicas 2..16] [--ops N]\n");
  return error ? 2 : 0;
}

struct agent_node {
  std::string agent;
  manual_clock wall;
  hybrid_logical_clock hlc;
  replica mem;
  size_t conflicts = 0;
  size_t resolved = 0;
  size_t forked = 0;

  agent_node(std::string name, replica_id id, uint64_t start)
      : agent(std::move(name)), wall(start), hlc(wall), mem(id, hlc) {
    // nop
  }
};

struct message {
  size_t to;
  replica_delta delta;
};

} // namespace

int main(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h")
      return usage(nullptr);
    if (i + 1 >= argc)
      return usage(("missing value for " + flag).c_str());
    uint64_t value = 0;
    if (!parse_number(argv[i + 1], value))
      return usage(("not a number for " + flag + ": " + argv[i + 1]).c_str());
    ++i;
    if (flag == "--seed")
      opts.seed = value;
    else if (flag == "--replicas" && value >= 2 && value <= 16)
      opts.replicas = value;
    else if (flag == "--ops" && value <= 1'000'000)
      opts.ops = static_cast<int>(value);
    else
      return usage(("unknown flag or value out of range: " + flag).c_str());
  }

  std::mt19937_64 rng{opts.seed};
  const char* names[] = {"atlas", "borealis", "cirrus", "delta"};
  std::vector<std::string> members;
  for (size_t i = 0; i < opts.replicas; ++i)
    members.push_back(std::string{names[i % 4]} + "-" + std::to_string(i));
  auto team = memory_scope::collective("project-alpha", members);
  std::vector<std::unique_ptr<agent_node>> nodes;
  for (size_t i = 0; i < opts.replicas; ++i)
    nodes.push_back(std::make_unique<agent_node>(
        members[i], make_replica_id(members[i]),
        1'700'000'000'000'000ULL + rng() % 50'000)); // skewed wall clocks

  std::printf("Engram core demo: %zu agents share the Collective scope %s\n",
              opts.replicas, team.to_string().c_str());
  std::printf("seed=%llu ops=%d; deltas travel in random order, 15%% are "
              "lost and resent later, 15%% duplicated\n\n",
              static_cast<unsigned long long>(opts.seed), opts.ops);

  std::vector<message> in_flight;
  std::vector<message> lost;
  auto broadcast = [&](size_t from, const replica_delta& d) {
    if (d.empty())
      return;
    for (size_t i = 0; i < nodes.size(); ++i)
      if (i != from)
        in_flight.push_back(message{i, d});
  };
  auto pick = [&](std::initializer_list<const char*> xs) {
    return std::string{*(xs.begin() + rng() % xs.size())};
  };
  auto deliver = [&](bool faults) {
    auto k = rng() % in_flight.size();
    auto msg = std::move(in_flight[k]);
    in_flight[k] = std::move(in_flight.back());
    in_flight.pop_back();
    if (faults && rng() % 100 < 15) {
      lost.push_back(std::move(msg));
      return;
    }
    if (faults && rng() % 100 < 15)
      in_flight.push_back(msg);
    auto& n = *nodes[msg.to];
    n.wall.advance(rng() % 200);
    auto report = n.mem.join(msg.delta);
    if (!report) {
      std::fprintf(stderr, "join failed: %s\n",
                   report.error_value().to_string().c_str());
      std::exit(1);
    }
    for (auto& c : report->conflicts) {
      if (n.conflicts < 2 && msg.to == 0)
        std::printf("  %s detects %s\n", n.agent.c_str(),
                    c.to_string().c_str());
    }
    n.conflicts += report->conflicts.size();
    n.resolved += report->resolved.size();
    n.forked += report->forked.size();
    broadcast(msg.to, report->resolutions);
  };

  std::printf("learning and syncing...\n");
  for (int op = 0; op < opts.ops; ++op) {
    auto i = rng() % nodes.size();
    auto& n = *nodes[i];
    n.wall.advance(rng() % 1000);
    engram_record e;
    e.scope = team;
    e.confidence = static_cast<double>(50 + rng() % 51) / 100.0;
    e.origin.origin_agent = n.agent;
    switch (rng() % 4) {
      case 0:
        e.type = memory_type::semantic;
        e.body = fact{pick({"deadline", "owner", "budget"}),
                      pick({"friday", "monday", "ana", "li", "10k", "12k"})};
        break;
      case 1:
        e.type = memory_type::semantic;
        e.body = belief{pick({"api-v2", "cache"}), "is",
                        pick({"stable", "flaky", "deprecated"})};
        break;
      case 2: {
        e.type = memory_type::episodic;
        episode ep{pick({"standup", "incident-7"}), {}};
        ep.events.push_back(event{
            n.hlc.now(), n.agent + " " + pick({"reported", "fixed", "asked"})});
        e.body = ep;
        break;
      }
      default:
        e.type = memory_type::procedural;
        e.body = skill{pick({"deploy", "triage"}),
                       {refinement{uint32_t(rng() % 3),
                                   pick({"canary first", "page on-call",
                                         "roll back fast"})}}};
        break;
    }
    auto d = n.mem.put(std::move(e));
    if (!d) {
      std::fprintf(stderr, "learn failed: %s\n",
                   d.error_value().to_string().c_str());
      return 1;
    }
    broadcast(i, *d);
    for (uint64_t k = rng() % 3; k > 0 && !in_flight.empty(); --k)
      deliver(true);
  }
  std::printf("\nhealing: resending lost deltas, delivering everything\n");
  size_t rounds = 0;
  while (!in_flight.empty() || !lost.empty()) {
    for (auto& m : lost)
      in_flight.push_back(std::move(m));
    lost.clear();
    while (!in_flight.empty())
      deliver(false);
    ++rounds;
  }

  std::printf("\n%-12s %8s %9s %10s %9s %7s  %s\n", "agent", "engrams",
              "versions", "conflicts", "resolved", "forked", "digest");
  bool converged = true;
  for (auto& n : nodes) {
    std::printf("%-12s %8zu %9zu %10zu %9zu %7zu  %016llx\n", n->agent.c_str(),
                n->mem.size(), n->mem.version_count(), n->conflicts,
                n->resolved, n->forked,
                static_cast<unsigned long long>(n->mem.digest()));
    converged = converged && n->mem.same_state(nodes.front()->mem);
  }
  std::printf("\ncontested beliefs (Fork{mark_contested}):\n");
  nodes.front()->mem.for_each(
      [&](const engram_id& id, const std::vector<version>&) {
        auto views = nodes.front()->mem.read(id);
        if (views.size() > 1 && views.front().contested)
          for (auto& v : views)
            std::printf("  %s (confidence %.2f, from %s)\n",
                        describe(v.value.body).c_str(), v.value.confidence,
                        v.value.origin.origin_agent.c_str());
      });
  std::printf("\nconverged: %s after %zu heal round(s)\n",
              converged ? "yes, all replicas identical" : "NO", rounds);
  return converged ? 0 : 1;
}
