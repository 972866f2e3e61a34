#include "apps/swarm/real.hpp"

#include "actors/net.hpp"
#include "actors/node.hpp"
#include "apps/common/certs.hpp"
#include "apps/common/client_config.hpp"
#include "apps/common/process.hpp"
#include "apps/swarm/workload.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace engram::swarm {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using apps::client_config;
using ms = std::chrono::milliseconds;

// Runs the workload against `o.nodes` engramd processes on 127.0.0.1 (real
// time, real TCP): each agent on three nodes, the writes issued as fast as
// they are acknowledged, optionally one node SIGKILLed mid-run and
// restarted on its store, or frozen (SIGSTOP) for a while. Then the same
// invariants: replicas identical, no acknowledged write lost.
run_result run_real(const options& o, uint64_t seed,
                    const std::string& engramd) {
  run_result result;
  std::mt19937_64 rng{seed};
  auto dir = (fs::temp_directory_path()
              / ("engram-swarm-real-" + std::to_string(::getpid())))
                 .string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  // Mutual TLS: a CA of the run's own, a certificate per node and one for
  // this client.
  std::vector<std::string> ids;
  for (size_t i = 0; i < o.nodes; ++i)
    ids.push_back("n" + std::to_string(i));
  auto tls = apps::make_cluster_certs(dir + "/certs", ids, "swarm");
  client_config cfg{tls};
  caf::actor_system sys{cfg};
  std::vector<apps::process> procs(o.nodes);
  std::vector<uint16_t> ports(o.nodes);
  auto start = [&](size_t i) {
    auto id = "n" + std::to_string(i);
    auto port_file = dir + "/" + id + ".port";
    fs::remove(port_file);
    std::vector<std::string> argv{engramd,
                                  "--node-id",
                                  id,
                                  "--data-dir",
                                  dir + "/" + id,
                                  "--listen",
                                  "127.0.0.1:" + std::to_string(ports[i]),
                                  "--certs-dir",
                                  dir + "/certs",
                                  "--port-file",
                                  port_file,
                                  "--log-level",
                                  "warn"};
    for (size_t j = 0; j < o.nodes; ++j)
      if (j != i && ports[j] != 0) {
        argv.push_back("--peer");
        argv.push_back("127.0.0.1:" + std::to_string(ports[j]));
      }
    procs[i] = apps::process{argv, dir + "/" + id + ".log"};
    ports[i] = apps::read_port(port_file);
  };
  auto node = [&](size_t i) -> std::optional<actors::node_actor> {
    auto r = actors::connect_remote(sys, {"127.0.0.1", ports[i]}, ms{5000});
    if (!r)
      return std::nullopt;
    return r->hdl;
  };
  auto replicas = [&](size_t a) {
    std::vector<size_t> out;
    for (size_t k = 0; k < std::min<size_t>(3, o.nodes); ++k)
      out.push_back((a + k) % o.nodes);
    return out;
  };
  caf::scoped_actor self{sys};
  std::map<std::pair<size_t, size_t>, actors::instance_actor> insts;
  auto open = [&](size_t i) {
    auto nh = node(i);
    if (!nh)
      throw std::runtime_error("cannot reach n" + std::to_string(i));
    for (size_t a = 0; a < o.agents; ++a)
      for (auto r : replicas(a))
        if (r == i)
          self->request(*nh, ms{10'000}, actors::instance_atom::value,
                        "a" + std::to_string(a), "i" + std::to_string(i))
              .receive(
                  [&](actors::instance_actor& x) {
                    insts[{a, i}] = x;
                  },
                  [&](caf::error& e) {
                    throw std::runtime_error(to_string(e));
                  });
  };
  for (size_t i = 0; i < o.nodes; ++i)
    start(i);
  for (size_t i = 0; i < o.nodes; ++i)
    open(i);
  size_t crashed = o.nodes > 1 ? rng() % o.nodes : 0;
  std::vector<bool> up(o.nodes, true);
  write_log log;
  auto& acked = log.acked;
  auto t0 = std::chrono::steady_clock::now();
  // The time series (with --csv / --plot): sampled every 20 ms; frames and
  // bytes are what the nodes' sessions sent, kept cumulative across a
  // node's restart (its counters start again at zero).
  bool sampling = !o.csv.empty() || !o.plot.empty();
  bool frozen_now = false;
  std::vector<uint64_t> frames_base(o.nodes), frames_last(o.nodes);
  std::vector<uint64_t> bytes_base(o.nodes), bytes_last(o.nodes);
  std::ostringstream csv;
  csv << csv_header;
  auto last_sample = t0 - ms{1000};
  auto sample = [&](std::optional<size_t> converged, bool force = false) {
    auto now = std::chrono::steady_clock::now();
    if (!sampling || (!force && now - last_sample < ms{20}))
      return;
    last_sample = now;
    sample_row row;
    row.t_ms = std::chrono::duration<double, std::milli>(now - t0).count();
    fill_outcomes(row, log);
    uint64_t frames = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < o.nodes; ++i) {
      bool frozen = frozen_now && i == (crashed + 1) % o.nodes;
      auto nh = up[i] && !frozen ? node(i) : std::nullopt;
      if (nh) {
        self->request(*nh, ms{500}, actors::status_atom::value)
            .receive(
                [&](actors::node_status& st) {
                  uint64_t f = 0;
                  uint64_t b = 0;
                  for (auto& x : st.session_details) {
                    f += x.frames_out;
                    b += x.bytes_out;
                  }
                  if (f < frames_last[i]) { // restarted
                    frames_base[i] += frames_last[i];
                    bytes_base[i] += bytes_last[i];
                  }
                  frames_last[i] = f;
                  bytes_last[i] = b;
                },
                [](caf::error&) {});
      }
      frames += frames_base[i] + frames_last[i];
      bytes += bytes_base[i] + bytes_last[i];
    }
    row.frames = frames;
    row.bytes = bytes;
    row.converged = converged;
    row.partitioned = frozen_now;
    row.crashed = std::find(up.begin(), up.end(), false) != up.end();
    csv << csv_line(row);
  };
  sample(std::nullopt, true);
  for (size_t w = 0; w < o.writes; ++w) {
    sample(std::nullopt);
    if (o.crash && o.nodes > 1 && w == o.writes / 2) {
      procs[crashed].signal(SIGKILL);
      procs[crashed].wait(ms{5000});
      up[crashed] = false;
    }
    if (o.partition && o.nodes > 1 && w == o.writes / 3) {
      sample(std::nullopt, true);
      procs[(crashed + 1) % o.nodes].signal(SIGSTOP); // frozen: cut off
      frozen_now = true;
    }
    if (o.partition && o.nodes > 1 && w == 2 * o.writes / 3) {
      sample(std::nullopt, true);
      procs[(crashed + 1) % o.nodes].signal(SIGCONT);
      frozen_now = false;
      // Frozen longer than the heartbeats allow (a loaded machine), its
      // connection to this process was dropped: its handles are opened
      // anew (else every later write to it waits out its timeout).
      try {
        open((crashed + 1) % o.nodes);
      } catch (const std::exception&) {
        // still unreachable: its writes fail and are counted as such
      }
    }
    if (o.crash && o.nodes > 1 && w == 3 * o.writes / 4) {
      start(crashed);
      open(crashed);
      up[crashed] = true;
    }
    auto a = static_cast<size_t>(rng() % o.agents);
    auto rs = replicas(a);
    auto r = rs[rng() % rs.size()];
    bool frozen = o.partition && o.nodes > 1 && r == (crashed + 1) % o.nodes
                  && w >= o.writes / 3 && w < 2 * o.writes / 3;
    if (!up[r] || frozen) {
      ++log.not_issued;
      continue;
    }
    ++log.issued;
    auto e = make_write(
        o, rng, w,
        static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count()));
    self->request(insts[{a, r}], ms{10'000}, actors::learn_atom::value, e, true)
        .receive(
            [&](engram_id id) {
              acked.push_back({a, id, std::nullopt});
            },
            [&](caf::error& err) {
              classify(log, err, a);
            });
  }
  sample(std::nullopt, true);
  auto written = std::chrono::steady_clock::now();
  // Converge: every agent's replicas report the same digest.
  auto digests_equal = [&](size_t& equal) {
    equal = 0;
    for (size_t a = 0; a < o.agents; ++a) {
      std::set<uint64_t> seen;
      for (auto r : replicas(a))
        self->request(insts[{a, r}], ms{5000}, actors::query_atom::value,
                      query_filter{}, actors::code_of(consistency_level::local))
            .receive(
                [&](std::vector<memory_view>& views) {
                  uint64_t h = 0;
                  for (auto& v : views)
                    h ^= fnv1a(v.value.id.to_string()
                               + std::to_string(v.value.updated.wall_us));
                  seen.insert(h);
                },
                [&](caf::error&) {
                  seen.insert(seen.size() + 1);
                });
      equal += seen.size() == 1 ? 1 : 0;
    }
    return equal == o.agents;
  };
  size_t equal = 0;
  while (!digests_equal(equal)
         && std::chrono::steady_clock::now() - written < ms{o.heal_limit_ms}) {
    sample(equal);
    std::this_thread::sleep_for(ms{50});
  }
  sample(equal, true);
  result.csv = csv.str();
  auto converge_ms = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - written)
                         .count();
  result.converge_ms = equal == o.agents ? converge_ms : -1;
  if (equal < o.agents)
    result.failures.push_back(std::to_string(o.agents - equal)
                              + " agents' replicas still differ");
  size_t lost = 0;
  auto stored = acked;
  stored.insert(stored.end(), log.not_confirmed.begin(),
                log.not_confirmed.end());
  for (auto& wr : stored)
    for (auto r : replicas(wr.agent))
      self->request(insts[{wr.agent, r}], ms{5000}, actors::query_atom::value,
                    query_filter{}, actors::code_of(consistency_level::local))
          .receive(
              [&](std::vector<memory_view>& views) {
                if (std::none_of(views.begin(), views.end(), [&](auto& v) {
                      return v.value.id == wr.id;
                    }))
                  ++lost;
              },
              [&](caf::error&) {
                ++lost;
              });
  if (lost > 0)
    result.failures.push_back(std::to_string(lost)
                              + " stored writes (acknowledged or not "
                                "confirmed) missing from a replica");
  size_t clean = 0;
  for (auto& p : procs) {
    p.signal(SIGCONT);
    p.signal(SIGTERM);
    auto rc = p.wait(ms{10'000});
    clean += rc && *rc == 0 ? 1 : 0;
  }
  result.ok = result.failures.empty();
  auto write_ms
      = std::chrono::duration<double, std::milli>(written - t0).count();
  std::ostringstream r;
  r << "engram-swarm --real seed=" << seed << " agents=" << o.agents
    << " nodes=" << o.nodes << " (engramd processes) writes=" << o.writes
    << '\n';
  r << "faults:";
  if (o.partition && o.nodes > 1)
    r << " freeze=n" << (crashed + 1) % o.nodes << " (SIGSTOP, writes "
      << o.writes / 3 << ".." << 2 * o.writes / 3 << ")";
  if (o.crash && o.nodes > 1)
    r << " crash=n" << crashed << " (SIGKILL, restarted)";
  r << '\n';
  r << outcomes(log, o.writes) << " in " << static_cast<long>(write_ms)
    << " ms\n";
  r << "converged_after_last_write_ms=" << static_cast<long>(converge_ms)
    << " clean_shutdowns=" << clean << "/" << o.nodes << '\n';
  r << "invariants: " << (result.ok ? "ok" : "FAILED") << '\n';
  result.report = r.str();
  result.report_hash = fnv1a(result.report);
  fs::remove_all(dir);
  return result;
}

} // namespace engram::swarm
