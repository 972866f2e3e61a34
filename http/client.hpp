#pragma once

// A blocking HTTPS/1.1 client (Beast over Asio and OpenSSL) for the CLI
// and tests: one request per connection, every step bounded by a timeout,
// the server's certificate checked against the CA and the host name (or
// IP address) connected to. Errors say what failed in words a user
// understands ("cannot connect to 127.0.0.1:7421: Connection refused").

#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "http/server.hpp"

namespace engram::http {

struct client_config {
  std::string host = "127.0.0.1";
  uint16_t port = 7421;
  /// Plaintext HTTP (a node run with --insecure).
  bool plaintext = false;
  /// The CA the server's certificate must chain to.
  std::string ca;
  /// A client certificate and its key (optional).
  std::string certificate;
  std::string private_key;
  /// Each request, connecting included, gets at most this long.
  std::chrono::milliseconds timeout{5000};
};

/// Sends one request; the response whatever its status. Errors: the
/// connection (unavailable: refused, unreachable, reset; unauthenticated:
/// the TLS handshake failed, e.g. the server's certificate; timeout).
expected<response>
send(const client_config& cfg, const std::string& method,
     const std::string& target, const std::string& body = {},
     const std::vector<std::pair<std::string, std::string>>& headers = {});

/// A kept-alive connection: many requests over one TLS session (what a
/// client that talks to a node all day does). Not thread-safe: one per
/// thread.
class connection {
public:
  connection(connection&&) noexcept;
  connection& operator=(connection&&) noexcept;
  ~connection();

  /// Connects (and completes the TLS handshake).
  static expected<connection> open(const client_config& cfg);

  /// One request and its answer; errors as send()'s (the connection is
  /// then closed: open another).
  expected<response>
  request(const std::string& method, const std::string& target,
          const std::string& body = {},
          const std::vector<std::pair<std::string, std::string>>& headers = {});

  struct impl;

private:
  explicit connection(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace engram::http
