// The node handle (actors/node.hpp): starts a node (its store, its
// context, its actor: actors/node.cpp) and answers a program's questions
// about it.

#include "actors/internal/spawn.hpp"
#include "actors/node.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>

#include <chrono>
#include <set>
#include <thread>

namespace engram::actors {

// -- node -------------------------------------------------------------------

namespace {

// Every timer of a node is positive and bounded (a timer of INT64_MAX ms
// overflows the arithmetic of the clocks that use it).
expected<void> check_timers(const node_config& cfg) {
  using std::chrono::hours;
  using std::chrono::minutes;
  auto& s = cfg.sessions;
  struct bounded {
    const char* name;
    milliseconds value;
    milliseconds max;
  };
  const bounded all[] = {
      {"sessions.push_delay", s.push_delay, minutes{1}},
      {"sessions.retransmit_after", s.retransmit_after, minutes{1}},
      {"sessions.anti_entropy_interval", s.anti_entropy_interval, hours{24}},
      {"sessions.ping_interval", s.ping_interval, hours{1}},
      {"sessions.peer_timeout", s.peer_timeout, hours{24}},
      {"sessions.tick", s.tick, minutes{1}},
      {"replication.write_timeout", cfg.replication.write_timeout, hours{1}},
      {"max_clock_offset", cfg.max_clock_offset, hours{1}},
      {"consensus.election_timeout", cfg.consensus.election_timeout,
       minutes{1}},
      {"consensus.heartbeat_interval", cfg.consensus.heartbeat_interval,
       minutes{1}},
  };
  for (auto& b : all)
    if (b.value.count() < 0 || b.value > b.max
        || (b.value.count() == 0
            && std::string{b.name} != "sessions.push_delay"))
      return make_error(
          errc::invalid_argument,
          "node " + cfg.node_id + ": " + b.name + " must be "
              + (std::string{b.name} == "sessions.push_delay" ? "0" : "1")
              + " to " + std::to_string(b.max.count()) + " ms");
  auto& c = cfg.consensus;
  if (c.election_timeout < 3 * c.heartbeat_interval)
    return make_error(
        errc::invalid_argument,
        "node " + cfg.node_id
            + ": consensus.election_timeout must be at least "
              "three heartbeat intervals ("
            + std::to_string(c.election_timeout.count()) + " < 3 × "
            + std::to_string(c.heartbeat_interval.count()) + " ms)");
  std::set<std::string> seen;
  for (auto& m : c.members) {
    if (auto ok = validate_name(m, "consensus member"); !ok)
      return ok.error_value();
    if (!seen.insert(m).second)
      return make_error(errc::invalid_argument, "node " + cfg.node_id
                                                    + ": consensus member " + m
                                                    + " is listed twice");
  }
  return {};
}

} // namespace

node::node(caf::actor_system& sys, node_context_ptr ctx, node_actor hdl)
    : sys_(&sys), ctx_(std::move(ctx)), hdl_(std::move(hdl)) {
  // nop
}

node::~node() { stop(); }

void node::stop() {
  if (!hdl_)
    return;
  caf::scoped_actor self{*sys_};
  self->send_exit(hdl_, caf::exit_reason::user_shutdown);
  self->wait_for(hdl_);
  hdl_ = nullptr;
  // The node's children stop asynchronously; the store closes when the last
  // of them released the node's context (bounded wait).
  for (int i = 0; i < 1000 && ctx_.use_count() > 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
}

expected<std::unique_ptr<node>> node::start(caf::actor_system& sys,
                                            node_config cfg) {
  if (auto ok = validate_name(cfg.node_id, "node id"); !ok)
    return ok.error_value();
  if (cfg.data_dir.empty())
    return make_error(errc::invalid_argument,
                      "node " + cfg.node_id + ": no data directory");
  if (auto ok = check_timers(cfg); !ok)
    return ok.error_value();
  if (!cfg.wall_clock)
    cfg.wall_clock = std::make_shared<system_physical_clock>();
  auto members = cfg.members.empty() ? std::vector<std::string>{cfg.node_id}
                                     : cfg.members;
  if (auto p = placement::make(cfg.replication, cfg.partitioning, members); !p)
    return p.error_value();
  persistence::store_options opts{cfg.data_dir};
  opts.sync = cfg.sync_writes;
  opts.master_key = cfg.master_key;
  auto db = persistence::database::open(opts);
  if (!db)
    return db.error_value();
  if (cfg.on_event) // what the open noticed and took care of
    for (auto& note : (*db)->notes())
      cfg.on_event("store_note", {{"node", cfg.node_id}, {"note", note}});
  auto ctx = std::make_shared<node_context>();
  if (cfg.tls.enabled()) {
    // What the node proves its id with, and checks its peers against.
    if (auto ok = check_tls(cfg.tls, tls_role::node, cfg.node_id); !ok)
      return ok.error_value();
    auto id = std::make_shared<node_identity>();
    auto cert = pki::load_certificate(cfg.tls.certificate);
    auto key = pki::load_private_key(cfg.tls.private_key);
    auto ca = pki::load_certificate(cfg.tls.ca);
    if (!cert || !key || !ca)
      return make_error(errc::invalid_argument,
                        "node " + cfg.node_id + ": cannot load its TLS files");
    // Its proof is bound to its connections: the actor system must speak
    // TLS with this certificate (peers refuse another one's connection).
    auto spoken = pki::load_certificate(sys.config().openssl_certificate);
    if (!spoken || spoken->fingerprint() != cert->fingerprint())
      return make_error(
          errc::invalid_argument,
          "node " + cfg.node_id + ": its actor system speaks TLS with '"
              + sys.config().openssl_certificate
              + "', not the node's certificate '" + cfg.tls.certificate
              + "' (peers would refuse its connections)");
    id->cert = std::move(*cert);
    id->cert_pem = id->cert.to_pem();
    id->key = std::move(*key);
    id->ca = std::move(*ca);
    if (!cfg.tls.crl.empty()) {
      auto crl = pki::load_revocation_list(cfg.tls.crl);
      if (!crl)
        return crl.error_value();
      id->crl = std::move(*crl);
    }
    ctx->identity = std::move(id);
    if (cfg.sign_envelopes) {
      auto signer = crypto::signing_key::generate();
      if (!signer)
        return signer.error_value();
      ctx->signer
          = std::make_shared<const crypto::signing_key>(std::move(*signer));
      auto& me = *ctx->identity;
      auto binding = origin::bind(cfg.node_id, me.cert_pem, me.key,
                                  ctx->signer->public_key());
      if (!binding)
        return binding.error_value();
      ctx->origin_binding = std::move(*binding);
    }
  }
  ctx->local_token = pki::random_bytes(32);
  ctx->config = std::move(cfg);
  ctx->db = std::move(*db);
  ctx->writes = std::make_shared<persistence::write_queue>(
      ctx->db, ctx->config.background_writes);
  ctx->dir = std::make_shared<directory>();
  ctx->cluster = std::make_shared<cluster_view>(ctx->config.max_clock_offset);
  auto hdl = spawn_node(sys, node_context_ptr{ctx});
  ctx->node = hdl.address();
  return std::unique_ptr<node>{new node(sys, std::move(ctx), std::move(hdl))};
}

const std::string& node::id() const noexcept { return ctx_->config.node_id; }

const std::shared_ptr<directory>& node::dir() const noexcept {
  return ctx_->dir;
}

expected<memory> node::open(const std::string& agent_id,
                            const std::string& instance_id,
                            milliseconds timeout) {
  caf::scoped_actor self{*sys_};
  expected<memory> result = make_error(errc::timeout, "node did not answer");
  self->request(hdl_, timeout, instance_atom::value, agent_id, instance_id)
      .receive(
          [&](instance_actor&) {
            result = memory{*sys_, ctx_->dir, agent_id, instance_id, timeout};
          },
          [&](caf::error& err) {
            result = from_caf(err);
          });
  return result;
}

namespace {

// Asks the node actor from a scoped actor of `sys`, bounded by `timeout`.
template<class R, class... Ts>
expected<R> ask_node(caf::actor_system& sys, const node_actor& hdl,
                     milliseconds timeout, Ts&&... xs) {
  caf::scoped_actor self{sys};
  expected<R> result = make_error(errc::timeout, "node did not answer");
  self->request(hdl, timeout, std::forward<Ts>(xs)...)
      .receive(
          [&](R& r) {
            result = std::move(r);
          },
          [&](caf::error& err) {
            result = from_caf(err);
          });
  return result;
}

} // namespace

expected<agent_actor> node::agent(const std::string& agent_id,
                                  milliseconds timeout) {
  return ask_node<agent_actor>(*sys_, hdl_, timeout, agent_atom::value,
                               agent_id);
}

expected<node_status> node::status(milliseconds timeout) {
  return ask_node<node_status>(*sys_, hdl_, timeout, status_atom::value);
}

expected<std::vector<std::string>> node::locate(const std::string& agent_id,
                                                milliseconds timeout) {
  return ask_node<std::vector<std::string>>(*sys_, hdl_, timeout,
                                            locate_atom::value, agent_id);
}

expected<agent_actor> node::find(const std::string& agent_id,
                                 milliseconds timeout) {
  return ask_node<agent_actor>(*sys_, hdl_, timeout, find_atom::value,
                               agent_id);
}

void node::add_peer(const std::string& peer_node, peer_actor peer,
                    const std::string& signing_key) {
  // This process's own token: the node takes the peer as given (a remote
  // node asking to be a peer proves its id instead).
  caf::anon_send(hdl_, peer_atom::value, peer_node, std::move(peer),
                 std::string{}, ctx_->local_token, std::string{}, signing_key);
}

const node_context_ptr& node::context() const noexcept { return ctx_; }

void connect(node& x, node& y) {
  x.add_peer(y.id(), caf::actor_cast<peer_actor>(y.handle()));
  y.add_peer(x.id(), caf::actor_cast<peer_actor>(x.handle()));
}

} // namespace engram::actors
