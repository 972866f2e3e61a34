// engram: the command-line client of a running engramd. It reaches the
// node's actor over CAF's network layer and acts as one instance ("cli" by
// default) of an agent: learn, query, forget, share, accept/decline, sync,
// federations, tell/ask/broadcast, conflicts, status.
//
//   engram --node 127.0.0.1:7420 --agent alice learn user.name Bob
//   engram --agent alice --json query --subject sky
//   engram --agent alice federation create Research --member bob
//
// Exit codes: 0 done, 1 the node refused or failed the operation (the
// message says why; a refused write stored nothing), 2 bad usage, 3 the
// node cannot be reached, 4 no answer in time (for a write: its outcome is
// unknown), 5 a write stored on the node but not confirmed by as many
// replicas as its consistency level needs (do not retry it: it syncs when
// they return).

#include "actors/net.hpp"
#include "apps/common/client_config.hpp"
#include "federation/codec.hpp"
#include "federation/membership.hpp"
#include "federation/share.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace engram;
using json = nlohmann::json;

namespace {

constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;
constexpr int exit_timeout = 4;
constexpr int exit_not_confirmed = 5;

using apps::client_config;

/// A failure with its exit code, and the error it came from (when the node
/// answered with one).
struct failure {
  int code;
  std::string message;
  std::optional<error> cause = std::nullopt;
};

int exit_code_of(const error& e) {
  switch (e.code) {
    case errc::timeout: return exit_timeout;
    case errc::not_confirmed: return exit_not_confirmed;
    default: return exit_failed;
  }
}

[[noreturn]] void fail(const error& e) {
  throw failure{exit_code_of(e), e.to_string(), e};
}

/// The JSON a failed command prints: the message, the exit code, the
/// error's name and, for a write, whether it was stored ("stored": true
/// when stored but not confirmed, false when refused, null when unknown)
/// and the id of its engram.
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

template<class T>
T value_or_fail(expected<T> x) {
  if (!x)
    fail(x.error_value());
  return std::move(*x);
}

/// The options every verb shares.
struct common_options {
  std::string node = "127.0.0.1:7420";
  std::string agent;
  std::string instance = "cli";
  bool json = false;
  int64_t timeout_ms = 5000;
};

/// A connection to one engramd, acting as one instance of an agent.
class session {
public:
  session(caf::actor_system& sys, const common_options& opts)
      : sys_(sys), opts_(opts), timeout_(opts.timeout_ms) {
    auto at = actors::parse_endpoint(opts.node);
    if (!at)
      throw failure{exit_usage, "--node: " + at.error_value().message};
    auto remote = actors::connect_remote(sys, *at, timeout_);
    if (!remote) {
      auto& e = remote.error_value();
      // Connected, but the node did not answer in time: a timeout, not an
      // unreachable node.
      if (e.code == errc::timeout)
        throw failure{exit_timeout,
                      "engramd at " + opts.node + " did not answer within "
                          + std::to_string(opts.timeout_ms) + " ms",
                      e};
      throw failure{exit_unreachable,
                    "cannot reach engramd at " + opts.node + ": " + e.message,
                    e};
    }
    node_ = remote->hdl;
    node_id_ = remote->id;
  }

  const std::string& node_id() const { return node_id_; }
  actors::node_actor node() const { return node_; }

  /// The instance this client acts as (needs --agent).
  actors::instance_actor instance() {
    if (inst_)
      return *inst_;
    if (opts_.agent.empty())
      throw failure{exit_usage,
                    "this command acts as an agent: pass --agent NAME (or set "
                    "ENGRAM_AGENT)"};
    if (auto ok = validate_name(opts_.agent, "--agent"); !ok)
      throw failure{exit_usage, ok.error_value().message};
    inst_ = call<actors::instance_actor>(node_, actors::instance_atom::value,
                                         opts_.agent, opts_.instance);
    return *inst_;
  }

  /// Sends a request and waits for the answer (bounded); failures throw.
  template<class R, class Handle, class... Ts>
  R call(const Handle& dest, Ts&&... xs) {
    return call_for<R>(timeout_, dest, std::forward<Ts>(xs)...);
  }

  template<class R, class Handle, class... Ts>
  R call_for(std::chrono::milliseconds timeout, const Handle& dest,
             Ts&&... xs) {
    caf::scoped_actor self{sys_};
    std::optional<R> result;
    error err{errc::timeout, "no answer from engramd at " + opts_.node
                                 + " within " + std::to_string(timeout.count())
                                 + " ms"};
    self->request(dest, timeout, std::forward<Ts>(xs)...)
        .receive(
            [&](R& r) {
              result = std::move(r);
            },
            [&](caf::error& e) {
              err = actors::from_caf(e);
            });
    if (!result)
      fail(err);
    return std::move(*result);
  }

  federation::federation_state fed(const std::string& op,
                                   const std::string& fed_id,
                                   const std::string& arg) {
    auto bytes = call<std::string>(instance(), actors::federation_atom::value,
                                   op, fed_id, arg);
    return value_or_fail(federation::decode_state(bytes));
  }

private:
  caf::actor_system& sys_;
  const common_options& opts_;
  std::chrono::milliseconds timeout_;
  actors::node_actor node_;
  std::string node_id_;
  std::optional<actors::instance_actor> inst_;
};

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

} // namespace

int main(int argc, char** argv) {
  common_options opts;
  if (auto* env = std::getenv("ENGRAM_NODE"))
    opts.node = env;
  if (auto* env = std::getenv("ENGRAM_AGENT"))
    opts.agent = env;

  CLI::App app{"engram: talk to a running engramd (learn, query, share, "
               "federations, messages, conflicts)"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  app.add_option("--node", opts.node,
                 "engramd address HOST:PORT (or "
                 "ENGRAM_NODE)");
  app.add_option("--agent", opts.agent, "act as this agent (or ENGRAM_AGENT)");
  app.add_option("--instance", opts.instance, "as this instance of the agent");
  app.add_flag("--json", opts.json, "print JSON");
  app.add_option("--timeout", opts.timeout_ms, "ms to wait for the node")
      ->check(CLI::PositiveNumber);

  // The verbs fill these, then one runs.
  std::string a1, a2, a3, fed_id, reason = "forgotten via the CLI";
  std::string with, transform, trust_spec, role = "member", beliefs;
  std::string type, subject, relation, consistency;
  std::vector<std::string> members;
  double confidence = 0.9, trust = 1.0;
  int64_t limit = 0, ask_timeout_ms = 5000;
  uint64_t conflict_id = 0;
  bool contested = false, instance_scope = false, writable = false,
       redact = false;
  std::function<int(session&)> run;
  // The verb writes (its failures say whether anything was stored).
  bool writing = false;

  auto* status = app.add_subcommand("status", "the node's agents and sessions");
  status->callback([&] {
    run = [&](session& s) {
      auto st
          = s.call<actors::node_status>(s.node(), actors::status_atom::value);
      auto hosted = s.call<std::vector<std::string>>(
          s.node(), actors::locate_atom::value);
      if (opts.json) {
        json sessions = json::array();
        for (auto& x : st.session_details)
          sessions.push_back({{"peer", x.peer_node},
                              {"agent", x.agent},
                              {"established", x.established},
                              {"frames_in", x.frames_in},
                              {"frames_out", x.frames_out},
                              {"retransmits", x.retransmits}});
        json clocks = json::array();
        for (auto& c : st.clock_offsets)
          clocks.push_back(
              {{"peer", c.peer},
               {"offset_ms", static_cast<double>(c.offset_us) / 1000},
               {"rtt_ms", static_cast<double>(c.rtt_us) / 1000}});
        json out{{"node", st.node_id},        {"agents", hosted},
                 {"instances", st.instances}, {"respawns", st.respawns},
                 {"sessions", sessions},      {"clock_offsets", clocks}};
        if (!st.clock_refusal.empty())
          out["writes_refused"] = st.clock_refusal;
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      } else {
        std::cout << "node " << st.node_id << ": " << st.agents << " agents, "
                  << st.instances << " instances, " << st.sessions
                  << " sync sessions, " << st.respawns << " respawns\n";
        for (auto& a : hosted)
          std::cout << "  " << a << '\n';
        for (auto& c : st.clock_offsets)
          std::cout << "  clock of " << c.peer << ": " << std::showpos
                    << c.offset_us / 1000 << std::noshowpos
                    << " ms (round trip " << c.rtt_us / 1000.0 << " ms)\n";
        if (!st.clock_refusal.empty())
          std::cout << "  WRITES REFUSED: " << st.clock_refusal << '\n';
      }
      return 0;
    };
  });

  auto learned = [&](session& s, const engram_id& id) {
    if (opts.json)
      std::cout << json{{"id", id.to_string()}, {"node", s.node_id()}}.dump(
          -1, ' ', false, json::error_handler_t::replace)
                << '\n';
    else
      std::cout << id.to_string() << '\n';
    return 0;
  };
  auto learn_record = [&](session& s, engram_record e) {
    bool scoped = false;
    if (!fed_id.empty()) {
      e.scope = memory_scope::collective(fed_id, {opts.agent});
      scoped = true;
    } else if (instance_scope) {
      e.scope = memory_scope::instance({});
      scoped = true;
    }
    return learned(s, s.call<engram_id>(s.instance(), actors::learn_atom::value,
                                        std::move(e), scoped));
  };
  auto add_learn_options = [&](CLI::App* cmd) {
    cmd->add_option("--confidence", confidence, "in [0, 1]")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--federation", fed_id,
                    "into this federation's Collective memory");
    cmd->add_flag("--instance-scope", instance_scope,
                  "keep it in this instance only");
  };
  auto* learn = app.add_subcommand("learn", "learn a fact KEY = VALUE");
  learn->add_option("key", a1)->required();
  learn->add_option("value", a2)->required();
  add_learn_options(learn);
  learn->callback([&] {
    writing = true;
    run = [&](session& s) {
      return learn_record(s, keyed(fact{a1, a2}, confidence));
    };
  });
  auto* believe
      = app.add_subcommand("believe", "learn a belief SUBJECT RELATION OBJECT");
  believe->add_option("subject", a1)->required();
  believe->add_option("relation", a2)->required();
  believe->add_option("object", a3)->required();
  add_learn_options(believe);
  believe->callback([&] {
    writing = true;
    run = [&](session& s) {
      return learn_record(s, keyed(belief{a1, a2, a3}, confidence));
    };
  });

  auto make_filter = [&] {
    query_filter f;
    if (!type.empty())
      f.type = parse_type(type);
    if (!subject.empty())
      require_text(subject, "--subject");
    if (!relation.empty())
      require_text(relation, "--relation");
    f.subject = subject;
    f.relation = relation;
    f.contested_only = contested;
    f.limit = static_cast<size_t>(limit);
    return f;
  };
  auto add_filter_options = [&](CLI::App* cmd) {
    cmd->add_option("--type", type, "instant, episodic, semantic, procedural");
    cmd->add_option("--subject", subject, "beliefs about this subject");
    cmd->add_option("--relation", relation, "... and this relation");
    cmd->add_option("--limit", limit, "at most this many")
        ->check(CLI::NonNegativeNumber);
  };
  auto* query = app.add_subcommand("query", "what the agent remembers");
  add_filter_options(query);
  query->add_flag("--contested", contested, "only contested alternatives");
  query->add_option("--federation", fed_id, "a federation's memory instead");
  query->add_option("--consistency", consistency,
                    "one, quorum, all or local (the node's default)");
  query->callback([&] {
    run = [&](session& s) {
      auto f = make_filter();
      std::vector<memory_view> views;
      if (!fed_id.empty())
        views = s.call<std::vector<memory_view>>(
            s.instance(), actors::query_atom::value, fed_id, f);
      else if (!consistency.empty()) {
        auto level = parse_consistency(consistency);
        if (!level)
          throw failure{exit_usage,
                        "--consistency: " + level.error_value().message};
        views = s.call<std::vector<memory_view>>(s.instance(),
                                                 actors::query_atom::value, f,
                                                 actors::code_of(*level));
      } else
        views = s.call<std::vector<memory_view>>(s.instance(),
                                                 actors::query_atom::value, f);
      if (opts.json) {
        json out = json::array();
        for (auto& v : views)
          out.push_back(to_json(v));
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      } else {
        for (auto& v : views)
          std::cout << line_of(v) << '\n';
      }
      return 0;
    };
  });

  auto* forget = app.add_subcommand("forget", "forget an engram by id");
  forget->add_option("id", a1)->required();
  forget->add_option("--reason", reason, "why (kept with the tombstone)");
  forget->callback([&] {
    writing = true;
    run = [&](session& s) {
      auto id = engram_id::parse(a1);
      if (!id)
        throw failure{exit_usage, "id: " + id.error_value().message};
      return learned(s,
                     s.call<engram_id>(s.instance(), actors::forget_atom::value,
                                       *id, reason));
    };
  });

  auto* share = app.add_subcommand(
      "share", "share memories (the filter's) with another agent");
  share->add_option("--with", with, "the receiving agent")->required();
  add_filter_options(share);
  share->add_flag("--redact-pii", redact,
                  "remove e-mails, phones, IPs, cards, tokens on this node");
  share->add_flag("--writable", writable,
                  "let the receiver modify and pass them on (default: "
                  "read-only)");
  share->callback([&] {
    run = [&](session& s) {
      auto id = s.call<std::string>(
          s.instance(), actors::share_atom::value, with, make_filter(),
          std::string{redact ? "redact_pii" : ""}, !writable);
      if (opts.json)
        std::cout << json{{"share", id}, {"to", with}}.dump(
            -1, ' ', false, json::error_handler_t::replace)
                  << '\n';
      else
        std::cout << id << '\n';
      return 0;
    };
  });
  auto* shares = app.add_subcommand("shares", "shares waiting for the agent");
  shares->callback([&] {
    run = [&](session& s) {
      auto bytes = s.call<std::string>(s.instance(), actors::shares_atom::value,
                                       std::string{"list"}, std::string{},
                                       std::string{});
      auto list = value_or_fail(federation::decode_shares(bytes));
      if (opts.json) {
        json out = json::array();
        for (auto& x : list) {
          json mems = json::array();
          for (auto& m : x.memories)
            mems.push_back(to_json(m));
          out.push_back({{"share", x.share_id},
                         {"from", x.from},
                         {"read_only", x.read_only},
                         {"transform", x.transform},
                         {"memories", mems}});
        }
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      } else {
        for (auto& x : list) {
          std::cout << x.share_id << "  from " << x.from << ", "
                    << x.memories.size() << " memories"
                    << (x.read_only ? ", read-only" : "")
                    << (x.transform.empty() ? "" : ", " + x.transform) << '\n';
          for (auto& m : x.memories)
            std::cout << "  " << describe(m.body) << '\n';
        }
      }
      return 0;
    };
  });
  auto* accept = app.add_subcommand("accept", "accept a share: FROM SHARE_ID");
  accept->add_option("from", a1)->required();
  accept->add_option("share", a2)->required();
  accept->add_option("--trust", trust, "the trust placed in the sender")
      ->check(CLI::Range(0.0, 1.0));
  accept->callback([&] {
    run = [&](session& s) {
      auto n = s.call<std::string>(s.instance(), actors::shares_atom::value,
                                   std::string{"accept"}, a1,
                                   a2 + "\n" + std::to_string(trust));
      if (opts.json)
        std::cout << json{{"accepted", std::stoul(n)}}.dump(
            -1, ' ', false, json::error_handler_t::replace)
                  << '\n';
      else
        std::cout << "accepted " << n << " memories\n";
      return 0;
    };
  });
  auto* decline = app.add_subcommand("decline", "decline a share: SHARE_ID");
  decline->add_option("share", a1)->required();
  decline->callback([&] {
    run = [&](session& s) {
      s.call<std::string>(s.instance(), actors::shares_atom::value,
                          std::string{"decline"}, std::string{}, a1);
      std::cout << (opts.json ? json{{"declined", a1}}.dump(
                        -1, ' ', false, json::error_handler_t::replace)
                              : "declined " + a1)
                << '\n';
      return 0;
    };
  });

  auto* sync = app.add_subcommand("sync", "sync the agent's memory now");
  sync->callback([&] {
    run = [&](session& s) {
      actors::sync_config cfg;
      cfg.timeout = std::chrono::milliseconds{opts.timeout_ms};
      auto r = s.call_for<actors::sync_result>(
          std::chrono::milliseconds{opts.timeout_ms * 2}, s.instance(),
          actors::sync_atom::value, cfg);
      if (opts.json)
        std::cout << json{{"clean", r.clean()},
                          {"synced", r.synced_count},
                          {"merged", r.merged_count},
                          {"conflicts", r.conflicts.size()},
                          {"peers", r.peers}}
                         .dump(-1, ' ', false, json::error_handler_t::replace)
                  << '\n';
      else
        std::cout << (r.clean() ? "clean" : "merged") << ": " << r.synced_count
                  << " synced, " << r.merged_count << " merged, "
                  << r.conflicts.size() << " conflicts, " << r.peers
                  << " peers\n";
      return 0;
    };
  });

  auto* fed = app.add_subcommand("federation", "federations of agents");
  fed->require_subcommand(1);
  auto* fcreate = fed->add_subcommand("create", "create one, led by --agent");
  fcreate->add_option("name", a1)->required();
  fcreate->add_option("--member", members, "initial members (repeatable)");
  fcreate->add_option("--trust", trust_spec,
                      "uniform:T, reputation[:INITIAL] or "
                      "per-agent:A=T,B=T[,*=DEFAULT]");
  fcreate->add_option("--beliefs", beliefs,
                      "fork, escalate, ask_user, take_newest, "
                      "take_highest_confidence");
  fcreate->callback([&] {
    run = [&](session& s) {
      federation::federation_config cfg;
      cfg.name = a1;
      s.instance(); // --agent is needed
      cfg.initial_members.push_back(opts.agent);
      for (auto& m : members)
        if (m != opts.agent)
          cfg.initial_members.push_back(m);
      if (!trust_spec.empty())
        cfg.trust = parse_trust(trust_spec);
      if (!beliefs.empty()) {
        auto p = federation::parse_belief_policy(beliefs);
        if (!p)
          throw failure{exit_usage, "--beliefs: " + p.error_value().message};
        cfg.belief_conflicts = *p;
      }
      auto state = federation::federation_state::create(cfg, now_us());
      if (!state)
        throw failure{exit_usage, state.error_value().message};
      print_state(s.fed("create", state->id(), federation::encode(*state)),
                  opts.json);
      return 0;
    };
  });
  auto* fjoin = fed->add_subcommand("join", "join FED as --role");
  fjoin->add_option("federation", a1)->required();
  fjoin->add_option("--role", role, "member or observer");
  fjoin->callback([&] {
    run = [&](session& s) {
      print_state(s.fed("join", a1, role), opts.json);
      return 0;
    };
  });
  auto* fleave = fed->add_subcommand("leave", "leave FED");
  fleave->add_option("federation", a1)->required();
  fleave->callback([&] {
    run = [&](session& s) {
      print_state(s.fed("leave", a1, ""), opts.json);
      return 0;
    };
  });
  auto* fshow = fed->add_subcommand("show", "FED's members and rules");
  fshow->add_option("federation", a1)->required();
  fshow->callback([&] {
    run = [&](session& s) {
      print_state(s.fed("state", a1, ""), opts.json);
      return 0;
    };
  });
  auto* flist = fed->add_subcommand("list", "the federations on this node");
  flist->callback([&] {
    run = [&](session& s) {
      auto hosted = s.call<std::vector<std::string>>(
          s.node(), actors::locate_atom::value);
      json out = json::array();
      for (auto& id : hosted) {
        if (id.rfind("fed-", 0) != 0)
          continue;
        if (opts.agent.empty()) {
          out.push_back({{"id", id}});
          continue;
        }
        try {
          out.push_back(to_json(s.fed("state", id, "")));
        } catch (const failure&) {
          out.push_back({{"id", id}}); // not a member: its id only
        }
      }
      if (opts.json) {
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      } else {
        for (auto& f : out) {
          std::cout << f["id"].get<std::string>();
          if (f.contains("name"))
            std::cout << "  " << f["name"].get<std::string>() << "  led by "
                      << f["leader"].get<std::string>() << ", "
                      << f["members"].size() << " members";
          std::cout << '\n';
        }
      }
      return 0;
    };
  });
  auto* frole = fed->add_subcommand("set-role", "FED AGENT ROLE (leader only)");
  frole->add_option("federation", a1)->required();
  frole->add_option("member", a2)->required();
  frole->add_option("role", a3)->required();
  frole->callback([&] {
    run = [&](session& s) {
      print_state(s.fed("set_role", a1, a2 + ":" + a3), opts.json);
      return 0;
    };
  });
  auto* fremove = fed->add_subcommand("remove", "FED AGENT (leader only)");
  fremove->add_option("federation", a1)->required();
  fremove->add_option("member", a2)->required();
  fremove->callback([&] {
    run = [&](session& s) {
      print_state(s.fed("remove", a1, a2), opts.json);
      return 0;
    };
  });

  auto* tell = app.add_subcommand("tell", "leave TEXT in agent TO's inbox");
  tell->add_option("to", a1)->required();
  tell->add_option("text", a2)->required();
  tell->callback([&] {
    writing = true; // the message is a write to the recipient's memory
    run = [&](session& s) {
      s.call<bool>(s.instance(), actors::tell_atom::value, a1, a2);
      std::cout << (opts.json ? json{{"told", a1}}.dump(
                        -1, ' ', false, json::error_handler_t::replace)
                              : "told " + a1)
                << '\n';
      return 0;
    };
  });
  auto* ask = app.add_subcommand("ask", "ask agent TO a QUESTION");
  ask->add_option("to", a1)->required();
  ask->add_option("question", a2)->required();
  ask->add_option("--ask-timeout", ask_timeout_ms, "ms to wait for the answer")
      ->check(CLI::PositiveNumber);
  ask->callback([&] {
    run = [&](session& s) {
      auto answer = s.call_for<std::string>(
          std::chrono::milliseconds{ask_timeout_ms + opts.timeout_ms},
          s.instance(), actors::ask_atom::value, a1, a2,
          static_cast<uint64_t>(ask_timeout_ms));
      std::cout << (opts.json ? json{{"answer", answer}}.dump(
                        -1, ' ', false, json::error_handler_t::replace)
                              : answer)
                << '\n';
      return 0;
    };
  });
  auto* broadcast = app.add_subcommand(
      "broadcast", "tell every other member of FED the TEXT");
  broadcast->add_option("federation", a1)->required();
  broadcast->add_option("text", a2)->required();
  broadcast->callback([&] {
    run = [&](session& s) {
      auto n = s.call<uint64_t>(s.instance(), actors::broadcast_atom::value, a1,
                                a2);
      std::cout << (opts.json ? json{{"reached", n}}.dump(
                        -1, ' ', false, json::error_handler_t::replace)
                              : "reached " + std::to_string(n)
                                    + " members (the others get it when "
                                      "they are back)")
                << '\n';
      return 0;
    };
  });
  auto* inbox = app.add_subcommand("inbox", "read (and empty) the inbox");
  inbox->callback([&] {
    run = [&](session& s) {
      auto raw = s.call<std::vector<std::string>>(s.instance(),
                                                  actors::inbox_atom::value);
      json out = json::array();
      for (size_t i = 0; i + 1 < raw.size(); i += 2) {
        if (opts.json)
          out.push_back({{"from", raw[i]}, {"text", raw[i + 1]}});
        else
          std::cout << printable(raw[i]) << ": " << printable(raw[i + 1])
                    << '\n';
      }
      if (opts.json)
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      return 0;
    };
  });

  auto* conflicts
      = app.add_subcommand("conflicts", "conflicts waiting for an answer");
  conflicts->require_subcommand(1);
  auto* clist = conflicts->add_subcommand("list", "the pending questions");
  clist->add_option("--federation", fed_id, "a federation's instead");
  clist->callback([&] {
    run = [&](session& s) {
      auto qs = fed_id.empty()
                    ? s.call<std::vector<pending_question>>(
                        s.instance(), actors::pending_atom::value)
                    : s.call<std::vector<pending_question>>(
                        s.instance(), actors::pending_atom::value, fed_id);
      if (opts.json) {
        json out = json::array();
        for (auto& q : qs)
          out.push_back(to_json(q));
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      } else {
        for (auto& q : qs) {
          std::cout << q.subject.id << "  " << q.question.question
                    << "  options:";
          for (auto& o : q.question.options)
            std::cout << ' ' << o;
          std::cout << '\n';
          for (auto& v : q.subject.versions())
            std::cout << "  " << describe(v.value.body) << "  (from "
                      << v.value.origin.origin_agent << ")\n";
        }
      }
      return 0;
    };
  });
  auto* canswer = conflicts->add_subcommand("answer", "answer ID with OPTION");
  canswer->add_option("id", conflict_id)->required();
  canswer->add_option("option", a1)->required();
  canswer->add_option("--federation", fed_id, "a federation's question");
  canswer->callback([&] {
    writing = true;
    run = [&](session& s) {
      auto id = fed_id.empty() ? s.call<engram_id>(
                    s.instance(), actors::answer_atom::value, conflict_id, a1)
                               : s.call<engram_id>(s.instance(),
                                                   actors::answer_atom::value,
                                                   fed_id, conflict_id, a1);
      return learned(s, id);
    };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e);
    return rc == 0 ? 0 : exit_usage;
  }
  try {
    if (!run)
      throw failure{exit_usage, "nothing to do (see --help)"};
    client_config cfg;
    caf::actor_system sys{cfg};
    session s{sys, opts};
    return run(s);
  } catch (const failure& f) {
    if (opts.json)
      std::cout << failure_json(f, writing)
                       .dump(-1, ' ', false, json::error_handler_t::replace)
                << '\n';
    std::cerr << "engram: " << f.message << '\n';
    return f.code;
  }
}
