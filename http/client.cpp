#include "http/client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <optional>

namespace engram::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

namespace {

std::string where(const client_config& cfg) {
  auto host = cfg.host.find(':') != std::string::npos ? "[" + cfg.host + "]"
                                                      : cfg.host;
  return host + ":" + std::to_string(cfg.port);
}

error failed(const client_config& cfg, const char* step,
             const beast::error_code& ec) {
  if (ec == beast::error::timeout || ec == net::error::timed_out)
    return make_error(errc::timeout, std::string{step} + " " + where(cfg)
                                         + ": no answer within "
                                         + std::to_string(cfg.timeout.count())
                                         + " ms");
  if (ec.category() == net::error::get_ssl_category()
      || ec.category() == ssl::error::get_stream_category())
    return make_error(errc::unauthenticated, std::string{"TLS with "}
                                                 + where(cfg)
                                                 + " failed: " + ec.message());
  return make_error(errc::unavailable,
                    std::string{step} + " " + where(cfg) + ": " + ec.message());
}

// One exchange on a connected stream (TLS or not).
template<class Stream>
expected<response> exchange(const client_config& cfg, Stream& stream,
                            net::io_context& ioc,
                            bhttp::request<bhttp::string_body>& req) {
  beast::error_code ec;
  bool done = false;
  bhttp::async_write(stream, req, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  ioc.restart();
  ioc.run();
  if (!done || ec)
    return failed(cfg, "cannot send to", ec);
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  done = false;
  bhttp::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  ioc.restart();
  ioc.run();
  if (!done || ec)
    return failed(cfg, "no answer from", ec);
  auto& msg = parser.get();
  response out;
  out.status = static_cast<int>(msg.result_int());
  out.content_type = std::string{msg[bhttp::field::content_type]};
  out.body = std::move(msg.body());
  for (auto& f : msg)
    out.headers.emplace_back(std::string{f.name_string()},
                             std::string{f.value()});
  return out;
}

} // namespace

namespace {

bhttp::request<bhttp::string_body>
make_request(const client_config& cfg, const std::string& method,
             const std::string& target, const std::string& body,
             const std::vector<std::pair<std::string, std::string>>& headers,
             bool keep_alive) {
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(bhttp::field::host, cfg.host);
  req.set(bhttp::field::user_agent, "engram");
  req.keep_alive(keep_alive);
  for (auto& [k, v] : headers)
    req.set(k, v);
  if (!body.empty())
    req.set(bhttp::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  return req;
}

using tls_stream = beast::ssl_stream<beast::tcp_stream>;

// A connected stream: plaintext (tcp) or TLS (tls).
struct stream_pair {
  std::unique_ptr<ssl::context> ctx;
  std::unique_ptr<beast::tcp_stream> tcp;
  std::unique_ptr<tls_stream> tls;
};

expected<void> open_stream(const client_config& cfg, net::io_context& ioc,
                           stream_pair& out);

} // namespace

expected<response>
send(const client_config& cfg, const std::string& method,
     const std::string& target, const std::string& body,
     const std::vector<std::pair<std::string, std::string>>& headers) {
  net::io_context ioc;
  auto req = make_request(cfg, method, target, body, headers, false);
  stream_pair sp;
  if (auto ok = open_stream(cfg, ioc, sp); !ok)
    return ok.error_value();
  if (sp.tls)
    return exchange(cfg, *sp.tls, ioc, req);
  return exchange(cfg, *sp.tcp, ioc, req);
}

namespace {

expected<void> open_stream(const client_config& cfg, net::io_context& ioc,
                           stream_pair& out) {
  // Resolve and connect.
  tcp::resolver resolver{ioc};
  beast::error_code ec;
  auto found = resolver.resolve(cfg.host, std::to_string(cfg.port), ec);
  if (ec)
    return make_error(errc::unavailable,
                      "cannot resolve " + cfg.host + ": " + ec.message());
  out.tcp = std::make_unique<beast::tcp_stream>(ioc);
  auto& tcp_stream = *out.tcp;
  tcp_stream.expires_after(cfg.timeout);
  bool done = false;
  tcp_stream.async_connect(found,
                           [&](beast::error_code e, const tcp::endpoint&) {
                             ec = e;
                             done = true;
                           });
  ioc.run();
  if (!done || ec)
    return failed(cfg, "cannot connect to", ec);
  tcp_stream.socket().set_option(tcp::no_delay(true), ec);
  if (cfg.plaintext)
    return {};
  // TLS 1.3: the server's certificate against the CA and the name.
  out.ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  auto& ctx = *out.ctx;
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  ctx.set_verify_mode(ssl::verify_peer);
  if (cfg.ca.empty())
    ctx.set_default_verify_paths(ec);
  else
    ctx.load_verify_file(cfg.ca, ec);
  if (ec)
    return make_error(errc::invalid_argument,
                      "cannot use the CA '" + cfg.ca + "': " + ec.message());
  if (!cfg.certificate.empty()) {
    ctx.use_certificate_chain_file(cfg.certificate, ec);
    if (!ec)
      ctx.use_private_key_file(cfg.private_key, ssl::context::pem, ec);
    if (ec)
      return make_error(errc::invalid_argument,
                        "cannot use the client certificate '" + cfg.certificate
                            + "' and key '" + cfg.private_key
                            + "': " + ec.message());
  }
  out.tls = std::make_unique<tls_stream>(std::move(tcp_stream), ctx);
  out.tcp.reset();
  auto& stream = *out.tls;
  auto* native = stream.native_handle();
  auto* param = SSL_get0_param(native);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, cfg.host.c_str()) != 1) {
    // A name, not an address: checked as one, and sent as SNI.
    X509_VERIFY_PARAM_set1_host(param, cfg.host.c_str(), 0);
    SSL_set_tlsext_host_name(native, cfg.host.c_str());
  }
  done = false;
  stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  ioc.restart();
  ioc.run();
  if (!done || ec)
    return failed(cfg, "cannot connect to", ec);
  return {};
}

} // namespace

// -- kept-alive connections
// -----------------------------------------------------

struct connection::impl {
  client_config cfg;
  net::io_context ioc;
  stream_pair sp;
};

connection::connection(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;
connection::~connection() = default;

expected<connection> connection::open(const client_config& cfg) {
  auto p = std::make_unique<impl>();
  p->cfg = cfg;
  if (auto ok = open_stream(p->cfg, p->ioc, p->sp); !ok)
    return ok.error_value();
  return connection{std::move(p)};
}

expected<response> connection::request(
    const std::string& method, const std::string& target,
    const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  auto& p = *impl_;
  auto req = make_request(p.cfg, method, target, body, headers, true);
  if (p.sp.tls) {
    beast::get_lowest_layer(*p.sp.tls).expires_after(p.cfg.timeout);
    return exchange(p.cfg, *p.sp.tls, p.ioc, req);
  }
  if (!p.sp.tcp)
    return make_error(errc::unavailable, "the connection is closed");
  p.sp.tcp->expires_after(p.cfg.timeout);
  return exchange(p.cfg, *p.sp.tcp, p.ioc, req);
}

} // namespace engram::http
