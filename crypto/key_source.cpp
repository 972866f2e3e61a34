#include "crypto/key_source.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <thread>
#include <vector>

#include "crypto/internal/hex.hpp"
#include "crypto/pkcs11.hpp"

extern char** environ;

namespace engram::crypto {

namespace {

error bad_key(const std::string& source, const std::string& why) {
  return make_error(errc::invalid_argument,
                    "the master key from " + source + ": " + why);
}

// Wipes a string holding key material before it goes.
struct wiped {
  std::string text;
  ~wiped() { OPENSSL_cleanse(text.data(), text.size()); }
};

expected<key256> from_file(const std::string& path) {
  // Non-blocking: a FIFO must not hold the start; it is refused below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0)
    return bad_key("file '" + path + "'", "cannot be opened");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return bad_key("file '" + path + "'", "is not a regular file");
  }
  if (st.st_uid != ::geteuid()) {
    ::close(fd);
    return bad_key("file '" + path + "'", "belongs to another user (uid "
                                              + std::to_string(st.st_uid)
                                              + ")");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    return bad_key("file '" + path + "'",
                   std::string{"may be read by others (mode "} + mode
                       + "): chmod 600 it");
  }
  wiped raw;
  raw.text.reserve(2048); // no reallocation leaves a copy behind
  char buf[256];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    raw.text.append(buf, static_cast<size_t>(n));
    if (raw.text.size() > 1024)
      break;
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  ::close(fd);
  if (raw.text.size() == key256::size())
    return key256::from_bytes(raw.text);
  auto key = parse_key_text(raw.text);
  if (!key)
    return bad_key("file '" + path + "'", key.error_value().message);
  return key;
}

expected<key256> from_env(const std::string& name) {
  auto* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0')
    return bad_key("environment variable " + name, "is not set");
  auto key = parse_key_text(value);
  if (!key)
    return bad_key("environment variable " + name, key.error_value().message);
  return key;
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

expected<key256> from_command(const std::string& line,
                              std::chrono::milliseconds timeout) {
  auto argv = split_words(line);
  auto source = "command '" + (argv.empty() ? std::string{} : argv[0]) + "'";
  if (argv.empty())
    return bad_key("command", "names no program");
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    return bad_key(source, "cannot make a pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  // A process group of its own, so that a timeout ends what it started too.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  auto spawned
      = ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (spawned != 0) {
    ::close(out[0]);
    return bad_key(source, "cannot be run");
  }
  // Its output, bounded in size and time.
  wiped printed;
  printed.text.reserve(4096 + 512);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  char buf[256];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    pollfd p{out[0], POLLIN, 0};
    int ready = left <= 0 ? 0 : ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    auto n = ::read(out[0], buf, sizeof(buf));
    if (n <= 0)
      break;
    printed.text.append(buf, static_cast<size_t>(n));
    if (printed.text.size() > 4096)
      break;
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  ::close(out[0]);
  bool too_long = printed.text.size() > 4096;
  if (timed_out || too_long)
    ::kill(-pid, SIGKILL);
  // Its end, within the deadline too (it may close its output and linger).
  int status = 0;
  bool reaped = false;
  for (;;) {
    auto r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      reaped = true;
      break;
    }
    if (r < 0 && errno != EINTR)
      break; // not ours to wait for (SIGCHLD ignored): no status
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline && !timed_out) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    if (now >= deadline + std::chrono::seconds{2})
      break; // killed and still not gone: not waited for any longer
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  if (timed_out)
    return bad_key(source, "printed no key within "
                               + std::to_string(timeout.count()) + " ms");
  if (too_long)
    return bad_key(source, "printed more than 4 KiB");
  if (!reaped)
    return bad_key(source, "its exit status could not be read");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return bad_key(source, WIFEXITED(status)
                               ? "exited with status "
                                     + std::to_string(WEXITSTATUS(status))
                               : std::string{"was killed by a signal"});
  auto key = parse_key_text(printed.text);
  if (!key)
    return bad_key(source, key.error_value().message);
  return key;
}

} // namespace

expected<key256> parse_key_text(std::string text) {
  wiped t{std::move(text)};
  std::string compact;
  compact.reserve(t.text.size());
  for (char c : t.text)
    if (!std::isspace(static_cast<unsigned char>(c)))
      compact.push_back(c);
  wiped k{std::move(compact)};
  auto& s = k.text;
  auto fail = make_error(errc::invalid_argument,
                         "not a 256-bit key in hex (64 digits) or base64");
  if (s.size() == 64) {
    std::string raw(32, '\0');
    for (size_t i = 0; i < 32; ++i) {
      int hi = internal::hex_digit(s[2 * i]);
      int lo = internal::hex_digit(s[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        OPENSSL_cleanse(raw.data(), raw.size());
        return fail;
      }
      raw[i] = static_cast<char>((hi << 4) | lo);
    }
    auto key = key256::from_bytes(raw);
    OPENSSL_cleanse(raw.data(), raw.size());
    return key;
  }
  // Base64 of 32 bytes: 43 characters, or 44 with one '='.
  if (s.size() == 43)
    s.push_back('=');
  if (s.size() != 44 || s[43] != '=' || s[42] == '=')
    return fail;
  for (size_t i = 0; i < 43; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (!std::isalnum(c) && c != '+' && c != '/')
      return fail;
  }
  unsigned char raw[33];
  if (EVP_DecodeBlock(raw, reinterpret_cast<const unsigned char*>(s.data()), 44)
      != 33) {
    OPENSSL_cleanse(raw, sizeof(raw));
    return fail;
  }
  auto key = key256::from_bytes({reinterpret_cast<const char*>(raw), 32});
  OPENSSL_cleanse(raw, sizeof(raw));
  return key;
}

expected<key256> load_master_key(const std::string& spec,
                                 std::chrono::milliseconds timeout) {
  auto colon = spec.find(':');
  auto kind = spec.substr(0, colon);
  auto rest
      = colon == std::string::npos ? std::string{} : spec.substr(colon + 1);
  if (kind == "file" && !rest.empty())
    return from_file(rest);
  if (kind == "env" && !rest.empty())
    return from_env(rest);
  if (kind == "command" && !rest.empty())
    return from_command(rest, timeout);
  if (kind == "pkcs11") {
    auto src = parse_pkcs11_uri(spec);
    if (!src)
      return src.error_value();
    return load_pkcs11_key(*src);
  }
  // The spec is not repeated: a key pasted in its place must not reach a
  // log.
  return make_error(errc::invalid_argument,
                    "the key source is none of file:PATH, env:NAME, "
                    "command:PROGRAM [ARG]..., pkcs11:URI ("
                        + std::to_string(spec.size()) + " characters given)");
}

} // namespace engram::crypto
