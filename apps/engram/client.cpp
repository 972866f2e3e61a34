#include "apps/engram/client.hpp"

#include <chrono>
#include <cstdio>

namespace engram::cli {

// -- rendering ----------------------------------------------------------------
//
// Ids, keys and names are UTF-8 (the node refuses others); values and
// message texts are bytes. JSON holds text: bytes that are not UTF-8 are
// shown with U+FFFD in their place, and a fact's value also as
// "value_base64" (every dump replaces invalid bytes rather than abort).

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

// Text for a terminal: bytes that are not UTF-8 print as '?'.
std::string printable(const std::string& text) {
  if (is_utf8(text))
    return text;
  std::string out;
  for (auto c : text)
    out += static_cast<unsigned char>(c) < 0x80 ? c : '?';
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
  return j;
}

std::string line_of(const memory_view& v) {
  auto& e = v.value;
  char conf[32];
  std::snprintf(conf, sizeof(conf), "%.3g", e.confidence);
  std::string out = e.id.to_string() + "  " + printable(describe(e.body))
                    + "  (" + to_string(e.type) + ", " + e.scope.to_string()
                    + ", confidence " + conf;
  if (e.epistemic.kind == epistemic_kind::reported)
    out += ", reported by " + e.epistemic.source;
  else if (!e.origin.origin_agent.empty())
    out += ", from " + e.origin.origin_agent;
  if (v.contested)
    out += ", CONTESTED";
  return out + ")";
}

json to_json(const federation::federation_state& st) {
  json members = json::array();
  for (auto& m : st.members())
    members.push_back({{"agent", m.agent_id},
                       {"role", federation::to_string(m.role)},
                       {"trust", m.trust_level}});
  return {{"id", st.id()},
          {"name", st.name()},
          {"leader", st.leader()},
          {"trust_model", federation::model_name(st.trust())},
          {"belief_conflicts", federation::to_string(st.belief_conflicts())},
          {"version", st.version()},
          {"members", members}};
}

void print_state(const federation::federation_state& st, bool as_json) {
  if (as_json) {
    std::cout << to_json(st).dump(2, ' ', false, json::error_handler_t::replace)
              << '\n';
    return;
  }
  std::cout << st.id() << "  " << st.name() << "  (trust "
            << federation::model_name(st.trust()) << ", beliefs "
            << federation::to_string(st.belief_conflicts()) << ")\n";
  for (auto& m : st.members())
    std::cout << "  " << m.agent_id << "  " << federation::to_string(m.role)
              << '\n';
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

// -- parsing ------------------------------------------------------------------

federation::trust_model parse_trust(const std::string& text) {
  auto colon = text.find(':');
  auto kind = text.substr(0, colon);
  auto rest = colon == std::string::npos ? "" : text.substr(colon + 1);
  auto number = [&](const std::string& x) {
    try {
      size_t used = 0;
      double v = std::stod(x, &used);
      if (used == x.size())
        return v;
    } catch (const std::exception&) {
    }
    throw failure{exit_usage,
                  "--trust " + text + ": '" + x + "' is not a number"};
  };
  if (kind == "uniform")
    return federation::uniform_trust{rest.empty() ? 1.0 : number(rest)};
  if (kind == "reputation") {
    federation::reputation_trust r;
    if (!rest.empty())
      r.initial = number(rest);
    return r;
  }
  if (kind == "per-agent") {
    federation::per_agent_trust p;
    size_t pos = 0;
    while (pos < rest.size()) {
      auto comma = rest.find(',', pos);
      auto item = rest.substr(pos, comma - pos);
      auto eq = item.find('=');
      if (eq == std::string::npos)
        throw failure{exit_usage, "--trust " + text + ": '" + item
                                      + "' is not AGENT=TRUST"};
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
    return p;
  }
  throw failure{exit_usage,
                "--trust " + text
                    + ": expected uniform:T, reputation[:INITIAL] or "
                      "per-agent:A=T,B=T[,*=DEFAULT]"};
}

memory_type parse_type(const std::string& text) {
  for (auto t : {memory_type::instant, memory_type::episodic,
                 memory_type::semantic, memory_type::procedural})
    if (text == to_string(t))
      return t;
  throw failure{exit_usage, "--type " + text
                                + ": expected instant, episodic, semantic or "
                                  "procedural"};
}

// Keys, subjects and relations are UTF-8 text: refused here (bad usage)
// rather than by the wire.
void require_text(const std::string& x, const char* what) {
  if (auto ok = validate_id(x, what); !ok)
    throw failure{exit_usage, ok.error_value().message};
}

engram_record keyed(content body, double confidence) {
  if (auto* f = std::get_if<fact>(&body)) {
    require_text(f->key, "the key");
  } else if (auto* b = std::get_if<belief>(&body)) {
    require_text(b->subject, "the subject");
    require_text(b->relation, "the relation");
    require_text(b->object, "the object");
  }
  engram_record e;
  e.type = memory_type::semantic;
  e.body = std::move(body);
  e.confidence = confidence;
  return e;
}

uint64_t now_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

std::string show(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

actors::tls_config client_tls(const common_options& opts) {
  if (opts.insecure && !opts.certs_dir.empty())
    throw failure{exit_usage, "--insecure and --certs-dir: choose one"};
  if (opts.insecure)
    return {};
  if (opts.certs_dir.empty())
    throw failure{exit_usage,
                  "no client certificate: --certs-dir DIR (or "
                  "ENGRAM_CERTS_DIR) with client.<agent>.crt and .key and "
                  "ca.crt (engramd cert create-client AGENT), or --insecure "
                  "for a node that runs in plaintext"};
  if (!opts.agent.empty())
    if (auto ok = validate_name(opts.agent, "--agent"); !ok)
      throw failure{exit_usage, ok.error_value().message};
  auto name = opts.agent.empty() ? std::string{"admin"} : opts.agent;
  actors::tls_config tls;
  tls.certificate = opts.certs_dir + "/client." + name + ".crt";
  tls.private_key = opts.certs_dir + "/client." + name + ".key";
  tls.ca = opts.certs_dir + "/ca.crt";
  if (auto ok = actors::apply_tls_policy(tls); !ok)
    throw failure{exit_usage, ok.error_value().message};
  if (auto ok = actors::check_tls(tls, actors::tls_role::client, name); !ok)
    throw failure{exit_usage, "TLS: " + ok.error_value().message};
  return tls;
}

} // namespace engram::cli
