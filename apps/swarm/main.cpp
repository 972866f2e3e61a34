// engram-swarm: a deterministic swarm simulator. N agents across M nodes in
// one process, on the same node, agent, instance and session actors as
// production, under CAF's test coordinator (one thread, simulated time) with
// seeded simulated links (loss, duplication, delay, partitions) and a
// seeded fault schedule (a partition of the nodes in halves, possibly one
// way; a node crash and restart on its store; clock skew). A run is
// reproducible from (seed, build, options): the same command prints the
// same report and report hash.
//
// Every run checks the invariants: after the heal all replicas of every
// agent are identical (the convergence time is reported), no acknowledged
// write is lost, conflicts are resolved per configuration (facts: one
// version, TakeNewest; beliefs: alternatives kept and marked contested,
// Fork). A failing seed prints the command that reproduces it.
//
//   engram-swarm --seed 7 --agents 200 --nodes 8 --writes 2000 --loss 0.1
//                --partition --crash [--seeds 100] [--csv F] [--plot F.png]

#include "apps/swarm/options.hpp"
#include "apps/swarm/real.hpp"
#include "apps/swarm/series.hpp"
#include "apps/swarm/simulation.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

using namespace engram::swarm;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  options o;
  CLI::App app{"engram-swarm: a deterministic swarm simulator (same actors "
               "as production, simulated time and network)"};
  app.option_defaults()->always_capture_default();
  app.add_option("--seed", o.seed, "the seed (with --seeds: the first)");
  app.add_option("--seeds", o.seeds, "run this many seeds from --seed on")
      ->check(CLI::Range(1, 100000));
  app.add_option("--agents", o.agents, "agents")->check(CLI::Range(1, 1000000));
  app.add_option("--nodes", o.nodes, "simulated nodes")
      ->check(CLI::Range(1, 1024));
  app.add_option("--writes", o.writes, "learns over the workload");
  app.add_option("--workload-ms", o.workload_ms,
                 "simulated time the writes are spread over")
      ->check(CLI::Range(int64_t{10}, int64_t{3'600'000}));
  app.add_option("--conflict-rate", o.conflict_rate,
                 "share of writes to contended keys")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--belief-share", o.belief_share,
                 "share of writes that are beliefs (the rest facts)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--episodic-share", o.episodic_share,
                 "share of writes that are episodes (Agent scope)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--procedural-share", o.procedural_share,
                 "share of writes that are skills (Agent scope)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--instance-share", o.instance_share,
                 "share of writes kept in the writing instance")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--share-rate", o.share_rate,
                 "per write, the chance of a share (PII-redacted, accepted "
                 "with trust 0.8) between two agents")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--tell-rate", o.tell_rate,
                 "per write, the chance of a tell between two agents")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--broadcast-rate", o.broadcast_rate,
                 "per write, the chance of a broadcast in the swarm's "
                 "federation (its first eight agents)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--loss", o.loss, "frame loss probability")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--dup", o.dup, "frame duplication probability")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--delay", o.delay, "probability a frame is held back")
      ->check(CLI::Range(0.0, 0.9));
  app.add_flag("--partition", o.partition,
               "cut the nodes in halves for a while");
  app.add_flag("--one-way", o.one_way,
               "the partition loses frames one way only");
  app.add_flag("--crash", o.crash, "crash a node and restart it on its store");
  app.add_option("--skew-ms", o.skew_ms, "node clocks off by up to this")
      ->check(CLI::Range(int64_t{0}, int64_t{3'600'000}));
  app.add_option("--heal-limit-ms", o.heal_limit_ms,
                 "simulated time allowed to converge after the heal");
  app.add_option("--csv", o.csv, "write the time series (single seed)");
  app.add_option("--plot", o.plot, "write a PNG plot (gnuplot; single seed)");
  app.add_flag("--quiet", o.quiet, "no progress bar");
  bool real = false;
  app.add_flag("--real", real,
               "run the workload on engramd processes on 127.0.0.1 instead "
               "(real time and TCP; not reproducible)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (real) {
    if (o.loss > 0 || o.dup > 0 || o.delay > 0 || o.skew_ms > 0 || o.one_way
        || o.seeds > 1 || o.share_rate > 0 || o.tell_rate > 0
        || o.broadcast_rate > 0) {
      std::fprintf(
          stderr,
          "engram-swarm: --real runs on TCP between engramd "
          "processes: --loss, --dup, --delay, --skew-ms, --one-way, "
          "--share-rate, --tell-rate, --broadcast-rate and --seeds need the "
          "simulated "
          "network (--partition freezes a node, --crash kills one)\n");
      return 2;
    }
    auto engramd = (fs::path{argv[0]}.parent_path() / "engramd").string();
    if (!fs::exists(engramd)) {
      std::fprintf(stderr, "engram-swarm: engramd not found at %s\n",
                   engramd.c_str());
      return 2;
    }
    run_result r;
    try {
      r = run_real(o, o.seed, engramd);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "engram-swarm: %s\n", e.what());
      return 1;
    }
    std::printf("%s", r.report.c_str());
    for (auto& f : r.failures)
      std::printf("  invariant violated: %s\n", f.c_str());
    if (!o.csv.empty() || !o.plot.empty())
      if (auto failed = write_series(o, r.csv, false)) {
        std::fprintf(stderr, "engram-swarm: %s\n", failed->c_str());
        return 1;
      }
    return r.ok ? 0 : 1;
  }
  if (o.episodic_share + o.procedural_share > 1.0) {
    std::fprintf(stderr, "engram-swarm: --episodic-share + --procedural-share "
                         "must not exceed 1\n");
    return 2;
  }
  if (o.one_way && !o.partition) {
    std::fprintf(stderr, "engram-swarm: --one-way needs --partition\n");
    return 2;
  }
  if ((!o.csv.empty() || !o.plot.empty()) && o.seeds > 1) {
    std::fprintf(stderr, "engram-swarm: --csv and --plot take one seed\n");
    return 2;
  }
  size_t failed = 0;
  for (uint64_t seed = o.seed; seed < o.seed + o.seeds; ++seed) {
    run_result r;
    std::string csv;
    try {
      simulation sim{o, seed};
      r = sim.run();
      csv = sim.csv();
    } catch (const std::exception& e) {
      r.ok = false;
      r.failures.push_back(e.what());
    }
    if (o.seeds == 1) {
      std::printf("%sreport_hash=%s\n", r.report.c_str(),
                  hex(r.report_hash).c_str());
      if (!o.csv.empty() || !o.plot.empty())
        if (auto failed = write_series(o, csv, true)) {
          std::fprintf(stderr, "engram-swarm: %s\n", failed->c_str());
          return 1;
        }
    } else {
      std::printf("seed %llu: %s converged_after_heal_ms=%.0f report_hash=%s\n",
                  static_cast<unsigned long long>(seed), r.ok ? "ok" : "FAILED",
                  r.converge_ms, hex(r.report_hash).c_str());
    }
    if (!r.ok) {
      ++failed;
      for (auto& f : r.failures)
        std::printf("  invariant violated: %s\n", f.c_str());
      std::printf("  reproduce: %s\n", command_of(o, seed).c_str());
    }
    std::fflush(stdout);
  }
  if (o.seeds > 1)
    std::printf("%zu of %zu seeds passed\n", o.seeds - failed, o.seeds);
  return failed == 0 ? 0 : 1;
}
