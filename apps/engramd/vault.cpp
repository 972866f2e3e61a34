#include "apps/engramd/vault.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "crypto/key_source.hpp"
#include "http/client.hpp"

namespace engram::engramd {

namespace {

struct endpoint {
  bool https = true;
  std::string host;
  uint16_t port = 8200;
  /// The path before /v1 (a Vault behind a prefix), without a trailing '/'.
  std::string prefix;
};

// An address of this machine: 127.0.0.0/8, ::1, or the name localhost
// (never a name that merely starts with "127.").
bool loopback(const std::string& host) {
  if (host == "localhost")
    return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1
         && IN6_IS_ADDR_LOOPBACK(&v6);
}

expected<endpoint> parse_url(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_argument,
                      "the Vault address '" + url + "' " + why);
  };
  endpoint out;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    out.https = false;
    rest = url.substr(7);
  } else {
    return bad("is not an https:// URL");
  }
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  out.prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.prefix.empty() && out.prefix.back() == '/')
    out.prefix.pop_back();
  if (authority.empty())
    return bad("names no host");
  std::string port_text;
  if (authority.front() == '[') { // [v6]:port
    auto close = authority.find(']');
    if (close == std::string::npos)
      return bad("has an unclosed '['");
    out.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return bad("has something after ']' that is not a port");
      port_text = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string::npos)
      port_text = authority.substr(colon + 1);
  }
  if (out.host.empty())
    return bad("names no host");
  if (!port_text.empty()) {
    if (port_text.size() > 5
        || port_text.find_first_not_of("0123456789") != std::string::npos)
      return bad("has a bad port");
    auto p = std::stoul(port_text);
    if (p == 0 || p > 65535)
      return bad("has a bad port");
    out.port = static_cast<uint16_t>(p);
  }
  // The master key never crosses a network in plaintext: HTTP only to an
  // agent on this machine.
  if (!out.https && !loopback(out.host))
    return bad("is plain HTTP beyond loopback (the master key would cross "
               "the network unencrypted): use https://");
  return out;
}

bool safe_segment_path(const std::string& p) {
  if (p.empty() || p.front() == '/' || p.back() == '/')
    return false;
  for (unsigned char c : p)
    if (c <= 0x20 || c == 0x7f || c == '?' || c == '#' || c == '%')
      return false;
  return p.find("..") == std::string::npos;
}

expected<std::string> read_token(const vault_source& src) {
  if (!src.token_file.empty()) {
    struct stat st {};
    if (::stat(src.token_file.c_str(), &st) != 0)
      return make_error(errc::invalid_argument, "the Vault token file '"
                                                    + src.token_file
                                                    + "' cannot be read");
    if ((st.st_mode & 077) != 0)
      return make_error(errc::invalid_argument,
                        "the Vault token file '" + src.token_file
                            + "' may be read by others (chmod 600 it)");
    std::ifstream in{src.token_file};
    std::string token{std::istreambuf_iterator<char>{in}, {}};
    while (!token.empty()
           && (token.back() == '\n' || token.back() == '\r'
               || token.back() == ' '))
      token.pop_back();
    if (token.empty())
      return make_error(errc::invalid_argument, "the Vault token file '"
                                                    + src.token_file
                                                    + "' is empty");
    return token;
  }
  auto* value = std::getenv(src.token_env.c_str());
  if (value == nullptr || *value == '\0')
    return make_error(errc::invalid_argument,
                      "no Vault token: $" + src.token_env + " is not set");
  return std::string{value};
}

} // namespace

expected<vault_source> parse_vault_spec(const std::string& spec) {
  if (spec.rfind("vault:", 0) != 0)
    return make_error(errc::invalid_argument, "not a vault: key source");
  auto rest = spec.substr(6);
  vault_source src;
  auto hash = rest.find('#');
  if (hash != std::string::npos) {
    src.field = rest.substr(hash + 1);
    rest.resize(hash);
  }
  auto v1 = rest.find("/v1/");
  auto data = rest.find("/data/", v1 == std::string::npos ? 0 : v1);
  if (v1 == std::string::npos || data == std::string::npos)
    return make_error(errc::invalid_argument,
                      "a vault: key source is vault:<address>/v1/<mount>/"
                      "data/<path>[#field] (KV version 2)");
  src.url = rest.substr(0, v1);
  src.mount = rest.substr(v1 + 4, data - v1 - 4);
  src.path = rest.substr(data + 6);
  if (auto* ca = std::getenv("VAULT_CACERT"))
    src.ca = ca;
  return src;
}

expected<crypto::key256> load_vault_key(const vault_source& src) {
  auto where = [&] {
    return "the master key from Vault at " + src.url + " (" + src.mount
           + "/data/" + src.path + ")";
  };
  auto fail = [&](errc code, const std::string& why) {
    return make_error(code, where() + ": " + why);
  };
  auto at = parse_url(src.url);
  if (!at)
    return at.error_value();
  if (!safe_segment_path(src.mount) || !safe_segment_path(src.path)
      || src.field.empty())
    return fail(errc::invalid_argument,
                "the mount, path or field is empty or holds characters a "
                "path may not");
  auto token = read_token(src);
  if (!token)
    return fail(errc::invalid_argument, token.error_value().message);
  http::client_config cfg;
  cfg.host = at->host;
  cfg.port = at->port;
  cfg.plaintext = !at->https;
  cfg.ca = src.ca;
  if (cfg.ca.empty())
    if (auto* ca = std::getenv("VAULT_CACERT"))
      cfg.ca = ca;
  cfg.timeout = src.timeout;
  auto target = at->prefix + "/v1/" + src.mount + "/data/" + src.path;
  auto answer
      = http::send(cfg, "GET", target, {},
                   {{"X-Vault-Token", *token}, {"Accept", "application/json"}});
  OPENSSL_cleanse(token->data(), token->size());
  if (!answer)
    return fail(errc::unavailable, answer.error_value().message);
  switch (answer->status) {
    case 200: break;
    case 403:
      return fail(errc::unauthenticated,
                  "Vault refused the token (403: permission denied)");
    case 404:
      return fail(errc::invalid_argument, "Vault holds no such secret (404)");
    case 503:
      return fail(errc::unavailable, "Vault is sealed or unavailable (503)");
    default:
      return fail(errc::unavailable,
                  "Vault answered " + std::to_string(answer->status));
  }
  auto doc = nlohmann::json::parse(answer->body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return fail(errc::parse_error, "Vault's answer is not JSON");
  auto data = doc.find("data");
  if (data == doc.end() || !data->is_object())
    return fail(errc::parse_error, "Vault's answer holds no data (is the "
                                   "mount a KV version 2 engine?)");
  auto inner = data->find("data");
  if (inner == data->end() || !inner->is_object())
    return fail(errc::parse_error, "Vault's answer holds no data (is the "
                                   "mount a KV version 2 engine?)");
  auto value = inner->find(src.field);
  if (value == inner->end() || !value->is_string())
    return fail(errc::invalid_argument,
                "the secret has no text field '" + src.field + "'");
  auto& text = value->get_ref<std::string&>();
  auto key = crypto::parse_key_text(text);
  // The key's text goes: from the answer and from the parsed document.
  OPENSSL_cleanse(text.data(), text.size());
  OPENSSL_cleanse(answer->body.data(), answer->body.size());
  if (!key)
    return fail(errc::invalid_argument,
                "field '" + src.field + "': " + key.error_value().message);
  return *key;
}

} // namespace engram::engramd
