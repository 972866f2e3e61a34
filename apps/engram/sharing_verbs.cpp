// The CLI's sharing verbs: share (--seal), shares, accept (--key),
// decline. A sealed share is prepared by the node (the filter, the
// transform, what may be passed on), sealed here to the recipient's
// published key and sent; the recipient opens it here and accepts what it
// opened.

#include "apps/engram/sealing.hpp"
#include "apps/engram/verbs.hpp"
#include "federation/share.hpp"

#include <iostream>

#include "api/auth.hpp"

namespace engram::cli {

void add_sharing_verbs(CLI::App& app, verbs& v) {
  auto& opts = v.opts;
  auto& a1 = v.a1;
  auto& a2 = v.a2;
  auto& run = v.run;
  auto& with = v.with;
  auto& trust = v.trust;
  auto& writable = v.writable;
  auto& redact = v.redact;
  auto add_filter_options = [&](CLI::App* cmd) {
    v.add_filter_options(cmd);
  };
  auto* share = app.add_subcommand(
      "share", "share memories (the filter's) with another agent");
  share->add_option("--with", with, "the receiving agent")->required();
  add_filter_options(share);
  share->add_flag("--redact-pii", redact,
                  "remove e-mails, phones, IPs, cards, tokens on this node");
  share->add_flag("--writable", writable,
                  "let the receiver modify and pass them on (default: "
                  "read-only)");
  share->add_option("--seal", v.key_file,
                    "seal the share end to end with this agent's key FILE, "
                    "to the receiver's published key");
  share->callback([&] {
    run = [&](session& s) {
      json body{{"to", with}, {"read_only", !writable}};
      auto f = v.filter();
      if (!f.empty())
        body["filter"] = f;
      if (redact)
        body["transform"] = "redact_pii";
      if (!v.key_file.empty()) {
        auto keys = load_keys(v.key_file);
        auto trust = load_trust(opts);
        auto prepared = s.post(s.agent_path("/shares/prepare"), body);
        auto raw = api::base64_decode(text_of(prepared, "share_base64"));
        auto inner = raw ? federation::decode_share(*raw)
                         : expected<federation::share>{raw.error_value()};
        if (!inner || inner->to != with || inner->from != s.agent())
          throw failure{exit_failed, "the node prepared no share to " + with};
        auto mine = own_key(s, keys, v.key_file, trust);
        auto theirs = checked_key(s, with, trust);
        auto sealed
            = federation::seal_share(*inner, keys, mine, theirs, now_us());
        if (!sealed)
          throw failure{exit_failed, sealed.error_value().message};
        body = json{{"to", with},
                    {"share_id", sealed->share_id},
                    {"read_only", sealed->read_only},
                    {"sealed_base64", api::base64(sealed->sealed)}};
      }
      auto r = s.post(s.agent_path("/shares"), body);
      if (opts.json)
        std::cout << show(r) << '\n';
      else
        std::cout << text_of(r, "share") << '\n';
      return 0;
    };
  });
  auto* shares = app.add_subcommand("shares", "shares waiting for the agent");
  shares->callback([&] {
    run = [&](session& s) {
      auto list = s.get(s.agent_path("/shares"));
      if (opts.json) {
        std::cout << show(list, 2) << '\n';
        return 0;
      }
      for (auto& x : list) {
        std::cout << text_of(x, "id") << "  from " << text_of(x, "from") << ", "
                  << (x.contains("sealed_base64")
                          ? std::string{"sealed (accept --key)"}
                          : std::to_string(x["memories"].size()) + " memories")
                  << (x.value("read_only", false) ? ", read-only" : "")
                  << (text_of(x, "transform").empty()
                          ? ""
                          : ", " + text_of(x, "transform"))
                  << '\n';
        for (auto& m : x["memories"])
          std::cout << "  " << printable(text_of(m, "content")) << '\n';
      }
      return 0;
    };
  });
  auto* accept = app.add_subcommand("accept", "accept a share: FROM SHARE_ID");
  accept->add_option("from", a1)->required();
  accept->add_option("share", a2)->required();
  accept->add_option("--trust", trust, "the trust placed in the sender")
      ->check(CLI::Range(0.0, 1.0));
  accept->add_option("--key", v.key_file,
                     "open a sealed share with this agent's key FILE");
  accept->callback([&] {
    run = [&](session& s) {
      json body{{"from", a1}, {"trust", trust}};
      if (!v.key_file.empty()) {
        auto keys = load_keys(v.key_file);
        auto anchor = load_trust(opts);
        std::optional<federation::share> pending;
        for (auto& x : s.get(s.agent_path("/shares")))
          if (text_of(x, "id") == a2 && x.contains("sealed_base64")) {
            auto raw = api::base64_decode(text_of(x, "sealed_base64"));
            if (!raw)
              break;
            pending = federation::share{};
            pending->share_id = a2;
            pending->from = text_of(x, "from");
            pending->to = s.agent();
            pending->read_only = x.value("read_only", true);
            pending->sealed = std::move(*raw);
          }
        if (!pending)
          throw failure{exit_failed, "no sealed share " + a2 + " is pending"};
        auto opened = federation::open_share(*pending, s.agent(), keys,
                                             anchor.get(), now_s());
        if (!opened)
          throw failure{exit_failed, opened.error_value().message};
        body["opened_base64"] = api::base64(federation::encode(*opened));
      }
      auto r = s.post(
          s.agent_path("/shares/" + http::percent_encode(a2) + "/accept"),
          body);
      if (opts.json)
        std::cout << show(r) << '\n';
      else
        std::cout << "accepted " << r.value("accepted", 0) << " memories\n";
      return 0;
    };
  });
  auto* decline = app.add_subcommand("decline", "decline a share: SHARE_ID");
  decline->add_option("share", a1)->required();
  decline->callback([&] {
    run = [&](session& s) {
      s.post(s.agent_path("/shares/" + http::percent_encode(a1) + "/decline"));
      std::cout << (opts.json ? show(json{{"declined", a1}}) : "declined " + a1)
                << '\n';
      return 0;
    };
  });
}

} // namespace engram::cli
