#include "gateway/gateway.hpp"

#include "actors/node.hpp"
#include "actors/types.hpp"
#include "core/placement.hpp"
#include "core/scope.hpp"
#include "federation/command.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include "api/capability.hpp"
#include "api/json.hpp"
#include "e2e/e2e.hpp"

namespace engram::gateway {

namespace {

using json = nlohmann::json;
using clk = std::chrono::steady_clock;
using api::operation;
/// A watch stream's credential expired.
using expire_atom = caf::atom_constant<caf::atom("expire")>;

// -- the gateway's state ------------------------------------------------------

struct bucket {
  double tokens = 0;
  clk::time_point last{};
};

struct state {
  state(caf::actor_system& s, actors::node& n, gateway_config c)
      : sys(s), node(n.handle()), node_id(n.id()), cfg(std::move(c)) {}

  caf::actor_system& sys;
  actors::node_actor node;
  std::string node_id;
  gateway_config cfg;
  clk::time_point started = clk::now();
  std::atomic<size_t> in_flight{0};
  std::atomic<size_t> streams{0};
  // On the server's thread only.
  std::unordered_map<std::string, bucket> buckets;
  /// The instance names each agent used (bounded: each is an actor).
  std::unordered_map<std::string, std::set<std::string>> instances;
  /// The instance actors asked for before, by agent and instance (an entry
  /// goes when its actor ends), so a request goes straight to its instance
  /// rather than through the node actor first. Any thread.
  std::mutex handles_mtx;
  std::unordered_map<std::string, actors::instance_actor> handles;
  /// The actors whose end is watched (one functor each, however often
  /// their handle is kept again).
  std::set<caf::actor_addr> watched;
};

// One request on its way: it counts as in flight until the last handler
// holding it is gone.
struct call {
  call(std::shared_ptr<state> s, http::request r,
       std::shared_ptr<http::responder> o)
      : st(std::move(s)), req(std::move(r)), out(std::move(o)) {
    ++st->in_flight;
  }

  ~call() { --st->in_flight; }

  call(const call&) = delete;
  call& operator=(const call&) = delete;

  std::shared_ptr<state> st;
  http::request req;
  std::shared_ptr<http::responder> out;
  api::principal who;
  std::map<std::string, std::string> params;
  json body = json::object();
  std::string instance = "api";
  /// What access control decided on (a query checks its results' types).
  api::access_request access;

  const std::string& param(const std::string& name) const {
    static const std::string none;
    auto i = params.find(name);
    return i == params.end() ? none : i->second;
  }

  std::string query(const std::string& name, std::string fallback = {}) const {
    auto i = req.query.find(name);
    return i == req.query.end() ? fallback : i->second;
  }
};

using call_ptr = std::shared_ptr<call>;

// -- answers ------------------------------------------------------------------

void reply(const call& c, int status, const json& j) {
  c.out->send({status, "application/json", {}, api::dump(j)});
}

void refuse(const call& c, int status, const std::string& code,
            const std::string& message, http::response extra = {}) {
  extra.status = status;
  extra.content_type = "application/json";
  extra.body = api::dump(json{{"code", code}, {"message", message}});
  c.out->send(std::move(extra));
}

int status_of(errc code) {
  switch (code) {
    case errc::unauthenticated: return 401;
    case errc::permission_denied: return 403;
    case errc::unknown_engram:
    case errc::unknown_conflict:
    case errc::unknown_agent: return 404;
    case errc::schema_mismatch: return 409;
    case errc::frame_too_large: return 413;
    case errc::timeout: return 504;
    case errc::unavailable:
    case errc::clock_offset:
    case errc::storage_failed:
    case errc::damaged_store: return 503;
    default: return 400;
  }
}

void fail(const call& c, const error& e) {
  if (e.code == errc::not_confirmed) {
    // Stored here, not yet confirmed by the replicas its level needs: do
    // not retry (it syncs when they return).
    reply(c, 202,
          {{"code", "not_confirmed"},
           {"message", e.message},
           {"id", e.subject},
           {"stored", true}});
    return;
  }
  json j{{"code", to_string(e.code)}, {"message", e.message}};
  if (!e.subject.empty())
    j["id"] = e.subject;
  reply(c, status_of(e.code), j);
}

// -- talking to the node ------------------------------------------------------

// Runs `body` in an actor of its own (the request's CAF calls); the actor
// ends with the request (done()).
template<class F>
void in_actor(const call_ptr& c, F body) {
  c->st->sys.spawn([c, body](caf::event_based_actor* self) -> caf::behavior {
    body(self, c);
    return {[](int) {
      // nothing is sent to it: it waits for its requests' answers
    }};
  });
}

std::string handle_key(const call& c) {
  return c.who.agent + '\0' + c.instance;
}

// Forgets the kept handle of the call's instance when it is the one at
// `addr` (not a newer one another request kept).
void forget_handle(const call& c, const caf::actor_addr& addr) {
  std::lock_guard<std::mutex> guard{c.st->handles_mtx};
  if (auto i = c.st->handles.find(handle_key(c));
      i != c.st->handles.end() && i->second.address() == addr)
    c.st->handles.erase(i);
}

// A request to `dest`; `on_ok` gets the answer, a failure answers the
// client and ends the actor.
template<class Handle, class OnOk, class... Ts>
void ask(caf::event_based_actor* self, const call_ptr& c, const Handle& dest,
         OnOk on_ok, Ts&&... xs) {
  self->request(dest, c->st->cfg.timeout, std::forward<Ts>(xs)...)
      .then(std::move(on_ok), [self, c, addr = dest.address()](caf::error& e) {
        // The instance (or its agent) is gone or did not answer: the next
        // request asks the node again, which hosts the agent again.
        auto err = actors::from_caf(e);
        if (e == caf::sec::request_receiver_down
            || e == caf::sec::request_timeout || err.code == errc::unavailable)
          forget_handle(*c, addr);
        fail(*c, err);
        self->quit();
      });
}

// Remembers `inst` for the call's agent and instance until the actor ends.
void keep_handle(const call_ptr& c, const actors::instance_actor& inst) {
  auto& st = *c->st;
  auto key = handle_key(*c);
  {
    std::lock_guard<std::mutex> guard{st.handles_mtx};
    if (st.handles.size() >= 100'000)
      st.handles.clear(); // bounded; they are asked for again (the watched
                          // set is bounded by the live instance actors)
    if (!st.handles.emplace(key, inst).second)
      return; // one is kept already
    if (!st.watched.insert(inst.address()).second)
      return; // its end is watched already
  }
  std::weak_ptr<state> weak = c->st;
  inst->attach_functor([weak, key, addr = inst.address()] {
    if (auto alive = weak.lock()) {
      std::lock_guard<std::mutex> guard{alive->handles_mtx};
      alive->watched.erase(addr);
      if (auto i = alive->handles.find(key);
          i != alive->handles.end() && i->second.address() == addr)
        alive->handles.erase(i);
    }
  });
}

// The request as the authenticated agent's instance: `next` runs with it.
template<class F>
void as_instance(const call_ptr& c, F next) {
  in_actor(c, [next](caf::event_based_actor* self, const call_ptr& c) {
    std::optional<actors::instance_actor> known;
    {
      std::lock_guard<std::mutex> guard{c->st->handles_mtx};
      if (auto i = c->st->handles.find(handle_key(*c));
          i != c->st->handles.end())
        known = i->second;
    }
    if (known) {
      next(self, c, *known);
      return;
    }
    ask(
        self, c, c->st->node,
        [self, c, next](actors::instance_actor& inst) {
          keep_handle(c, inst);
          next(self, c, inst);
        },
        actors::instance_atom::value, c->who.agent, c->instance);
  });
}

// Asks the instance and answers with what `render` makes of the result.
template<class Result, class Render, class... Ts>
void instance_call(const call_ptr& c, int status, Render render, Ts... xs) {
  as_instance(c, [=](caf::event_based_actor* self, const call_ptr& c,
                     actors::instance_actor& inst) {
    ask(
        self, c, inst,
        [self, c, render, status](Result& r) {
          reply(*c, status, render(r));
          self->quit();
        },
        xs...);
  });
}

// -- reading requests ---------------------------------------------------------

// A string field of the body (required unless a fallback is given).
expected<std::string> text_field(const call& c, const char* name,
                                 std::optional<std::string> fallback = {}) {
  auto i = c.body.find(name);
  if (i == c.body.end()) {
    if (fallback)
      return *fallback;
    return make_error(errc::invalid_argument,
                      std::string{"the body needs '"} + name + "'");
  }
  if (!i->is_string())
    return make_error(errc::invalid_argument,
                      std::string{"'"} + name + "' must be a string");
  return i->get<std::string>();
}

expected<double> number_field(const call& c, const char* name,
                              double fallback) {
  auto i = c.body.find(name);
  if (i == c.body.end())
    return fallback;
  if (!i->is_number())
    return make_error(errc::invalid_argument,
                      std::string{"'"} + name + "' must be a number");
  return i->get<double>();
}

bool bool_field(const call& c, const char* name, bool fallback) {
  auto i = c.body.find(name);
  return i != c.body.end() && i->is_boolean() ? i->get<bool>() : fallback;
}

// An agent or federation id named by the request.
expected<std::string> id_field(const call& c, const char* name) {
  auto x = text_field(c, name);
  if (!x)
    return x;
  if (auto ok = validate_name(*x, name); !ok)
    return ok.error_value();
  return x;
}

// -- routes -------------------------------------------------------------------

struct route {
  route_info info;
  // The kind of memory it touches (for the access check).
  api::scope_kind (*scope)(const call&);
  // Checks the request and starts it (answers on error).
  void (*run)(const call_ptr&);
  // Its memory type, when the request names one (for the access check).
  std::string (*memory_type)(const call&) = nullptr;
};

api::scope_kind agent_scope(const call&) { return api::scope_kind::agent; }

api::scope_kind collective_scope(const call&) {
  return api::scope_kind::collective;
}

api::scope_kind node_scope(const call&) { return api::scope_kind::node; }

// Learn and query touch a federation's memory when the request names one,
// this instance's when it asks for the instance scope.
// The federation a request concerns: its path's, else the one its query
// (GET) or body names; empty when none.
std::string federation_named(const call& c) {
  if (auto& p = c.param("federation"); !p.empty())
    return p;
  return c.req.method == "GET" ? c.query("federation")
                               : c.body.value("federation", std::string{});
}

api::scope_kind memory_scope_of(const call& c) {
  auto fed = federation_named(c);
  if (!fed.empty())
    return api::scope_kind::collective;
  auto scope = c.req.method == "GET" ? c.query("scope")
                                     : c.body.value("scope", std::string{});
  if (c.req.method != "GET" && scope == "instance")
    return api::scope_kind::instance;
  if (scope == "universal")
    return api::scope_kind::universal;
  return api::scope_kind::agent;
}

std::string learned_type(const call& c) {
  return c.body.value("type", std::string{"semantic"});
}

std::string queried_type(const call& c) { return c.query("type"); }

// Whether the policy lets the request's principal see memories of type
// `t` (a request that named no type is checked per memory it returns).
bool type_allowed(const call& c, memory_type t) {
  auto ar = c.access;
  ar.memory_type = to_string(t);
  return c.st->cfg.access.decide(ar).allowed;
}

// Whether the policy lets the principal see memories of every type (what
// a sealed share may hold, which this node cannot look into).
bool every_type_allowed(const call& c) {
  for (auto t : {memory_type::instant, memory_type::episodic,
                 memory_type::semantic, memory_type::procedural})
    if (!type_allowed(c, t))
      return false;
  return true;
}

// Whether the policy lets the principal also do `op` (a route whose answer
// is what another operation gives, e.g. memories to seal: query).
bool also_allowed(const call& c, api::operation op) {
  auto ar = c.access;
  ar.op = op;
  return c.st->cfg.access.decide(ar).allowed;
}

json id_json(const engram_id& id) { return {{"id", id.to_string()}}; }

void run_status(const call_ptr& c) {
  in_actor(c, [](caf::event_based_actor* self, const call_ptr& c) {
    ask(
        self, c, c->st->node,
        [self, c](actors::node_status& st) {
          ask(
              self, c, c->st->node,
              [self, c, st](std::vector<std::string>& hosted) {
                json agents = json::array();
                json feds = json::array();
                for (auto& id : hosted)
                  (id.rfind("fed-", 0) == 0 ? feds : agents).push_back(id);
                json peers = json::array();
                for (auto& p : st.peers_up)
                  peers.push_back({{"node", p}, {"up", true}});
                for (auto& p : st.peers_down)
                  peers.push_back({{"node", p}, {"up", false}});
                json clocks = json::array();
                for (auto& x : st.clock_offsets)
                  clocks.push_back(
                      {{"peer", x.peer},
                       {"offset_ms", static_cast<double>(x.offset_us) / 1000},
                       {"rtt_ms", static_cast<double>(x.rtt_us) / 1000}});
                auto up = std::chrono::duration_cast<std::chrono::seconds>(
                              clk::now() - c->st->started)
                              .count();
                json sessions = json::array();
                for (auto& x : st.session_details)
                  sessions.push_back({{"peer", x.peer_node},
                                      {"agent", x.agent},
                                      {"established", x.established},
                                      {"frames_in", x.frames_in},
                                      {"frames_out", x.frames_out},
                                      {"retransmits", x.retransmits}});
                json out{{"node", st.node_id},
                         {"version", c->st->cfg.version},
                         {"uptime_s", up},
                         {"peers", peers},
                         {"agents", agents},
                         {"federations", feds},
                         {"instances", st.instances},
                         {"sessions", sessions},
                         {"respawns", st.respawns},
                         {"clock_offsets", clocks}};
                if (!st.clock_refusal.empty())
                  out["writes_refused"] = st.clock_refusal;
                reply(*c, 200, out);
                self->quit();
              },
              actors::locate_atom::value);
        },
        actors::status_atom::value);
  });
}

void run_learn(const call_ptr& c) {
  auto rec = api::record_of(c->body);
  if (!rec)
    return fail(*c, rec.error_value());
  bool scoped = false;
  auto fed = c->body.value("federation", std::string{});
  auto scope = c->body.value("scope", std::string{"agent"});
  if (!fed.empty()) {
    if (auto ok = validate_name(fed, "federation"); !ok)
      return fail(*c, ok.error_value());
    rec->scope = memory_scope::collective(fed, {c->who.agent});
    scoped = true;
  } else if (scope == "instance") {
    rec->scope = memory_scope::instance({});
    scoped = true;
  } else if (scope == "universal") {
    // Decided by consensus: answered once committed (learn_with_consensus).
    rec->scope = memory_scope::universal();
    auto min_nodes = number_field(*c, "min_nodes", 0);
    if (!min_nodes)
      return fail(*c, min_nodes.error_value());
    auto timeout_ms = number_field(*c, "timeout_ms", 5000);
    if (!timeout_ms)
      return fail(*c, timeout_ms.error_value());
    if (!(*min_nodes >= 0 && *min_nodes <= 4096))
      return fail(*c, make_error(errc::invalid_argument,
                                 "min_nodes must be 0 (a majority) to 4096"));
    if (!(*timeout_ms >= 1 && *timeout_ms <= 600'000))
      return fail(*c, make_error(errc::invalid_argument,
                                 "timeout_ms must be 1 to 600000"));
    return instance_call<engram_id>(
        c, 201, id_json, actors::learn_atom::value, std::move(*rec),
        static_cast<uint32_t>(*min_nodes), static_cast<uint64_t>(*timeout_ms));
  } else if (scope != "agent") {
    return fail(*c, make_error(errc::invalid_argument,
                               "scope must be agent, instance or universal"));
  }
  instance_call<engram_id>(c, 201, id_json, actors::learn_atom::value,
                           std::move(*rec), scoped);
}

void run_query(const call_ptr& c) {
  auto filter = api::filter_of(
      c->req.query, {"federation", "consistency", "instance", "scope"});
  if (!filter)
    return fail(*c, filter.error_value());
  if (auto scope = c->query("scope"); !scope.empty()) {
    // The Universal scope, read linearizably from its consensus group.
    if (scope != "universal")
      return fail(*c, make_error(errc::invalid_argument,
                                 "scope must be universal (or left out)"));
    filter->kind = scope_kind::universal;
  }
  // Each memory returned is checked for its type too (a policy may deny
  // a type that the query did not name).
  auto render = [c](std::vector<memory_view>& views) {
    std::map<memory_type, bool> allowed;
    json out = json::array();
    for (auto& v : views) {
      auto t = v.value.type;
      auto i = allowed.find(t);
      if (i == allowed.end())
        i = allowed.emplace(t, type_allowed(*c, t)).first;
      if (i->second)
        out.push_back(api::to_json(v));
    }
    return out;
  };
  auto fed = c->query("federation");
  if (!fed.empty()) {
    if (auto ok = validate_name(fed, "federation"); !ok)
      return fail(*c, ok.error_value());
    return instance_call<std::vector<memory_view>>(
        c, 200, render, actors::query_atom::value, fed, *filter);
  }
  auto level = c->query("consistency");
  if (level.empty())
    return instance_call<std::vector<memory_view>>(
        c, 200, render, actors::query_atom::value, *filter);
  auto parsed = parse_consistency(level);
  if (!parsed)
    return fail(*c, make_error(errc::invalid_argument,
                               "consistency: " + parsed.error_value().message));
  instance_call<std::vector<memory_view>>(c, 200, render,
                                          actors::query_atom::value, *filter,
                                          actors::code_of(*parsed));
}

expected<engram_id> engram_param(const call& c) {
  auto id = engram_id::parse(c.param("id"));
  if (!id)
    return make_error(errc::invalid_argument,
                      "'" + c.param("id") + "' is not an engram id");
  return id;
}

void run_forget(const call_ptr& c) {
  auto id = engram_param(*c);
  if (!id)
    return fail(*c, id.error_value());
  instance_call<engram_id>(c, 200, id_json, actors::forget_atom::value, *id,
                           c->query("reason", "forgotten via the API"));
}

void run_archive(const call_ptr& c) {
  auto id = engram_param(*c);
  if (!id)
    return fail(*c, id.error_value());
  instance_call<engram_id>(c, 200, id_json, actors::archive_atom::value, *id);
}

void run_sync(const call_ptr& c) {
  actors::sync_config cfg;
  cfg.timeout = c->st->cfg.timeout / 2;
  instance_call<actors::sync_result>(
      c, 200,
      [](actors::sync_result& r) {
        return json{{"clean", r.clean()},
                    {"synced", r.synced_count},
                    {"merged", r.merged_count},
                    {"conflicts", r.conflicts.size()},
                    {"peers", r.peers}};
      },
      actors::sync_atom::value, cfg);
}

void run_tell(const call_ptr& c) {
  auto to = id_field(*c, "to");
  // Texts are bytes: those that are not UTF-8 come as text_base64.
  auto text = c->body.contains("text_base64") ? text_field(*c, "text_base64")
                                              : text_field(*c, "text");
  if (text && c->body.contains("text_base64"))
    text = api::base64_decode(*text);
  if (!to)
    return fail(*c, to.error_value());
  if (!text)
    return fail(*c, text.error_value());
  instance_call<bool>(
      c, 202,
      [](bool delivered) {
        return json{{"delivered", delivered}};
      },
      actors::tell_atom::value, *to, *text);
}

void run_ask(const call_ptr& c) {
  auto to = id_field(*c, "to");
  auto question = text_field(*c, "question");
  auto timeout = number_field(*c, "timeout_ms", 5000);
  if (!to)
    return fail(*c, to.error_value());
  if (!question)
    return fail(*c, question.error_value());
  if (!timeout)
    return fail(*c, timeout.error_value());
  auto bound = static_cast<double>(c->st->cfg.timeout.count()) - 500;
  if (*timeout < 1 || *timeout > bound)
    return fail(*c, make_error(errc::invalid_argument,
                               "timeout_ms must lie in [1, "
                                   + std::to_string(static_cast<int64_t>(bound))
                                   + "]"));
  instance_call<std::string>(
      c, 200,
      [](std::string& answer) {
        return json{{"answer", answer}};
      },
      actors::ask_atom::value, *to, *question, static_cast<uint64_t>(*timeout));
}

void run_inbox(const call_ptr& c) {
  instance_call<std::vector<std::string>>(
      c, 200,
      [](std::vector<std::string>& raw) {
        // Texts are bytes: those that are not UTF-8 (sealed ones among
        // them) come as text_base64.
        json out = json::array();
        for (size_t i = 0; i + 1 < raw.size(); i += 2)
          out.push_back(is_utf8(raw[i + 1])
                            ? json{{"from", raw[i]}, {"text", raw[i + 1]}}
                            : json{{"from", raw[i]},
                                   {"text_base64", api::base64(raw[i + 1])}});
        return out;
      },
      actors::inbox_atom::value);
}

// A key binding as JSON: its fields, and the whole of it (base64 of
// e2e::encode) for sealing with.
json binding_json(const std::string& bytes) {
  auto b = e2e::decode_binding(bytes);
  if (!b)
    return json{{"binding", api::base64(bytes)}};
  return json{{"agent", b->agent},
              {"public_key", api::base64(b->public_key)},
              {"node", b->node},
              {"vouched", b->vouched()},
              {"agent_signed", b->agent_signed()},
              {"issued_us", b->issued_us},
              {"binding", api::base64(bytes)}};
}

// A public key for this node to vouch for, or a binding the agent signed
// with its client certificate (kept as it is, once checked).
void run_publish_key(const call_ptr& c) {
  if (c->body.contains("binding")) {
    auto b = text_field(*c, "binding");
    auto raw
        = b ? api::base64_decode(*b) : expected<std::string>{b.error_value()};
    if (!raw || raw->size() == 32 || raw->size() > (1u << 16))
      return fail(*c, make_error(errc::invalid_argument,
                                 "binding must be a key binding the agent "
                                 "signed (base64)"));
    return instance_call<std::string>(c, 200, binding_json,
                                      actors::key_atom::value, *raw);
  }
  auto key = text_field(*c, "public_key");
  if (!key)
    return fail(*c, key.error_value());
  auto raw = api::base64_decode(*key);
  if (!raw || raw->size() != 32)
    return fail(*c, make_error(errc::invalid_argument,
                               "public_key must be an X25519 public key: 32 "
                               "bytes, base64"));
  instance_call<std::string>(c, 200, binding_json, actors::key_atom::value,
                             *raw);
}

void run_agent_key(const call_ptr& c) {
  auto& of = c->param("of");
  if (auto ok = validate_name(of, "agent id"); !ok)
    return fail(*c, ok.error_value());
  instance_call<std::string>(c, 200, binding_json, actors::keyof_atom::value,
                             of);
}

void run_broadcast(const call_ptr& c) {
  auto fed = id_field(*c, "federation");
  auto text = text_field(*c, "text");
  if (!fed)
    return fail(*c, fed.error_value());
  if (!text)
    return fail(*c, text.error_value());
  instance_call<uint64_t>(
      c, 202,
      [](uint64_t n) {
        return json{{"reached", n}};
      },
      actors::broadcast_atom::value, *fed, *text);
}

// What a share by filter names: the filter, whose types the policy must let
// the principal share, and the transform.
struct share_request {
  query_filter filter;
  std::string transform;
};

std::optional<share_request> share_request_of(const call_ptr& c) {
  std::map<std::string, std::string> params;
  if (auto f = c->body.find("filter"); f != c->body.end()) {
    if (!f->is_object()) {
      fail(*c,
           make_error(errc::invalid_argument, "'filter' must be an object"));
      return std::nullopt;
    }
    for (auto& [k, v] : f->items()) {
      if (!v.is_string()) {
        fail(*c, make_error(errc::invalid_argument,
                            "filter." + k + " must be a string"));
        return std::nullopt;
      }
      params[k] = v.get<std::string>();
    }
  }
  auto filter = api::filter_of(params);
  if (!filter) {
    fail(*c, filter.error_value());
    return std::nullopt;
  }
  // What is shared leaves the agent: of types the policy lets it read.
  for (auto t : {memory_type::instant, memory_type::episodic,
                 memory_type::semantic, memory_type::procedural})
    if ((!filter->type || *filter->type == t) && !type_allowed(*c, t)) {
      refuse(*c, 403, "permission_denied",
             std::string{"the policy does not let agent '"} + c->who.agent
                 + "' share " + to_string(t)
                 + " memories: name a type it allows");
      return std::nullopt;
    }
  auto transform = text_field(*c, "transform", std::string{});
  if (!transform) {
    fail(*c, transform.error_value());
    return std::nullopt;
  }
  if (!transform->empty() && *transform != "redact_pii") {
    fail(*c, make_error(errc::invalid_argument,
                        "transform must be redact_pii or absent"));
    return std::nullopt;
  }
  return share_request{std::move(*filter), std::move(*transform)};
}

// A share sealed end to end by the client (sealed_base64: e2e::seal of the
// share prepared by /shares/prepare): this node cannot see what it holds,
// so the policy must let the principal share every type.
void run_sealed_share(const call_ptr& c, const std::string& to) {
  auto id = text_field(*c, "share_id");
  auto sealed = text_field(*c, "sealed_base64");
  if (!id)
    return fail(*c, id.error_value());
  if (!sealed)
    return fail(*c, sealed.error_value());
  auto bytes = api::base64_decode(*sealed);
  if (!bytes || !e2e::is_sealed(*bytes))
    return fail(*c, make_error(errc::invalid_argument,
                               "sealed_base64 must be a sealed share, base64"));
  if (id->rfind("sh-", 0) != 0 || !validate_name(*id, "share id"))
    return fail(*c, make_error(errc::invalid_argument,
                               "share_id must be a share id (sh-...)"));
  if (!every_type_allowed(*c))
    return refuse(*c, 403, "permission_denied",
                  std::string{"the policy does not let agent '"} + c->who.agent
                      + "' share memories of every type, and a sealed share "
                        "may hold any");
  federation::share s;
  s.share_id = *id;
  s.from = c->who.agent;
  s.to = to;
  s.read_only = bool_field(*c, "read_only", true);
  s.sealed = std::move(*bytes);
  instance_call<std::string>(
      c, 201,
      [to](std::string& id) {
        return json{{"share", id}, {"to", to}, {"sealed", true}};
      },
      actors::share_atom::value, to, std::move(s));
}

void run_share(const call_ptr& c) {
  auto to = id_field(*c, "to");
  if (!to)
    return fail(*c, to.error_value());
  if (c->body.contains("sealed_base64"))
    return run_sealed_share(c, *to);
  auto req = share_request_of(c);
  if (!req)
    return;
  instance_call<std::string>(
      c, 201,
      [to = *to](std::string& id) {
        return json{{"share", id}, {"to", to}};
      },
      actors::share_atom::value, *to, req->filter, req->transform,
      bool_field(*c, "read_only", true));
}

// A share as /shares would send it, returned for the client to seal: its
// memories too, so the principal must also be allowed to query.
void run_prepare_share(const call_ptr& c) {
  if (!also_allowed(*c, api::operation::query))
    return refuse(*c, 403, "permission_denied",
                  "the policy does not let agent '" + c->who.agent
                      + "' query its memories, which a prepared share holds");
  auto to = id_field(*c, "to");
  if (!to)
    return fail(*c, to.error_value());
  auto req = share_request_of(c);
  if (!req)
    return;
  instance_call<federation::share>(
      c, 200,
      [](federation::share& s) {
        return json{{"share_id", s.share_id},
                    {"to", s.to},
                    {"read_only", s.read_only},
                    {"transform", s.transform},
                    {"share_base64", api::base64(federation::encode(s))}};
      },
      actors::prepare_atom::value, *to, req->filter, req->transform,
      bool_field(*c, "read_only", true));
}

void run_shares(const call_ptr& c) {
  instance_call<std::vector<federation::share>>(
      c, 200,
      [c](std::vector<federation::share>& list) {
        // Memory by memory, as a query's results: a type the principal may
        // not see is left out of each share.
        json out = json::array();
        bool sealed_ok = every_type_allowed(*c);
        for (auto& s : list) {
          // A sealed share may hold any type: listed only to a principal
          // that may see every type.
          if (!s.sealed.empty() && !sealed_ok)
            continue;
          s.memories.erase(std::remove_if(s.memories.begin(), s.memories.end(),
                                          [&](const engram_record& e) {
                                            return !type_allowed(*c, e.type);
                                          }),
                           s.memories.end());
          out.push_back(api::to_json(s));
        }
        return out;
      },
      actors::shares_atom::value);
}

void run_accept(const call_ptr& c) {
  auto from = text_field(*c, "from", std::string{});
  auto trust = number_field(*c, "trust", 1.0);
  if (!from)
    return fail(*c, from.error_value());
  if (!trust || !(*trust >= 0.0 && *trust <= 1.0))
    return fail(*c, make_error(errc::invalid_confidence,
                               "'trust' must be a number in [0, 1]"));
  auto accepted = [](uint64_t n) {
    return json{{"accepted", n}};
  };
  if (!c->body.contains("opened_base64"))
    return instance_call<uint64_t>(c, 200, accepted, actors::accept_atom::value,
                                   *from, c->param("id"), *trust);
  // A sealed share, with what the client opened from it (the node checks
  // it is that share; what it holds is written as the principal may).
  auto text = text_field(*c, "opened_base64");
  auto bytes = text ? api::base64_decode(*text)
                    : expected<std::string>{text.error_value()};
  auto opened = bytes ? federation::decode_share(*bytes)
                      : expected<federation::share>{bytes.error_value()};
  if (!opened)
    return fail(*c, make_error(errc::invalid_argument,
                               "opened_base64 must be the opened share, "
                               "base64: "
                                   + opened.error_value().message));
  for (auto& m : opened->memories)
    if (!type_allowed(*c, m.type))
      return refuse(*c, 403, "permission_denied",
                    std::string{"the policy does not let agent '"}
                        + c->who.agent + "' keep " + to_string(m.type)
                        + " memories");
  instance_call<uint64_t>(c, 200, accepted, actors::accept_atom::value, *from,
                          c->param("id"), *trust, std::move(*opened));
}

void run_decline(const call_ptr& c) {
  instance_call<std::string>(
      c, 200,
      [](std::string& id) {
        return json{{"declined", id}};
      },
      actors::decline_atom::value, c->param("id"));
}

// The pending questions whose versions the policy lets the principal see.
auto questions_json(const call_ptr& c) {
  return [c](std::vector<pending_question>& qs) {
    json out = json::array();
    for (auto& q : qs) {
      bool visible = true;
      for (auto& v : q.subject.versions())
        visible = visible && type_allowed(*c, v.value.type);
      if (visible)
        out.push_back(api::to_json(q));
    }
    return out;
  };
}

void run_conflicts(const call_ptr& c) {
  auto fed = c->query("federation");
  if (fed.empty())
    return instance_call<std::vector<pending_question>>(
        c, 200, questions_json(c), actors::pending_atom::value);
  if (auto ok = validate_name(fed, "federation"); !ok)
    return fail(*c, ok.error_value());
  instance_call<std::vector<pending_question>>(
      c, 200, questions_json(c), actors::pending_atom::value, fed);
}

void run_answer(const call_ptr& c) {
  uint64_t id = 0;
  auto& text = c->param("id");
  try {
    size_t used = 0;
    id = std::stoull(text, &used);
    if (used != text.size() || text.empty() || text[0] == '-')
      throw std::invalid_argument{"id"};
  } catch (const std::exception&) {
    return fail(*c, make_error(errc::invalid_argument,
                               "'" + text + "' is not a conflict id"));
  }
  auto option = text_field(*c, "option");
  if (!option)
    return fail(*c, option.error_value());
  auto fed = c->body.value("federation", std::string{});
  if (fed.empty())
    return instance_call<engram_id>(c, 200, id_json, actors::answer_atom::value,
                                    id, *option);
  if (auto ok = validate_name(fed, "federation"); !ok)
    return fail(*c, ok.error_value());
  instance_call<engram_id>(c, 200, id_json, actors::answer_atom::value, fed, id,
                           *option);
}

// A command to a federation as the authenticated agent (the instance sets
// the command's agent to its own, whatever was put there).
void federation_call(const call_ptr& c, const std::string& fed,
                     federation::command_kind what, int status = 200) {
  if (auto ok = validate_name(fed, "federation"); !ok)
    return fail(*c, ok.error_value());
  federation::federation_command cmd{c->who.agent, std::move(what)};
  instance_call<federation::federation_state>(
      c, status,
      [](federation::federation_state& st) {
        return api::to_json(st);
      },
      actors::federation_atom::value, fed, std::move(cmd));
}

void run_federation_create(const call_ptr& c) {
  auto name = text_field(*c, "name");
  if (!name)
    return fail(*c, name.error_value());
  federation::federation_config cfg;
  cfg.name = *name;
  cfg.initial_members.push_back(c->who.agent);
  if (auto m = c->body.find("members"); m != c->body.end()) {
    if (!m->is_array())
      return fail(*c, make_error(errc::invalid_argument,
                                 "'members' must be a list of agent ids"));
    for (auto& x : *m) {
      if (!x.is_string())
        return fail(*c, make_error(errc::invalid_argument,
                                   "'members' must be a list of agent ids"));
      auto id = x.get<std::string>();
      if (auto ok = validate_name(id, "member"); !ok)
        return fail(*c, ok.error_value());
      if (id != c->who.agent)
        cfg.initial_members.push_back(id);
    }
  }
  if (auto t = c->body.find("trust"); t != c->body.end()) {
    if (!t->is_string())
      return fail(
          *c, make_error(errc::invalid_argument, "'trust' must be a string"));
    auto model = api::parse_trust(t->get<std::string>());
    if (!model)
      return fail(*c, model.error_value());
    cfg.trust = *model;
  }
  if (auto e = c->body.find("e2e"); e != c->body.end()) {
    if (!e->is_boolean())
      return fail(*c, make_error(errc::invalid_argument,
                                 "'e2e' must be true or false"));
    cfg.e2e = e->get<bool>();
  }
  if (auto b = c->body.find("beliefs"); b != c->body.end()) {
    auto p = b->is_string()
                 ? federation::parse_belief_policy(b->get<std::string>())
                 : expected<federation::belief_policy>{make_error(
                     errc::invalid_argument, "'beliefs' must be a string")};
    if (!p)
      return fail(*c, p.error_value());
    cfg.belief_conflicts = *p;
  }
  auto now_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  auto created = federation::federation_state::create(cfg, now_us);
  if (!created)
    return fail(*c, created.error_value());
  auto id = created->id();
  federation_call(c, id, federation::cmd::create{std::move(*created)}, 201);
}

void run_federation_show(const call_ptr& c) {
  federation_call(c, c->param("federation"), federation::cmd::read_state{});
}

void run_federation_join(const call_ptr& c) {
  auto role
      = federation::parse_role(c->body.value("role", std::string{"member"}));
  if (!role)
    return fail(*c, role.error_value());
  federation_call(c, c->param("federation"), federation::cmd::join{*role});
}

void run_federation_invite(const call_ptr& c) {
  auto role
      = federation::parse_role(c->body.value("role", std::string{"member"}));
  if (!role)
    return fail(*c, role.error_value());
  auto& member = c->param("member");
  if (auto ok = validate_name(member, "member"); !ok)
    return fail(*c, ok.error_value());
  // Lapses after a day unless asked otherwise (0: until spent or revoked).
  auto ttl = number_field(*c, "ttl_seconds", 86400);
  if (!ttl)
    return fail(*c, ttl.error_value());
  if (*ttl < 0 || *ttl > 366.0 * 86400 || *ttl != static_cast<int64_t>(*ttl))
    return fail(*c, make_error(errc::invalid_argument,
                               "'ttl_seconds' must be a whole number of "
                               "seconds from 0 to a year"));
  uint64_t expires = 0;
  if (*ttl > 0)
    expires = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::system_clock::now().time_since_epoch()
            + std::chrono::seconds{static_cast<int64_t>(*ttl)})
            .count());
  federation_call(c, c->param("federation"),
                  federation::cmd::invite{member, *role, expires});
}

void run_federation_uninvite(const call_ptr& c) {
  auto& member = c->param("member");
  if (auto ok = validate_name(member, "member"); !ok)
    return fail(*c, ok.error_value());
  federation_call(c, c->param("federation"), federation::cmd::uninvite{member});
}

void run_federation_leave(const call_ptr& c) {
  federation_call(c, c->param("federation"), federation::cmd::leave{});
}

void run_federation_set_role(const call_ptr& c) {
  auto role = federation::parse_role(c->body.value("role", std::string{}));
  if (!role)
    return fail(*c, role.error_value());
  auto& member = c->param("member");
  if (auto ok = validate_name(member, "member"); !ok)
    return fail(*c, ok.error_value());
  federation_call(c, c->param("federation"),
                  federation::cmd::set_role{member, *role});
}

void run_federation_remove(const call_ptr& c) {
  auto& member = c->param("member");
  if (auto ok = validate_name(member, "member"); !ok)
    return fail(*c, ok.error_value());
  federation_call(c, c->param("federation"), federation::cmd::remove{member});
}

void run_federation_trust(const call_ptr& c) {
  auto text = text_field(*c, "trust");
  if (!text)
    return fail(*c, text.error_value());
  auto model = api::parse_trust(*text);
  if (!model)
    return fail(*c, model.error_value());
  federation_call(c, c->param("federation"),
                  federation::cmd::set_trust{*model});
}

// The leader's next key of a federation sealed end to end, sealed on the
// client's side to every member (e2e::seal, kind "fedkey"); the caller is
// the one who sealed it.
void run_federation_keys(const call_ptr& c) {
  auto bad = [&](const std::string& what) {
    fail(*c, make_error(errc::invalid_argument, what));
  };
  auto epoch = c->body.find("epoch");
  if (epoch == c->body.end() || !epoch->is_number_unsigned())
    return bad("'epoch' must be the next key's epoch (a positive number)");
  federation::group_keys keys;
  keys.epoch = epoch->get<uint64_t>();
  keys.sealed_by = c->who.agent;
  auto sealed = c->body.find("sealed_base64");
  if (sealed == c->body.end() || !sealed->is_object())
    return bad("'sealed_base64' must map each member to its sealed key "
               "(base64)");
  for (auto& [member, text] : sealed->items()) {
    if (auto ok = validate_name(member, "member"); !ok)
      return fail(*c, ok.error_value());
    auto bytes = text.is_string() ? api::base64_decode(text.get<std::string>())
                                  : expected<std::string>{make_error(
                                      errc::invalid_argument, "not a string")};
    if (!bytes)
      return bad("the key sealed to " + member + " is not base64");
    keys.sealed.emplace(member, std::move(*bytes));
  }
  if (auto chain = c->body.find("chain_base64"); chain != c->body.end()) {
    auto bytes = chain->is_string()
                     ? api::base64_decode(chain->get<std::string>())
                     : expected<std::string>{
                         make_error(errc::invalid_argument, "not a string")};
    if (!bytes)
      return bad("'chain_base64' must be base64");
    keys.chain = std::move(*bytes);
  }
  federation_call(c, c->param("federation"),
                  federation::cmd::rotate_keys{std::move(keys)});
}

void run_federation_beliefs(const call_ptr& c) {
  auto text = text_field(*c, "beliefs");
  if (!text)
    return fail(*c, text.error_value());
  auto p = federation::parse_belief_policy(*text);
  if (!p)
    return fail(*c, p.error_value());
  federation_call(c, c->param("federation"),
                  federation::cmd::set_belief_policy{*p});
}

// Ends a stream when its credential expires (0: never); a day at most at
// a time (a far expiry would overflow the clock).
void arm_expiry(caf::event_based_actor* self, int64_t expires_at) {
  if (expires_at <= 0)
    return;
  auto left = expires_at - static_cast<int64_t>(std::time(nullptr));
  left = std::clamp<int64_t>(left, 0, 86'400);
  self->delayed_send(self, std::chrono::seconds{left}, expire_atom::value);
}

// A stream of the agent's memory changes (Server-Sent Events): each
// change made durable on this node — the agent's writes and what it merged
// from others — as an event "memory"; a comment every 15 s keeps the
// connection alive and finds a client that left.
void run_watch(const call_ptr& c) {
  auto& st = *c->st;
  if (st.streams >= st.cfg.max_streams)
    return refuse(*c, 503, "unavailable",
                  "too many streams open on this node (max_streams)");
  ++st.streams;
  c->st->sys.spawn([c](caf::event_based_actor* self) -> caf::behavior {
    auto out = c->out;
    auto fin = [self, c] {
      if (!c->out->closed())
        c->out->close();
      self->quit();
    };
    self->attach_functor([st = c->st] {
      --st->streams;
    });
    self->request(c->st->node, c->st->cfg.timeout, actors::instance_atom::value,
                  c->who.agent, c->instance)
        .then(
            [self, c](actors::instance_actor& inst) {
              self->request(inst, c->st->cfg.timeout, actors::watch_atom::value,
                            caf::actor_cast<caf::actor>(self))
                  .then(
                      [self, c](bool ok) {
                        if (!ok) {
                          refuse(*c, 503, "unavailable",
                                 "the agent has as many watchers as it takes");
                          self->quit();
                          return;
                        }
                        c->out->open_stream();
                        c->out->push(": watching " + c->who.agent + "\n\n");
                        // Not past the credential's expiry.
                        arm_expiry(self, c->who.expires_at);
                        self->delayed_send(self, std::chrono::seconds{15},
                                           actors::tick_atom::value);
                      },
                      [self, c](caf::error& e) {
                        fail(*c, actors::from_caf(e));
                        self->quit();
                      });
            },
            [self, c](caf::error& e) {
              fail(*c, actors::from_caf(e));
              self->quit();
            });
    return {
        [self, c, fin](actors::watched_atom,
                       const std::vector<engram_record>& changed) {
          for (auto& e : changed)
            if (type_allowed(*c, e.type)
                && !c->out->push("event: memory\nid: " + e.id.to_string()
                                 + "\ndata: " + api::dump(api::to_json(e))
                                 + "\n\n"))
              return fin();
        },
        [self, c, fin](expire_atom) {
          if (static_cast<int64_t>(std::time(nullptr)) >= c->who.expires_at)
            return fin();                      // the credential expired
          arm_expiry(self, c->who.expires_at); // a day at a time
        },
        [self, c, fin](actors::tick_atom) {
          if (!c->out->push(": keep-alive\n\n"))
            return fin();
          self->delayed_send(self, std::chrono::seconds{15},
                             actors::tick_atom::value);
        },
    };
  });
}

const std::vector<route>& route_table() {
  using api::operation;
  static const std::string agent = "/v1/agents/{agent}";
  static const std::vector<route> table{
      {{"GET", "/v1/status", operation::status}, node_scope, run_status},
      {{"POST", agent + "/memories", operation::learn},
       memory_scope_of,
       run_learn,
       learned_type},
      {{"GET", agent + "/memories", operation::query},
       memory_scope_of,
       run_query,
       queried_type},
      {{"DELETE", agent + "/memories/{id}", operation::forget},
       agent_scope,
       run_forget},
      {{"POST", agent + "/memories/{id}/archive", operation::archive},
       agent_scope,
       run_archive},
      {{"POST", agent + "/sync", operation::sync}, agent_scope, run_sync},
      {{"POST", agent + "/messages", operation::tell}, agent_scope, run_tell},
      {{"POST", agent + "/questions", operation::ask}, agent_scope, run_ask},
      {{"GET", agent + "/inbox", operation::inbox}, agent_scope, run_inbox},
      {{"PUT", agent + "/key", operation::keys}, agent_scope, run_publish_key},
      {{"GET", agent + "/keys/{of}", operation::keys},
       agent_scope,
       run_agent_key},
      {{"POST", agent + "/broadcasts", operation::broadcast},
       collective_scope,
       run_broadcast},
      {{"GET", agent + "/watch", operation::watch}, agent_scope, run_watch},
      {{"POST", agent + "/shares", operation::share}, agent_scope, run_share},
      {{"GET", agent + "/shares", operation::share}, agent_scope, run_shares},
      {{"POST", agent + "/shares/prepare", operation::share},
       agent_scope,
       run_prepare_share},
      {{"POST", agent + "/shares/{id}/accept", operation::accept},
       agent_scope,
       run_accept},
      {{"POST", agent + "/shares/{id}/decline", operation::decline},
       agent_scope,
       run_decline},
      {{"GET", agent + "/conflicts", operation::conflicts_read},
       memory_scope_of,
       run_conflicts},
      {{"POST", agent + "/conflicts/{id}/answer", operation::conflicts_answer},
       memory_scope_of,
       run_answer},
      {{"POST", agent + "/federations", operation::federation_create},
       collective_scope,
       run_federation_create},
      {{"GET", agent + "/federations/{federation}", operation::federation_show},
       collective_scope,
       run_federation_show},
      {{"POST", agent + "/federations/{federation}/join",
        operation::federation_join},
       collective_scope,
       run_federation_join},
      {{"POST", agent + "/federations/{federation}/leave",
        operation::federation_leave},
       collective_scope,
       run_federation_leave},
      {{"PUT", agent + "/federations/{federation}/invitations/{member}",
        operation::federation_admin},
       collective_scope,
       run_federation_invite},
      {{"DELETE", agent + "/federations/{federation}/invitations/{member}",
        operation::federation_admin},
       collective_scope,
       run_federation_uninvite},
      {{"PUT", agent + "/federations/{federation}/members/{member}",
        operation::federation_admin},
       collective_scope,
       run_federation_set_role},
      {{"DELETE", agent + "/federations/{federation}/members/{member}",
        operation::federation_admin},
       collective_scope,
       run_federation_remove},
      {{"PUT", agent + "/federations/{federation}/trust",
        operation::federation_admin},
       collective_scope,
       run_federation_trust},
      {{"PUT", agent + "/federations/{federation}/beliefs",
        operation::federation_admin},
       collective_scope,
       run_federation_beliefs},
      {{"PUT", agent + "/federations/{federation}/keys",
        operation::federation_admin},
       collective_scope,
       run_federation_keys},
  };
  return table;
}

std::vector<std::string> split(const std::string& pattern) {
  std::vector<std::string> out;
  size_t start = 1;
  while (start <= pattern.size()) {
    auto end = pattern.find('/', start);
    if (end == std::string::npos)
      end = pattern.size();
    if (end > start)
      out.push_back(pattern.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Whether `segments` fit `pattern`; the parameters into `params`.
bool matches(const std::vector<std::string>& pattern,
             const std::vector<std::string>& segments,
             std::map<std::string, std::string>& params) {
  if (pattern.size() != segments.size())
    return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < pattern.size(); ++i) {
    auto& p = pattern[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}')
      found[p.substr(1, p.size() - 2)] = segments[i];
    else if (p != segments[i])
      return false;
  }
  params = std::move(found);
  return true;
}

// -- authentication -----------------------------------------------------------

expected<api::principal> authenticate(const state& st,
                                      const http::request& req) {
  auto now = static_cast<int64_t>(std::time(nullptr));
  auto& auth = st.cfg.auth;
  std::optional<api::principal> by_token;
  auto header = req.header("authorization");
  if (!header.empty()) {
    constexpr std::string_view bearer = "Bearer ";
    if (header.compare(0, bearer.size(), bearer) != 0)
      return make_error(errc::unauthenticated,
                        "the Authorization header is not 'Bearer <token>'");
    auto token = std::string_view{header}.substr(bearer.size());
    if (api::is_capability_token(token)) {
      if (auth.shared_key.empty())
        return make_error(errc::unauthenticated,
                          "capability tokens are not accepted here (no "
                          "shared key configured)");
      auto p
          = api::verify_capability(auth.shared_key, token, now, auth.token_ttl);
      if (!p)
        return p.error_value();
      by_token = std::move(*p);
    } else if (token.substr(0, 5) == "egk1.") {
      if (auth.shared_key.empty())
        return make_error(errc::unauthenticated,
                          "shared-key tokens are not accepted here");
      auto claims
          = api::verify_token(auth.shared_key, token, now, auth.token_ttl);
      if (!claims)
        return claims.error_value();
      by_token = api::principal{claims->agent, "shared_key", claims->roles,
                                claims->expires_at};
      by_token->token_id = claims->id;
    } else {
      if (!auth.jwks)
        return make_error(errc::unauthenticated,
                          "JWTs are not accepted here (no JWKS configured)");
      auto p
          = api::verify_jwt(*auth.jwks, auth.jwt, token, now, auth.token_ttl);
      if (!p)
        return p.error_value();
      by_token = std::move(*p);
    }
  }
  if (by_token && auth.revoked && auth.revoked->revoked(by_token->token_id))
    return make_error(errc::unauthenticated,
                      "the token was revoked (id " + by_token->token_id + ")");
  std::optional<api::principal> by_cert;
  if (!req.client_cert_pem.empty() && auth.client_certificates) {
    auto p = api::principal_of_certificate(req.client_cert_pem, now);
    if (!p && !by_token)
      return p.error_value();
    if (p)
      by_cert = std::move(*p);
  }
  if (by_token && by_cert && by_token->agent != by_cert->agent)
    return make_error(errc::unauthenticated,
                      "the token names agent '" + by_token->agent
                          + "' but the client certificate names '"
                          + by_cert->agent + "'");
  if (by_token)
    return std::move(*by_token);
  if (by_cert)
    return std::move(*by_cert);
  return make_error(errc::unauthenticated,
                    "no credentials: a bearer token (Authorization: Bearer "
                    "…) or a client certificate of the cluster's CA");
}

bool take_token(state& st, const std::string& agent) {
  auto rate = st.cfg.rate_per_agent;
  if (rate <= 0)
    return true;
  auto now = clk::now();
  if (st.buckets.size() >= 100'000 && st.buckets.count(agent) == 0)
    st.buckets.clear(); // bounded: forget the others (before taking one)
  auto& b = st.buckets[agent];
  if (b.last == clk::time_point{}) {
    b.tokens = 2 * rate;
  } else {
    auto dt = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(2 * rate, b.tokens + dt * rate);
  }
  b.last = now;
  if (b.tokens < 1)
    return false;
  b.tokens -= 1;
  return true;
}

http::response refusal(int status, const std::string& code,
                       const std::string& message) {
  return {status,
          "application/json",
          {},
          api::dump(json{{"code", code}, {"message", message}})};
}

// Authenticates a request from its header and takes a token of its
// agent's rate: on success the principal goes into the request's context;
// otherwise the answer to send.
std::pair<bool, http::response> admit(state& st, http::request& req) {
  auto who = authenticate(st, req);
  if (!who) {
    if (st.cfg.on_event)
      st.cfg.on_event("api_refused", {{"method", req.method},
                                      {"path", req.path},
                                      {"source", req.remote_addr},
                                      {"reason", who.error_value().message}});
    auto r = refusal(401, "unauthenticated", who.error_value().message);
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return {false, std::move(r)};
  }
  if (!take_token(st, who->agent))
    return {false, refusal(429, "too_many_requests",
                           "agent '" + who->agent + "' sends more than "
                               + std::to_string(
                                   static_cast<int64_t>(st.cfg.rate_per_agent))
                               + " requests a second")};
  req.context = std::make_shared<const api::principal>(std::move(*who));
  return {true, {}};
}

void serve(const std::shared_ptr<state>& st, http::request req,
           std::shared_ptr<http::responder> out) {
  auto c = std::make_shared<call>(st, std::move(req), std::move(out));
  auto& r = c->req;
  auto event = [&](const char* what, const std::string& why) {
    if (st->cfg.on_event)
      st->cfg.on_event(what, {{"method", r.method},
                              {"path", r.path},
                              {"source", r.remote_addr},
                              {"agent", c->who.agent},
                              {"reason", why}});
  };
  // Which route.
  const route* found = nullptr;
  bool path_known = false;
  // The routes' patterns as segments, split once.
  static const auto patterns = [] {
    std::vector<std::vector<std::string>> out;
    for (auto& rt : route_table())
      out.push_back(split(rt.info.pattern));
    return out;
  }();
  for (size_t k = 0; k < route_table().size(); ++k) {
    auto& rt = route_table()[k];
    std::map<std::string, std::string> params;
    if (!matches(patterns[k], r.segments, params))
      continue;
    path_known = true;
    if (rt.info.method == r.method) {
      found = &rt;
      c->params = params;
      break;
    }
  }
  // Who asks (admitted already, from the header; before saying anything
  // about the routes).
  if (r.context) {
    c->who = *std::static_pointer_cast<const api::principal>(r.context);
  } else {
    auto who = admit(*st, r);
    if (!who.first) {
      c->out->send(std::move(who.second));
      return;
    }
    c->who = *std::static_pointer_cast<const api::principal>(r.context);
  }
  if (!found) {
    if (path_known)
      return refuse(*c, 405, "method_not_allowed",
                    r.method + " is not allowed on " + r.path);
    return refuse(*c, 404, "not_found", "no such route: " + r.path);
  }
  // It acts as the authenticated agent, never another.
  if (auto i = c->params.find("agent");
      i != c->params.end() && i->second != c->who.agent) {
    event("api_denied", "acting as another agent");
    return refuse(*c, 403, "permission_denied",
                  "agent '" + c->who.agent + "' cannot act as agent '"
                      + i->second + "'");
  }
  if (st->in_flight > st->cfg.max_in_flight)
    return refuse(*c, 503, "unavailable",
                  "the node has too many requests in flight");
  // The body, if any: a JSON object, nested at most 16 deep (rendering
  // or copying a deeper one recurses as deep).
  if (!r.body.empty()) {
    constexpr int max_depth = 16;
    bool too_deep = false;
    json::parser_callback_t depth = [&](int d, json::parse_event_t, json&) {
      if (d > max_depth)
        too_deep = true;
      return !too_deep;
    };
    auto j = json::parse(r.body, depth, false);
    if (too_deep)
      return refuse(*c, 400, "invalid_argument",
                    "the body nests deeper than 16 levels");
    if (j.is_discarded() || !j.is_object())
      return refuse(*c, 400, "invalid_argument",
                    "the body is not a JSON object");
    c->body = std::move(j);
  }
  auto inst = c->query("instance");
  if (!inst.empty()) {
    if (auto ok = validate_name(inst, "instance"); !ok)
      return fail(*c, ok.error_value());
    c->instance = inst;
  }
  // May it?
  api::access_request ar;
  ar.who = c->who;
  ar.op = found->info.op;
  ar.scope = found->scope(*c);
  if (found->memory_type)
    ar.memory_type = found->memory_type(*c);
  ar.federation = federation_named(*c);
  ar.source = r.remote_addr;
  ar.now = static_cast<int64_t>(std::time(nullptr));
  c->access = ar;
  auto d = st->cfg.access.decide(ar);
  if (!d.allowed) {
    event("api_denied", d.reason);
    return refuse(*c, 403, "permission_denied", d.reason);
  }
  // Each instance is an actor on the node: an agent uses a bounded number
  // (counted once allowed; names stay counted while the node runs).
  constexpr size_t max_instances = 64;
  constexpr size_t max_agents = 100'000;
  if (st->instances.size() >= max_agents
      && st->instances.count(c->who.agent) == 0)
    return refuse(*c, 503, "unavailable",
                  "the node serves as many agents as it takes");
  auto& used = st->instances[c->who.agent];
  if (used.count(c->instance) == 0 && used.size() >= max_instances)
    return refuse(*c, 429, "too_many_requests",
                  "agent '" + c->who.agent + "' uses "
                      + std::to_string(max_instances) + " instances already");
  used.insert(c->instance);
  found->run(c);
}

} // namespace

const std::vector<route_info>& routes() {
  static const std::vector<route_info> infos = [] {
    std::vector<route_info> out;
    for (auto& r : route_table())
      out.push_back(r.info);
    return out;
  }();
  return infos;
}

service make_service(caf::actor_system& sys, actors::node& n,
                     gateway_config cfg) {
  auto st = std::make_shared<state>(sys, n, std::move(cfg));
  service out;
  out.admission = [st](http::request& head) -> std::optional<http::response> {
    auto r = admit(*st, head);
    if (r.first)
      return std::nullopt;
    return std::move(r.second);
  };
  out.handler
      = [st](http::request req, std::shared_ptr<http::responder> answer) {
          try {
            serve(st, std::move(req), answer);
          } catch (const json::exception&) {
            // A field of the wrong type read with a default (json::value).
            answer->send(refusal(400, "invalid_argument",
                                 "a field of the body has the wrong type"));
          }
        };
  return out;
}

} // namespace engram::gateway
