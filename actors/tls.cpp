#include "actors/tls.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/openssl/manager.hpp>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "pki/pki.hpp"

namespace engram::actors {

namespace {

error bad(const std::string& what) {
  return make_error(errc::invalid_argument, what);
}

} // namespace

const std::vector<std::string>& tls13_suites() {
  static const std::vector<std::string> suites{"TLS_AES_256_GCM_SHA384",
                                               "TLS_CHACHA20_POLY1305_SHA256",
                                               "TLS_AES_128_GCM_SHA256"};
  return suites;
}

expected<void> check_tls(const tls_config& tls, tls_role role,
                         const std::string& id) {
  if (tls.certificate.empty() || tls.private_key.empty() || tls.ca.empty())
    return bad("TLS needs a certificate, a private key and the cluster's CA "
               "certificate (missing: "
               + std::string{tls.certificate.empty() ? "certificate " : ""}
               + (tls.private_key.empty() ? "private_key " : "")
               + (tls.ca.empty() ? "ca" : "") + ")");
  if (tls.min_version != "1.3" && tls.min_version != "1.2")
    return bad("min_tls_version '" + tls.min_version
               + "' is not one of 1.3, 1.2");
  for (auto& s : tls.cipher_suites)
    if (std::find(tls13_suites().begin(), tls13_suites().end(), s)
        == tls13_suites().end())
      return bad("cipher suite '" + s
                 + "' is not a TLS 1.3 suite this build "
                   "offers (TLS_AES_256_GCM_SHA384, "
                   "TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256)");
  auto cert = pki::load_certificate(tls.certificate);
  if (!cert)
    return cert.error_value();
  auto key = pki::load_private_key(tls.private_key);
  if (!key)
    return key.error_value();
  auto ca = pki::load_certificate(tls.ca);
  if (!ca)
    return ca.error_value();
  if (!key->matches(*cert))
    return bad("the private key " + tls.private_key
               + " does not belong to the certificate " + tls.certificate);
  std::optional<pki::revocation_list> crl;
  if (!tls.crl.empty()) {
    auto c = pki::load_revocation_list(tls.crl);
    if (!c)
      return c.error_value();
    if (!c->issued_by(*ca))
      return bad("the revocation list " + tls.crl + " is not signed by the CA "
                 + tls.ca);
    crl = std::move(*c);
  }
  auto r = role == tls_role::node ? pki::role::node : pki::role::client;
  if (auto ok = pki::verify(*cert, *ca, crl ? &*crl : nullptr,
                            static_cast<int64_t>(std::time(nullptr)), r, id);
      !ok)
    return make_error(errc::unauthenticated,
                      tls.certificate + ": " + ok.error_value().message);
  return {};
}

expected<void> apply_tls_policy(const tls_config& tls) {
  static std::mutex mtx;
  std::lock_guard<std::mutex> guard{mtx};
  auto suites = tls.cipher_suites.empty() ? tls13_suites() : tls.cipher_suites;
  std::string list;
  for (auto& s : suites)
    list += (list.empty() ? "" : ":") + s;
  // OpenSSL's "system_default" section applies to every SSL_CTX created
  // afterwards, CAF's included.
  std::string conf = "openssl_conf = engram_init\n"
                     "[engram_init]\nssl_conf = engram_ssl\n"
                     "[engram_ssl]\nsystem_default = engram_tls\n"
                     "[engram_tls]\nMinProtocol = TLSv"
                     + tls.min_version + "\nCiphersuites = " + list
                     + "\nCipherString = ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:"
                       "!eNULL:!kRSA:@SECLEVEL=2\n"
                       // A peer gone without close_notify is a closed
                       // connection (see also the error queue below).
                       "Options = IgnoreUnexpectedEOF\n";
  // Loaded from memory (no file another user could prepare), after
  // OpenSSL's own configuration, which it then overrides.
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  auto* bio = BIO_new_mem_buf(conf.data(), static_cast<int>(conf.size()));
  auto* cnf = NCONF_new(nullptr);
  long bad_line = 0;
  bool loaded = bio != nullptr && cnf != nullptr
                && NCONF_load_bio(cnf, bio, &bad_line) > 0
                && CONF_modules_load(cnf, nullptr, 0) > 0;
  NCONF_free(cnf);
  BIO_free(bio);
  if (!loaded) {
    ERR_clear_error();
    return make_error(errc::invalid_argument,
                      "cannot set this process's TLS policy (OpenSSL "
                      "refused the configuration)");
  }
  return {};
}

std::string proof_message(const std::string& purpose,
                          const std::string& challenge,
                          const std::string& claimer,
                          const std::string& verifier,
                          const std::string& signing_key) {
  static constexpr char digits[] = "0123456789abcdef";
  auto hex = [](const std::string& bytes) {
    std::string out;
    for (unsigned char ch : bytes) {
      out += digits[ch >> 4];
      out += digits[ch & 0xf];
    }
    return out;
  };
  auto text = "engram/v1 " + purpose + "\n" + hex(challenge) + "\n" + claimer
              + "\n" + verifier;
  if (!signing_key.empty())
    text += "\nenvelopes " + hex(signing_key);
  return text;
}

namespace {

// The revocation list the handshakes of this process check (CAF's SSL
// contexts get only the CA file).
std::shared_ptr<const pki::revocation_list>& handshake_crl() {
  static auto* crl = new std::shared_ptr<const pki::revocation_list>;
  return *crl;
}

std::mutex& handshake_crl_mutex() {
  static auto* mtx = new std::mutex;
  return *mtx;
}

} // namespace

bool revoked_peer(void* ssl_ptr) {
  std::shared_ptr<const pki::revocation_list> crl;
  {
    std::lock_guard<std::mutex> lock{handshake_crl_mutex()};
    crl = handshake_crl();
  }
  if (!crl)
    return false;
  auto* peer = SSL_get1_peer_certificate(static_cast<SSL*>(ssl_ptr));
  if (peer == nullptr)
    return false;
  pki::certificate cert{peer}; // owns it now
  return crl->revokes(cert);
}

void configure_tls(caf::actor_system_config& cfg, const tls_config& tls) {
  if (!tls.crl.empty())
    if (auto crl = pki::load_revocation_list(tls.crl)) {
      std::lock_guard<std::mutex> lock{handshake_crl_mutex()};
      handshake_crl()
          = std::make_shared<const pki::revocation_list>(std::move(*crl));
    }
  cfg.load<caf::openssl::manager>();
  cfg.openssl_certificate = tls.certificate;
  cfg.openssl_key = tls.private_key;
  cfg.openssl_cafile = tls.ca;
}

} // namespace engram::actors

namespace engram::actors {

probe_result tls_probe(const std::string& host, uint16_t port,
                       const tls_config& tls,
                       std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + timeout;
  auto left = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - clock::now())
                  .count();
    return static_cast<int>(std::max<int64_t>(ms, 0));
  };
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &found) != 0)
    return probe_result::unreachable;
  int fd = -1;
  for (auto* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  ai->ai_protocol);
    if (fd < 0)
      continue;
    bool ok = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof(err);
      ok = ::poll(&p, 1, left()) == 1
           && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
           && err == 0;
    }
    if (!ok) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0)
    return probe_result::unreachable;
  bool done = false;
  auto* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  if (ctx != nullptr
      && SSL_CTX_use_certificate_file(ctx, tls.certificate.c_str(),
                                      SSL_FILETYPE_PEM)
             == 1
      && SSL_CTX_use_PrivateKey_file(ctx, tls.private_key.c_str(),
                                     SSL_FILETYPE_PEM)
             == 1
      && SSL_CTX_load_verify_locations(ctx, tls.ca.c_str(), nullptr) == 1) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    ssl = SSL_new(ctx);
  }
  if (ssl != nullptr && SSL_set_fd(ssl, fd) == 1) {
    for (;;) {
      auto r = SSL_connect(ssl);
      if (r == 1) {
        done = true;
        break;
      }
      auto err = SSL_get_error(ssl, r);
      short events = err == SSL_ERROR_WANT_READ    ? POLLIN
                     : err == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                   : 0;
      pollfd p{fd, events, 0};
      if (events == 0 || ::poll(&p, 1, left()) != 1)
        break;
    }
    if (done)
      SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  ::close(fd);
  return done ? probe_result::ok : probe_result::no_handshake;
}

} // namespace engram::actors

// -- connections before their handshake ------------------------------------
//
// CAF accepts every connection and keeps it until the peer closes it. With
// limits on, this process's `accept` (defined below, taking precedence over
// libc's for CAF's calls) counts each accepted connection as
// unauthenticated until its TLS handshake completes (SSL_accept), refuses
// one beyond the caps, and a reaper shuts down (CAF then closes) those
// whose handshake did not complete in time.

namespace {

struct pending_connection {
  std::string source;
  std::chrono::steady_clock::time_point since;
  bool shut = false;
};

struct connection_guard {
  std::mutex mtx;
  std::unordered_map<int, pending_connection> pending;
  std::unordered_map<std::string, size_t> per_source;
  engram::actors::connection_limits limits;
  std::function<void(const std::string&, const std::string&)> on_refused;
  std::chrono::steady_clock::time_point last_report{};
  std::atomic<bool> on{false};
  std::atomic<size_t> count{0};

  // Forgets `fd` (the caller holds the lock).
  void forget(int fd) {
    auto i = pending.find(fd);
    if (i == pending.end())
      return;
    if (auto j = per_source.find(i->second.source);
        j != per_source.end() && --j->second == 0)
      per_source.erase(j);
    pending.erase(i);
    count = pending.size();
  }

  // Notes a refusal to tell (at most one a second; the caller holds the
  // lock and calls deliver() once it released it).
  void report(const std::string& why, const std::string& source) {
    auto now = std::chrono::steady_clock::now();
    if (!on_refused || now - last_report < std::chrono::seconds{1})
      return;
    last_report = now;
    unreported.emplace_back(why, source);
  }

  // Tells what report() noted, without the lock (a log write may block).
  void deliver() {
    std::vector<std::pair<std::string, std::string>> xs;
    std::function<void(const std::string&, const std::string&)> f;
    {
      std::lock_guard<std::mutex> lock{mtx};
      xs.swap(unreported);
      f = on_refused;
    }
    if (f)
      for (auto& [why, source] : xs)
        f(why, source);
  }

  std::vector<std::pair<std::string, std::string>> unreported;
};

connection_guard& guard() {
  static auto* g = new connection_guard; // lives as long as the process
  return *g;
}

// The peers of the live TLS connections (by descriptor): who their
// certificate names and their address as CAF reports it.
struct authenticated_peer {
  std::string addr;
  uint16_t port = 0;
  engram::actors::tls_peer_identity identity;
};

struct authenticated_peers {
  std::mutex mtx;
  std::unordered_map<int, authenticated_peer> by_fd;
  std::atomic<size_t> count{0};
};

authenticated_peers& tls_peers() {
  static auto* p = new authenticated_peers; // lives as long as the process
  return *p;
}

std::string source_of(const sockaddr_storage& ss);

// Records the peer of `ssl`, whose handshake just completed.
void remember_peer(SSL* ssl) {
  auto fd = SSL_get_fd(ssl);
  auto* x509 = SSL_get1_peer_certificate(ssl);
  if (fd < 0 || x509 == nullptr)
    return;
  engram::pki::certificate cert{x509}; // owns it now
  sockaddr_storage ss{};
  socklen_t sl = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0)
    return;
  authenticated_peer peer;
  peer.addr = source_of(ss);
  if (ss.ss_family == AF_INET)
    peer.port = ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  else if (ss.ss_family == AF_INET6)
    peer.port = ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  peer.identity.role = engram::pki::to_string(cert.role());
  peer.identity.id = cert.id();
  auto& p = tls_peers();
  std::lock_guard<std::mutex> lock{p.mtx};
  p.by_fd[fd] = std::move(peer);
  p.count = p.by_fd.size();
}

// The local port of the mesh (0: none set): connections accepted on it
// must present a node certificate.
std::atomic<uint16_t>& mesh_port() {
  static std::atomic<uint16_t> port{0};
  return port;
}

// The local port of socket `fd` (0 when it has none).
uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t sl = sizeof(ss);
  if (fd < 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0)
    return 0;
  if (ss.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  return 0;
}

bool mesh_admits(SSL* ssl) {
  auto port = mesh_port().load();
  if (port == 0)
    return true;
  // CAF's sessions read their sockets (SSL_set_fd); other doors (the
  // client API: Asio's memory BIOs) have no descriptor here.
  auto fd = SSL_get_fd(ssl);
  if (fd < 0 || local_port(fd) != port)
    return true; // another door: its own checks
  auto* x509 = SSL_get1_peer_certificate(ssl);
  if (x509 == nullptr)
    return false;
  engram::pki::certificate cert{x509};
  return cert.role() == engram::pki::role::node;
}

// In a node (dial_nodes_only), every connection CAF dials is to a node:
// the server's certificate must be a node's.
std::atomic<bool>& nodes_only() {
  static std::atomic<bool> on{false};
  return on;
}

bool dials_a_node(SSL* ssl) {
  // CAF's sessions read their sockets (SSL_set_fd); other clients in the
  // process (Asio's memory BIOs) have no descriptor here: their own checks.
  if (!nodes_only().load() || SSL_get_fd(ssl) < 0)
    return true;
  auto* x509 = SSL_get1_peer_certificate(ssl);
  if (x509 == nullptr)
    return false;
  engram::pki::certificate cert{x509};
  return cert.role() == engram::pki::role::node;
}

void forget_peer(int fd) {
  auto& p = tls_peers();
  if (p.count == 0)
    return;
  std::lock_guard<std::mutex> lock{p.mtx};
  p.by_fd.erase(fd);
  p.count = p.by_fd.size();
}

std::string source_of(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr,
                buf, sizeof(buf));
  else if (ss.ss_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr,
                buf, sizeof(buf));
  return buf;
}

} // namespace

namespace engram::actors {

std::optional<tls_peer_identity> tls_peer_at(const std::string& addr,
                                             uint16_t port) {
  auto& p = tls_peers();
  std::lock_guard<std::mutex> lock{p.mtx};
  std::optional<tls_peer_identity> found;
  for (auto& [fd, peer] : p.by_fd) {
    if (peer.addr != addr || peer.port != port)
      continue;
    if (found
        && (found->role != peer.identity.role || found->id != peer.identity.id))
      return std::nullopt; // connections to one address disagree
    found = peer.identity;
  }
  return found;
}

std::string not_node_connection(const std::string& addr, uint16_t port,
                                const std::string& node_id) {
  auto who = tls_peer_at(addr, port);
  if (who && who->role == pki::to_string(pki::role::node) && who->id == node_id)
    return {};
  return "the proof came over a connection ("
         + (addr.empty() ? std::string{"not direct"}
                         : addr + ":" + std::to_string(port))
         + ") whose certificate "
         + (who ? "names " + who->role + " '" + who->id + "'"
                : std::string{"is not known"})
         + ", not node '" + node_id + "'";
}

void mesh_accepts_nodes_only(uint16_t port) { mesh_port() = port; }

void dial_nodes_only() { nodes_only() = true; }

void limit_connections(
    const connection_limits& limits,
    std::function<void(const std::string&, const std::string&)> on_refused) {
  auto& g = guard();
  {
    std::lock_guard<std::mutex> lock{g.mtx};
    g.limits = limits;
    g.on_refused = std::move(on_refused);
  }
  if (g.on.exchange(true))
    return;
  std::thread{[] {
    auto& g = guard();
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
      {
        std::lock_guard<std::mutex> lock{g.mtx};
        auto now = std::chrono::steady_clock::now();
        for (auto& [fd, c] : g.pending)
          if (!c.shut && now - c.since > g.limits.handshake_timeout) {
            ::shutdown(fd, SHUT_RDWR); // CAF sees the end and closes it
            c.shut = true;
            g.report("no TLS handshake within "
                         + std::to_string(g.limits.handshake_timeout.count())
                         + " ms",
                     c.source);
          }
      }
      g.deliver();
    }
  }}.detach();
}

} // namespace engram::actors

// -- OpenSSL's error queue and CAF 0.17 -----------------------------------
//
// OpenSSL requires the calling thread's error queue to be empty before an
// SSL I/O call: SSL_get_error reports any error left in it. CAF 0.17's
// openssl module serves every connection from one multiplexer thread and
// does not clear the queue after a connection fails (SSL_ERROR_SYSCALL):
// when one peer dies, the next read of another, healthy connection fails
// and CAF drops it (every node lost its link to a third whenever a second
// was killed). These definitions in the executable take precedence over
// libssl's for CAF's calls: they clear the queue, then call libssl's.

namespace {

template<class F>
F real(const char* name) {
  auto f = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
  if (f == nullptr)
    std::abort(); // libssl without SSL_read: nothing can work
  return f;
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto f = real<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return f(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto f = real<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return f(ssl, buf, num);
}

// CAF 0.17 runs a TLS client handshake on a blocking socket on its
// multiplexer thread: a peer that accepts the connection but never answers
// (a frozen process), or answers a byte at a time, would stop every
// connection of this process. The handshake is bounded in total (tls_probe
// keeps it from starting against a silent peer in the first place): it is
// driven on the socket made non-blocking until a deadline, past which it
// fails as a timed-out system call, and CAF drops that one connection.
constexpr int client_handshake_bound_ms = 3000;

int SSL_connect(SSL* ssl) {
  static auto f = real<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  auto fd = SSL_get_fd(ssl);
  auto flags = fd >= 0 ? ::fcntl(fd, F_GETFL, 0) : -1;
  bool blocking = flags >= 0 && (flags & O_NONBLOCK) == 0;
  int result = -1;
  if (!blocking) {
    result = f(ssl);
  } else {
    if (::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      // Not bounded if started: not started.
      ERR_raise(ERR_LIB_SYS, errno);
      return -1;
    }
    auto deadline = std::chrono::steady_clock::now()
                    + std::chrono::milliseconds{client_handshake_bound_ms};
    for (;;) {
      ERR_clear_error();
      result = f(ssl);
      if (result == 1)
        break;
      auto err = SSL_get_error(ssl, result);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        break; // failed: its reason is in the error queue
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      pollfd p{
          fd, static_cast<short>(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT),
          0};
      int ready = left <= 0 ? 0 : ::poll(&p, 1, static_cast<int>(left));
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready <= 0) {
        ::fcntl(fd, F_SETFL, flags);
        ERR_clear_error();
        ERR_raise(ERR_LIB_SYS, ETIMEDOUT);
        return -1;
      }
    }
    ::fcntl(fd, F_SETFL, flags);
  }
  if (result == 1 && engram::actors::revoked_peer(ssl)) {
    ERR_raise(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
    result = -1;
  }
  if (result == 1 && !dials_a_node(ssl)) {
    // A node dials nodes only: a client's certificate at a peer's address
    // does not get a connection to this node's actors.
    ERR_raise(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
    result = -1;
  }
  if (result == 1)
    remember_peer(ssl);
  return result;
}

int SSL_accept(SSL* ssl) {
  static auto f = real<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  auto result = f(ssl);
  auto& g = guard();
  if (result == 1 && engram::actors::revoked_peer(ssl)) {
    // A certificate the CA revoked: the handshake fails after all.
    ERR_raise(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
    result = -1;
  }
  std::string refusal;
  if (result == 1 && !mesh_admits(ssl)) {
    // The mesh's port takes node certificates only: a client's opens the
    // client API, never the node's actors.
    refusal = "a client certificate opens the client API, not the mesh";
    ERR_raise(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
    result = -1;
  }
  if (result == 1)
    remember_peer(ssl);
  if (result == 1 && g.count > 0) { // authenticated: no longer counted
    std::lock_guard<std::mutex> lock{g.mtx};
    g.forget(SSL_get_fd(ssl));
  } else if (result <= 0 && g.on
             && SSL_get_error(ssl, result) == SSL_ERROR_SSL) {
    // Refused in the handshake: said why (the queue is only peeked at:
    // CAF reads it next).
    char why[256] = "the TLS handshake failed";
    if (!refusal.empty())
      std::snprintf(why, sizeof(why), "%s", refusal.c_str());
    else if (auto e = ERR_peek_error(); e != 0)
      ERR_error_string_n(e, why, sizeof(why));
    sockaddr_storage ss{};
    socklen_t sl = sizeof(ss);
    std::string source = "?";
    if (::getpeername(SSL_get_fd(ssl), reinterpret_cast<sockaddr*>(&ss), &sl)
        == 0)
      source = source_of(ss);
    {
      std::lock_guard<std::mutex> lock{g.mtx};
      g.report(std::string{"TLS handshake refused: "} + why, source);
    }
    g.deliver();
  }
  return result;
}

int accept(int fd, sockaddr* addr, socklen_t* len) {
  static auto f = real<int (*)(int, sockaddr*, socklen_t*)>("accept");
  auto& g = guard();
  if (!g.on)
    return f(fd, addr, len);
  sockaddr_storage ss{};
  socklen_t sl = sizeof(ss);
  auto conn = f(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
  if (conn < 0)
    return conn;
  if (addr != nullptr && len != nullptr) {
    std::memcpy(addr, &ss, std::min<size_t>(*len, sl));
    *len = sl;
  }
  // Only the mesh's connections are counted here: another door (the
  // client API's server) bounds its own.
  if (auto mesh = mesh_port().load(); mesh != 0 && local_port(fd) != mesh)
    return conn;
  auto source = source_of(ss);
  bool refused = false;
  {
    std::lock_guard<std::mutex> lock{g.mtx};
    auto& from = g.per_source[source];
    if (from >= g.limits.max_unauthenticated_per_source) {
      // One address holds its share already: its newest goes.
      g.report("too many connections without a TLS handshake from one "
               "address ("
                   + std::to_string(from) + ")",
               source);
      refused = true;
    } else {
      if (g.pending.size() >= g.limits.max_unauthenticated) {
        // Full: the oldest goes (shut down: CAF then closes it), so that
        // idle connections cannot keep new ones out.
        auto oldest = g.pending.end();
        for (auto i = g.pending.begin(); i != g.pending.end(); ++i)
          if (!i->second.shut
              && (oldest == g.pending.end()
                  || i->second.since < oldest->second.since))
            oldest = i;
        if (oldest != g.pending.end()) {
          ::shutdown(oldest->first, SHUT_RDWR);
          oldest->second.shut = true;
          g.report("too many connections without a TLS handshake ("
                       + std::to_string(g.pending.size())
                       + "): the oldest dropped",
                   oldest->second.source);
        }
      }
      ++from;
      g.pending[conn]
          = pending_connection{source, std::chrono::steady_clock::now()};
      g.count = g.pending.size();
    }
  }
  if (refused) {
    static auto real_close = real<int (*)(int)>("close");
    real_close(conn);
    g.deliver();
    errno = EAGAIN;
    return -1;
  }
  g.deliver();
  return conn;
}

int close(int fd) {
  static auto f = real<int (*)(int)>("close");
  forget_peer(fd);
  auto& g = guard();
  if (g.count > 0) {
    std::lock_guard<std::mutex> lock{g.mtx};
    g.forget(fd);
  }
  return f(fd);
}

} // extern "C"
