#pragma once

// Real processes for multi-node tests: spawned with posix_spawn, output to
// a log file, stopped with a signal, waited for with a bound.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace engram::apps {

class process {
public:
  process() = default;

  /// Starts `argv[0]` with `argv`, stdout and stderr appended to `log`,
  /// with this process's environment plus `env` ("NAME=value" each).
  process(const std::vector<std::string>& argv, const std::string& log,
          const std::vector<std::string>& env = {})
      : log_(log) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (auto** e = environ; *e != nullptr; ++e)
      envp.push_back(*e);
    for (auto& e : env)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), envp.data())
        != 0)
      throw std::runtime_error("cannot start " + argv[0]);
    posix_spawn_file_actions_destroy(&fa);
  }

  process(process&& other) noexcept { *this = std::move(other); }

  process& operator=(process&& other) noexcept {
    std::swap(pid_, other.pid_);
    std::swap(log_, other.log_);
    std::swap(status_, other.status_);
    return *this;
  }

  ~process() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      wait(std::chrono::seconds{10});
    }
  }

  pid_t pid() const { return pid_; }

  void signal(int sig) { ::kill(pid_, sig); }

  /// The exit status (`WEXITSTATUS`, or 128 + signal) once exited within
  /// `limit`; nullopt while still running.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!status_) {
      int st = 0;
      auto rc = ::waitpid(pid_, &st, WNOHANG);
      if (rc == pid_)
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      else if (std::chrono::steady_clock::now() >= deadline)
        break;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    return status_;
  }

  /// Everything the process wrote so far.
  std::string output() const {
    std::ifstream in{log_};
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
  }

private:
  pid_t pid_ = -1;
  std::string log_;
  std::optional<int> status_;
};

/// Reads a port written by `engramd --port-file` (bounded wait).
inline uint16_t read_port(const std::string& file,
                          std::chrono::milliseconds limit
                          = std::chrono::seconds{15}) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in{file};
    unsigned port = 0;
    if (in >> port && port > 0)
      return static_cast<uint16_t>(port);
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  throw std::runtime_error("no port in " + file);
}

} // namespace engram::apps
