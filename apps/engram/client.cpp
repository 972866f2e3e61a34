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

// Text for a terminal: bytes that are not UTF-8 print as '?'.
std::string printable(const std::string& text) {
  if (is_utf8(text))
    return text;
  std::string out;
  for (auto c : text)
    out += static_cast<unsigned char>(c) < 0x80 ? c : '?';
  return out;
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

// -- parsing ------------------------------------------------------------------

federation::trust_model parse_trust(const std::string& text) {
  auto t = api::parse_trust(text);
  if (!t)
    throw failure{exit_usage, "--" + t.error_value().message};
  return *t;
}

memory_type parse_type(const std::string& text) {
  auto t = api::parse_memory_type(text);
  if (!t)
    throw failure{exit_usage, "--" + t.error_value().message};
  return *t;
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
