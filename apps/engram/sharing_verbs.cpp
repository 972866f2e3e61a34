// The CLI's sharing verbs: share, shares, accept, decline.

#include "apps/engram/verbs.hpp"

#include <iostream>

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
  share->callback([&] {
    run = [&](session& s) {
      json body{{"to", with}, {"read_only", !writable}};
      auto f = v.filter();
      if (!f.empty())
        body["filter"] = f;
      if (redact)
        body["transform"] = "redact_pii";
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
                  << x["memories"].size() << " memories"
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
  accept->callback([&] {
    run = [&](session& s) {
      auto r = s.post(
          s.agent_path("/shares/" + http::percent_encode(a2) + "/accept"),
          {{"from", a1}, {"trust", trust}});
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
