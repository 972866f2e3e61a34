#include "api/capability.hpp"

#include "core/scope.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>

#include "api/access.hpp"

namespace engram::api {

using json = nlohmann::json;

namespace {

constexpr std::string_view prefix = "egc1.";

const char* const memory_type_names[]
    = {"instant", "episodic", "semantic", "procedural"};

error refused(std::string message) {
  return make_error(errc::unauthenticated,
                    "capability token: " + std::move(message));
}

// The key capabilities are signed with: never the shared key itself, so no
// MAC made for another purpose (a shared-key token) verifies here.
std::string capability_key(std::string_view shared_key) {
  return hmac_sha256(shared_key, "engram capability token v1");
}

// A list of strings, each checked by `valid`; absent: empty. A present list
// must hold at least one entry (an empty one would read as "no limit").
expected<std::vector<std::string>>
checked_list(const json& j, const char* name,
             const std::function<expected<void>(const std::string&)>& valid) {
  std::vector<std::string> out;
  auto i = j.find(name);
  if (i == j.end())
    return out;
  if (!i->is_array() || i->empty() || i->size() > 64)
    return make_error(errc::invalid_argument,
                      std::string{"'"} + name
                          + "' must be a list of 1 to 64 strings");
  for (auto& x : *i) {
    if (!x.is_string())
      return make_error(errc::invalid_argument,
                        std::string{"'"} + name + "' holds a non-string");
    auto text = x.get<std::string>();
    if (auto ok = valid(text); !ok)
      return ok.error_value();
    out.push_back(std::move(text));
  }
  return out;
}

expected<void> valid_permission(const std::string& text) {
  if (auto p = permission::parse(text); !p)
    return p.error_value();
  return {};
}

expected<void> valid_memory_type(const std::string& text) {
  for (auto* n : memory_type_names)
    if (text == n)
      return {};
  return make_error(errc::invalid_argument,
                    "unknown memory type '" + text
                        + "' (known: instant, episodic, semantic, "
                          "procedural)");
}

expected<void> valid_federation(const std::string& text) {
  if (text.rfind("fed-", 0) != 0)
    return make_error(errc::invalid_argument,
                      "'" + text + "' is no federation id (fed-…)");
  return validate_name(text, "federation id");
}

expected<void> valid_source(const std::string& text) {
  if (address_in(text.substr(0, text.find('/')), text))
    return {};
  return make_error(errc::invalid_argument,
                    "'" + text + "' is no address or CIDR");
}

json caveat_json(const capability_caveat& c) {
  json j = json::object();
  if (!c.allow.empty())
    j["allow"] = c.allow;
  if (!c.memory_types.empty())
    j["types"] = c.memory_types;
  if (!c.sources.empty())
    j["sources"] = c.sources;
  if (!c.federations.empty())
    j["federations"] = c.federations;
  if (c.expires_at != 0)
    j["exp"] = c.expires_at;
  return j;
}

// A caveat read back: known fields only, each valid.
expected<capability_caveat> parse_caveat(const json& j) {
  for (auto& [k, _] : j.items())
    if (k != "allow" && k != "types" && k != "sources" && k != "federations"
        && k != "exp")
      return make_error(errc::invalid_argument,
                        "a caveat holds the unknown field '" + k + "'");
  capability_caveat c;
  auto allow = checked_list(j, "allow", valid_permission);
  if (!allow)
    return allow.error_value();
  auto types = checked_list(j, "types", valid_memory_type);
  if (!types)
    return types.error_value();
  auto sources = checked_list(j, "sources", valid_source);
  if (!sources)
    return sources.error_value();
  auto feds = checked_list(j, "federations", valid_federation);
  if (!feds)
    return feds.error_value();
  c.allow = std::move(*allow);
  c.memory_types = std::move(*types);
  c.sources = std::move(*sources);
  c.federations = std::move(*feds);
  if (auto e = j.find("exp"); e != j.end()) {
    if (!e->is_number_integer() || e->get<int64_t>() <= 0)
      return make_error(errc::invalid_argument,
                        "a caveat's 'exp' must be a positive whole number");
    c.expires_at = e->get<int64_t>();
  }
  if (c.allow.empty() && c.memory_types.empty() && c.sources.empty()
      && c.federations.empty() && c.expires_at == 0)
    return make_error(errc::invalid_argument, "an empty caveat");
  return c;
}

// The parts of a token: the grant and caveats (base64url) and the MAC.
struct parts {
  std::vector<std::string_view> segments;
  std::string_view mac;
};

expected<parts> split(std::string_view token) {
  if (!is_capability_token(token))
    return refused("not a capability token (egc1.…)");
  if (token.size() > max_capability_bytes)
    return refused("longer than " + std::to_string(max_capability_bytes)
                   + " bytes");
  parts out;
  auto rest = token.substr(prefix.size());
  while (true) {
    auto dot = rest.find('.');
    if (dot == std::string_view::npos) {
      out.mac = rest;
      break;
    }
    out.segments.push_back(rest.substr(0, dot));
    rest = rest.substr(dot + 1);
  }
  if (out.segments.empty() || out.mac.empty())
    return refused("malformed");
  if (out.segments.size() > 1 + max_caveats)
    return refused("more than " + std::to_string(max_caveats) + " caveats");
  return out;
}

expected<json> decode_part(std::string_view segment) {
  auto raw = base64url_decode(segment);
  if (!raw)
    return refused("a part is not base64url");
  auto j = json::parse(raw->begin(), raw->end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return refused("a part is not a JSON object");
  return j;
}

} // namespace

bool is_capability_token(std::string_view token) noexcept {
  return token.substr(0, prefix.size()) == prefix;
}

expected<std::string> issue_capability(std::string_view shared_key,
                                       const capability_grant& grant) {
  if (auto ok = validate_name(grant.agent, "agent id"); !ok)
    return ok.error_value();
  if (grant.allow.empty())
    return make_error(errc::invalid_argument,
                      "a capability grants at least one permission");
  for (auto& p : grant.allow)
    if (auto ok = valid_permission(p); !ok)
      return ok.error_value();
  for (auto& f : grant.federations)
    if (auto ok = valid_federation(f); !ok)
      return ok.error_value();
  if (grant.expires_at <= grant.issued_at)
    return make_error(errc::invalid_argument,
                      "a capability expires after it is issued");
  json j{{"agent", grant.agent},
         {"id", new_token_id()},
         {"allow", grant.allow},
         {"iat", grant.issued_at},
         {"exp", grant.expires_at}};
  if (!grant.federations.empty())
    j["federations"] = grant.federations;
  auto body = std::string{prefix} + base64url_encode(j.dump());
  return body + "."
         + base64url_encode(hmac_sha256(capability_key(shared_key), body));
}

expected<std::string> attenuate_capability(std::string_view token,
                                           const capability_caveat& caveat) {
  auto p = split(token);
  if (!p)
    return p.error_value();
  if (p->segments.size() > max_caveats)
    return make_error(errc::limit_exceeded, "the token carries "
                                                + std::to_string(max_caveats)
                                                + " caveats already");
  auto j = caveat_json(caveat);
  if (auto ok = parse_caveat(j); !ok) // the same checks a verifier makes
    return ok.error_value();
  auto mac = base64url_decode(p->mac);
  if (!mac || mac->size() != 32)
    return refused("its MAC is malformed");
  auto segment = base64url_encode(j.dump());
  auto body
      = std::string{token.substr(0, token.size() - p->mac.size())} + segment;
  auto out = body + "." + base64url_encode(hmac_sha256(*mac, segment));
  if (out.size() > max_capability_bytes)
    return make_error(errc::limit_exceeded,
                      "the token would be longer than "
                          + std::to_string(max_capability_bytes) + " bytes");
  return out;
}

expected<principal> verify_capability(std::string_view shared_key,
                                      std::string_view token, int64_t now,
                                      std::chrono::seconds max_ttl) {
  auto p = split(token);
  if (!p)
    return p.error_value();
  // The MAC chain first: nothing of the token is believed before it holds.
  auto first_len = prefix.size() + p->segments[0].size();
  auto mac
      = hmac_sha256(capability_key(shared_key), token.substr(0, first_len));
  for (size_t i = 1; i < p->segments.size(); ++i)
    mac = hmac_sha256(mac, p->segments[i]);
  auto given = base64url_decode(p->mac);
  if (!given || !equal_constant_time(*given, mac))
    return refused("its signature does not verify");
  auto grant = decode_part(p->segments[0]);
  if (!grant)
    return grant.error_value();
  principal who;
  who.method = "capability";
  int64_t issued_at = 0;
  auto a = grant->find("agent");
  auto iat = grant->find("iat");
  auto exp = grant->find("exp");
  if (a == grant->end() || !a->is_string() || iat == grant->end()
      || !iat->is_number_integer() || exp == grant->end()
      || !exp->is_number_integer())
    return refused("the grant lacks agent, iat or exp");
  who.agent = a->get<std::string>();
  if (auto i = grant->find("id"); i != grant->end()) {
    if (!i->is_string())
      return refused("the grant's id is not a string");
    who.token_id = i->get<std::string>();
  }
  issued_at = iat->get<int64_t>();
  who.expires_at = exp->get<int64_t>();
  if (auto ok = validate_name(who.agent, "agent id"); !ok)
    return refused("the grant's agent: " + ok.error_value().message);
  for (auto& [k, _] : grant->items())
    if (k != "agent" && k != "id" && k != "allow" && k != "federations"
        && k != "iat" && k != "exp")
      return refused("the grant holds the unknown field '" + k + "'");
  auto allow = checked_list(*grant, "allow", valid_permission);
  if (!allow || allow->empty())
    return refused(
        "the grant allows nothing: "
        + (allow ? std::string{"no 'allow'"} : allow.error_value().message));
  auto feds = checked_list(*grant, "federations", valid_federation);
  if (!feds)
    return refused("the grant's federations: " + feds.error_value().message);
  who.limits.push_back(
      capability_limit{std::move(*allow), {}, {}, std::move(*feds)});
  if (who.expires_at - issued_at > max_ttl.count())
    return refused("it is valid for longer than token_ttl ("
                   + std::to_string(max_ttl.count()) + " s)");
  if (issued_at > now + 30)
    return refused("it is issued in the future");
  for (size_t i = 1; i < p->segments.size(); ++i) {
    auto j = decode_part(p->segments[i]);
    if (!j)
      return j.error_value();
    auto c = parse_caveat(*j);
    if (!c)
      return refused("caveat " + std::to_string(i) + ": "
                     + c.error_value().message);
    if (c->expires_at != 0)
      who.expires_at = std::min(who.expires_at, c->expires_at);
    if (!c->allow.empty() || !c->memory_types.empty() || !c->sources.empty()
        || !c->federations.empty())
      who.limits.push_back(
          capability_limit{std::move(c->allow), std::move(c->memory_types),
                           std::move(c->sources), std::move(c->federations)});
  }
  if (who.expires_at <= now)
    return refused("it expired");
  return who;
}

} // namespace engram::api
