#include "api/access.hpp"

#include <arpa/inet.h>
#include <toml.hpp>

#include <algorithm>
#include <array>
#include <cstring>

namespace engram::api {

namespace {

constexpr std::array<const char*, 22> operation_names{"learn",
                                                      "query",
                                                      "forget",
                                                      "archive",
                                                      "sync",
                                                      "share",
                                                      "accept",
                                                      "decline",
                                                      "tell",
                                                      "ask",
                                                      "inbox",
                                                      "broadcast",
                                                      "watch",
                                                      "federation_create",
                                                      "federation_join",
                                                      "federation_leave",
                                                      "federation_admin",
                                                      "federation_show",
                                                      "conflicts_read",
                                                      "conflicts_answer",
                                                      "status",
                                                      "keys"};

constexpr std::array<const char*, 5> scope_names{
    "instance", "agent", "collective", "node", "universal"};

const std::vector<std::string> condition_names{
    "principal",  "role",        "method", "operation",
    "scope_kind", "memory_type", "source", "hours"};

bool contains(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

// Minutes since midnight of "HH:MM"; -1 when malformed.
int minutes_of(const std::string& text) {
  if (text.size() != 5 || text[2] != ':')
    return -1;
  auto digit = [&](size_t i) {
    return text[i] >= '0' && text[i] <= '9' ? text[i] - '0' : -100;
  };
  int h = digit(0) * 10 + digit(1);
  int m = digit(3) * 10 + digit(4);
  if (h < 0 || h > 23 || m < 0 || m > 59)
    return -1;
  return h * 60 + m;
}

// Whether "HH:MM-HH:MM" (UTC, wrapping midnight when the end is earlier)
// holds the time of day of `now`; nullopt when malformed.
std::optional<bool> within_hours(const std::string& range, int64_t now) {
  auto dash = range.find('-');
  if (dash == std::string::npos)
    return std::nullopt;
  auto from = minutes_of(range.substr(0, dash));
  auto to = minutes_of(range.substr(dash + 1));
  if (from < 0 || to < 0)
    return std::nullopt;
  auto minute = static_cast<int>(((now % 86400) + 86400) % 86400 / 60);
  if (from <= to)
    return minute >= from && minute < to;
  return minute >= from || minute < to;
}

bool condition_holds(const abac_condition& c, const access_request& r) {
  auto& a = c.attribute;
  if (a == "principal")
    return contains(c.values, r.who.agent) || contains(c.values, "*");
  if (a == "role") {
    for (auto& role : r.who.roles)
      if (contains(c.values, role))
        return true;
    return false;
  }
  if (a == "method")
    return contains(c.values, r.who.method);
  if (a == "operation")
    return contains(c.values, to_string(r.op)) || contains(c.values, "*");
  if (a == "scope_kind")
    return contains(c.values, to_string(r.scope)) || contains(c.values, "*");
  if (a == "memory_type")
    return !r.memory_type.empty() && contains(c.values, r.memory_type);
  if (a == "source") {
    for (auto& cidr : c.values)
      if (address_in(r.source, cidr))
        return true;
    return false;
  }
  if (a == "hours") {
    for (auto& range : c.values)
      if (within_hours(range, r.now).value_or(false))
        return true;
    return false;
  }
  return false; // unknown attributes never hold (check() refuses them)
}

decision by_default(bool allow) {
  return {allow, allow ? "allowed by the default policy"
                       : "no rule allows it (default policy: deny)"};
}

} // namespace

const std::vector<operation>& all_operations() {
  static const std::vector<operation> ops = [] {
    std::vector<operation> out;
    for (size_t i = 0; i < operation_names.size(); ++i)
      out.push_back(static_cast<operation>(i));
    return out;
  }();
  return ops;
}

const char* to_string(operation op) noexcept {
  auto i = static_cast<size_t>(op);
  return i < operation_names.size() ? operation_names[i] : "unknown";
}

expected<operation> parse_operation(const std::string& name) {
  for (size_t i = 0; i < operation_names.size(); ++i)
    if (name == operation_names[i])
      return static_cast<operation>(i);
  return make_error(errc::invalid_argument,
                    "'" + name + "' is not an operation");
}

const char* to_string(scope_kind k) noexcept {
  auto i = static_cast<size_t>(k);
  return i < scope_names.size() ? scope_names[i] : "unknown";
}

expected<scope_kind> parse_scope_kind(const std::string& name) {
  for (size_t i = 0; i < scope_names.size(); ++i)
    if (name == scope_names[i])
      return static_cast<scope_kind>(i);
  return make_error(errc::invalid_argument,
                    "'" + name
                        + "' is not a scope kind (instance, agent, "
                          "collective, node, universal)");
}

expected<permission> permission::parse(const std::string& text) {
  auto colon = text.find(':');
  auto op_text = text.substr(0, colon);
  auto kind_text = colon == std::string::npos ? "*" : text.substr(colon + 1);
  permission p;
  if (op_text != "*") {
    auto op = parse_operation(op_text);
    if (!op)
      return make_error(errc::invalid_argument, "permission '" + text + "': "
                                                    + op.error_value().message);
    p.op = *op;
  }
  if (kind_text != "*") {
    auto k = parse_scope_kind(kind_text);
    if (!k)
      return make_error(errc::invalid_argument, "permission '" + text + "': "
                                                    + k.error_value().message);
    p.kind = *k;
  }
  return p;
}

bool permission::covers(operation o, scope_kind k) const {
  return (!op || *op == o) && (!kind || *kind == k);
}

access_policy access_policy::agents_on_their_own() {
  rbac_model m;
  // Everything on their own memory, their federations' and the node's; the
  // Universal scope — one memory for the whole cluster — is read by all but
  // written only by agents a policy grants learn:universal.
  m.roles["agent"] = {};
  for (auto k : {scope_kind::instance, scope_kind::agent,
                 scope_kind::collective, scope_kind::node}) {
    permission p;
    p.kind = k;
    m.roles["agent"].push_back(p);
  }
  permission read_universal;
  read_universal.op = operation::query;
  read_universal.kind = scope_kind::universal;
  m.roles["agent"].push_back(read_universal);
  m.assignments["*"] = {"agent"};
  return rbac(std::move(m));
}

access_policy access_policy::rbac(rbac_model m, bool default_allow) {
  access_policy p;
  p.kind_ = kind::rbac;
  p.rbac_ = std::move(m);
  p.default_allow_ = default_allow;
  return p;
}

access_policy access_policy::abac(abac_model m, bool default_allow) {
  access_policy p;
  p.kind_ = kind::abac;
  p.abac_ = std::move(m);
  p.default_allow_ = default_allow;
  return p;
}

access_policy access_policy::capability(capability_model m,
                                        bool default_allow) {
  access_policy p;
  p.kind_ = kind::capability;
  p.cap_ = std::move(m);
  p.default_allow_ = default_allow;
  return p;
}

expected<void> access_policy::check(const abac_model& m) {
  for (auto& p : m.policies) {
    for (auto& c : p.conditions) {
      auto where = "policy '" + p.name + "', " + c.attribute;
      if (!contains(condition_names, c.attribute))
        return make_error(errc::invalid_argument,
                          "policy '" + p.name + "': '" + c.attribute
                              + "' is not a condition (principal, role, "
                                "method, operation, scope_kind, "
                                "memory_type, source, hours)");
      if (c.values.empty())
        return make_error(errc::invalid_argument, where + ": no values");
      for (auto& v : c.values) {
        if (c.attribute == "operation" && v != "*" && !parse_operation(v))
          return make_error(errc::invalid_argument,
                            where + ": '" + v + "' is not an operation");
        if (c.attribute == "scope_kind" && v != "*" && !parse_scope_kind(v))
          return make_error(errc::invalid_argument,
                            where + ": '" + v + "' is not a scope kind");
        if (c.attribute == "memory_type" && v != "instant" && v != "episodic"
            && v != "semantic" && v != "procedural")
          return make_error(errc::invalid_argument,
                            where + ": '" + v
                                + "' is not a memory type (instant, "
                                  "episodic, semantic, procedural)");
        if (c.attribute == "hours" && !within_hours(v, 0))
          return make_error(errc::invalid_argument,
                            where + ": '" + v + "' is not HH:MM-HH:MM");
        if (c.attribute == "source" && !address_in(v.substr(0, v.find('/')), v))
          return make_error(errc::invalid_argument,
                            where + ": '" + v
                                + "' is not an address or CIDR block");
      }
    }
  }
  return {};
}

expected<abac_model> access_policy::load_abac(const std::string& path) {
  toml::value root;
  try {
    root = toml::parse(path);
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument,
                      "the policy file '" + path + "': " + e.what());
  }
  abac_model m;
  try {
    if (!root.is_table() || !root.contains("policy"))
      return make_error(errc::invalid_argument,
                        "the policy file '" + path
                            + "' has no [[policy]] tables");
    for (auto& t : toml::find<toml::array>(root, "policy")) {
      if (!t.is_table())
        return make_error(errc::invalid_argument,
                          "the policy file '" + path
                              + "': a policy is not a table");
      abac_policy p;
      for (auto& [key, value] : t.as_table()) {
        if (key == "name") {
          p.name = toml::get<std::string>(value);
        } else if (key == "effect") {
          auto effect = toml::get<std::string>(value);
          if (effect != "allow" && effect != "deny")
            return make_error(errc::invalid_argument,
                              "the policy file '" + path + "': effect '"
                                  + effect + "' is not allow or deny");
          p.allow = effect == "allow";
        } else {
          abac_condition c;
          c.attribute = key;
          if (value.is_string())
            c.values.push_back(toml::get<std::string>(value));
          else
            c.values = toml::get<std::vector<std::string>>(value);
          p.conditions.push_back(std::move(c));
        }
      }
      if (p.name.empty())
        return make_error(errc::invalid_argument,
                          "the policy file '" + path
                              + "': a policy has no name");
      if (!t.contains("effect"))
        return make_error(errc::invalid_argument, "the policy file '" + path
                                                      + "': policy '" + p.name
                                                      + "' has no effect");
      m.policies.push_back(std::move(p));
    }
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument,
                      "the policy file '" + path + "': " + e.what());
  }
  if (auto ok = check(m); !ok)
    return make_error(errc::invalid_argument, "the policy file '" + path + "': "
                                                  + ok.error_value().message);
  return m;
}

decision access_policy::decide(const access_request& r) const {
  // A capability token's grant and caveats bound every model.
  for (auto& l : r.who.limits) {
    if (!l.allow.empty()
        && std::none_of(l.allow.begin(), l.allow.end(),
                        [&](const std::string& text) {
                          auto p = permission::parse(text);
                          return p && p->covers(r.op, r.scope);
                        }))
      return {false, std::string{"the capability token does not allow "}
                         + to_string(r.op) + " on " + to_string(r.scope)
                         + " memory"};
    if (!l.memory_types.empty()) {
      // Reads are checked memory by memory (the gateway asks again with
      // each result's type) and shares type by type; anything else that
      // names no type (a forget or archive by id, a message) is refused.
      bool per_result = r.op == operation::query || r.op == operation::watch
                        || r.op == operation::conflicts_read
                        || r.op == operation::share;
      if (r.memory_type.empty() && !per_result)
        return {false, std::string{"the capability token allows only some "
                                   "memory types, and "}
                           + to_string(r.op) + " names none"};
      if (!r.memory_type.empty()
          && std::find(l.memory_types.begin(), l.memory_types.end(),
                       r.memory_type)
                 == l.memory_types.end())
        return {false, "the capability token does not allow " + r.memory_type
                           + " memories"};
    }
    if (!l.federations.empty()
        && std::find(l.federations.begin(), l.federations.end(), r.federation)
               == l.federations.end())
      return {false, r.federation.empty()
                         ? std::string{"the capability token is for some "
                                       "federations only, and this request "
                                       "concerns none"}
                         : "the capability token is not for federation "
                               + r.federation};
    if (!l.sources.empty()
        && std::none_of(l.sources.begin(), l.sources.end(),
                        [&](const std::string& cidr) {
                          return address_in(r.source, cidr);
                        }))
      return {false, "the capability token is not valid from " + r.source};
  }
  switch (kind_) {
    case kind::rbac: {
      std::vector<std::string> roles = r.who.roles;
      for (auto* who :
           {&r.who.agent, static_cast<const std::string*>(nullptr)}) {
        auto i = rbac_.assignments.find(who ? *who : std::string{"*"});
        if (i != rbac_.assignments.end())
          roles.insert(roles.end(), i->second.begin(), i->second.end());
      }
      for (auto& role : roles) {
        auto i = rbac_.roles.find(role);
        if (i == rbac_.roles.end())
          continue;
        for (auto& p : i->second)
          if (p.covers(r.op, r.scope))
            return {true, "role '" + role + "' allows it"};
      }
      if (default_allow_)
        return by_default(true);
      return {false, std::string{"no role of agent '"} + r.who.agent
                         + "' allows " + to_string(r.op) + " on "
                         + to_string(r.scope) + " memory"};
    }
    case kind::abac: {
      const abac_policy* allowed_by = nullptr;
      for (auto& p : abac_.policies) {
        bool applies = std::all_of(p.conditions.begin(), p.conditions.end(),
                                   [&](const abac_condition& c) {
                                     return condition_holds(c, r);
                                   });
        if (!applies)
          continue;
        if (!p.allow)
          return {false, "policy '" + p.name + "' denies it"};
        if (allowed_by == nullptr)
          allowed_by = &p;
      }
      if (allowed_by != nullptr)
        return {true, "policy '" + allowed_by->name + "' allows it"};
      return by_default(default_allow_);
    }
    case kind::capability: {
      if (r.who.method == "capability" && !r.who.limits.empty())
        return {true, "the capability token of agent '" + r.who.agent
                          + "' allows it"};
      for (auto* key :
           {&r.who.agent, static_cast<const std::string*>(nullptr)}) {
        auto i = cap_.grants.find(key ? *key : std::string{"*"});
        if (i == cap_.grants.end())
          continue;
        for (auto& p : i->second)
          if (p.covers(r.op, r.scope))
            return {true, "a capability of agent '"
                              + (key ? *key : std::string{"*"})
                              + "' allows it"};
      }
      if (default_allow_)
        return by_default(true);
      return {false, std::string{"agent '"} + r.who.agent
                         + "' holds no capability for " + to_string(r.op)
                         + " on " + to_string(r.scope) + " memory"};
    }
  }
  return by_default(false);
}

bool address_in(const std::string& address, const std::string& cidr) {
  auto slash = cidr.find('/');
  auto net = cidr.substr(0, slash);
  // Both as 16-byte IPv6 (IPv4 mapped), the prefix shifted accordingly.
  auto parse
      = [](std::string text, std::array<unsigned char, 16>& out, bool& v4) {
          in_addr a4{};
          in6_addr a6{};
          if (::inet_pton(AF_INET, text.c_str(), &a4) == 1) {
            out.fill(0);
            out[10] = out[11] = 0xFF;
            std::memcpy(out.data() + 12, &a4, 4);
            v4 = true;
            return true;
          }
          if (::inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
            std::memcpy(out.data(), &a6, 16);
            static const unsigned char mapped[12]
                = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
            v4 = std::memcmp(out.data(), mapped, 12) == 0;
            return true;
          }
          return false;
        };
  std::array<unsigned char, 16> a{}, n{};
  bool a_v4 = false, n_v4 = false;
  if (!parse(address, a, a_v4) || !parse(net, n, n_v4))
    return false;
  int bits = n_v4 ? 32 : 128;
  if (slash != std::string::npos) {
    auto text = cidr.substr(slash + 1);
    if (text.empty() || text.size() > 3
        || !std::all_of(text.begin(), text.end(), [](char c) {
             return c >= '0' && c <= '9';
           }))
      return false;
    bits = std::stoi(text);
    if (bits > (n_v4 ? 32 : 128))
      return false;
  }
  if (n_v4)
    bits += 96;
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    unsigned char mask
        = bits >= 8 ? 0xFF : static_cast<unsigned char>(0xFF << (8 - bits));
    if ((a[static_cast<size_t>(i)] & mask)
        != (n[static_cast<size_t>(i)] & mask))
      return false;
  }
  return true;
}

} // namespace engram::api
