#include "http/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <array>
#include <atomic>
#include <cctype>
#include <deque>
#include <list>
#include <optional>
#include <thread>
#include <type_traits>
#include <unordered_map>

namespace engram::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// -- pure helpers
// ---------------------------------------------------------------

std::string request::header(std::string_view name) const {
  auto i = headers.find(std::string{name});
  return i == headers.end() ? std::string{} : i->second;
}

expected<std::string> percent_decode(std::string_view text,
                                     bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size())
        return make_error(errc::parse_error,
                          "a '%' escape is cut short in the URL");
      auto hi = hex(text[i + 1]);
      auto lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0)
        return make_error(errc::parse_error,
                          "a '%' escape in the URL is not two hex digits");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string percent_encode(std::string_view text) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

std::string_view reason_of(int status) {
  auto r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return {r.data(), r.size()};
}

namespace {

// Splits a target into the request's path, segments and query.
expected<void> parse_target(std::string_view target, request& req) {
  auto q = target.find('?');
  auto path = target.substr(0, q);
  if (path.empty() || path.front() != '/')
    return make_error(errc::parse_error,
                      "the request target is not an absolute path");
  req.path = std::string{path};
  size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos)
      end = path.size();
    auto seg = percent_decode(path.substr(start, end - start));
    if (!seg)
      return seg.error_value();
    if (!seg->empty())
      req.segments.push_back(std::move(*seg));
    start = end + 1;
  }
  if (q == std::string_view::npos)
    return {};
  auto query = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= query.size()) {
    auto amp = query.find('&', pos);
    if (amp == std::string_view::npos)
      amp = query.size();
    auto pair = query.substr(pos, amp - pos);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      auto name = percent_decode(pair.substr(0, eq), true);
      auto value
          = percent_decode(eq == std::string_view::npos ? std::string_view{}
                                                        : pair.substr(eq + 1),
                           true);
      if (!name)
        return name.error_value();
      if (!value)
        return value.error_value();
      req.query[*name] = std::move(*value);
    }
    pos = amp + 1;
  }
  return {};
}

std::string json_error(std::string_view code, std::string_view message) {
  // Codes and messages here are ASCII without quotes or backslashes.
  return "{\"code\":\"" + std::string{code} + "\",\"message\":\""
         + std::string{message} + "\"}";
}

class connection_base;

// What the server, its connections and responders share: it lives while
// any of them does (a responder may outlive the server).
struct core {
  net::io_context ioc{1};
  server_config cfg;
  handler on_request;
  std::optional<ssl::context> tls;
  // Connection objects alive, and connections not yet closed (the cap).
  std::atomic<size_t> count{0};
  std::atomic<size_t> open{0};
  admission admit;
  std::atomic<bool> stopping{false};
  // On the server's thread only:
  std::list<std::weak_ptr<connection_base>> all;
  std::list<std::weak_ptr<connection_base>> idle;
  std::unordered_map<std::string, size_t> per_source;
};

class responder_impl;

class connection_base : public std::enable_shared_from_this<connection_base> {
public:
  explicit connection_base(std::shared_ptr<core> c) : core_(std::move(c)) {
    ++core_->count;
  }

  virtual ~connection_base() {
    --core_->count;
    // (the lists hold weak pointers: expired ones are swept lazily)
  }

  /// Closes the connection now (server's thread).
  virtual void evict() = 0;

  virtual void send(response r) = 0;
  virtual void open_stream() = 0;
  virtual void push(std::string event) = 0;
  virtual void end() = 0;

  void set_idle(bool on) {
    if (on == idle_)
      return;
    idle_ = on;
    if (on) {
      core_->idle.push_back(weak_from_this());
      idle_pos_ = std::prev(core_->idle.end());
    } else {
      core_->idle.erase(idle_pos_);
    }
  }

  void enlist() {
    core_->all.push_back(weak_from_this());
    all_pos_ = std::prev(core_->all.end());
    listed_ = true;
    ++core_->open;
  }

  void delist() {
    set_idle(false);
    if (listed_) {
      core_->all.erase(all_pos_);
      listed_ = false;
      --core_->open;
      if (auto i = core_->per_source.find(source_);
          i != core_->per_source.end() && --i->second == 0)
        core_->per_source.erase(i);
    }
  }

protected:
  std::shared_ptr<core> core_;
  bool idle_ = false;
  bool listed_ = false;
  std::string source_;
  std::list<std::weak_ptr<connection_base>>::iterator idle_pos_;
  std::list<std::weak_ptr<connection_base>>::iterator all_pos_;
};

// Hands an answer to the connection's thread; tells whether the client is
// still there. It keeps the connection until it answered (a responder
// dropped without an answer answers 500).
class responder_impl final : public responder {
public:
  responder_impl(std::shared_ptr<core> c, std::shared_ptr<connection_base> conn)
      : core_(std::move(c)), conn_(std::move(conn)) {}

  ~responder_impl() override {
    if (!answered_)
      post([](connection_base& c) {
        c.send({500,
                "application/json",
                {},
                json_error("internal", "the request got no answer")});
      });
  }

  void send(response r) override {
    if (answered_.exchange(true))
      return;
    post([r = std::move(r)](connection_base& c) mutable {
      c.send(std::move(r));
    });
  }

  void open_stream() override {
    if (answered_.exchange(true))
      return;
    post([](connection_base& c) {
      c.open_stream();
    });
  }

  bool push(std::string event) override {
    if (closed_)
      return false;
    post([e = std::move(event)](connection_base& c) mutable {
      c.push(std::move(e));
    });
    return true;
  }

  void close() override {
    if (closed_.exchange(true))
      return;
    post([](connection_base& c) {
      c.end();
    });
  }

  bool closed() const override { return closed_; }

  /// The client left (server's thread).
  void client_left() { closed_ = true; }

private:
  template<class F>
  void post(F f) {
    if (core_->stopping) {
      closed_ = true;
      return;
    }
    net::post(core_->ioc, [conn = conn_, f = std::move(f)]() mutable {
      f(*conn);
    });
  }

  std::shared_ptr<core> core_;
  std::shared_ptr<connection_base> conn_;
  std::atomic<bool> answered_{false};
  std::atomic<bool> closed_{false};
};

template<class Stream>
class connection final : public connection_base {
public:
  static constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

  connection(std::shared_ptr<core> c, tcp::socket&& s)
      : connection_base(std::move(c)),
        stream_(make_stream(std::move(s), *core_)) {}

  ~connection() override {
    if (auto r = responder_.lock())
      r->client_left();
  }

  void start(std::string source) {
    source_ = std::move(source);
    enlist();
    ++core_->per_source[source_];
    auto& cfg = core_->cfg;
    if constexpr (is_tls) {
      // Evictable while it handshakes, as when it waits for a request.
      set_idle(true);
      tcp_layer().expires_after(cfg.handshake_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = shared()](beast::error_code ec) {
                                self->on_handshake(ec);
                              });
    } else {
      read_next();
    }
  }

  void evict() override {
    beast::error_code ec;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_layer().socket().close(ec);
    delist();
  }

  void send(response r) override {
    if (!tcp_layer().socket().is_open())
      return;
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(r.status), version_);
    res->set(bhttp::field::server, "engramd");
    res->set(bhttp::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers)
      res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_ && !core_->stopping);
    res->prepare_payload();
    tcp_layer().expires_after(core_->cfg.io_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared(), res](beast::error_code ec, size_t) {
                         self->on_written(ec, !res->keep_alive());
                       });
  }

  void open_stream() override {
    if (!tcp_layer().socket().is_open())
      return;
    streaming_ = true;
    header_ = std::make_unique<bhttp::response<bhttp::empty_body>>(
        bhttp::status::ok, version_);
    header_->set(bhttp::field::server, "engramd");
    header_->set(bhttp::field::content_type, "text/event-stream");
    header_->set(bhttp::field::cache_control, "no-cache");
    header_->chunked(true);
    serializer_
        = std::make_unique<bhttp::response_serializer<bhttp::empty_body>>(
            *header_);
    writing_ = true;
    tcp_layer().expires_after(core_->cfg.io_timeout);
    bhttp::async_write_header(stream_, *serializer_,
                              [self = shared()](beast::error_code ec, size_t) {
                                self->on_stream_written(ec);
                              });
    // Notices the client leaving: it sends nothing more on this connection.
    watch_client();
  }

  void push(std::string event) override {
    if (!streaming_ || ended_ || !tcp_layer().socket().is_open())
      return;
    // A client that does not read: at most this much waits for it.
    constexpr size_t max_queued = 4 * 1024 * 1024;
    queued_bytes_ += event.size();
    if (queued_bytes_ > max_queued) {
      evict();
      return;
    }
    queue_.push_back(std::move(event));
    flush();
  }

  void end() override {
    if (!streaming_) {
      evict();
      return;
    }
    ended_ = true;
    flush();
  }

private:
  static Stream make_stream(tcp::socket&& s, core& c) {
    if constexpr (is_tls)
      return Stream{std::move(s), *c.tls};
    else
      return Stream{std::move(s)};
  }

  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }

  std::shared_ptr<connection> shared() {
    return std::static_pointer_cast<connection>(shared_from_this());
  }

  void on_handshake(beast::error_code ec) {
    set_idle(false);
    if (ec) {
      evict();
      return;
    }
    if constexpr (is_tls) {
      if (auto* x = SSL_get1_peer_certificate(stream_.native_handle())) {
        if (auto* bio = BIO_new(BIO_s_mem())) {
          if (PEM_write_bio_X509(bio, x) == 1) {
            char* data = nullptr;
            auto n = BIO_get_mem_data(bio, &data);
            if (n > 0)
              client_cert_.assign(data, static_cast<size_t>(n));
          }
          BIO_free(bio);
        }
        X509_free(x);
      }
    }
    read_next();
  }

  void read_next() {
    if (core_->stopping) {
      evict();
      return;
    }
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(core_->cfg.max_header_bytes));
    parser_->body_limit(core_->cfg.max_body_bytes);
    set_idle(true);
    tcp_layer().expires_after(core_->cfg.idle_timeout);
    // The header first: the request is admitted (authenticated, within
    // its rate) before its body is read and held.
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared()](beast::error_code ec, size_t) {
                               self->on_header(ec);
                             });
  }

  void on_header(beast::error_code ec) {
    set_idle(false);
    if (ec)
      return on_read(ec);
    request head;
    if (auto ok = fill(head); !ok)
      return refuse(400, "bad_request", ok.error_value().message);
    if (core_->admit) {
      std::optional<response> refusal;
      try {
        refusal = core_->admit(head);
      } catch (const std::exception&) {
        refusal = response{500,
                           "application/json",
                           {},
                           json_error("internal", "the request failed")};
      }
      if (refusal) {
        // Without a body the connection can go on (a client over its rate
        // keeps its session); with one, it closes after the answer (what
        // the client still sends is read and dropped for a while).
        if (!parser_->is_done()) {
          keep_alive_ = false;
          linger_ = true;
        }
        return send(std::move(*refusal));
      }
    }
    head_ = std::move(head);
    // The body, within the I/O timeout.
    tcp_layer().expires_after(core_->cfg.io_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared()](beast::error_code ec, size_t) {
                        self->on_read(ec);
                      });
  }

  // The request's line, header fields, address and certificate.
  expected<void> fill(request& req) {
    auto& msg = parser_->get();
    version_ = msg.version();
    keep_alive_ = msg.keep_alive();
    req.method = std::string{msg.method_string()};
    auto target = msg.target();
    if (auto ok = parse_target({target.data(), target.size()}, req); !ok)
      return ok;
    for (auto& f : msg) {
      std::string name{f.name_string()};
      for (auto& ch : name)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      req.headers[name] = std::string{f.value()};
    }
    beast::error_code ignored;
    auto ep = tcp_layer().socket().remote_endpoint(ignored);
    req.remote_addr = ep.address().to_string();
    req.remote_port = ep.port();
    req.client_cert_pem = client_cert_;
    return {};
  }

  void on_read(beast::error_code ec) {
    set_idle(false);
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof
        || ec == beast::error::timeout || ec == net::error::operation_aborted
        || ec == net::error::connection_reset) {
      evict();
      return;
    }
    if (ec == bhttp::error::body_limit)
      return refuse(413, "payload_too_large",
                    "the request body exceeds the limit of "
                        + std::to_string(core_->cfg.max_body_bytes) + " bytes");
    if (ec == bhttp::error::header_limit)
      return refuse(431, "headers_too_large",
                    "the request header exceeds the limit of "
                        + std::to_string(core_->cfg.max_header_bytes)
                        + " bytes");
    if (ec) {
      // A parse error (Beast's category) gets an answer; anything else
      // (the connection failed) does not.
      if (ec.category()
          == bhttp::make_error_code(bhttp::error::bad_method).category())
        return refuse(400, "bad_request",
                      "malformed HTTP request (" + ec.message() + ")");
      evict();
      return;
    }
    auto req = std::move(head_);
    req.body = std::move(parser_->get().body());
    auto out = std::make_shared<responder_impl>(core_, shared_from_this());
    responder_ = out;
    // The handler must not throw; if it does, the client gets a 500.
    try {
      core_->on_request(std::move(req), out);
    } catch (const std::exception&) {
      out->send({500,
                 "application/json",
                 {},
                 json_error("internal", "the request failed")});
    }
  }

  // Answers a request that cannot be served, then closes.
  void refuse(int status, std::string_view code, const std::string& message) {
    keep_alive_ = false;
    // The client may still be sending what was refused (a body too
    // large): what it sends is read and dropped for a while, so that it
    // gets to read the answer instead of a reset connection.
    linger_ = true;
    send({status, "application/json", {}, json_error(code, message)});
  }

  void on_written(beast::error_code ec, bool close) {
    if (!ec && close && linger_) {
      linger_ = false;
      tcp_layer().expires_after(std::chrono::seconds{1});
      drain(8 * 1024 * 1024);
      return;
    }
    if (ec || close) {
      evict();
      return;
    }
    read_next();
  }

  // Reads and drops up to `left` bytes, then closes.
  void drain(size_t left) {
    if (!drained_)
      drained_ = std::make_unique<std::array<char, 16 * 1024>>();
    stream_.async_read_some(
        net::buffer(*drained_),
        [self = shared(), left](beast::error_code ec, size_t n) {
          if (ec || n >= left) {
            self->evict();
            return;
          }
          self->drain(left - n);
        });
  }

  void watch_client() {
    tcp_layer().expires_never();
    stream_.async_read_some(net::buffer(sink_),
                            [self = shared()](beast::error_code, size_t) {
                              // Anything (bytes, end, error): the stream
                              // is over.
                              if (auto r = self->responder_.lock())
                                r->client_left();
                              self->evict();
                            });
  }

  void flush() {
    if (writing_)
      return;
    if (!queue_.empty()) {
      writing_ = true;
      tcp_layer().expires_after(core_->cfg.io_timeout);
      net::async_write(stream_, bhttp::make_chunk(net::buffer(queue_.front())),
                       [self = shared()](beast::error_code ec, size_t) {
                         self->queued_bytes_ -= self->queue_.front().size();
                         self->queue_.pop_front();
                         self->on_stream_written(ec);
                       });
      return;
    }
    if (ended_ && !last_sent_) {
      last_sent_ = true;
      writing_ = true;
      tcp_layer().expires_after(core_->cfg.io_timeout);
      net::async_write(stream_, bhttp::make_chunk_last(),
                       [self = shared()](beast::error_code, size_t) {
                         self->evict();
                       });
    }
  }

  void on_stream_written(beast::error_code ec) {
    writing_ = false;
    if (ec) {
      if (auto r = responder_.lock())
        r->client_left();
      evict();
      return;
    }
    flush();
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string client_cert_;
  request head_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  std::weak_ptr<responder_impl> responder_;
  // Streams:
  bool streaming_ = false;
  bool writing_ = false;
  bool ended_ = false;
  bool last_sent_ = false;
  size_t queued_bytes_ = 0;
  std::deque<std::string> queue_;
  std::unique_ptr<bhttp::response<bhttp::empty_body>> header_;
  std::unique_ptr<bhttp::response_serializer<bhttp::empty_body>> serializer_;
  std::array<char, 512> sink_{};
  bool linger_ = false;
  std::unique_ptr<std::array<char, 16 * 1024>> drained_;
};

// The address a connection counts against: IPv4 (and IPv4-mapped) as it
// is, IPv6 by its /64 (one host holds a whole /64).
std::string source_of(const net::ip::address& a) {
  if (a.is_v4())
    return a.to_string();
  auto v6 = a.to_v6();
  if (v6.is_v4_mapped())
    return net::ip::make_address_v4(net::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  for (size_t i = 8; i < bytes.size(); ++i)
    bytes[i] = 0;
  return net::ip::address_v6{bytes}.to_string() + "/64";
}

class server_impl final : public server {
public:
  explicit server_impl(std::shared_ptr<core> c)
      : core_(std::move(c)), acceptor_(core_->ioc), retry_(core_->ioc),
        work_(net::make_work_guard(core_->ioc)) {}

  ~server_impl() override {
    net::post(core_->ioc, [this] {
      core_->stopping = true;
      beast::error_code ec;
      acceptor_.close(ec);
      retry_.cancel();
      auto all = core_->all; // evict() edits the list
      for (auto& w : all)
        if (auto c = w.lock())
          c->evict();
    });
    work_.reset();
    if (thread_.joinable())
      thread_.join();
  }

  expected<void> listen() {
    auto& cfg = core_->cfg;
    beast::error_code ec;
    auto addr = net::ip::make_address(cfg.host, ec);
    if (ec)
      return make_error(errc::invalid_argument, "the API address '" + cfg.host
                                                    + "' is not an IP address");
    tcp::endpoint ep{addr, cfg.port};
    acceptor_.open(ep.protocol(), ec);
    if (!ec)
      acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec)
      acceptor_.bind(ep, ec);
    if (!ec)
      acceptor_.listen(1024, ec);
    if (ec)
      return make_error(errc::unavailable, "cannot listen on " + cfg.host + ":"
                                               + std::to_string(cfg.port) + ": "
                                               + ec.message());
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread{[this] {
      for (;;) {
        try {
          core_->ioc.run();
          return;
        } catch (const std::exception&) {
          // a handler threw: keep serving the others
        }
      }
    }};
    return {};
  }

  uint16_t port() const override { return port_; }

  size_t connections() const override { return core_->open; }

private:
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted || core_->stopping)
        return;
      if (ec) {
        // Out of descriptors, or the like: try again shortly, not in a
        // busy loop.
        retry_.expires_after(std::chrono::milliseconds{50});
        retry_.async_wait([this](beast::error_code e) {
          if (!e)
            accept();
        });
        return;
      }
      admit(std::move(s));
      accept();
    });
  }

  void admit(tcp::socket s) {
    // One address holds at most its share: beyond, the newest is refused.
    beast::error_code ec;
    auto source = source_of(s.remote_endpoint(ec).address());
    if (auto i = core_->per_source.find(source);
        i != core_->per_source.end()
        && i->second >= core_->cfg.max_connections_per_source) {
      s.close(ec);
      return;
    }
    // At the cap the oldest idle connection (waiting for a request or
    // still in its handshake) goes; with none idle the new one is refused.
    while (core_->open >= core_->cfg.max_connections && !core_->idle.empty()) {
      auto oldest = core_->idle.front().lock();
      if (oldest)
        oldest->evict();
      else
        core_->idle.pop_front();
    }
    if (core_->open >= core_->cfg.max_connections) {
      beast::error_code ec;
      s.close(ec);
      return;
    }
    s.set_option(tcp::no_delay(true), ec);
    if (core_->tls) {
      auto c
          = std::make_shared<connection<beast::ssl_stream<beast::tcp_stream>>>(
              core_, std::move(s));
      c->start(std::move(source));
    } else {
      auto c = std::make_shared<connection<beast::tcp_stream>>(core_,
                                                               std::move(s));
      c->start(std::move(source));
    }
  }

  std::shared_ptr<core> core_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::thread thread_;
  uint16_t port_ = 0;
};

expected<void> configure_tls(ssl::context& ctx, const server_config& cfg) {
  auto* n = ctx.native_handle();
  SSL_CTX_set_min_proto_version(
      n, cfg.min_tls_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION);
  if (!cfg.cipher_suites.empty()) {
    std::string list;
    for (auto& s : cfg.cipher_suites)
      list += (list.empty() ? "" : ":") + s;
    if (SSL_CTX_set_ciphersuites(n, list.c_str()) != 1)
      return make_error(errc::invalid_argument,
                        "the API's cipher suites are not TLS 1.3 suites: "
                            + list);
  }
  SSL_CTX_set_mode(n, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char sid[] = "engram-api";
  SSL_CTX_set_session_id_context(n, sid, sizeof(sid) - 1);
  beast::error_code ec;
  ctx.use_certificate_chain_file(cfg.certificate, ec);
  if (ec)
    return make_error(errc::unauthenticated, "cannot use the certificate '"
                                                 + cfg.certificate
                                                 + "': " + ec.message());
  ctx.use_private_key_file(cfg.private_key, ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(n) != 1)
    return make_error(errc::unauthenticated,
                      "cannot use the key '" + cfg.private_key
                          + "' (unreadable, or not the certificate's key)");
  ctx.load_verify_file(cfg.ca, ec);
  if (ec)
    return make_error(errc::unauthenticated,
                      "cannot use the CA '" + cfg.ca + "': " + ec.message());
  if (!cfg.crl.empty()) {
    auto* bio = BIO_new_file(cfg.crl.c_str(), "r");
    X509_CRL* crl
        = bio ? PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr) : nullptr;
    if (bio)
      BIO_free(bio);
    if (crl == nullptr)
      return make_error(errc::unauthenticated,
                        "cannot read the revocation list '" + cfg.crl + "'");
    auto* store = SSL_CTX_get_cert_store(n);
    X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  // A client certificate is optional (tokens authenticate too), but one
  // that is presented must chain to the CA.
  ctx.set_verify_mode(ssl::verify_peer);
  return {};
}

} // namespace

expected<std::unique_ptr<server>> server::start(server_config cfg, handler h,
                                                admission a) {
  auto c = std::make_shared<core>();
  c->cfg = std::move(cfg);
  c->on_request = std::move(h);
  c->admit = std::move(a);
  if (!c->cfg.plaintext) {
    c->tls.emplace(ssl::context::tls_server);
    if (auto ok = configure_tls(*c->tls, c->cfg); !ok)
      return ok.error_value();
  }
  auto s = std::make_unique<server_impl>(c);
  if (auto ok = s->listen(); !ok)
    return ok.error_value();
  return std::unique_ptr<server>{std::move(s)};
}

} // namespace engram::http
