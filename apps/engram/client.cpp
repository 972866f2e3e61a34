#include "apps/engram/client.hpp"

#include "core/scope.hpp"

#include <cstdio>

namespace engram::cli {

json failure_json(const failure& f, bool writing) {
  json out{{"error", f.message}, {"exit", f.code}};
  if (!f.cause)
    return out;
  out["code"] = to_string(f.cause->code);
  if (!writing)
    return out;
  switch (f.cause->code) {
    case errc::not_confirmed: out["stored"] = true; break;
    case errc::timeout: out["stored"] = nullptr; break;
    default: out["stored"] = false; break;
  }
  if (!f.cause->subject.empty())
    out["id"] = f.cause->subject;
  return out;
}

// -- the session
// ----------------------------------------------------------------

namespace {

// The error code an API error names (the API's own codes map to the
// nearest: not_found → unknown_agent is wrong, so they stay invalid_argument
// unless named).
errc code_named(const std::string& name, int status) {
  for (int i = 1; i <= static_cast<int>(errc::unauthenticated); ++i)
    if (name == to_string(static_cast<errc>(i)))
      return static_cast<errc>(i);
  switch (status) {
    case 401: return errc::unauthenticated;
    case 403: return errc::permission_denied;
    case 413:
    case 431: return errc::limit_exceeded;
    case 429:
    case 503: return errc::unavailable;
    case 504: return errc::timeout;
    default: return errc::invalid_argument;
  }
}

// "host:port" or "[v6]:port".
void parse_node(const std::string& text, http::client_config& cfg) {
  auto bad = [&](const std::string& why) {
    throw failure{exit_usage, "--node '" + text + "': " + why};
  };
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size()
        || text[close + 1] != ':')
      bad("expected [IPv6]:port");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
      bad("expected HOST:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos)
      bad("IPv6 addresses go in brackets: [::1]:port");
  }
  if (port.empty() || port.size() > 5
      || port.find_first_not_of("0123456789") != std::string::npos
      || std::stoul(port) == 0 || std::stoul(port) > 65535)
    bad("the port must be 1 to 65535");
  cfg.host = host;
  cfg.port = static_cast<uint16_t>(std::stoul(port));
}

} // namespace

session::session(const common_options& opts) : opts_(opts) {
  parse_node(opts.node, cfg_);
  cfg_.timeout = std::chrono::milliseconds{opts.timeout_ms};
  cfg_.plaintext = opts.insecure;
  if (!opts.agent.empty())
    if (auto ok = validate_name(opts.agent, "--agent"); !ok)
      throw failure{exit_usage, ok.error_value().message};
  if (opts.insecure && !opts.certs_dir.empty())
    throw failure{exit_usage, "--insecure and --certs-dir: choose one"};
  if (!opts.token.empty())
    authorization_ = "Bearer " + opts.token;
  if (!opts.insecure) {
    cfg_.ca = !opts.ca.empty()          ? opts.ca
              : !opts.certs_dir.empty() ? opts.certs_dir + "/ca.crt"
                                        : std::string{};
    if (cfg_.ca.empty())
      throw failure{exit_usage,
                    "no CA to check the node's certificate against: "
                    "--certs-dir DIR (its ca.crt) or --ca FILE (or "
                    "ENGRAM_CERTS_DIR / ENGRAM_CA)"};
    if (authorization_.empty()) {
      if (opts.certs_dir.empty())
        throw failure{exit_usage,
                      "no credentials: --token TOKEN (engramd token issue; "
                      "or ENGRAM_TOKEN), or --certs-dir DIR with "
                      "client.<agent>.crt and .key (engramd cert "
                      "create-client AGENT)"};
      auto name = opts.agent.empty() ? std::string{"admin"} : opts.agent;
      cfg_.certificate = opts.certs_dir + "/client." + name + ".crt";
      cfg_.private_key = opts.certs_dir + "/client." + name + ".key";
    }
  } else if (authorization_.empty()) {
    throw failure{exit_usage,
                  "no credentials: --token TOKEN (or ENGRAM_TOKEN); a "
                  "plaintext node takes no client certificates"};
  }
}

const std::string& session::agent() const {
  if (opts_.agent.empty())
    throw failure{exit_usage,
                  "this command acts as an agent: pass --agent NAME (or set "
                  "ENGRAM_AGENT)"};
  return opts_.agent;
}

std::string session::agent_path(const std::string& suffix) const {
  return "/v1/agents/" + http::percent_encode(agent()) + suffix;
}

json session::call(const std::string& method, const std::string& path,
                   const json& body,
                   const std::map<std::string, std::string>& query,
                   int64_t extra_ms) {
  auto target = path;
  auto q = query;
  if (path.rfind("/v1/agents/", 0) == 0)
    q["instance"] = opts_.instance;
  char sep = '?';
  for (auto& [k, v] : q) {
    if (v.empty())
      continue;
    target += sep + http::percent_encode(k) + "=" + http::percent_encode(v);
    sep = '&';
  }
  std::vector<std::pair<std::string, std::string>> headers;
  if (!authorization_.empty())
    headers.emplace_back("Authorization", authorization_);
  auto cfg = cfg_;
  cfg.timeout += std::chrono::milliseconds{extra_ms};
  auto r = http::send(cfg, method, target, body.is_null() ? "" : show(body),
                      headers);
  if (!r) {
    auto& e = r.error_value();
    if (e.code == errc::timeout)
      throw failure{exit_timeout,
                    "engramd at " + opts_.node + " did not answer within "
                        + std::to_string(cfg.timeout.count()) + " ms",
                    e};
    if (e.code == errc::invalid_argument)
      throw failure{exit_usage, e.message};
    throw failure{exit_unreachable, e.message, e};
  }
  auto j = r->body.empty() ? json{} : json::parse(r->body, nullptr, false);
  if (j.is_discarded())
    throw failure{exit_failed, "engramd at " + opts_.node
                                   + " answered with something not JSON ("
                                   + std::to_string(r->status) + ")"};
  if (r->status >= 200 && r->status < 300 && text_of(j, "code").empty())
    return j;
  error e{code_named(text_of(j, "code"), r->status), text_of(j, "message"),
          text_of(j, "id")};
  if (e.message.empty())
    e.message = "HTTP " + std::to_string(r->status);
  fail(e);
}

// -- rendering
// ------------------------------------------------------------------

std::string text_of(const json& j, const char* name) {
  if (!j.is_object())
    return {};
  auto i = j.find(name);
  return i != j.end() && i->is_string() ? i->get<std::string>() : std::string{};
}

std::string printable(const std::string& text) {
  if (is_utf8(text))
    return text;
  std::string out;
  for (auto c : text)
    out += static_cast<unsigned char>(c) < 0x80 ? c : '?';
  return out;
}

std::string line_of(const json& m) {
  char conf[32];
  std::snprintf(conf, sizeof(conf), "%.3g", m.value("confidence", 0.0));
  std::string out = text_of(m, "id") + "  " + printable(text_of(m, "content"))
                    + "  (" + text_of(m, "type") + ", " + text_of(m, "scope")
                    + ", confidence " + conf;
  auto from = m.contains("origin") ? text_of(m["origin"], "agent") : "";
  if (text_of(m, "epistemic") == "reported")
    out += ", reported by " + text_of(m, "source");
  else if (!from.empty())
    out += ", from " + from;
  if (m.value("contested", false))
    out += ", CONTESTED";
  return out + ")";
}

void print_state(const json& st, bool as_json) {
  if (as_json) {
    std::cout << show(st, 2) << '\n';
    return;
  }
  std::cout << text_of(st, "id") << "  " << text_of(st, "name") << "  (trust "
            << text_of(st, "trust_model") << ", beliefs "
            << text_of(st, "belief_conflicts") << ")\n";
  if (st.contains("members"))
    for (auto& m : st["members"])
      std::cout << "  " << text_of(m, "agent") << "  " << text_of(m, "role")
                << '\n';
  if (st.contains("invitations"))
    for (auto& i : st["invitations"])
      std::cout << "  " << text_of(i, "agent") << "  invited as "
                << text_of(i, "role") << '\n';
}

std::string show(const json& j, int indent) { return api::dump(j, indent); }

void require_text(const std::string& x, const char* what) {
  if (auto ok = validate_id(x, what); !ok)
    throw failure{exit_usage, ok.error_value().message};
}

} // namespace engram::cli
