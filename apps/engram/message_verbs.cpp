// The CLI's message verbs: tell, ask, inbox — and end-to-end encryption:
// key new / publish / show, tell --seal, inbox --key. The agent's key pair
// is a file of the client's; nodes vouch for and hand out public keys
// only, and every binding is checked here against the cluster's CA.

#include "apps/engram/sealing.hpp"
#include "apps/engram/verbs.hpp"

#include <unistd.h>

#include <iostream>

#include "api/auth.hpp"

namespace engram::cli {

namespace {

/// A message's text: "text", or "text_base64" decoded.
std::string message_text(const json& m) {
  if (!m.contains("text_base64"))
    return text_of(m, "text");
  auto raw = api::base64_decode(text_of(m, "text_base64"));
  return raw ? *raw : std::string{};
}

json key_json(const e2e::key_binding& b) {
  return {{"agent", b.agent},
          {"public_key", api::base64(b.public_key)},
          {"node", b.node},
          {"vouched", b.vouched()},
          {"agent_signed", b.agent_signed()}};
}

std::string key_line(const e2e::key_binding& b) {
  return "agent " + b.agent + ": key " + api::base64(b.public_key)
         + (b.agent_signed()
                ? std::string{", signed by the agent's certificate"}
            : b.vouched()
                ? ", vouched by node " + b.node
                : ", not vouched (node " + b.node + " runs without TLS)");
}

} // namespace

void add_message_verbs(CLI::App& app, verbs& v) {
  auto& opts = v.opts;
  auto& a1 = v.a1;
  auto& a2 = v.a2;
  auto& run = v.run;
  auto& writing = v.writing;
  auto& ask_timeout_ms = v.ask_timeout_ms;
  auto& key_file = v.key_file;
  auto* tell = app.add_subcommand("tell", "leave TEXT in agent TO's inbox");
  tell->add_option("to", a1)->required();
  tell->add_option("text", a2)->required();
  tell->add_option("--seal", key_file,
                   "seal TEXT end to end with this agent's key FILE, to TO's "
                   "published key: no node can read it");
  tell->callback([&] {
    writing = true; // the message is a write to the recipient's memory
    run = [&](session& s) {
      auto text = a2;
      if (!key_file.empty()) {
        auto keys = load_keys(key_file);
        auto trust = load_trust(opts);
        auto mine = own_key(s, keys, key_file, trust);
        auto theirs = checked_key(s, a1, trust);
        auto sealed = e2e::seal(a2, keys, mine, theirs, now_us());
        if (!sealed)
          throw failure{exit_failed, sealed.error_value().message};
        text = std::move(*sealed);
      }
      // Texts are bytes: those that are not UTF-8 travel as base64.
      s.post(s.agent_path("/messages"),
             is_utf8(text)
                 ? json{{"to", a1}, {"text", text}}
                 : json{{"to", a1}, {"text_base64", api::base64(text)}});
      auto sealed = !key_file.empty();
      std::cout << (opts.json
                        ? show(json{{"told", a1}, {"sealed", sealed}})
                        : (sealed ? "told " + a1 + " (sealed)" : "told " + a1))
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
      auto r = s.call(
          "POST", s.agent_path("/questions"),
          {{"to", a1}, {"question", a2}, {"timeout_ms", ask_timeout_ms}}, {},
          ask_timeout_ms);
      std::cout << (opts.json ? show(r) : text_of(r, "answer")) << '\n';
      return 0;
    };
  });
  auto* inbox = app.add_subcommand("inbox", "read (and empty) the inbox");
  inbox->add_option("--key", key_file,
                    "open sealed messages with this agent's key FILE");
  inbox->callback([&] {
    run = [&](session& s) {
      std::optional<e2e::key_pair> keys;
      trust_anchor trust;
      if (!key_file.empty()) {
        keys = load_keys(key_file);
        trust = load_trust(opts);
      }
      auto messages = s.get(s.agent_path("/inbox"));
      json out = json::array();
      for (auto& m : messages) {
        auto from = text_of(m, "from");
        auto text = message_text(m);
        if (!e2e::is_sealed(text)) {
          // With a key, said outright: this one was not sealed.
          out.push_back(
              keys ? json{{"from", from}, {"text", text}, {"sealed", false}}
                   : json{{"from", from}, {"text", text}});
          continue;
        }
        // Reading marked it read: what does not open is kept whole
        // (sealed_base64), never lost.
        auto o = keys ? e2e::open(text, from, s.agent(), *keys, trust.get(),
                                  now_s())
                      : expected<e2e::opened>{make_error(errc::invalid_argument,
                                                         "read it with --key")};
        if (o)
          out.push_back({{"from", from},
                         {"text", o->text},
                         {"sealed", true},
                         {"sealed_us", o->sealed_us}});
        else
          out.push_back({{"from", from},
                         {"sealed", true},
                         {"error", o.error_value().message},
                         {"sealed_base64", api::base64(text)}});
      }
      if (opts.json) {
        std::cout << show(out, 2) << '\n';
        return 0;
      }
      // With a key, what is not sealed says so: only the node vouches for
      // its sender.
      for (auto& m : out)
        std::cout << printable(text_of(m, "from")) << ": "
                  << (m.contains("error")
                          ? "(sealed, not opened: "
                                + printable(text_of(m, "error")) + ") "
                                + text_of(m, "sealed_base64")
                          : printable(text_of(m, "text")))
                  << (keys && !m.value("sealed", false) ? "  (not sealed)" : "")
                  << '\n';
      return 0;
    };
  });
  auto* key = app.add_subcommand(
      "key", "this agent's key pair for end-to-end encryption");
  key->require_subcommand(1);
  auto* key_new = key->add_subcommand(
      "new", "make a key pair: its secret key into FILE (mode 0600)");
  key_new->add_option("file", key_file)->required();
  key_new->callback([&] {
    v.offline = [&] {
      auto keys = e2e::key_pair::generate();
      if (auto ok = e2e::save_key(key_file, keys); !ok)
        throw failure{exit_failed, ok.error_value().message};
      auto pk = api::base64(keys.public_key());
      std::cout << (opts.json
                        ? show(json{{"file", key_file}, {"public_key", pk}})
                        : "wrote " + key_file + " (public key " + pk + ")")
                << '\n';
      return 0;
    };
  });
  auto* key_publish = key->add_subcommand(
      "publish", "publish the public key of FILE as this agent's: signed "
                 "with the agent's client certificate (--certs-dir), else "
                 "vouched for by the node");
  key_publish->add_option("file", key_file)->required();
  key_publish->callback([&] {
    writing = true;
    run = [&](session& s) {
      auto keys = load_keys(key_file);
      auto trust = load_trust(opts);
      // With the agent's client certificate, the agent signs its key
      // itself (no node can); else its node vouches for it.
      json body{{"public_key", api::base64(keys.public_key())}};
      // A certificate that is there but unusable (its key unreadable or
      // open to others) is an error, never a quiet fall-back to a node's
      // word; and a node's word is not published where it is not trusted.
      auto base = opts.certs_dir + "/client." + s.agent();
      if (!opts.certs_dir.empty()
          && ::access((base + ".crt").c_str(), F_OK) == 0) {
        auto cert = pki::load_certificate(base + ".crt");
        if (!cert)
          throw failure{exit_usage, cert.error_value().message};
        auto key = pki::load_private_key(base + ".key");
        if (!key)
          throw failure{exit_usage, key.error_value().message};
        auto signed_key = e2e::self_signed(s.agent(), keys.public_key(), *cert,
                                           *key, now_us());
        if (!signed_key)
          throw failure{exit_failed, signed_key.error_value().message};
        body = json{{"binding", api::base64(e2e::encode(*signed_key))}};
      } else if (opts.agent_signed_only) {
        throw failure{exit_usage, "--agent-signed-only: no client certificate "
                                      + base + ".crt to sign the key with"};
      }
      auto b = binding_of(s.call("PUT", s.agent_path("/key"), body));
      if (b.public_key != keys.public_key())
        throw failure{exit_failed, "the node vouched for another key"};
      if (auto ok = e2e::verify(b, s.agent(), trust.get(), now_s()); !ok)
        throw failure{exit_failed, ok.error_value().message};
      std::cout << (opts.json ? show(key_json(b)) : key_line(b)) << '\n';
      return 0;
    };
  });
  auto* key_show = key->add_subcommand(
      "show", "the key AGENT published, checked against the cluster's CA");
  key_show->add_option("agent", a1)->required();
  key_show->callback([&] {
    run = [&](session& s) {
      auto b = checked_key(s, a1, load_trust(opts));
      std::cout << (opts.json ? show(key_json(b)) : key_line(b)) << '\n';
      return 0;
    };
  });
}

} // namespace engram::cli
