// engram-demo: Engram across real processes. Starts three engramd nodes on
// 127.0.0.1 (each with its own embedded RocksDB store), runs a small swarm
// against them — three agents with an instance on every node learning at
// once, some of them about the same things — kills one node with SIGKILL
// mid-run and restarts it, then prints how every agent's replicas converged
// and shuts the nodes down with SIGTERM.
//
// Along the way it samples how many memories every node holds and writes
// them as CSV and a PNG plot (gnuplot): the restarted node catching up.
//
//   engram-demo [--engramd PATH] [--data-dir DIR] [--writes N] [--seed S]
//               [--plot FILE.png]
#include "actors/net.hpp"
#include "apps/common/certs.hpp"
#include "apps/common/process.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace engram;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

struct options {
  std::string engramd;
  std::string data_dir;
  int writes = 300;
  uint64_t seed = 2026;
  /// The plot (its CSV next to it, .csv).
  std::string plot;
};

int usage(const char* error) {
  if (error)
    std::fprintf(stderr, "engram-demo: %s\n", error);
  std::fprintf(stderr, "usage: engram-demo [--engramd PATH] [--data-dir DIR] "
                       "[--writes N] [--seed S] [--plot FILE.png]\n");
  return 2;
}

struct client_config : caf::actor_system_config {
  explicit client_config(const actors::tls_config& tls) {
    actors::register_types(*this);
    actors::configure_network(*this);
    actors::configure_tls(*this, tls);
  }
};

const std::vector<std::string> agents{"researcher", "planner", "critic"};
const std::vector<std::string> node_ids{"n1", "n2", "n3"};

struct daemon {
  apps::process proc;
  uint16_t port = 0;
};

class demo {
public:
  demo(options opts) : opts_(std::move(opts)) {}

  daemon start(size_t i) {
    auto id = node_ids[i];
    auto port_file = opts_.data_dir + "/" + id + ".port";
    fs::remove(port_file);
    std::vector<std::string> argv{opts_.engramd,
                                  "--node-id",
                                  id,
                                  "--data-dir",
                                  opts_.data_dir + "/" + id,
                                  "--listen",
                                  "127.0.0.1:0",
                                  "--port-file",
                                  port_file,
                                  "--certs-dir",
                                  opts_.data_dir + "/certs"};
    for (size_t j = 0; j < i; ++j) {
      argv.push_back("--peer");
      argv.push_back("127.0.0.1:" + std::to_string(nodes_[j].port));
    }
    daemon d{apps::process{argv, opts_.data_dir + "/" + id + ".log"}, 0};
    d.port = apps::read_port(port_file);
    return d;
  }

  // Node i's actor; a node that cannot be reached is said so once, in
  // words, until it is back.
  std::optional<actors::node_actor> node(size_t i) {
    auto r = actors::connect_remote(sys_, {"127.0.0.1", nodes_[i].port}, 5s);
    if (silent_.size() < nodes_.size())
      silent_.resize(nodes_.size(), false);
    if (!r) {
      if (!silent_[i])
        std::printf("  %s is down (nothing answers on 127.0.0.1:%u): its "
                    "replicas are left out until it is back\n",
                    node_ids[i].c_str(), nodes_[i].port);
      silent_[i] = true;
      return std::nullopt;
    }
    if (silent_[i])
      std::printf("  %s answers again\n", node_ids[i].c_str());
    silent_[i] = false;
    return r->hdl;
  }

  template<class Result, class Handle, class... Ts>
  std::optional<Result> ask(const Handle& hdl, Ts&&... xs) {
    caf::scoped_actor self{sys_};
    std::optional<Result> result;
    self->request(hdl, 10s, std::forward<Ts>(xs)...)
        .receive(
            [&](Result& r) {
              result = std::move(r);
            },
            [&](caf::error& e) {
              std::fprintf(stderr, "request failed: %s\n",
                           to_string(e).c_str());
            });
    return result;
  }

  // Per agent, per node: (engrams visible, digest of the agent's replica).
  std::vector<std::vector<std::pair<size_t, uint64_t>>> snapshot() {
    std::vector<std::vector<std::pair<size_t, uint64_t>>> out(agents.size());
    for (size_t g = 0; g < agents.size(); ++g)
      for (size_t n = 0; n < nodes_.size(); ++n) {
        auto nh = node(n);
        auto agent = nh ? ask<actors::agent_actor>(
                         *nh, actors::agent_atom::value, agents[g])
                        : std::nullopt;
        size_t count = 0;
        uint64_t digest = 0;
        if (agent) {
          caf::scoped_actor self{sys_};
          self->request(*agent, 10s, actors::digest_atom::value, std::string{})
              .receive(
                  [&](uint64_t d, causal_context&) {
                    digest = d;
                  },
                  [](caf::error&) {});
          if (auto views = ask<std::vector<memory_view>>(
                  *agent, actors::query_atom::value, query_filter{},
                  actors::code_of(consistency_level::local)))
            count = views->size();
        }
        out[g].emplace_back(count, digest);
      }
    return out;
  }

  // One row of the plot: per node, the memories of all agents (-1: down).
  void sample(clk::time_point t0,
              const std::vector<std::vector<std::pair<size_t, uint64_t>>>& s,
              const std::vector<bool>& up) {
    std::vector<long> row;
    for (size_t n = 0; n < node_ids.size(); ++n) {
      long total = 0;
      for (auto& per_agent : s)
        total
            += n < per_agent.size() ? static_cast<long>(per_agent[n].first) : 0;
      row.push_back(up[n] ? total : -1);
    }
    samples_.emplace_back(
        std::chrono::duration<double, std::milli>(clk::now() - t0).count(),
        row);
  }

  // Writes the samples as CSV and, with gnuplot, as a PNG; false (said
  // why) when no plot was written.
  bool plot(double kill_ms, double restart_ms) {
    auto csv = opts_.plot.substr(0, opts_.plot.rfind('.')) + ".csv";
    if (auto* f = std::fopen(csv.c_str(), "w")) {
      std::fprintf(f, "t_ms,n1,n2,n3\n");
      for (auto& [t, row] : samples_) {
        std::fprintf(f, "%.1f", t);
        for (auto x : row)
          x < 0 ? std::fprintf(f, ",NaN") : std::fprintf(f, ",%ld", x);
        std::fprintf(f, "\n");
      }
      std::fclose(f);
    }
    auto script = opts_.data_dir + "/plot.gp";
    if (auto* f = std::fopen(script.c_str(), "w")) {
      std::fprintf(
          f,
          "set terminal png size 960,540\nset output '%s'\n"
          "set datafile separator ','\n"
          "set title 'engram-demo: memories held per node (all agents)'\n"
          "set xlabel 'ms since the first write'\nset ylabel 'memories'\n"
          "set key left top\nset arrow from %.0f, graph 0 to %.0f, graph 1 "
          "nohead dt 2\nset label 'n3 SIGKILLed' at %.0f, graph 0.95\n"
          "set arrow from %.0f, graph 0 to %.0f, graph 1 nohead dt 2\n"
          "set label 'n3 restarted' at %.0f, graph 0.88\n"
          "plot '%s' using 1:($2) with linespoints title 'n1', "
          "'' using 1:($3) with linespoints title 'n2', "
          "'' using 1:($4) with linespoints title 'n3'\n",
          opts_.plot.c_str(), kill_ms, kill_ms, kill_ms, restart_ms, restart_ms,
          restart_ms, csv.c_str());
      std::fclose(f);
    }
    auto errors = opts_.data_dir + "/plot.err";
    auto cmd = "gnuplot '" + script + "' 2>'" + errors + "'";
    if (std::system(cmd.c_str()) == 0) {
      std::printf("plot: %s (data: %s)\n", opts_.plot.c_str(), csv.c_str());
      return true;
    }
    std::ifstream in{errors};
    std::string why{std::istreambuf_iterator<char>{in}, {}};
    std::fprintf(stderr, "engram-demo: no plot written to %s (data: %s): %s\n",
                 opts_.plot.c_str(), csv.c_str(),
                 why.empty() ? "gnuplot failed" : why.c_str());
    return false;
  }

  static bool
  converged(const std::vector<std::vector<std::pair<size_t, uint64_t>>>& s) {
    for (auto& per_agent : s)
      for (auto& x : per_agent)
        if (x.second != per_agent.front().second)
          return false;
    return true;
  }

  int run() {
    std::printf("Engram demo: 3 engramd nodes on 127.0.0.1, stores under %s\n",
                opts_.data_dir.c_str());
    for (size_t i = 0; i < node_ids.size(); ++i) {
      nodes_.push_back(start(i));
      std::printf("  %s listening on 127.0.0.1:%u (pid %d)\n",
                  node_ids[i].c_str(), nodes_[i].port, nodes_[i].proc.pid());
    }
    // One instance of every agent on every node.
    std::vector<std::vector<actors::instance_actor>> insts(agents.size());
    auto open_all = [&](size_t n) {
      auto nh = node(n);
      if (!nh)
        return false;
      for (size_t g = 0; g < agents.size(); ++g) {
        auto inst = ask<actors::instance_actor>(
            *nh, actors::instance_atom::value, agents[g],
            agents[g] + "@" + node_ids[n]);
        if (!inst)
          return false;
        if (insts[g].size() <= n)
          insts[g].resize(n + 1);
        insts[g][n] = *inst;
      }
      return true;
    };
    for (size_t n = 0; n < nodes_.size(); ++n)
      if (!open_all(n))
        return 1;
    std::printf("\nswarm: %zu agents with an instance on each of %zu nodes "
                "learn %d memories through all of them (shared keys: "
                "conflicts resolved per config)\n",
                agents.size(), nodes_.size(), opts_.writes);
    std::mt19937_64 rng{opts_.seed};
    caf::scoped_actor self{sys_};
    size_t acked = 0;
    auto t0 = clk::now();
    std::vector<bool> up(node_ids.size(), true);
    double kill_ms = 0;
    auto every = std::max(1, opts_.writes / 15);
    for (int w = 0; w < opts_.writes; ++w) {
      if (w % every == 0)
        sample(t0, snapshot(), up);
      if (w == opts_.writes / 2) {
        std::printf("  SIGKILL n3 after %d writes; the others go on\n", w);
        nodes_[2].proc.signal(SIGKILL);
        nodes_[2].proc.wait(5s);
        up[2] = false;
        kill_ms = std::chrono::duration<double, std::milli>(clk::now() - t0)
                      .count();
      }
      auto g = rng() % agents.size();
      auto n = rng() % (w >= opts_.writes / 2 ? 2 : 3);
      engram_record e;
      if (w % 10 == 0) {
        e.type = memory_type::semantic;
        e.body = belief{"topic-" + std::to_string(rng() % 3), "is",
                        "view-" + std::to_string(w)};
        e.confidence = 0.6;
      } else {
        e.type = memory_type::semantic;
        e.body
            = fact{"k" + std::to_string(rng() % 40), "v" + std::to_string(w)};
        e.confidence = 0.9;
      }
      self->request(insts[g][n], 10s, actors::learn_atom::value, e, false)
          .receive(
              [&](engram_id) {
                ++acked;
              },
              [&](caf::error& err) {
                std::fprintf(stderr, "learn failed: %s\n",
                             to_string(err).c_str());
              });
    }
    auto written_ms
        = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
    std::printf("  %zu/%d writes acknowledged (durable) in %.0f ms\n", acked,
                opts_.writes, written_ms);
    std::printf("  restarting n3 on its store\n");
    sample(t0, snapshot(), up);
    nodes_[2] = start(2);
    if (!open_all(2))
      return 1;
    up[2] = true;
    auto t1 = clk::now();
    auto restart_ms
        = std::chrono::duration<double, std::milli>(t1 - t0).count();
    auto snap = snapshot();
    sample(t0, snap, up);
    while (!converged(snap) && clk::now() - t1 < 30s) {
      std::this_thread::sleep_for(20ms);
      snap = snapshot();
      sample(t0, snap, up);
    }
    for (int i = 0; i < 3; ++i) { // the flat end of the curve
      std::this_thread::sleep_for(50ms);
      sample(t0, snapshot(), up);
    }
    auto converge_ms
        = std::chrono::duration<double, std::milli>(clk::now() - t1).count();
    std::printf("\n%-11s %-5s %9s  %-18s\n", "agent", "node", "memories",
                "replica digest");
    for (size_t g = 0; g < agents.size(); ++g)
      for (size_t n = 0; n < nodes_.size(); ++n)
        std::printf("%-11s %-5s %9zu  %016llx\n", agents[g].c_str(),
                    node_ids[n].c_str(), snap[g][n].first,
                    static_cast<unsigned long long>(snap[g][n].second));
    bool ok = converged(snap) && acked == static_cast<size_t>(opts_.writes);
    std::printf("\nconverged: %s (n3 caught up %.0f ms after restarting)\n",
                ok ? "yes" : "NO", converge_ms);
    bool plotted = plot(kill_ms, restart_ms);
    // Clean shutdown.
    int clean = 0;
    for (size_t n = 0; n < nodes_.size(); ++n) {
      nodes_[n].proc.signal(SIGTERM);
      auto rc = nodes_[n].proc.wait(10s);
      if (rc && *rc == 0)
        ++clean;
    }
    std::printf("SIGTERM: %d/3 nodes stopped cleanly\n", clean);
    return ok && clean == 3 && plotted ? 0 : 1;
  }

private:
  options opts_;
  // Mutual TLS: the demo's own CA, a certificate per node and its own.
  actors::tls_config tls_
      = apps::make_cluster_certs(opts_.data_dir + "/certs", node_ids, "demo");
  client_config cfg_{tls_};
  caf::actor_system sys_{cfg_};
  std::vector<daemon> nodes_;
  std::vector<std::pair<double, std::vector<long>>> samples_;
  /// Nodes said to be down (until they answer again).
  std::vector<bool> silent_;
};

} // namespace

int main(int argc, char** argv) {
  options opts;
  // engramd is built next to this program (build/apps/).
  opts.engramd = (fs::path{argv[0]}.parent_path() / "engramd").string();
  opts.plot = (fs::path{argv[0]}.parent_path() / "engram-demo.png").string();
  bool own_dir = true;
  for (int i = 1; i < argc; ++i) {
    auto arg = std::string{argv[i]};
    auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    const char* v = nullptr;
    if (arg == "--engramd" && (v = value()))
      opts.engramd = v;
    else if (arg == "--data-dir" && (v = value()))
      opts.data_dir = v, own_dir = false;
    else if (arg == "--writes" && (v = value()))
      opts.writes = std::atoi(v);
    else if (arg == "--seed" && (v = value()))
      opts.seed = std::strtoull(v, nullptr, 10);
    else if (arg == "--plot" && (v = value()))
      opts.plot = v;
    else if (arg == "--help" || arg == "-h")
      return usage(nullptr), 0;
    else
      return usage(("unknown or incomplete argument: " + arg).c_str());
  }
  if (opts.writes <= 0)
    return usage("--writes must be a positive number");
  if (opts.plot.size() < 5 || opts.plot.substr(opts.plot.size() - 4) != ".png")
    return usage("--plot needs a file name ending in .png");
  if (!fs::exists(opts.engramd))
    return usage(("engramd not found at " + opts.engramd).c_str());
  if (own_dir)
    opts.data_dir = (fs::temp_directory_path()
                     / ("engram-demo-" + std::to_string(::getpid())))
                        .string();
  fs::create_directories(opts.data_dir);
  int rc = demo{opts}.run();
  if (own_dir && rc == 0)
    fs::remove_all(opts.data_dir);
  return rc;
}
