#include "actors/endpoint.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>

namespace engram::actors {

// -- endpoints --------------------------------------------------------------

std::string endpoint::to_string() const {
  if (host.find(':') != std::string::npos)
    return '[' + host + "]:" + std::to_string(port);
  return host + ':' + std::to_string(port);
}

expected<endpoint> parse_endpoint(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_argument,
                      "bad address '" + std::string{text} + "': " + why);
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size()
        || text[close + 1] != ':')
      return bad("expected [IPv6]:port");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return bad("expected host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return bad("IPv6 addresses go in brackets: [::1]:port");
  }
  if (host.empty())
    return bad("no host");
  unsigned value = 0;
  auto [end, ec]
      = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size()
      || value > 65535)
    return bad("the port must be a number from 0 to 65535");
  return endpoint{std::string{host}, static_cast<uint16_t>(value)};
}

expected<std::vector<endpoint>> resolve_seed(std::string_view text) {
  constexpr std::string_view dns = "dns:";
  if (text.substr(0, dns.size()) != dns) {
    auto ep = parse_endpoint(text);
    if (!ep)
      return ep.error_value();
    return std::vector<endpoint>{*ep};
  }
  auto named = parse_endpoint(text.substr(dns.size()));
  if (!named)
    return named.error_value();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (auto rc = ::getaddrinfo(named->host.c_str(), nullptr, &hints, &found);
      rc != 0)
    return make_error(errc::invalid_argument, "cannot resolve '" + named->host
                                                  + "': " + ::gai_strerror(rc));
  std::set<std::string> addresses;
  for (auto* p = found; p != nullptr; p = p->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* raw
        = p->ai_family == AF_INET
              ? static_cast<const void*>(
                  &reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr)
              : static_cast<const void*>(
                  &reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr);
    if (::inet_ntop(p->ai_family, raw, buf, sizeof(buf)) != nullptr)
      addresses.insert(buf);
  }
  ::freeaddrinfo(found);
  std::vector<endpoint> result;
  for (auto& a : addresses)
    result.push_back(endpoint{a, named->port});
  return result;
}

expected<void> check_listen(const endpoint& at) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  auto port = std::to_string(at.port);
  if (auto rc = ::getaddrinfo(at.host.c_str(), port.c_str(), &hints, &found);
      rc != 0)
    return make_error(errc::invalid_argument, "cannot resolve '" + at.host
                                                  + "': " + ::gai_strerror(rc));
  std::string why = "no address";
  bool ok = false;
  for (auto* ai = found; ai != nullptr && !ok; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                      ai->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      ok = true;
    else
      why = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (!ok)
    return make_error(errc::unavailable,
                      "cannot listen on " + at.to_string() + ": " + why);
  return {};
}

} // namespace engram::actors
