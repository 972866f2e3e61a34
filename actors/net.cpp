#include "actors/net.hpp"

#include "actors/internal/context.hpp"
#include "actors/tls.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/after.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <set>
#include <thread>

namespace engram::actors {

// -- CAF's network layer ------------------------------------------------------

void configure_network(caf::actor_system_config& cfg, milliseconds heartbeat,
                       milliseconds connection_timeout) {
  // A write to a connection the peer closed fails with EPIPE instead of
  // killing the process (OpenSSL writes to sockets without MSG_NOSIGNAL).
  ::signal(SIGPIPE, SIG_IGN);
  cfg.load<caf::io::middleman>();
  cfg.set("middleman.heartbeat-interval", caf::timespan{heartbeat});
  cfg.set("middleman.connection-timeout", caf::timespan{connection_timeout});
  // Deserialize incoming messages on the multiplexer thread instead of
  // handing them to a separate worker pool: one thread hop less per
  // message.
  cfg.set("middleman.workers", size_t{0});
  // An idle scheduler thread polls a little, then (by default) sleeps
  // 50 µs between 500 more polls before it waits on its condition variable:
  // a request arriving in that phase waits out the sleep (and the kernel's
  // timer slack). Skipping the phase, an idle thread waits on the condition
  // variable right away and the enqueue wakes it: lower latency, less CPU.
  cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
}

expected<uint16_t> publish(caf::actor_system& sys, const node& n,
                           const endpoint& at) {
  // With CAF's openssl module loaded (configure_tls), only mutual TLS.
  auto port
      = sys.has_openssl_manager()
            ? caf::openssl::publish(n.handle(), at.port, at.host.c_str(), true)
            : sys.middleman().publish(n.handle(), at.port, at.host.c_str(),
                                      true);
  if (!port)
    return make_error(errc::unavailable, "cannot listen on " + at.to_string()
                                             + ": " + sys.render(port.error()));
  return *port;
}

namespace {

// One connection attempt through the middleman (CAF's openssl one when
// loaded), bounded by `timeout`: CAF's remote_actor waits forever for a
// peer that accepts the connection but never finishes the TLS handshake
// (a frozen process).
caf::expected<node_actor>
connect_once(caf::actor_system& sys, const endpoint& at, milliseconds timeout) {
  if (sys.has_openssl_manager()) {
    auto& cfg = sys.config();
    tls_config tls;
    tls.certificate = cfg.openssl_certificate;
    tls.private_key = cfg.openssl_key;
    tls.ca = cfg.openssl_cafile;
    switch (tls_probe(at.host, at.port, tls,
                      std::min(timeout, milliseconds{1500}))) {
      case probe_result::ok: break;
      case probe_result::unreachable: return caf::sec::cannot_connect_to_node;
      case probe_result::no_handshake: return caf::sec::connection_timeout;
    }
  }
  auto mm = sys.has_openssl_manager() ? sys.openssl_manager().actor_handle()
                                      : sys.middleman().actor_handle();
  caf::scoped_actor self{sys};
  caf::expected<node_actor> result = caf::sec::connection_timeout;
  self->request(mm, timeout, caf::connect_atom::value, at.host, at.port)
      .receive(
          [&](const caf::node_id&, caf::strong_actor_ptr& ptr,
              const std::set<std::string>& ifs) {
            if (!ptr) {
              result = caf::sec::no_actor_published_at_port;
              return;
            }
            // The interface it was published with must be a node's.
            auto expected_ifs
                = sys.message_types(caf::detail::type_list<node_actor>{});
            if (!std::includes(ifs.begin(), ifs.end(), expected_ifs.begin(),
                               expected_ifs.end())) {
              result = caf::sec::unexpected_actor_messaging_interface;
              return;
            }
            result = caf::actor_cast<node_actor>(std::move(ptr));
          },
          [&](caf::error& e) {
            result = e == caf::sec::request_timeout
                         ? caf::error{caf::sec::connection_timeout}
                         : std::move(e);
          });
  return result;
}

} // namespace

expected<remote_node> connect_remote(caf::actor_system& sys, const endpoint& at,
                                     milliseconds timeout) {
  // A node that is busy, or just started, may not finish the handshake
  // within the connection timeout (BASP then drops the connection), and a
  // node that resumes with several handshakes queued may answer over a
  // connection this side already gave up: both are tried again until
  // `timeout`, each status request bounded by what is left.
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + timeout;
  auto left = [&] {
    return std::chrono::duration_cast<milliseconds>(deadline - clock::now());
  };
  constexpr milliseconds attempt{1500};
  bool handshake_timed_out = false;
  for (;;) {
    auto hdl = connect_once(sys, at, std::max(left(), milliseconds{100}));
    if (!hdl) {
      if (hdl.error() != caf::sec::connection_timeout)
        return make_error(errc::unavailable, "cannot reach a node at "
                                                 + at.to_string() + ": "
                                                 + sys.render(hdl.error()));
      handshake_timed_out = true;
    } else {
      caf::scoped_actor self{sys};
      auto wait = std::max(std::min(left(), attempt), milliseconds{100});
      expected<remote_node> result = make_error(errc::timeout, "no answer");
      self->request(*hdl, wait, status_atom::value)
          .receive(
              [&](node_status& st) {
                result = remote_node{st.node_id, *hdl};
              },
              [&](caf::error& e) {
                result = from_caf(e);
              });
      if (result || result.error_value().code != errc::timeout)
        return result;
    }
    if (left() <= milliseconds{0})
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  // Connected, but the node did not answer in time (it is frozen or
  // overloaded): no answer, which is not "unreachable".
  return make_error(errc::timeout,
                    "the node at " + at.to_string()
                        + (handshake_timed_out
                               ? " accepted the connection but did not answer"
                               : " did not answer")
                        + " within " + std::to_string(timeout.count()) + " ms");
}

namespace {

// Whether a TCP connection to `at` opens within `timeout`. CAF's
// remote_actor connects blocking, without a timeout: a peer behind a lost
// link would hold the keeper for the kernel's SYN retries (a minute or
// more) and delay the reconnect long after the link is back.
bool reachable(const endpoint& at, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  auto port = std::to_string(at.port);
  if (::getaddrinfo(at.host.c_str(), port.c_str(), &hints, &found) != 0)
    return false;
  bool ok = false;
  for (auto* ai = found; ai != nullptr && !ok; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family,
                      ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                      ai->ai_protocol);
    if (fd < 0)
      continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
        int err = 0;
        socklen_t len = sizeof(err);
        ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
             && err == 0;
      }
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return ok;
}

} // namespace

namespace {

// A request from the keeper's scoped actor, bounded.
template<class R, class... Ts>
expected<R> ask(caf::scoped_actor& self, const node_actor& hdl, Ts... xs) {
  expected<R> result = make_error(errc::timeout, "no answer");
  self->request(hdl, std::chrono::seconds{2}, xs...)
      .receive(
          [&](R& r) {
            result = std::move(r);
          },
          [&](caf::error& e) {
            result = from_caf(e);
          });
  return result;
}

// The remote node proves it is `claimed`: it signs a fresh challenge, and
// the key it signs its envelopes with (`signing_key`, required when
// `need_key`), with the key of a certificate of this node's CA naming it.
// The reason it did not (empty: it did).
std::string prove_peer(const node_identity& id, const std::string& claimed,
                       const node_actor& hdl, bool need_key,
                       std::string& signing_key) {
  caf::scoped_actor self{hdl.home_system()};
  auto challenge = pki::random_bytes(32);
  std::string cert_pem;
  std::string sig;
  std::string why;
  self->request(hdl, std::chrono::seconds{2}, prove_atom::value, challenge)
      .receive(
          [&](std::string& c, std::string& s, std::string& k) {
            cert_pem = std::move(c);
            sig = std::move(s);
            signing_key = std::move(k);
          },
          [&](caf::error& e) {
            why = "no proof of identity: " + from_caf(e).message;
          });
  if (!why.empty())
    return why;
  auto cert = pki::certificate::from_pem(cert_pem, "the peer's certificate");
  if (!cert)
    return cert.error_value().message;
  auto now = static_cast<int64_t>(std::time(nullptr));
  if (auto ok = pki::verify(*cert, id.ca, id.crl ? &*id.crl : nullptr, now,
                            pki::role::node, claimed);
      !ok)
    return ok.error_value().message;
  if (need_key && signing_key.size() != crypto::ed25519_public_bytes)
    return "no envelope-signing key (every envelope must be signed)";
  if (!pki::verify_signature(
          *cert,
          proof_message("node-proof", challenge, claimed, {}, signing_key),
          sig))
    return "the signature does not verify with the certificate of " + claimed;
  // Bound to the connection: its TLS certificate names `claimed` too (a
  // node with a certificate of its own cannot pass on another's proof).
  std::string addr;
  uint16_t port = 0;
  self->request(hdl.home_system().middleman().actor_handle(),
                std::chrono::seconds{2}, caf::get_atom::value, hdl.node())
      .receive(
          [&](caf::node_id&, std::string& a, uint16_t p) {
            addr = std::move(a);
            port = p;
          },
          [&](caf::error& e) {
            why = "cannot tell which connection the proof came over: "
                  + from_caf(e).message;
          });
  if (!why.empty())
    return why;
  return not_node_connection(addr, port, claimed);
}

} // namespace

// -- peer keeper
// ----------------------------------------------------------------

peer_keeper::peer_keeper(caf::actor_system& sys, node& n,
                         std::vector<endpoint> seeds, event_handler on_event,
                         milliseconds retry)
    : sys_(sys), node_(n), seeds_(std::move(seeds)),
      on_event_(std::move(on_event)), retry_(retry) {
  thread_ = std::thread{[this] {
    run();
  }};
}

peer_keeper::~peer_keeper() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
}

void peer_keeper::run() {
  caf::scoped_actor self{sys_};
  // Per seed: the address of the remote node while connected.
  std::vector<caf::actor_addr> up(seeds_.size());
  std::vector<bool> reported_failure(seeds_.size(), false);
  // Seeds that turned out to be this node itself (a shared seed list): not
  // dialled again.
  std::vector<bool> is_self(seeds_.size(), false);
  auto event = [&](const char* what, size_t i, const std::string& detail) {
    if (on_event_)
      on_event_(what, seeds_[i].to_string(), detail);
  };
  while (!stop_) {
    for (size_t i = 0; i < seeds_.size() && !stop_; ++i) {
      if (up[i] || is_self[i])
        continue;
      expected<remote_node> remote = make_error(
          errc::unavailable, "cannot reach a node at " + seeds_[i].to_string()
                                 + ": no TCP connection in time");
      if (reachable(seeds_[i], retry_))
        remote = connect_remote(sys_, seeds_[i], std::chrono::seconds{2});
      if (!remote) {
        if (!reported_failure[i])
          event("connect_failed", i, remote.error_value().to_string());
        reported_failure[i] = true;
        continue;
      }
      reported_failure[i] = false;
      if (remote->id == node_.id()) {
        is_self[i] = true;
        event("seed_is_self", i, remote->id);
        continue;
      }
      // With TLS, each proves its node id to the other (a certificate of
      // the cluster's CA naming it, and a signature of a fresh challenge)
      // before either takes the other as a peer.
      if (auto& id = node_.context()->identity) {
        auto& signer = node_.context()->signer;
        std::string their_key;
        if (auto why = prove_peer(*id, remote->id, remote->hdl,
                                  signer != nullptr, their_key);
            !why.empty()) {
          if (!reported_failure[i])
            event("peer_refused", i, why);
          reported_failure[i] = true;
          continue;
        }
        auto nonce = ask<std::string>(self, remote->hdl, challenge_atom::value);
        auto my_key = signer ? signer->public_key() : std::string{};
        auto sig = nonce ? id->key.sign(proof_message(
                       "peer", *nonce, node_.id(), remote->id, my_key))
                         : expected<std::string>{nonce.error_value()};
        if (!sig) {
          if (!reported_failure[i])
            event("connect_failed", i, sig.error_value().to_string());
          reported_failure[i] = true;
          continue;
        }
        node_.add_peer(remote->id, caf::actor_cast<peer_actor>(remote->hdl),
                       their_key);
        // (sent, not anonymous: the node checks that the connection its
        // sender's process speaks over is authenticated as this node)
        self->send(remote->hdl, peer_atom::value, node_.id(),
                   caf::actor_cast<peer_actor>(node_.handle()), id->cert_pem,
                   *nonce, *sig, my_key);
      } else {
        // Both nodes become peers of each other: we add it, and introduce
        // ourselves (it may not have us among its seeds).
        node_.add_peer(remote->id, caf::actor_cast<peer_actor>(remote->hdl));
        caf::anon_send(remote->hdl, peer_atom::value, node_.id(),
                       caf::actor_cast<peer_actor>(node_.handle()));
      }
      self->monitor(remote->hdl);
      up[i] = remote->hdl.address();
      ++connected_;
      event("peer_up", i, remote->id);
    }
    // Wait for a lost connection (BASP heartbeats detect frozen peers),
    // or retry the seeds not connected.
    self->receive(
        [&](caf::down_msg& down) {
          for (size_t i = 0; i < up.size(); ++i)
            if (up[i] == down.source) {
              up[i] = nullptr;
              --connected_;
              event("peer_down", i, sys_.render(down.reason));
            }
        },
        caf::after(retry_) >> [] {});
  }
}

} // namespace engram::actors
