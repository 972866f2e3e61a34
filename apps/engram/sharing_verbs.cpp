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
      auto id = s.call<std::string>(
          s.instance(), actors::share_atom::value, with, v.filter(),
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
      auto list = s.call<std::vector<federation::share>>(
          s.instance(), actors::shares_atom::value);
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
      auto n = s.call<uint64_t>(s.instance(), actors::accept_atom::value, a1,
                                a2, trust);
      if (opts.json)
        std::cout << json{{"accepted", n}}.dump(-1, ' ', false,
                                                json::error_handler_t::replace)
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
      s.call<std::string>(s.instance(), actors::decline_atom::value, a1);
      std::cout << (opts.json ? json{{"declined", a1}}.dump(
                        -1, ' ', false, json::error_handler_t::replace)
                              : "declined " + a1)
                << '\n';
      return 0;
    };
  });
}

} // namespace engram::cli
