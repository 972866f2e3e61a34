// engramd's client API settings (part of load_file() and validate()).

#include "apps/engramd/config_api.hpp"

#include <arpa/inet.h>

#include <filesystem>

namespace engram::engramd {

namespace {

error bad(const std::string& path, const std::string& key,
          const std::string& why) {
  return make_error(errc::invalid_argument,
                    "config '" + path + "', key '" + key + "': " + why);
}

// A path named by the config: relative ones are relative to its file.
std::string beside(const std::string& config, const std::string& file) {
  if (file.empty() || file.front() == '/')
    return file;
  auto dir = std::filesystem::path{config}.parent_path();
  return dir.empty() ? file : (dir / file).string();
}

template<class T>
expected<T> as(const toml::value& v, const std::string& path,
               const std::string& key) {
  try {
    return toml::get<T>(v);
  } catch (const std::exception&) {
    return bad(path, key, "wrong type");
  }
}

using lists = std::map<std::string, std::vector<std::string>>;

expected<lists> lists_of(const toml::value& v, const std::string& path,
                         const std::string& key) {
  if (!v.is_table())
    return bad(path, key, "must be a table of lists of strings");
  lists out;
  for (auto& [name, x] : v.as_table()) {
    auto xs = as<std::vector<std::string>>(x, path, key + "." + name);
    if (!xs)
      return xs.error_value();
    out[name] = std::move(*xs);
  }
  return out;
}

bool loopback(const std::string& h) {
  in_addr v4{};
  return h == "::1" || h == "localhost"
         || (::inet_pton(AF_INET, h.c_str(), &v4) == 1
             && (ntohl(v4.s_addr) >> 24) == 127);
}

expected<std::vector<api::permission>>
permissions(const std::vector<std::string>& xs, const std::string& key) {
  std::vector<api::permission> out;
  for (auto& x : xs) {
    auto p = api::permission::parse(x);
    if (!p)
      return make_error(errc::invalid_argument,
                        key + ": " + p.error_value().message);
    out.push_back(*p);
  }
  return out;
}

} // namespace

expected<void> read_api_table(const toml::value& v, const std::string& path,
                              api_settings& a) {
  if (!v.is_table())
    return bad(path, "api", "must be a table");
  for (auto& [k, x] : v.as_table()) {
    auto key = "api." + k;
    auto set = [&](auto& out) -> expected<void> {
      auto got = as<std::decay_t<decltype(out)>>(x, path, key);
      if (!got)
        return got.error_value();
      out = std::move(*got);
      return {};
    };
    expected<void> ok{};
    if (k == "enabled")
      ok = set(a.enabled);
    else if (k == "listen")
      ok = set(a.listen);
    else if (k == "port_file")
      ok = set(a.port_file);
    else if (k == "max_connections")
      ok = set(a.max_connections);
    else if (k == "max_connections_per_source")
      ok = set(a.max_connections_per_source);
    else if (k == "max_body_bytes")
      ok = set(a.max_body_bytes);
    else if (k == "idle_timeout_ms")
      ok = set(a.idle_timeout_ms);
    else if (k == "rate_per_agent") {
      if (x.is_integer())
        a.rate_per_agent = static_cast<double>(x.as_integer());
      else
        ok = set(a.rate_per_agent);
    } else
      return make_error(errc::invalid_argument,
                        "unknown key '" + key + "' in config '" + path + "'");
    if (!ok)
      return ok;
  }
  return {};
}

expected<bool> read_client_auth(const std::string& k, const toml::value& v,
                                const std::string& path, api_settings& a) {
  auto key = "distribution.auth." + k;
  if (k == "token_ttl") {
    auto x = as<std::string>(v, path, key);
    if (!x)
      return x.error_value();
    a.token_ttl = *x;
  } else if (k == "shared_key") {
    auto x = as<std::string>(v, path, key);
    if (!x)
      return x.error_value();
    a.shared_key = beside(path, *x);
  } else if (k == "revoked_tokens") {
    auto x = as<std::string>(v, path, key);
    if (!x)
      return x.error_value();
    a.revoked_tokens = beside(path, *x);
  } else if (k == "client_certificates") {
    auto x = as<bool>(v, path, key);
    if (!x)
      return x.error_value();
    a.client_certificates = *x;
  } else if (k == "oauth") {
    if (!v.is_table())
      return bad(path, key, "must be a table { jwks, issuer, audience }");
    for (auto& [f, x] : v.as_table()) {
      auto fk = key + "." + f;
      auto t = as<std::string>(x, path, fk);
      if (!t)
        return t.error_value();
      if (f == "jwks")
        a.jwks = beside(path, *t);
      else if (f == "issuer")
        a.issuer = *t;
      else if (f == "audience")
        a.audience = *t;
      else if (f == "agent_claim")
        a.agent_claim = *t;
      else
        return make_error(errc::invalid_argument,
                          "unknown key '" + fk + "' in config '" + path + "'");
    }
  } else {
    return false;
  }
  return true;
}

expected<void> read_access_control(const toml::value& v,
                                   const std::string& path, api_settings& a) {
  const std::string prefix = "distribution.access_control";
  if (!v.is_table())
    return bad(path, prefix, "must be a table");
  for (auto& [k, x] : v.as_table()) {
    auto key = prefix + "." + k;
    if (k == "default_policy") {
      auto p = as<std::string>(x, path, key);
      if (!p)
        return p.error_value();
      a.default_policy = *p;
    } else if (k == "model") {
      // One of: rbac = { roles, role_assignments }, abac = { policies },
      // capability = { capabilities } (a table naming one model, as in the
      // spec's AccessModel::RBAC { ... }).
      if (!x.is_table() || x.as_table().size() != 1)
        return bad(path, key,
                   "must name one model: { rbac = {...} }, { abac = {...} } "
                   "or { capability = {...} }");
      auto& [model, body] = *x.as_table().begin();
      auto mk = key + "." + model;
      if (model != "rbac" && model != "abac" && model != "capability")
        return bad(path, key,
                   "'" + model + "' is not a model (rbac, abac, capability)");
      if (!body.is_table())
        return bad(path, mk, "must be a table");
      a.model = model;
      for (auto& [f, y] : body.as_table()) {
        auto fk = mk + "." + f;
        if (model == "rbac" && (f == "roles" || f == "role_assignments")) {
          auto l = lists_of(y, path, fk);
          if (!l)
            return l.error_value();
          (f == "roles" ? a.roles : a.assignments) = std::move(*l);
        } else if (model == "capability" && f == "capabilities") {
          auto l = lists_of(y, path, fk);
          if (!l)
            return l.error_value();
          a.capabilities = std::move(*l);
        } else if (model == "abac" && f == "policies") {
          auto file = as<std::string>(y, path, fk);
          if (!file)
            return file.error_value();
          a.abac_policies = beside(path, *file);
        } else {
          return make_error(errc::invalid_argument, "unknown key '" + fk
                                                        + "' in config '" + path
                                                        + "'");
        }
      }
    } else {
      return make_error(errc::invalid_argument,
                        "unknown key '" + key + "' in config '" + path + "'");
    }
  }
  return {};
}

expected<void> check_api(const settings& s, daemon_config& v) {
  auto& a = s.api;
  auto fail = [](const std::string& key, const std::string& why) {
    return make_error(errc::invalid_argument, key + ": " + why);
  };
  v.api_enabled = a.enabled;
  if (!a.enabled)
    return {};
  auto listen = a.listen;
  if (listen.empty()) {
    auto port
        = v.listen.port == 0 || v.listen.port == 65535 ? 0 : v.listen.port + 1;
    auto host = v.listen.host.find(':') != std::string::npos
                    ? "[" + v.listen.host + "]"
                    : v.listen.host;
    listen = host + ":" + std::to_string(port);
  }
  auto at = actors::parse_endpoint(listen);
  if (!at)
    return fail("api.listen", at.error_value().message);
  v.api_listen = *at;
  if (at->port != 0 && at->port == v.listen.port && at->host == v.listen.host)
    return fail("api.listen", "the node listens on " + listen + " already");
  v.api_port_file = a.port_file;
  if (v.insecure && !loopback(at->host) && !s.insecure_beyond_loopback)
    return fail("api.listen",
                listen
                    + ": a plaintext API (--insecure) is refused on an "
                      "address beyond loopback: tokens and memories would "
                      "cross the network in the clear");
  auto& srv = v.api_server;
  srv.host = at->host;
  srv.port = at->port;
  srv.plaintext = v.insecure;
  if (!v.insecure) {
    srv.certificate = v.tls.certificate;
    srv.private_key = v.tls.private_key;
    srv.ca = v.tls.ca;
    srv.crl = v.tls.crl;
    srv.min_tls_version = v.tls.min_version;
    srv.cipher_suites = v.tls.cipher_suites;
  }
  if (a.max_connections < 1 || a.max_connections > 1'000'000)
    return fail("api.max_connections", "must be 1 to 1000000");
  if (a.max_connections_per_source < 1
      || a.max_connections_per_source > a.max_connections)
    return fail("api.max_connections_per_source",
                "must be 1 to api.max_connections");
  if (a.max_body_bytes < 1024 || a.max_body_bytes > (64 << 20))
    return fail("api.max_body_bytes", "must be 1024 to 67108864");
  if (a.idle_timeout_ms < 100 || a.idle_timeout_ms > 3'600'000)
    return fail("api.idle_timeout_ms", "must be 100 to 3600000");
  if (!(a.rate_per_agent >= 0))
    return fail("api.rate_per_agent", "must be 0 (no limit) or more");
  srv.max_connections = static_cast<size_t>(a.max_connections);
  srv.max_connections_per_source
      = static_cast<size_t>(a.max_connections_per_source);
  srv.max_body_bytes = static_cast<size_t>(a.max_body_bytes);
  srv.idle_timeout = std::chrono::milliseconds{a.idle_timeout_ms};
  srv.handshake_timeout = v.limits.handshake_timeout;
  auto& gw = v.api;
  gw.rate_per_agent = a.rate_per_agent;
  // Authentication.
  auto ttl = parse_duration(a.token_ttl);
  if (!ttl || *ttl < std::chrono::seconds{1})
    return fail("distribution.auth.token_ttl",
                "'" + a.token_ttl + "' is not a duration (e.g. 15m, 1h)");
  gw.auth.token_ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
  gw.auth.client_certificates = a.client_certificates && !v.insecure;
  if (!a.shared_key.empty()) {
    auto key = api::load_shared_key(a.shared_key);
    if (!key)
      return fail("distribution.auth.shared_key", key.error_value().message);
    gw.auth.shared_key = std::move(*key);
  }
  if (!a.revoked_tokens.empty()) {
    auto list = api::revocation_list::load(a.revoked_tokens);
    if (!list)
      return fail("distribution.auth.revoked_tokens",
                  list.error_value().message);
    gw.auth.revoked = std::make_shared<api::revocation_list>(std::move(*list));
  }
  if (!a.jwks.empty() || !a.issuer.empty() || !a.audience.empty()) {
    if (a.jwks.empty() || a.issuer.empty() || a.audience.empty())
      return fail("distribution.auth.oauth", "needs jwks, issuer and audience");
    auto keys = api::jwks::load(a.jwks);
    if (!keys)
      return fail("distribution.auth.oauth.jwks", keys.error_value().message);
    gw.auth.jwks = std::make_shared<const api::jwks>(std::move(*keys));
    gw.auth.jwt.issuer = a.issuer;
    gw.auth.jwt.audience = a.audience;
    gw.auth.jwt.agent_claim = a.agent_claim;
  }
  // Access control.
  if (a.default_policy != "deny" && a.default_policy != "allow")
    return fail("distribution.access_control.default_policy",
                "'" + a.default_policy + "' (deny or allow)");
  bool allow = a.default_policy == "allow";
  const std::string mk = "distribution.access_control.model." + a.model;
  if (a.model.empty()) {
    gw.access = api::access_policy::agents_on_their_own();
  } else if (a.model == "rbac") {
    api::rbac_model m;
    for (auto& [role, xs] : a.roles) {
      auto ps = permissions(xs, mk + ".roles." + role);
      if (!ps)
        return ps.error_value();
      m.roles[role] = std::move(*ps);
    }
    for (auto& [agent, xs] : a.assignments)
      for (auto& role : xs)
        if (m.roles.count(role) == 0)
          return fail(mk + ".role_assignments." + agent,
                      "role '" + role + "' is not defined in roles");
    m.assignments = a.assignments;
    gw.access = api::access_policy::rbac(std::move(m), allow);
  } else if (a.model == "abac") {
    if (a.abac_policies.empty())
      return fail(mk + ".policies", "not set (a TOML file of [[policy]])");
    auto m = api::access_policy::load_abac(a.abac_policies);
    if (!m)
      return fail(mk + ".policies", m.error_value().message);
    gw.access = api::access_policy::abac(std::move(*m), allow);
  } else {
    api::capability_model m;
    for (auto& [agent, xs] : a.capabilities) {
      auto ps = permissions(xs, mk + ".capabilities." + agent);
      if (!ps)
        return ps.error_value();
      m.grants[agent] = std::move(*ps);
    }
    gw.access = api::access_policy::capability(std::move(m), allow);
  }
  return {};
}

} // namespace engram::engramd
