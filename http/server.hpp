#pragma once

// An asynchronous HTTPS/1.1 server (Boost.Beast over Asio, OpenSSL): the
// client door of engramd. Hostile input is bounded before it costs
// anything: header and body sizes, a TLS handshake timeout, read and write
// timeouts, an idle timeout between requests, and a cap on connections —
// at the cap the oldest idle connection goes, so idle clients cannot lock
// active ones out. One thread serves every connection; a request's answer
// may come from any thread (a `responder` posts it back). No CAF here.

#include "core/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace engram::http {

/// A request, parsed and bounded.
struct request {
  /// "GET", "POST", ...
  std::string method;
  /// The path as sent, without the query ("/v1/agents/al%69ce").
  std::string path;
  /// Its segments, each percent-decoded ({"v1", "agents", "alice"}): a
  /// decoded '/' stays inside its segment.
  std::vector<std::string> segments;
  /// The query's parameters, percent-decoded (a repeated name keeps the
  /// last).
  std::map<std::string, std::string> query;
  /// Header fields, names in lower case.
  std::map<std::string, std::string> headers;
  std::string body;
  /// The client's address and port.
  std::string remote_addr;
  uint16_t remote_port = 0;
  /// The client's certificate (PEM) when it presented one in the TLS
  /// handshake: the handshake verified it against the CA (and the
  /// revocation list).
  std::string client_cert_pem;
  /// What the admission learned of the request (e.g. who sent it), for the
  /// handler.
  std::shared_ptr<const void> context;

  /// A header's value ("" when absent); `name` in lower case.
  std::string header(std::string_view name) const;
};

/// An answer.
struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// Answers one request, from any thread: either send() once, or
/// open_stream() and then push() events until close() (Server-Sent Events).
class responder {
public:
  virtual ~responder() = default;

  /// Sends the answer.
  virtual void send(response r) = 0;

  /// Starts a stream of Server-Sent Events (status 200, text/event-stream,
  /// chunked): the connection then carries only this stream.
  virtual void open_stream() = 0;

  /// Queues one event's text (e.g. "event: learned\ndata: {...}\n\n").
  /// False once the client left or the stream was closed: stop pushing.
  virtual bool push(std::string event) = 0;

  /// Ends the stream (or the connection, when nothing was sent).
  virtual void close() = 0;

  /// True once the client left or the stream was closed.
  virtual bool closed() const = 0;
};

/// Called for each request, on the server's thread: must not block; answers
/// through the responder, now or later.
using handler
    = std::function<void(request req, std::shared_ptr<responder> out)>;

/// Called when a request's header is in, before its body is read (on the
/// server's thread): an answer to send instead (the connection then
/// closes), or nothing to go on. It may leave a `context` for the handler.
/// So nothing unauthenticated is ever held in memory beyond a header.
using admission = std::function<std::optional<response>(request& head)>;

/// Where and how the server listens.
struct server_config {
  std::string host = "127.0.0.1";
  /// 0: any free port (see server::port()).
  uint16_t port = 0;
  /// Plaintext HTTP: only when asked for (tests of the insecure mode).
  bool plaintext = false;
  /// The server's certificate and key; the CA that client certificates
  /// must chain to (presenting one is optional: tokens authenticate too);
  /// a revocation list of that CA (optional).
  std::string certificate;
  std::string private_key;
  std::string ca;
  std::string crl;
  /// "1.3" (default) or "1.2"; TLS 1.3 suites (empty: OpenSSL's).
  std::string min_tls_version = "1.3";
  std::vector<std::string> cipher_suites;
  /// Bounds.
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  size_t max_connections = 16 * 1024;
  /// From one address (its newest beyond are refused): idle or slow
  /// connections from one place cannot take the whole cap.
  size_t max_connections_per_source = 4096;
  std::chrono::milliseconds handshake_timeout{5000};
  /// Between requests on a kept-alive connection.
  std::chrono::milliseconds idle_timeout{60000};
  /// To read a request once its first byte arrived, and to write an answer.
  std::chrono::milliseconds io_timeout{15000};
};

/// A running server; stops (closing every connection) when destroyed.
class server {
public:
  /// Listens and serves with `h`. Errors: the TLS files (unauthenticated /
  /// invalid_argument, naming the file), the address (unavailable).
  static expected<std::unique_ptr<server>> start(server_config cfg, handler h,
                                                 admission a = nullptr);

  virtual ~server() = default;

  /// The port listened on.
  virtual uint16_t port() const = 0;

  /// Connections open now.
  virtual size_t connections() const = 0;
};

/// Percent-decodes `text` ('+' becomes ' ' when `plus_is_space`, as in a
/// query). Error (parse_error) on a bad escape.
expected<std::string> percent_decode(std::string_view text,
                                     bool plus_is_space = false);

/// Percent-encodes `text` for a path segment or a query value.
std::string percent_encode(std::string_view text);

/// The reason phrase of a status ("Not Found").
std::string_view reason_of(int status);

} // namespace engram::http
