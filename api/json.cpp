#include "api/json.hpp"

#include "core/scope.hpp"

#include <algorithm>

#include "api/auth.hpp"

namespace engram::api {

std::string base64(const std::string& bytes) {
  static constexpr char digits[]
      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    auto n = (uint32_t{static_cast<unsigned char>(bytes[i])} << 16)
             | (uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8)
             | uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    for (int shift = 18; shift >= 0; shift -= 6)
      out += digits[(n >> shift) & 63];
  }
  if (auto rest = bytes.size() - i; rest > 0) {
    uint32_t n = uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (rest == 2)
      n |= uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out += digits[(n >> 18) & 63];
    out += digits[(n >> 12) & 63];
    out += rest == 2 ? digits[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

json to_json(const engram_record& e) {
  json j;
  j["id"] = e.id.to_string();
  j["type"] = to_string(e.type);
  j["scope"] = e.scope.to_string();
  j["content"] = describe(e.body);
  if (auto* f = std::get_if<fact>(&e.body)) {
    j["key"] = f->key;
    j["value"] = f->value;
    if (!is_utf8(f->value))
      j["value_base64"] = base64(f->value);
  } else if (auto* b = std::get_if<belief>(&e.body)) {
    j["subject"] = b->subject;
    j["relation"] = b->relation;
    j["object"] = b->object;
  }
  j["confidence"] = e.confidence;
  j["epistemic"] = to_string(e.epistemic.kind);
  if (e.epistemic.kind == epistemic_kind::reported) {
    j["source"] = e.epistemic.source;
    j["trust"] = e.epistemic.trust;
  }
  json origin;
  origin["agent"] = e.origin.origin_agent;
  json hops = json::array();
  for (auto& h : e.origin.hops)
    hops.push_back({{"agent", h.agent},
                    {"trust", h.trust},
                    {"transform", h.transform},
                    {"read_only", h.read_only}});
  origin["hops"] = hops;
  j["origin"] = origin;
  if (e.archived)
    j["archived"] = true;
  if (e.tombstone)
    j["forgotten"] = e.forget_reason;
  return j;
}

json to_json(const memory_view& v) {
  auto j = to_json(v.value);
  j["contested"] = v.contested;
  // The guarantee this memory has (no memory system states it per fact).
  j["consistency"]
      = v.consistency == guarantee::consensus ? "consensus" : "crdt";
  return j;
}

json to_json(const federation::federation_state& st) {
  json members = json::array();
  for (auto& m : st.members())
    members.push_back({{"agent", m.agent_id},
                       {"role", federation::to_string(m.role)},
                       {"trust", m.trust_level}});
  json invited = json::array();
  for (auto& i : st.invitations())
    invited.push_back({{"agent", i.agent_id},
                       {"role", federation::to_string(i.role)},
                       {"expires_at_us", i.expires_at_us}});
  json out{{"id", st.id()},
           {"name", st.name()},
           {"leader", st.leader()},
           {"trust_model", federation::model_name(st.trust())},
           {"belief_conflicts", federation::to_string(st.belief_conflicts())},
           {"version", st.version()},
           {"members", members},
           {"invitations", invited},
           {"e2e", st.e2e()}};
  if (st.e2e()) {
    // Sealed to each member (e2e::seal, kind "fedkey"): only it opens its
    // copy; the chain of earlier keys is sealed under the newest one.
    json sealed = json::object();
    for (auto& [member, text] : st.keys().sealed)
      sealed[member] = base64(text);
    out["keys"] = {{"epoch", st.keys().epoch},
                   {"sealed_by", st.keys().sealed_by},
                   {"sealed_base64", sealed},
                   {"chain_base64", base64(st.keys().chain)},
                   {"stale", st.keys_stale()}};
  }
  return out;
}

json to_json(const pending_question& q) {
  json versions = json::array();
  for (auto& v : q.subject.versions())
    versions.push_back(to_json(v.value));
  return {{"conflict", q.subject.id},
          {"kind", to_string(q.subject.kind)},
          {"question", q.question.question},
          {"options", q.question.options},
          {"versions", versions}};
}

json to_json(const federation::share& s) {
  json mems = json::array();
  for (auto& m : s.memories)
    mems.push_back(to_json(m));
  json out{{"id", s.share_id},
           {"from", s.from},
           {"to", s.to},
           {"read_only", s.read_only},
           {"transform", s.transform},
           {"memories", mems}};
  // Sealed end to end: what the recipient's client opens (e2e::open).
  if (!s.sealed.empty())
    out["sealed_base64"] = base64(s.sealed);
  return out;
}

std::string dump(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

expected<federation::trust_model> parse_trust(const std::string& text) {
  auto colon = text.find(':');
  auto kind = text.substr(0, colon);
  auto rest = colon == std::string::npos ? "" : text.substr(colon + 1);
  std::string bad;
  auto number = [&](const std::string& x) {
    try {
      size_t used = 0;
      double v = std::stod(x, &used);
      if (used == x.size())
        return v;
    } catch (const std::exception&) {
    }
    if (bad.empty())
      bad = "trust " + text + ": '" + x + "' is not a number";
    return 0.0;
  };
  auto checked
      = [&](federation::trust_model m) -> expected<federation::trust_model> {
    if (!bad.empty())
      return make_error(errc::invalid_argument, bad);
    return m;
  };
  if (kind == "uniform")
    return checked(
        federation::uniform_trust{rest.empty() ? 1.0 : number(rest)});
  if (kind == "reputation") {
    federation::reputation_trust r;
    if (!rest.empty())
      r.initial = number(rest);
    return checked(r);
  }
  if (kind == "per-agent") {
    federation::per_agent_trust p;
    size_t pos = 0;
    while (pos < rest.size()) {
      auto comma = rest.find(',', pos);
      auto item = rest.substr(pos, comma - pos);
      auto eq = item.find('=');
      if (eq == std::string::npos)
        return make_error(errc::invalid_argument, "trust " + text + ": '" + item
                                                      + "' is not AGENT=TRUST");
      auto who = item.substr(0, eq);
      auto t = number(item.substr(eq + 1));
      if (who == "*")
        p.fallback = t;
      else
        p.levels[who] = t;
      if (comma == std::string::npos)
        break;
      pos = comma + 1;
    }
    return checked(p);
  }
  return make_error(errc::invalid_argument,
                    "trust " + text
                        + ": expected uniform:T, reputation[:INITIAL] or "
                          "per-agent:A=T,B=T[,*=DEFAULT]");
}

expected<memory_type> parse_memory_type(const std::string& text) {
  for (auto t : {memory_type::instant, memory_type::episodic,
                 memory_type::semantic, memory_type::procedural})
    if (text == to_string(t))
      return t;
  return make_error(errc::invalid_argument,
                    "type '" + text
                        + "': expected instant, episodic, semantic or "
                          "procedural");
}

namespace {

expected<bool> flag_of(const std::string& name, const std::string& text) {
  if (text == "true" || text == "1")
    return true;
  if (text == "false" || text == "0")
    return false;
  return make_error(errc::invalid_argument,
                    name + " must be true or false, not '" + text + "'");
}

} // namespace

expected<query_filter>
filter_of(const std::map<std::string, std::string>& params,
          const std::vector<std::string>& ignore) {
  query_filter f;
  for (auto& [name, value] : params) {
    if (name == "type") {
      auto t = parse_memory_type(value);
      if (!t)
        return t.error_value();
      f.type = *t;
    } else if (name == "subject" || name == "relation") {
      if (auto ok = validate_id(value, name.c_str()); !ok)
        return ok.error_value();
      (name == "subject" ? f.subject : f.relation) = value;
    } else if (name == "limit") {
      size_t used = 0;
      unsigned long long n = 0;
      try {
        n = std::stoull(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != value.size() || value[0] == '-')
        return make_error(errc::invalid_argument,
                          "limit must be a count, not '" + value + "'");
      f.limit = static_cast<size_t>(n);
    } else if (name == "contested" || name == "archived"
               || name == "forgotten") {
      auto b = flag_of(name, value);
      if (!b)
        return b.error_value();
      (name == "contested"  ? f.contested_only
       : name == "archived" ? f.include_archived
                            : f.include_forgotten)
          = *b;
    } else if (std::find(ignore.begin(), ignore.end(), name) == ignore.end()) {
      return make_error(errc::invalid_argument,
                        "'" + name + "' is not a query parameter");
    }
  }
  return f;
}

expected<engram_record> record_of(const json& body) {
  if (!body.is_object())
    return make_error(errc::invalid_argument, "the body is not a JSON object");
  auto text = [&](const char* name) -> expected<std::string> {
    auto i = body.find(name);
    if (i == body.end() || !i->is_string())
      return make_error(errc::invalid_argument,
                        std::string{"'"} + name + "' must be a string");
    return i->get<std::string>();
  };
  engram_record e;
  e.type = memory_type::semantic;
  e.confidence = 0.9;
  if (body.contains("key")) {
    auto key = text("key");
    auto value = text(body.contains("value_base64") ? "value_base64" : "value");
    if (value && body.contains("value_base64"))
      value = base64_decode(*value);
    if (!key)
      return key.error_value();
    if (!value)
      return value.error_value();
    if (auto ok = validate_id(*key, "the key"); !ok)
      return ok.error_value();
    e.body = fact{*key, *value};
  } else if (body.contains("subject")) {
    auto s = text("subject");
    auto r = text("relation");
    auto o = text("object");
    for (auto* x : {&s, &r, &o})
      if (!*x)
        return x->error_value();
    for (auto [x, what] : {std::pair{&*s, "the subject"},
                           {&*r, "the relation"},
                           {&*o, "the object"}})
      if (auto ok = validate_id(*x, what); !ok)
        return ok.error_value();
    e.body = belief{*s, *r, *o};
  } else {
    return make_error(errc::invalid_argument,
                      "a memory is a fact {key, value} or a belief {subject, "
                      "relation, object}");
  }
  if (auto i = body.find("confidence"); i != body.end()) {
    if (!i->is_number())
      return make_error(errc::invalid_argument,
                        "'confidence' must be a number");
    e.confidence = i->get<double>();
    if (!(e.confidence >= 0.0 && e.confidence <= 1.0))
      return make_error(errc::invalid_confidence,
                        "'confidence' must lie in [0, 1]");
  }
  if (auto i = body.find("type"); i != body.end()) {
    if (!i->is_string())
      return make_error(errc::invalid_argument, "'type' must be a string");
    auto t = parse_memory_type(i->get<std::string>());
    if (!t)
      return t.error_value();
    e.type = *t;
  }
  return e;
}

} // namespace engram::api
