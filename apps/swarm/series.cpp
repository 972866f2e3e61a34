#include "apps/swarm/series.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace engram::swarm {

namespace fs = std::filesystem;

namespace {

/// A fault window of a run: what, and from when to when (ms).
struct fault_window {
  std::string what;
  double from = 0;
  double to = 0;
};

// The windows in which the CSV's partitioned / crashed columns are 1.
std::vector<fault_window> fault_windows(const std::string& csv) {
  std::vector<fault_window> out;
  std::istringstream in{csv};
  std::string line;
  std::getline(in, line); // the header
  std::optional<double> since[2];
  const char* names[2] = {"partition", "node down"};
  double last_t = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls{line};
    for (std::string x; std::getline(ls, x, ',');)
      f.push_back(x);
    if (f.size() < 13)
      continue;
    last_t = std::stod(f[0]);
    for (int k = 0; k < 2; ++k) {
      bool on = f[11 + static_cast<size_t>(k)] == "1";
      if (on && !since[k])
        since[k] = last_t;
      else if (!on && since[k]) {
        out.push_back({names[k], *since[k], last_t});
        since[k].reset();
      }
    }
  }
  for (int k = 0; k < 2; ++k)
    if (since[k])
      out.push_back({names[k], *since[k], last_t});
  return out;
}

// A string for a gnuplot script, single-quoted (a quote doubled).
std::string quoted(const std::string& x) {
  std::string out = "'";
  for (auto c : x) {
    out += c;
    if (c == '\'')
      out += '\'';
  }
  return out + "'";
}

// A private scratch directory (mode 0700), removed when destroyed.
struct scratch_dir {
  std::string path;
  scratch_dir() {
    auto tmpl = (fs::temp_directory_path() / "engram-swarm-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("cannot make a temporary directory: "
                               + std::string{std::strerror(errno)});
    path = tmpl;
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
};

// Runs gnuplot on `script` (no shell), its errors to `errors`; its exit
// status, or -1 when it could not be started.
int run_gnuplot(const std::string& script, const std::string& errors) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, errors.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::string program = "gnuplot";
  std::vector<char*> args{program.data(), const_cast<char*>(script.c_str()),
                          nullptr};
  pid_t pid = 0;
  auto rc = posix_spawnp(&pid, "gnuplot", &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Plots the CSV at `csv_path` into `o.plot`: three panels sharing the time
// axis (writes; frames and kB sent; converged agents and contested
// engrams), fault windows shaded, units on every axis, legends outside the
// curves. Returns an error message when no plot was written.
std::optional<std::string> write_plot(const options& o,
                                      const std::string& csv_path,
                                      const std::string& csv, bool simulated) {
  scratch_dir scratch;
  auto script = scratch.path + "/plot.gp";
  auto errors = scratch.path + "/plot.err";
  auto data = quoted(csv_path);
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1100,1000 font ',10'\n"
     << "set output " << quoted(o.plot) << "\n"
     << "set datafile separator ','\n"
     << "set key outside right top\n"
     << "set grid\n"
     << "set lmargin 12\nset rmargin 30\n";
  int n = 0;
  for (auto& w : fault_windows(csv)) {
    ++n;
    // Translucent, so overlapping windows both show.
    auto color = w.what == "partition" ? "#e69f00" : "#d55e00";
    gp << "set object " << n << " rect from " << w.from << ", graph 0 to "
       << w.to << ", graph 1 fc rgb '" << color
       << "' fs transparent solid 0.2 noborder behind\n";
    gp << "set label " << n << " '" << w.what << "' at " << w.from << ", graph "
       << (w.what == "partition" ? "0.93" : "0.83")
       << " offset 0.5,0 font ',9'\n";
  }
  auto time_axis = simulated ? "time (simulated ms)" : "time (ms)";
  // One time range for every panel.
  double last_t = 0;
  {
    std::istringstream in{csv};
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line))
      if (!line.empty())
        last_t = std::max(last_t, std::stod(line.substr(0, line.find(','))));
  }
  gp << "set xrange [0:" << std::max(last_t, 1.0) << "]\n";
  gp << "set multiplot layout 3,1 title 'engram-swarm " << o.agents
     << " agents, " << o.nodes << " nodes, seed " << o.seed
     << " (shaded: fault windows)'\n";
  gp << "set xlabel '" << time_axis << "'\n";
  gp << "set ylabel 'writes (count)'\n"
     << "plot " << data
     << " using 1:2 with lines lw 2 title 'issued', "
        "'' using 1:3 with lines lw 2 title 'acknowledged', "
        "'' using 1:4 with lines title 'refused', "
        "'' using 1:5 with lines title 'not confirmed', "
        "'' using 1:6 with lines title 'unknown'\n";
  // Real runs measure no dropped frames (TCP) nor contested engrams.
  gp << "set ylabel 'frames (count)'\nset y2label 'kB sent'\nset y2tics\n"
     << "plot " << data << " using 1:7 with lines lw 2 title 'frames sent', "
     << (simulated ? "'' using 1:8 with lines title 'frames dropped', " : "")
     << "'' using 1:($9/1000) axes x1y2 with lines lw 2 title 'kB sent "
        "(right axis)'\n";
  if (simulated)
    gp << "set ylabel 'agents (count)'\nset y2label 'engrams (count)'\n"
       << "plot " << data
       << " using 1:10 with lines lw 2 title 'agents converged', "
          "'' using 1:11 axes x1y2 with lines title 'contested engrams (right "
          "axis)'\n";
  else
    gp << "set ylabel 'agents (count)'\nunset y2label\nunset y2tics\n"
       << "plot " << data
       << " using 1:10 with linespoints lw 2 title 'agents converged (after "
          "the last write)'\n";
  gp << "unset multiplot\n";
  {
    std::ofstream out{script};
    out << gp.str();
    if (!out)
      return "cannot write " + script;
  }
  auto rc = run_gnuplot(script, errors);
  std::ifstream in{errors};
  std::string why{std::istreambuf_iterator<char>{in}, {}};
  std::error_code ec;
  if (rc != 0 || !fs::exists(o.plot, ec) || fs::file_size(o.plot, ec) == 0) {
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    if (why.empty())
      why = rc < 0 ? "gnuplot cannot be started (is it installed?)"
                   : "gnuplot failed";
    return "no plot written to " + o.plot + ": " + why;
  }
  return std::nullopt;
}

} // namespace

std::optional<std::string>
write_series(const options& o, const std::string& csv, bool simulated) {
  std::optional<scratch_dir> scratch;
  if (o.csv.empty())
    scratch.emplace();
  auto path = o.csv.empty() ? scratch->path + "/series.csv" : o.csv;
  {
    std::ofstream out{path};
    out << csv;
    if (!out)
      return "cannot write " + path + ": " + std::strerror(errno);
  }
  std::optional<std::string> failed;
  if (!o.plot.empty()) {
    failed = write_plot(o, path, csv, simulated);
    if (!failed)
      std::printf("plot: %s\n", o.plot.c_str());
  }
  if (!o.csv.empty())
    std::printf("csv: %s\n", o.csv.c_str());
  return failed;
}

} // namespace engram::swarm
