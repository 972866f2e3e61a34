// engramd: the Engram node daemon. It opens the node's store (embedded
// RocksDB), publishes its node actor over CAF's network layer, keeps
// connected to its seed peers (static addresses or DNS names), and syncs
// every hosted agent's memory with theirs. SIGTERM / SIGINT shut it down
// cleanly (sessions stop, the store is flushed and closed).
//
//   engramd --node-id n1 --data-dir /var/lib/engram/n1 --listen 127.0.0.1:7420
//           [--peer 127.0.0.1:7421 ...] [--config engramd.toml]
//
// Exit codes: 0 clean shutdown (or a valid --check-config), 2 bad
// configuration or flags, 3 the node could not start (store, port).
#include "actors/net.hpp"
#include "actors/tls.hpp"
#include "apps/engramd/cert.hpp"
#include "apps/engramd/config.hpp"
#include "apps/engramd/token.hpp"
#include "persistence/allocator.hpp"
#include "persistence/database.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <CLI/CLI.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <toml.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crypto/key_source.hpp"
#include "crypto/pkcs11.hpp"
#include "gateway/gateway.hpp"
#include "http/server.hpp"

using namespace engram;
using engram::engramd::settings;

namespace {

constexpr int exit_bad_config = 2;
constexpr int exit_cannot_start = 3;

// The master key `source` names (none when empty; `vault` when given);
// prints why not.
std::optional<std::optional<crypto::key256>>
master_key_from(const std::string& source, const char* what,
                const std::optional<engramd::vault_source>& vault = {}) {
  if (source.empty() && !vault)
    return std::optional<crypto::key256>{};
  auto key = [&]() -> expected<crypto::key256> {
    if (vault)
      return engramd::load_vault_key(*vault);
    if (source.rfind("vault:", 0) == 0) {
      auto src = engramd::parse_vault_spec(source);
      if (!src)
        return src.error_value();
      return engramd::load_vault_key(*src);
    }
    return crypto::load_master_key(source);
  }();
  if (!key) {
    std::fprintf(stderr, "engramd: %s: %s\n", what,
                 key.error_value().message.c_str());
    return std::nullopt;
  }
  return std::optional<crypto::key256>{*key};
}

// engramd repair --data-dir D: the only way to open a damaged store.
int run_repair(const std::string& dir, const std::string& key_source) {
  auto master = master_key_from(key_source, "--master-key");
  if (!master)
    return exit_bad_config;
  auto report = persistence::database::repair(dir, *master);
  if (!report) {
    std::fprintf(stderr, "engramd: %s\n",
                 report.error_value().to_string().c_str());
    return exit_cannot_start;
  }
  std::printf("engramd: repaired the store at %s\n", dir.c_str());
  std::printf("  copy of the damaged store: %s\n", report->backup.c_str());
  std::printf("  method: %s\n", report->method.c_str());
  for (auto& d : report->damage)
    std::printf("  damage: %s\n", d.c_str());
  for (auto& l : report->lost)
    std::printf("  not recovered: %s\n", l.c_str());
  if (report->lost.empty())
    std::printf("  not recovered: nothing found missing\n");
  std::printf("  recovered: %zu replicas, %zu engram records (%zu "
              "undecodable, left out)\n",
              report->partitions, report->engrams, report->corrupt);
  std::printf("  replicas sync what they lack from their peers once the node "
              "runs\n");
  return 0;
}

// engramd rekey: a new master key and data key for an encrypted store.
int run_rekey(const std::string& dir, const std::string& old_source,
              const std::string& new_source, bool reseal) {
  if (old_source.empty() || new_source.empty()) {
    std::fprintf(stderr, "engramd: rekey: --master-key and --new-master-key "
                         "must name key sources\n");
    return exit_bad_config;
  }
  auto old_key = master_key_from(old_source, "--master-key");
  if (!old_key)
    return exit_bad_config;
  auto new_key = master_key_from(new_source, "--new-master-key");
  if (!new_key)
    return exit_bad_config;
  auto report = persistence::database::rekey(dir, **old_key, **new_key, reseal);
  if (!report) {
    std::fprintf(stderr, "engramd: rekey: %s\n",
                 report.error_value().message.c_str());
    return exit_cannot_start;
  }
  std::printf("engramd: rekeyed the store at %s: data key %u active, %zu "
              "held, wrapped by the new master key\n",
              dir.c_str(), report->active_key, report->keys);
  if (reseal)
    std::printf("  %zu values sealed again under data key %u; retired keys "
                "dropped\n",
                report->resealed, report->active_key);
  else
    std::printf("  older values stay readable under their keys (--reseal "
                "seals them again and drops the retired keys)\n");
  return 0;
}

// Written whole, then renamed: a reader never sees half a port.
void write_port_file(const std::string& file, uint16_t port) {
  if (file.empty())
    return;
  auto tmp = file + ".tmp";
  std::ofstream{tmp} << port << '\n';
  std::rename(tmp.c_str(), file.c_str());
}

} // namespace

int main(int argc, char** argv) {
  // Signals are taken by sigwait below: block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // Fixed allocator thresholds (persistence/allocator.hpp): frames' buffers
  // are reused, and memory drifts up no more after a large free.
  engram::persistence::tune_allocator();

  CLI::App app{"engramd: the Engram node daemon\n\n"
               "Settings come from --config FILE (TOML); a flag given on the "
               "command line replaces the file's value (--peer and --member "
               "replace the file's whole list of seeds / members, "
               "distribution.federation.discovery included). A seed that is "
               "this node itself is ignored, so every node can share one "
               "seed list."};
  settings flags;
  std::string config_file;
  bool check_only = false;
  app.add_option("--config", config_file, "TOML configuration file");
  auto* node_id = app.add_option("--node-id", flags.node_id, "unique node id");
  auto* listen = app.add_option("--listen", flags.listen,
                                "host:port to listen on (port 0: any free)");
  auto* data_dir = app.add_option("--data-dir", flags.data_dir,
                                  "the node's store directory");
  auto* peers = app.add_option("--peer", flags.peers,
                               "seed peer host:port, or dns:name:port "
                               "(repeatable)");
  auto* log_level = app.add_option("--log-level", flags.log_level,
                                   "trace, debug, info, warn, error, off");
  auto* sign_envelopes = app.add_option(
      "--sign-envelopes", flags.sign_envelopes,
      "sign every envelope to a peer and take only signed ones (default "
      "true; false only to measure what it costs)");
  auto* e2e_required = app.add_option(
      "--e2e-required", flags.e2e_required,
      "refuse tells and shares not sealed end to end "
      "(X25519-XSalsa20-Poly1305), and broadcasts, which are not sealed yet");
  auto* sync_writes = app.add_option("--sync-writes", flags.sync_writes,
                                     "fdatasync every acknowledged write");
  auto* threads = app.add_option(
      "--threads", flags.threads,
      "scheduler threads (0: CAF's default, one per core and at least four)");
  auto* members = app.add_option("--member", flags.members,
                                 "a node id of the cluster, for placement "
                                 "(repeatable)");
  auto* factor
      = app.add_option("--replication-factor", flags.replication_factor,
                       "replicas per partition (0: every node)");
  auto* strategy
      = app.add_option("--replication-strategy", flags.replication_strategy,
                       "symmetric, primary_secondary or sharded");
  auto* consistency = app.add_option("--consistency", flags.consistency,
                                     "one, quorum, all or local");
  auto* part_strategy
      = app.add_option("--partition-strategy", flags.partition_strategy,
                       "hash, scope, type or time");
  auto* part_count = app.add_option("--partitions", flags.partition_count,
                                    "number of partitions");
  auto* certs_dir = app.add_option(
      "--certs-dir", flags.certs_dir,
      "mutual TLS with the certificates in DIR: node.<id>.crt, "
      "node.<id>.key, ca.crt (and ca.crl if present); engramd cert makes "
      "them");
  auto* insecure = app.add_flag(
      "--insecure", flags.insecure,
      "plaintext between nodes (no TLS): anyone who reaches the port is a "
      "peer; loopback only unless --insecure-beyond-loopback");
  auto* insecure_wide = app.add_flag(
      "--insecure-beyond-loopback", flags.insecure_beyond_loopback,
      "allow --insecure on an address beyond loopback (a "
      "trusted network only)");
  app.add_option("--port-file", flags.port_file,
                 "write the port listened on to this file once ready");
  auto* api_listen = app.add_option(
      "--api-listen", flags.api.listen,
      "host:port of the client API (HTTPS; default: the node's host, its "
      "port + 1000)");
  app.add_option("--api-port-file", flags.api.port_file,
                 "write the client API's port to this file once ready");
  app.add_flag("--check-config", check_only,
               "validate the configuration (and that the data directory and "
               "the listen address are usable) and exit");
  auto* master_key = app.add_option(
      "--master-key", flags.master_key,
      "encrypt the store at rest with the master key from file:PATH (owner "
      "only), env:NAME, command:PROGRAM [ARG]..., pkcs11:URI or "
      "vault:URL/v1/MOUNT/data/PATH[#FIELD] (token from $VAULT_TOKEN)");
  std::string repair_dir;
  std::string repair_key;
  auto* repair = app.add_subcommand(
      "repair", "repair a damaged store: copies it first (DIR.damaged-TIME), "
                "recovers what it can, reports what it could not");
  repair->add_option("--data-dir", repair_dir, "the store's directory")
      ->required();
  repair->add_option("--master-key", repair_key,
                     "the master key of an encrypted store (file:PATH, "
                     "env:NAME, command:PROGRAM [ARG]...)");
  std::string keygen_uri;
  auto* keygen = app.add_subcommand(
      "pkcs11-keygen", "create the secret key a pkcs11: master key is derived "
                       "from, in the token (256 bits, never extractable), "
                       "unless the token holds it already");
  keygen
      ->add_option("--uri", keygen_uri,
                   "pkcs11:token=T;object=K?module-path=M&pin-source=file:P")
      ->required();
  std::string rekey_dir;
  std::string rekey_old;
  std::string rekey_new;
  bool rekey_reseal = false;
  auto* rekey = app.add_subcommand(
      "rekey", "rotate the keys of an encrypted store (stopped): a new data "
               "key for new values, all wrapped by a new master key");
  rekey->add_option("--data-dir", rekey_dir, "the store's directory")
      ->required();
  rekey->add_option("--master-key", rekey_old, "its master key now")
      ->required();
  rekey
      ->add_option("--new-master-key", rekey_new,
                   "the master key from now on (may be the same)")
      ->required();
  rekey->add_flag("--reseal", rekey_reseal,
                  "also seal every value again under the new data key and "
                  "drop the retired keys");
  engram::engramd::cert_options cert_opts;
  auto* cert = engram::engramd::add_cert_command(app, cert_opts);
  engram::engramd::token_options token_opts;
  auto* token = engram::engramd::add_token_command(app, token_opts);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return e.get_exit_code() == 0 ? app.exit(e)
                                  : (app.exit(e), exit_bad_config);
  }
  if (*repair)
    return run_repair(repair_dir, repair_key);
  if (*rekey)
    return run_rekey(rekey_dir, rekey_old, rekey_new, rekey_reseal);
  if (*keygen) {
    auto src = crypto::parse_pkcs11_uri(keygen_uri);
    auto made = src ? crypto::generate_pkcs11_key(*src)
                    : expected<bool>{src.error_value()};
    if (!made) {
      std::fprintf(stderr, "engramd: pkcs11-keygen: %s\n",
                   made.error_value().message.c_str());
      return exit_bad_config;
    }
    std::printf("engramd: %s\n", *made ? "created the key in the token"
                                       : "the token holds the key already");
    return 0;
  }
  if (*cert)
    return engram::engramd::run_cert(*cert, cert_opts);
  if (*token)
    return engram::engramd::run_token(*token, token_opts);
  // The file first, flags override it.
  settings s;
  if (!config_file.empty())
    if (auto loaded = engramd::load_file(config_file, s); !loaded) {
      std::fprintf(stderr, "engramd: %s\n",
                   loaded.error_value().message.c_str());
      return exit_bad_config;
    }
  if (*node_id)
    s.node_id = flags.node_id;
  if (*listen)
    s.listen = flags.listen;
  if (*data_dir)
    s.data_dir = flags.data_dir;
  if (*peers) { // the flags' seeds replace every seed of the file
    s.peers = flags.peers;
    s.discovered.clear();
  }
  if (*log_level)
    s.log_level = flags.log_level;
  if (*sync_writes)
    s.sync_writes = flags.sync_writes;
  if (*sign_envelopes)
    s.sign_envelopes = flags.sign_envelopes;
  if (*e2e_required)
    s.e2e_required = flags.e2e_required;
  if (*threads)
    s.threads = flags.threads;
  if (*members)
    s.members = flags.members;
  if (*factor)
    s.replication_factor = flags.replication_factor;
  if (*strategy)
    s.replication_strategy = flags.replication_strategy;
  if (*consistency)
    s.consistency = flags.consistency;
  if (*part_strategy)
    s.partition_strategy = flags.partition_strategy;
  if (*part_count)
    s.partition_count = flags.partition_count;
  if (*certs_dir) { // the directory's files replace the file's
    s.certs_dir = flags.certs_dir;
    s.tls.certificate.clear();
    s.tls.private_key.clear();
    s.tls.ca.clear();
    s.tls.crl.clear();
  }
  if (*master_key) {
    s.master_key = flags.master_key;
    s.vault.reset();
  }
  if (*insecure)
    s.insecure = true;
  if (*insecure_wide)
    s.insecure_beyond_loopback = true;
  s.port_file = flags.port_file;
  if (*api_listen)
    s.api.listen = flags.api.listen;
  if (!flags.api.port_file.empty())
    s.api.port_file = flags.api.port_file;
  auto checked = engramd::validate(s);
  if (!checked) {
    std::fprintf(stderr, "engramd: %s\n",
                 checked.error_value().message.c_str());
    return exit_bad_config;
  }
  auto& v = *checked;
  auto& repl = v.node.replication;
  auto& parts = v.node.partitioning;
  // The TLS policy before anything uses OpenSSL; then the node's own
  // certificate, key and CA (CAF terminates on a file it cannot use).
  if (!v.insecure) {
    if (auto ok = actors::apply_tls_policy(v.tls); !ok) {
      std::fprintf(stderr, "engramd: %s\n", ok.error_value().message.c_str());
      return exit_cannot_start;
    }
    if (auto ok = actors::check_tls(v.tls, actors::tls_role::node, s.node_id);
        !ok) {
      std::fprintf(stderr, "engramd: TLS: %s\n",
                   ok.error_value().message.c_str());
      return exit_cannot_start;
    }
  }
  // The store's master key (a command is run, a file checked): refused
  // before anything starts.
  auto master = master_key_from(s.master_key, "distribution.encryption.at_rest",
                                s.vault);
  if (!master)
    return exit_bad_config;
  v.node.master_key = *master;
  if (check_only) {
    // What start-up checks beyond the configuration: the store and the
    // listen address (exit 3, as a start would).
    auto store = persistence::database::check(s.data_dir);
    if (!store) {
      std::fprintf(stderr, "engramd: data_dir: %s\n",
                   store.error_value().to_string().c_str());
      return exit_cannot_start;
    }
    if (auto bound = actors::check_listen(v.listen); !bound) {
      std::fprintf(stderr, "engramd: listen: %s\n",
                   bound.error_value().to_string().c_str());
      return exit_cannot_start;
    }
    std::printf("engramd: data_dir: %s\n", store->c_str());
    std::printf("engramd: configuration ok (node %s, listen %s, %zu peers, "
                "replication %s factor %zu consistency %s, %u %s "
                "partitions)\n",
                s.node_id.c_str(), v.listen.to_string().c_str(), v.seeds.size(),
                to_string(repl.strategy), repl.factor,
                to_string(repl.consistency), parts.partition_count,
                to_string(parts.strategy));
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(v.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  // Every line reaches the log at once (a file or a pipe buffers otherwise):
  // operators and tests read events as they happen.
  spdlog::flush_on(spdlog::level::trace);

  // Descriptors: as many as allowed (idle clients of the API must not
  // exhaust them); the API's connection cap leaves room for the rest.
  {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
      lim.rlim_cur = lim.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &lim);
    }
    ::getrlimit(RLIMIT_NOFILE, &lim);
    constexpr rlim_t reserve = 512; // peers, the store, the mesh's guard
    auto room = lim.rlim_cur > 2 * reserve ? lim.rlim_cur - reserve : reserve;
    if (v.api_server.max_connections > room) {
      spdlog::warn("event=api_connections_capped node={} max_connections={} "
                   "(the descriptor limit is {})",
                   s.node_id, room, lim.rlim_cur);
      v.api_server.max_connections = static_cast<size_t>(room);
    }
    // One address never holds more than half of the cap.
    v.api_server.max_connections_per_source
        = std::min(v.api_server.max_connections_per_source,
                   std::max<size_t>(1, v.api_server.max_connections / 2));
  }
  struct system_config : caf::actor_system_config {
    system_config() { actors::register_types(*this); }
  } cfg;
  actors::configure_network(cfg, v.heartbeat, v.connection_timeout);
  if (!v.insecure) {
    actors::configure_tls(cfg, v.tls);
    actors::limit_connections(
        v.limits,
        [id = s.node_id](const std::string& why, const std::string& source) {
          spdlog::warn("event=connection_refused node={} source={} "
                       "reason=\"{}\"",
                       id, source, why);
        });
  }
  if (v.threads > 0)
    cfg.set("scheduler.max-threads", v.threads);
  caf::actor_system sys{cfg};
  auto nc = v.node;
  if (!v.insecure)
    nc.tls = v.tls; // peers prove their node id with it
  // The daemon's agents have no program of their own here: asks are
  // answered from their memory (engram ask AGENT KEY|SUBJECT).
  nc.agent_defaults = [v](const std::string& id) {
    return engramd::agent_defaults(v, id);
  };
  nc.on_event = [](const std::string& event, const actors::event_fields& xs) {
    std::string line = "event=" + event;
    for (auto& [k, x] : xs)
      line += ' ' + k + '=' + x;
    if (event == "session_down" || event == "clock_offset_exceeded"
        || event == "peer_refused" || event == "envelope_refused")
      spdlog::warn("{}", line);
    else
      spdlog::info("{}", line);
  };
  if (!v.insecure) // a node dials nodes only
    actors::dial_nodes_only();
  auto n = actors::node::start(sys, nc);
  if (!n) {
    spdlog::error("event=start_failed node={} reason=\"{}\"", s.node_id,
                  n.error_value().to_string());
    std::fprintf(stderr, "engramd: %s\n", n.error_value().to_string().c_str());
    return exit_cannot_start;
  }
  auto port = actors::publish(sys, **n, v.listen);
  if (!port) {
    spdlog::error("event=listen_failed node={} addr={} reason=\"{}\"",
                  s.node_id, v.listen.to_string(),
                  port.error_value().to_string());
    std::fprintf(stderr, "engramd: %s\n",
                 port.error_value().to_string().c_str());
    return exit_cannot_start;
  }
  spdlog::info("event=listening node={} addr={}:{} data_dir={} peers={} "
               "replication={} factor={} consistency={} partitions={} "
               "transport={} at_rest={}",
               s.node_id, v.listen.host, *port, s.data_dir, v.seeds.size(),
               to_string(repl.strategy), repl.factor,
               to_string(repl.consistency), parts.partition_count,
               v.insecure ? "plaintext" : "mtls-tls" + v.tls.min_version + "+",
               v.node.master_key ? "aes256gcm" : "plaintext");
  if (v.insecure)
    spdlog::warn("event=insecure node={} addr={}:{} (plaintext: anyone who "
                 "reaches this port is a full peer and reads every frame; "
                 "use --certs-dir)",
                 s.node_id, v.listen.host, *port);
  if (!v.insecure) // clients use the API: the mesh takes nodes only
    actors::mesh_accepts_nodes_only(*port);
  // The client API: HTTPS with the node's certificate.
  std::unique_ptr<http::server> api_server;
  if (v.api_enabled) {
    auto gw = v.api;
    gw.version = ENGRAM_VERSION;
    gw.on_event = [id = s.node_id](const std::string& event,
                                   const gateway::fields& xs) {
      // At most one line a second per event (refusals are what an attacker
      // makes), with how many were left out; values quoted and escaped (a
      // token's header is the attacker's text).
      static std::mutex mtx;
      static std::map<std::string, std::pair<int64_t, uint64_t>> last;
      auto now = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::steady_clock::now().time_since_epoch())
                     .count();
      uint64_t skipped = 0;
      {
        std::lock_guard<std::mutex> lock{mtx};
        auto& [when, left_out] = last[event];
        if (when == now) {
          ++left_out;
          return;
        }
        when = now;
        skipped = std::exchange(left_out, 0);
      }
      auto quoted = [](const std::string& x) {
        std::string out = "\"";
        for (unsigned char ch : x) {
          if (ch == '"' || ch == '\\')
            out += '\\', out += static_cast<char>(ch);
          else if (ch < 0x20
                   || ch >= 0x7f) { // controls, and bytes beyond ASCII
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[ch >> 4];
            out += hex[ch & 15];
          } else
            out += static_cast<char>(ch);
        }
        return out + '"';
      };
      std::string line = "event=" + event + " node=" + id;
      for (auto& [k, x] : xs)
        line += ' ' + k + '=' + quoted(x);
      if (skipped > 0)
        line += " left_out=" + std::to_string(skipped);
      spdlog::warn("{}", line);
    };
    auto api = gateway::make_service(sys, **n, std::move(gw));
    auto started = http::server::start(v.api_server, std::move(api.handler),
                                       std::move(api.admission));
    if (!started) {
      spdlog::error("event=api_failed node={} addr={} reason=\"{}\"", s.node_id,
                    v.api_listen.to_string(),
                    started.error_value().to_string());
      std::fprintf(stderr, "engramd: api: %s\n",
                   started.error_value().to_string().c_str());
      return exit_cannot_start;
    }
    api_server = std::move(*started);
    spdlog::info("event=api_listening node={} addr={}:{} transport={}",
                 s.node_id, v.api_listen.host, api_server->port(),
                 v.insecure ? "plaintext" : "https");
    write_port_file(s.api.port_file, api_server->port());
  }
  write_port_file(s.port_file, *port);
  auto keeper = std::make_unique<actors::peer_keeper>(
      sys, **n, v.seeds,
      [id = s.node_id](const std::string& event, const std::string& seed,
                       const std::string& detail) {
        if (event == "peer_up")
          spdlog::info("event=peer_up node={} seed={} peer={}", id, seed,
                       detail);
        else if (event == "seed_is_self")
          spdlog::info("event=seed_is_self node={} seed={} (this node: "
                       "ignored)",
                       id, seed);
        else if (event == "peer_down")
          spdlog::warn("event=peer_down node={} seed={} reason=\"{}\"", id,
                       seed, detail);
        else if (event == "peer_refused")
          spdlog::warn("event=peer_refused node={} seed={} reason=\"{}\"", id,
                       seed, detail);
        else
          spdlog::debug("event={} node={} seed={} reason=\"{}\"", event, id,
                        seed, detail);
      });
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("event=stopping node={} signal={}", s.node_id,
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
  api_server.reset(); // clients first
  keeper.reset();
  (*n)->stop(); // flushes and closes the store
  n->reset();
  spdlog::info("event=stopped node={}", s.node_id);
  return 0;
}
