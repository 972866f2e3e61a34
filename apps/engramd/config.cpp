#include "apps/engramd/config.hpp"

#include "apps/engramd/config_api.hpp"
#include "apps/engramd/config_security.hpp"

#include <arpa/inet.h>
#include <toml.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

namespace engram::engramd {

namespace {

struct config_error {
  std::string message;
};

std::optional<std::chrono::milliseconds>
parse_duration_text(const std::string& x) {
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(x, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  // At most 30 days (and no overflow on the way).
  if (n <= 0 || n > 2'592'000'000LL)
    return std::nullopt;
  auto unit = x.substr(used);
  long long factor = unit == "ms"  ? 1
                     : unit == "s" ? 1000
                     : unit == "m" ? 60'000
                     : unit == "h" ? 3'600'000
                                   : 0;
  if (factor == 0 || n > 2'592'000'000LL / factor)
    return std::nullopt;
  return std::chrono::milliseconds{n * factor};
}

// Reads the TOML file into `s`. Every key must be known: a misspelt key is
// an error, never silently ignored.
void read_file(const std::string& path, settings& s) {
  toml::value root;
  try {
    root = toml::parse(path);
  } catch (const std::exception& e) {
    throw config_error{"cannot read config '" + path + "': " + e.what()};
  }
  auto where = [&](const std::string& key) {
    return "config '" + path + "', key '" + key + "'";
  };
  auto get = [&](const toml::value& v, const std::string& key, auto& out) {
    using T = std::decay_t<decltype(out)>;
    try {
      out = toml::get<T>(v);
    } catch (const std::exception&) {
      throw config_error{where(key) + ": wrong type"};
    }
  };
  auto ms = [&](const toml::value& v, const std::string& key,
                std::chrono::milliseconds& out) {
    int64_t x = 0;
    get(v, key, x);
    if (x <= 0)
      throw config_error{where(key) + ": must be a positive number of ms"};
    out = std::chrono::milliseconds{x};
  };
  // Settings that two keys can give (a top-level table and its
  // [distribution] twin): only one of them may.
  std::map<std::string, std::string> given;
  auto once = [&](const std::string& what, const std::string& key) {
    auto [i, fresh] = given.emplace(what, key);
    if (!fresh)
      throw config_error{"config '" + path + "' sets " + what + " twice, as '"
                         + i->second + "' and as '" + key + "': keep one"};
  };
  auto replication = [&](const toml::value& v, const std::string& prefix) {
    if (!v.is_table())
      throw config_error{where(prefix) + ": must be a table"};
    for (auto& [sub, w] : v.as_table()) {
      auto name = prefix + "." + sub;
      if (sub == "factor")
        get(w, name, s.replication_factor);
      else if (sub == "strategy")
        get(w, name, s.replication_strategy);
      else if (sub == "consistency")
        get(w, name, s.consistency);
      else if (sub == "write_timeout_ms")
        get(w, name, s.write_timeout_ms);
      else if (sub == "promote_after_ms")
        get(w, name, s.promote_after_ms);
      else if (sub == "shard_key")
        get(w, name, s.shard_key);
      else if (sub == "shards") {
        if (!w.is_array())
          throw config_error{where(name) + ": must be an array of tables"};
        for (auto& shard : w.as_array()) {
          if (!shard.is_table())
            throw config_error{where(name) + ": must be an array of tables"};
          shard_config sc;
          bool has_id = false;
          for (auto& [field, x] : shard.as_table()) {
            if (field == "id") {
              int64_t id = 0;
              get(x, name + ".id", id);
              if (id < 0 || id > int64_t{UINT32_MAX})
                throw config_error{where(name + ".id") + ": out of range"};
              sc.id = static_cast<uint32_t>(id);
              has_id = true;
            } else if (field == "nodes") {
              get(x, name + ".nodes", sc.nodes);
            } else {
              throw config_error{"unknown key '" + name + "." + field
                                 + "' in config '" + path + "'"};
            }
          }
          if (!has_id)
            throw config_error{where(name) + ": a shard needs an id"};
          s.shards.push_back(std::move(sc));
        }
      } else
        throw config_error{"unknown key '" + name + "' in config '" + path
                           + "'"};
    }
  };
  auto partitioning = [&](const toml::value& v, const std::string& prefix) {
    if (!v.is_table())
      throw config_error{where(prefix) + ": must be a table"};
    for (auto& [sub, w] : v.as_table()) {
      auto name = prefix + "." + sub;
      if (sub == "strategy")
        get(w, name, s.partition_strategy);
      else if (sub == "partition_count")
        get(w, name, s.partition_count);
      else if (sub == "bucket_ms")
        get(w, name, s.bucket_ms);
      else
        throw config_error{"unknown key '" + name + "' in config '" + path
                           + "'"};
    }
  };
  // Keys of features not built yet: refused, naming the key.
  auto not_yet = [&](const std::string& key, const std::string& why) {
    throw config_error{"not supported yet: " + key + " (" + why
                       + ") in config '" + path + "'"};
  };
  auto text = [&](const toml::value& v, const std::string& key) {
    std::string x;
    get(v, key, x);
    return x;
  };
  auto duration = [&](const toml::value& v, const std::string& key) {
    auto x = text(v, key);
    auto d = parse_duration_text(x);
    if (!d)
      throw config_error{where(key) + ": '" + x
                         + "' is not a duration (e.g. 500ms, 30s, 1m, 1h)"};
    return *d;
  };
  auto unknown = [&](const std::string& key) {
    throw config_error{"unknown key '" + key + "' in config '" + path + "'"};
  };
  auto table = [&](const toml::value& v, const std::string& key) {
    if (!v.is_table())
      throw config_error{where(key) + ": must be a table"};
    return v.as_table();
  };
  auto discovery = [&](const toml::value& x, const std::string& key) {
    // { dns = { domain = "...", port = 7420 } } and/or { seeds = [...] }
    for (auto& [method, y] : table(x, key)) {
      auto mkey = key + "." + method;
      if (method == "seeds") {
        std::vector<std::string> seeds;
        get(y, mkey, seeds);
        s.discovered.insert(s.discovered.end(), seeds.begin(), seeds.end());
      } else if (method == "dns") {
        std::string domain;
        int64_t port = 7420;
        for (auto& [f, z] : table(y, mkey)) {
          if (f == "domain")
            get(z, mkey + ".domain", domain);
          else if (f == "port")
            get(z, mkey + ".port", port);
          else
            unknown(mkey + "." + f);
        }
        if (domain.empty() || port <= 0 || port > 65535)
          throw config_error{where(mkey)
                             + ": needs a domain and a port 1-65535"};
        s.discovered.push_back("dns:" + domain + ":" + std::to_string(port));
      } else {
        throw config_error{where(key) + ": unknown discovery method '" + method
                           + "' (dns, seeds)"};
      }
    }
  };
  // A path in the file is relative to the file's directory.
  auto file_path = [&](const toml::value& v, const std::string& key) {
    auto x = text(v, key);
    if (x.empty())
      throw config_error{where(key) + ": must name a file"};
    std::filesystem::path p{x};
    if (p.is_relative())
      p = std::filesystem::path{path}.parent_path() / p;
    return p.string();
  };
  // The spec's AuthMethod::MTLS { certificate, private_key } (with the
  // cluster's CA and, optionally, its revocation list).
  auto auth_method = [&](const toml::value& v, const std::string& key) {
    auto methods = table(v, key);
    if (methods.size() != 1 || methods.begin()->first != "mtls")
      throw config_error{where(key)
                         + ": the method built is mtls = { "
                           "certificate, private_key, ca[, crl] "
                           "} (shared_key, pki and oauth are not)"};
    auto mkey = key + ".mtls";
    for (auto& [f, x] : table(methods.begin()->second, mkey)) {
      auto fkey = mkey + "." + f;
      if (f == "certificate")
        s.tls.certificate = file_path(x, fkey);
      else if (f == "private_key")
        s.tls.private_key = file_path(x, fkey);
      else if (f == "ca" || f == "trusted_cas")
        s.tls.ca = file_path(x, fkey);
      else if (f == "crl")
        s.tls.crl = file_path(x, fkey);
      else
        unknown(fkey);
    }
  };
  auto in_transit = [&](const toml::value& v, const std::string& key) {
    for (auto& [f, x] : table(v, key)) {
      auto fkey = key + "." + f;
      if (f == "min_tls_version")
        s.tls.min_version = text(x, fkey);
      else if (f == "cipher_suites")
        get(x, fkey, s.tls.cipher_suites);
      else
        unknown(fkey);
    }
  };
  // The spec's E2EEncryption { algorithm: X25519_XSalsa20_Poly1305,
  // key_exchange: X25519 }: present, only sealed tells leave a node
  // (`required = false` keeps the section without enforcing it).
  auto e2e = [&](const toml::value& v, const std::string& key) {
    s.e2e_required = true;
    auto spelled = [&](const toml::value& x, const std::string& fkey,
                       const std::string& built) {
      auto a = text(x, fkey);
      std::string norm;
      for (char c : a)
        if (c != '-' && c != '_')
          norm
              += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string want;
      for (char c : built)
        if (c != '_')
          want += c;
      if (norm != want)
        throw config_error{where(fkey) + ": '" + a + "' is not built (" + built
                           + " is)"};
    };
    for (auto& [f, x] : table(v, key)) {
      auto fkey = key + "." + f;
      if (f == "algorithm")
        spelled(x, fkey, "x25519_xsalsa20_poly1305");
      else if (f == "key_exchange")
        spelled(x, fkey, "x25519");
      else if (f == "required")
        get(x, fkey, s.e2e_required);
      else
        unknown(fkey);
    }
  };
  // The spec's AtRestEncryption { algorithm: AES256GCM, key_management }.
  auto at_rest = [&](const toml::value& v, const std::string& key) {
    std::string source;
    for (auto& [f, x] : table(v, key)) {
      auto fkey = key + "." + f;
      if (f == "algorithm") {
        auto a = text(x, fkey);
        std::string norm;
        for (char c : a)
          if (c != '-' && c != '_')
            norm += static_cast<char>(
                std::tolower(static_cast<unsigned char>(c)));
        if (norm != "aes256gcm")
          throw config_error{where(fkey) + ": '" + a
                             + "' is not built (aes256gcm is)"};
      } else if (f == "key_management") {
        auto methods = table(x, fkey);
        if (methods.size() != 1)
          throw config_error{where(fkey)
                             + ": name one provider: file = { path }, env = "
                               "{ name }, command = { program, args }, vault "
                               "= { url, ... }, pkcs11 = { module, token, "
                               "key_label, pin_file }"};
        auto& [method, y] = *methods.begin();
        auto mkey = fkey + "." + method;
        if (method == "file") {
          for (auto& [g, z] : table(y, mkey))
            if (g == "path")
              source = "file:" + file_path(z, mkey + ".path");
            else
              unknown(mkey + "." + g);
        } else if (method == "env") {
          for (auto& [g, z] : table(y, mkey))
            if (g == "name")
              source = "env:" + text(z, mkey + ".name");
            else
              unknown(mkey + "." + g);
        } else if (method == "command") {
          std::string program;
          std::vector<std::string> args;
          for (auto& [g, z] : table(y, mkey))
            if (g == "program")
              program = text(z, mkey + ".program");
            else if (g == "args")
              get(z, mkey + ".args", args);
            else
              unknown(mkey + "." + g);
          auto spaced = [](const std::string& w) {
            return w.empty() || w.find_first_of(" \t\n") != std::string::npos;
          };
          if (spaced(program))
            throw config_error{where(mkey)
                               + ": needs a program (a path without spaces)"};
          source = "command:" + program;
          for (auto& a : args) {
            if (spaced(a))
              throw config_error{where(mkey + ".args")
                                 + ": an argument is empty or holds a space "
                                   "(not supported)"};
            source += " " + a;
          }
        } else if (method == "vault") {
          vault_source v;
          for (auto& [g, z] : table(y, mkey)) {
            auto gkey = mkey + "." + g;
            if (g == "url")
              v.url = text(z, gkey);
            else if (g == "mount")
              v.mount = text(z, gkey);
            else if (g == "path")
              v.path = text(z, gkey);
            else if (g == "field")
              v.field = text(z, gkey);
            else if (g == "token_env")
              v.token_env = text(z, gkey);
            else if (g == "token_file")
              v.token_file = file_path(z, gkey);
            else if (g == "ca")
              v.ca = file_path(z, gkey);
            else if (g == "timeout")
              v.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
                  duration(z, gkey));
            else
              unknown(gkey);
          }
          if (v.url.empty())
            throw config_error{where(mkey) + ": needs url"};
          s.vault = std::move(v);
          source = "vault";
        } else if (method == "pkcs11") {
          // As an RFC 7512 URI (crypto/pkcs11.hpp), values %-encoded.
          auto enc = [](const std::string& x) {
            std::string out;
            for (unsigned char c : x) {
              if (std::isalnum(c) || c == '/' || c == '.' || c == '-'
                  || c == '_' || c == ':') {
                out.push_back(static_cast<char>(c));
              } else {
                char buf[4];
                std::snprintf(buf, sizeof(buf), "%%%02X", c);
                out += buf;
              }
            }
            return out;
          };
          std::string module;
          std::string token;
          std::string object;
          std::string pin;
          for (auto& [g, z] : table(y, mkey)) {
            auto gkey = mkey + "." + g;
            if (g == "module")
              module = file_path(z, gkey);
            else if (g == "token")
              token = text(z, gkey);
            else if (g == "key_label")
              object = text(z, gkey);
            else if (g == "pin_file")
              pin = "file:" + file_path(z, gkey);
            else if (g == "pin_env")
              pin = "env:" + text(z, gkey);
            else
              unknown(gkey);
          }
          if (module.empty() || token.empty() || object.empty() || pin.empty())
            throw config_error{where(mkey)
                               + ": needs module, token, key_label and "
                                 "pin_file or pin_env"};
          source = "pkcs11:token=" + enc(token) + ";object=" + enc(object)
                   + "?module-path=" + enc(module) + "&pin-source=" + enc(pin);
        } else {
          throw config_error{where(fkey) + ": unknown provider '" + method
                             + "' (file, env, command, vault, pkcs11)"};
        }
        if (source != "vault" && (source.size() <= 5 || source.back() == ':'))
          throw config_error{where(mkey) + ": incomplete"};
      } else {
        unknown(fkey);
      }
    }
    if (source.empty())
      throw config_error{where(key)
                         + ": needs key_management = { file = { path = "
                           "\"...\" } } (or env, command)"};
    if (source != "vault") {
      s.master_key = source;
      s.vault.reset();
    }
  };
  auto security = [&](const toml::value& v, const std::string& key) {
    for (auto& [f, x] : table(v, key)) {
      auto fkey = key + "." + f;
      if (f == "insecure")
        get(x, fkey, s.insecure);
      else if (f == "insecure_beyond_loopback")
        get(x, fkey, s.insecure_beyond_loopback);
      else if (f == "certs_dir")
        s.certs_dir = file_path(x, fkey);
      else if (f == "handshake_timeout_ms")
        get(x, fkey, s.handshake_timeout_ms);
      else if (f == "max_unauthenticated")
        get(x, fkey, s.max_unauthenticated);
      else if (f == "max_unauthenticated_per_source")
        get(x, fkey, s.max_unauthenticated_per_source);
      else if (f == "sign_envelopes")
        get(x, fkey, s.sign_envelopes);
      else
        unknown(fkey);
    }
  };
  auto distribution = [&](const toml::value& v) {
    for (auto& [sub, w] : table(v, "distribution")) {
      auto name = "distribution." + sub;
      if (sub == "enabled") {
        get(w, name, s.distribution_enabled);
      } else if (sub == "scope_defaults") {
        s.scope_defaults = text(w, name);
      } else if (sub == "sync") {
        for (auto& [k, x] : table(w, name)) {
          auto key = name + "." + k;
          if (k == "strategy") {
            auto strategy = text(x, key);
            if (strategy == "consensus")
              not_yet(key + " = \"consensus\"",
                      "Raft, Paxos and PBFT come with the consensus work");
            if (strategy != "crdt")
              throw config_error{where(key) + ": '" + strategy
                                 + "' (known: crdt, consensus)"};
          } else if (k == "interval") {
            once("the anti-entropy interval", key);
            s.sessions.anti_entropy_interval = duration(x, key);
          } else if (k == "on_change") {
            get(x, key, s.sessions.on_change);
          } else if (k == "crdt") {
            s.crdt = text(x, key);
          } else {
            unknown(key);
          }
        }
      } else if (sub == "storage") {
        for (auto& [k, x] : table(w, name)) {
          auto key = name + "." + k;
          if (k != "backend")
            unknown(key);
          // A name, or a table naming one backend as in the spec's
          // StorageBackend::Redis { url }.
          std::string backend;
          if (x.is_table() && x.as_table().size() == 1)
            backend = x.as_table().begin()->first;
          else
            backend = text(x, key);
          if (backend != "rocksdb")
            not_yet(key + " = " + backend,
                    "the embedded RocksDB store is the backend built");
        }
      } else if (sub == "replication") {
        once("replication", name);
        replication(w, name);
      } else if (sub == "partitioning") {
        once("partitioning", name);
        partitioning(w, name);
      } else if (sub == "federation") {
        for (auto& [k, x] : table(w, name)) {
          auto key = name + "." + k;
          if (k == "discovery")
            discovery(x, key);
          else if (k == "id" || k == "trust_model")
            not_yet(key, "a node-wide federation; agents create and join "
                         "federations themselves: engram federation "
                         "create/join, memory::create_federation");
          else
            unknown(key);
        }
      } else if (sub == "auth") {
        for (auto& [k, x] : table(w, name)) {
          auto key = name + "." + k;
          if (k == "method") {
            auth_method(x, key);
          } else {
            auto client = read_client_auth(k, x, path, s.api);
            if (!client)
              throw config_error{client.error_value().message};
            if (!*client)
              unknown(key);
          }
        }
      } else if (sub == "encryption") {
        for (auto& [k, x] : table(w, name)) {
          auto key = name + "." + k;
          if (k == "in_transit")
            in_transit(x, key);
          else if (k == "at_rest")
            at_rest(x, key);
          else if (k == "e2e")
            e2e(x, key);
          else
            unknown(key);
        }
      } else if (sub == "access_control") {
        if (auto ok = read_access_control(w, path, s.api); !ok)
          throw config_error{ok.error_value().message};
      } else {
        unknown(name);
      }
    }
  };
  if (!root.is_table())
    throw config_error{"config '" + path + "' is not a TOML table"};
  for (auto& [key, v] : root.as_table()) {
    if (key == "node_id")
      get(v, key, s.node_id);
    else if (key == "listen")
      get(v, key, s.listen);
    else if (key == "data_dir")
      get(v, key, s.data_dir);
    else if (key == "peers")
      get(v, key, s.peers);
    else if (key == "log_level")
      get(v, key, s.log_level);
    else if (key == "sync_writes")
      get(v, key, s.sync_writes);
    else if (key == "heartbeat_ms")
      get(v, key, s.heartbeat_ms);
    else if (key == "connection_timeout_ms")
      get(v, key, s.connection_timeout_ms);
    else if (key == "max_clock_offset_ms")
      get(v, key, s.max_clock_offset_ms);
    else if (key == "threads")
      get(v, key, s.threads);
    else if (key == "members")
      get(v, key, s.members);
    else if (key == "replication") {
      once("replication", key);
      replication(v, key);
    } else if (key == "partitioning") {
      once("partitioning", key);
      partitioning(v, key);
    } else if (key == "distribution") {
      distribution(v);
    } else if (key == "security") {
      security(v, key);
    } else if (key == "api") {
      if (auto ok = read_api_table(v, path, s.api); !ok)
        throw config_error{ok.error_value().message};
    } else if (key == "consensus") {
      // The spec's ConsensusProtocol::Raft{election_timeout,
      // heartbeat_interval}: the Universal scope's group.
      if (!v.is_table())
        throw config_error{where(key) + ": must be a table"};
      for (auto& [sub, w] : v.as_table()) {
        auto name = "consensus." + sub;
        if (sub == "protocol") {
          auto p = text(w, name);
          if (p == "paxos" || p == "pbft")
            not_yet(name + " = \"" + p + "\"",
                    "Paxos and PBFT come with the second consensus issue; "
                    "raft is built");
          if (p != "raft")
            throw config_error{where(name) + ": unknown protocol '" + p
                               + "' (known: raft)"};
        } else if (sub == "members") {
          get(w, name, s.consensus.members);
        } else if (sub == "election_timeout") {
          s.consensus.election_timeout
              = std::chrono::duration_cast<std::chrono::milliseconds>(
                  duration(w, name));
        } else if (sub == "heartbeat_interval") {
          s.consensus.heartbeat_interval
              = std::chrono::duration_cast<std::chrono::milliseconds>(
                  duration(w, name));
        } else {
          unknown(name);
        }
      }
    } else if (key == "sessions") {
      if (!v.is_table())
        throw config_error{where(key) + ": must be a table"};
      for (auto& [sub, w] : v.as_table()) {
        auto name = "sessions." + sub;
        if (sub == "push_delay_ms")
          ms(w, name, s.sessions.push_delay);
        else if (sub == "retransmit_ms")
          ms(w, name, s.sessions.retransmit_after);
        else if (sub == "anti_entropy_ms") {
          once("the anti-entropy interval", name);
          ms(w, name, s.sessions.anti_entropy_interval);
        } else if (sub == "ping_ms")
          ms(w, name, s.sessions.ping_interval);
        else if (sub == "peer_timeout_ms")
          ms(w, name, s.sessions.peer_timeout);
        else
          throw config_error{"unknown key '" + name + "' in config '" + path
                             + "'"};
      }
    } else {
      throw config_error{"unknown key '" + key + "' in config '" + path + "'"};
    }
  }
}

constexpr int64_t minute_ms = 60'000;
constexpr int64_t hour_ms = 60 * minute_ms;
constexpr int64_t day_ms = 24 * hour_ms;

// Every duration has a bound: a timer of INT64_MAX ms overflows the
// arithmetic of the timers that use it (a node then flaps its sessions).
void check_durations(const settings& s) {
  struct bounded {
    const char* key;
    int64_t value;
    int64_t max;
  };
  auto& ss = s.sessions;
  const bounded all[] = {
      {"heartbeat_ms", s.heartbeat_ms, minute_ms},
      {"connection_timeout_ms", s.connection_timeout_ms, hour_ms},
      {"max_clock_offset_ms", s.max_clock_offset_ms, hour_ms},
      {"sessions.push_delay_ms", ss.push_delay.count(), minute_ms},
      {"sessions.retransmit_ms", ss.retransmit_after.count(), minute_ms},
      {"sessions.anti_entropy_ms (or distribution.sync.interval)",
       ss.anti_entropy_interval.count(), day_ms},
      {"sessions.ping_ms", ss.ping_interval.count(), hour_ms},
      {"sessions.peer_timeout_ms", ss.peer_timeout.count(), day_ms},
      {"replication.write_timeout_ms", s.write_timeout_ms, hour_ms},
      {"partitioning.bucket_ms", s.bucket_ms, 366 * day_ms},
      {"consensus.election_timeout", s.consensus.election_timeout.count(),
       minute_ms},
      {"consensus.heartbeat_interval", s.consensus.heartbeat_interval.count(),
       minute_ms},
  };
  for (auto& b : all)
    if (b.value <= 0 || b.value > b.max)
      throw config_error{std::string{b.key} + " must be a positive number of "
                         + "ms, at most " + std::to_string(b.max) + " (got "
                         + std::to_string(b.value) + ")"};
  if (s.promote_after_ms < 0 || s.promote_after_ms > day_ms)
    throw config_error{"replication.promote_after_ms must be 0 to "
                       + std::to_string(day_ms)};
  if (s.connection_timeout_ms <= s.heartbeat_ms)
    throw config_error{"heartbeat_ms must be below connection_timeout_ms"};
  if (s.consensus.election_timeout < 3 * s.consensus.heartbeat_interval)
    throw config_error{"consensus.election_timeout must be at least three "
                       "consensus.heartbeat_interval"};
  if (ss.peer_timeout <= ss.ping_interval)
    throw config_error{"sessions.peer_timeout_ms must be above "
                       "sessions.ping_ms (a peer is pinged before it is "
                       "given up)"};
}

// The placement settings as the node takes them; every error names its key.
void validate_placement(const settings& s, daemon_config& v) {
  auto strategy = parse_replication_strategy(s.replication_strategy);
  if (!strategy)
    throw config_error{"replication.strategy: "
                       + strategy.error_value().message};
  auto level = parse_consistency(s.consistency);
  if (!level)
    throw config_error{"replication.consistency: "
                       + level.error_value().message};
  if (s.replication_factor < 0 || s.replication_factor > 1024)
    throw config_error{"replication.factor must be 0 (every node) to 1024"};
  auto& r = v.node.replication;
  r.strategy = *strategy;
  r.consistency = *level;
  r.factor = static_cast<size_t>(s.replication_factor);
  r.write_timeout = std::chrono::milliseconds{s.write_timeout_ms};
  r.failover.promote_after = std::chrono::milliseconds{s.promote_after_ms};
  r.shards = s.shards;
  if (r.strategy == replication_strategy::sharded) {
    auto key = make_shard_key(s.shard_key.empty() ? "hash" : s.shard_key);
    if (!key)
      throw config_error{"replication.shard_key: " + key.error_value().message};
    r.shard_key = std::move(*key);
  } else if (!s.shards.empty() || !s.shard_key.empty()) {
    throw config_error{"replication.shards and replication.shard_key apply "
                       "to strategy \"sharded\" only"};
  }
  auto part = parse_partition_strategy(s.partition_strategy);
  if (!part)
    throw config_error{"partitioning.strategy: " + part.error_value().message};
  if (*part == partition_strategy::custom)
    throw config_error{"partitioning.strategy: \"custom\" needs a "
                       "partitioner function, which only a C++ program can "
                       "give (node_config.partitioning.partitioner)"};
  if (s.partition_count < 1 || s.partition_count > 65536)
    throw config_error{"partitioning.partition_count must be 1 to 65536"};
  auto& p = v.node.partitioning;
  p.strategy = *part;
  p.partition_count = static_cast<uint32_t>(s.partition_count);
  p.bucket_size = std::chrono::milliseconds{s.bucket_ms};
  for (auto& m : s.members)
    if (auto ok = validate_name(m, "member node id"); !ok)
      throw config_error{"members: " + ok.error_value().message};
  auto members = s.members;
  if (members.empty())
    members.push_back(s.node_id);
  if (auto ok = placement::make(r, p, members); !ok)
    throw config_error{ok.error_value().message};
}

daemon_config check(const settings& s, const seed_resolver& resolve) {
  daemon_config v;
  if (auto ok = validate_name(s.node_id, "node id (--node-id)"); !ok)
    throw config_error{ok.error_value().message};
  if (s.data_dir.empty())
    throw config_error{"no data directory (--data-dir)"};
  auto listen = actors::parse_endpoint(s.listen);
  if (!listen)
    throw config_error{"listen: " + listen.error_value().message};
  v.listen = *listen;
  if (auto ok = check_security(s, v); !ok)
    throw config_error{ok.error_value().message};
  if (auto ok = check_api(s, v); !ok)
    throw config_error{ok.error_value().message};
  auto all_peers = s.peers;
  all_peers.insert(all_peers.end(), s.discovered.begin(), s.discovered.end());
  for (auto& p : all_peers) {
    auto seeds = resolve(p);
    if (!seeds)
      throw config_error{"peer: " + seeds.error_value().message};
    v.seeds.insert(v.seeds.end(), seeds->begin(), seeds->end());
  }
  static const std::vector<std::string> levels{"trace", "debug", "info",
                                               "warn",  "error", "off"};
  if (std::find(levels.begin(), levels.end(), s.log_level) == levels.end())
    throw config_error{"unknown log level '" + s.log_level
                       + "' (trace, debug, info, warn, error, off)"};
  v.log_level = s.log_level;
  if (s.threads < 0 || s.threads > 256)
    throw config_error{"threads must be 0 (CAF's default: one per core, at "
                       "least four) to 256"};
  v.threads = static_cast<size_t>(s.threads);
  check_durations(s);
  v.heartbeat = std::chrono::milliseconds{s.heartbeat_ms};
  v.connection_timeout = std::chrono::milliseconds{s.connection_timeout_ms};
  validate_placement(s, v);
  if (s.scope_defaults == "spec")
    v.scopes = scope_defaults::spec();
  else if (s.scope_defaults == "agent_shared")
    v.scopes = scope_defaults::agent_shared();
  else
    throw config_error{"distribution.scope_defaults: '" + s.scope_defaults
                       + "' (known: spec, agent_shared)"};
  if (s.crdt == "mvr")
    v.crdt = crdt_strategy::mvr;
  else if (s.crdt == "lww")
    v.crdt = crdt_strategy::lww;
  else if (s.crdt == "aw_set")
    v.crdt = crdt_strategy::aw_set;
  else
    throw config_error{"distribution.sync.crdt: '" + s.crdt
                       + "' (known: mvr, lww, aw_set; custom needs a C++ "
                         "merge function)"};
  if (!s.distribution_enabled && !all_peers.empty())
    throw config_error{"distribution.enabled = false, but peers are "
                       "configured: a node without distribution has none"};
  auto& n = v.node;
  n.node_id = s.node_id;
  n.data_dir = s.data_dir;
  n.sync_writes = s.sync_writes;
  n.sign_envelopes = s.sign_envelopes;
  n.e2e_required = s.e2e_required;
  n.sessions = s.sessions;
  n.consensus = s.consensus;
  n.members = s.members;
  n.max_clock_offset = std::chrono::milliseconds{s.max_clock_offset_ms};
  v.port_file = s.port_file;
  return v;
}

} // namespace

std::optional<std::chrono::milliseconds> parse_duration(const std::string& x) {
  return parse_duration_text(x);
}

expected<void> load_file(const std::string& path, settings& s) {
  try {
    read_file(path, s);
  } catch (const config_error& e) {
    return make_error(errc::invalid_argument, e.message);
  }
  return {};
}

expected<daemon_config> validate(const settings& s,
                                 const seed_resolver& resolve) {
  try {
    return check(s, resolve);
  } catch (const config_error& e) {
    return make_error(errc::invalid_argument, e.message);
  }
}

actors::agent_config agent_defaults(const daemon_config& cfg,
                                    const std::string& agent_id) {
  actors::agent_config a;
  a.answer_from_memory = true;
  a.default_scopes = cfg.scopes;
  if (agent_id.rfind("fed-", 0) != 0) // federations keep their own rules
    a.replication.strategy.fill(cfg.crdt);
  return a;
}

} // namespace engram::engramd
