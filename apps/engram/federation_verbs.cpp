// The CLI's federation verbs: federation create, invite, uninvite, join,
// leave, show, list, set-role, remove; broadcast.

#include "apps/engram/sealing.hpp"
#include "apps/engram/verbs.hpp"

#include <iostream>

namespace engram::cli {

namespace {

// A role named on the command line (empty: member); a bad one is bad usage.
std::string role_of(const std::string& name) {
  auto role = federation::parse_role(name.empty() ? "member" : name);
  if (!role)
    throw failure{exit_usage, role.error_value().message};
  return name.empty() ? "member" : name;
}

std::string fed_path(session& s, const std::string& fed,
                     const std::string& suffix = {}) {
  if (auto ok = validate_name(fed, "federation"); !ok)
    throw failure{exit_usage, ok.error_value().message};
  return s.agent_path("/federations/" + http::percent_encode(fed) + suffix);
}

} // namespace

void add_federation_verbs(CLI::App& app, verbs& v) {
  auto& opts = v.opts;
  auto& a1 = v.a1;
  auto& a2 = v.a2;
  auto& a3 = v.a3;
  auto& run = v.run;
  auto& trust_spec = v.trust_spec;
  auto& role = v.role;
  auto& beliefs = v.beliefs;
  auto& members = v.members;

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
  fcreate->add_flag("--e2e", v.e2e,
                    "seal its Collective memory end to end (the leader then "
                    "makes its key: federation rekey)");
  fcreate->callback([&] {
    run = [&](session& s) {
      json body{{"name", a1}, {"members", members}};
      if (v.e2e)
        body["e2e"] = true;
      if (!trust_spec.empty()) {
        if (auto t = api::parse_trust(trust_spec); !t)
          throw failure{exit_usage, "--" + t.error_value().message};
        body["trust"] = trust_spec;
      }
      if (!beliefs.empty()) {
        if (auto p = federation::parse_belief_policy(beliefs); !p)
          throw failure{exit_usage, "--beliefs: " + p.error_value().message};
        body["beliefs"] = beliefs;
      }
      print_state(s.post(s.agent_path("/federations"), body), opts.json);
      return 0;
    };
  });
  auto* finvite = fed->add_subcommand(
      "invite", "FED AGENT: let AGENT join as --role (leader only)");
  finvite->add_option("federation", a1)->required();
  finvite->add_option("member", a2)->required();
  finvite->add_option("--role", role, "member or observer");
  finvite
      ->add_option("--ttl", v.ttl_seconds,
                   "seconds until the invitation lapses (0: never)")
      ->check(CLI::Range(int64_t{0}, int64_t{366} * 86400));
  finvite->callback([&] {
    run = [&](session& s) {
      print_state(
          s.call("PUT",
                 fed_path(s, a1, "/invitations/" + http::percent_encode(a2)),
                 {{"role", role_of(role)}, {"ttl_seconds", v.ttl_seconds}}),
          opts.json);
      return 0;
    };
  });
  auto* funinvite = fed->add_subcommand(
      "uninvite", "FED AGENT: revoke AGENT's invitation (leader only)");
  funinvite->add_option("federation", a1)->required();
  funinvite->add_option("member", a2)->required();
  funinvite->callback([&] {
    run = [&](session& s) {
      print_state(
          s.call("DELETE",
                 fed_path(s, a1, "/invitations/" + http::percent_encode(a2))),
          opts.json);
      return 0;
    };
  });
  auto* fjoin = fed->add_subcommand("join", "join FED as --role (invited)");
  fjoin->add_option("federation", a1)->required();
  fjoin->add_option("--role", role, "member or observer");
  fjoin->callback([&] {
    run = [&](session& s) {
      print_state(s.post(fed_path(s, a1, "/join"), {{"role", role_of(role)}}),
                  opts.json);
      return 0;
    };
  });
  auto* fleave = fed->add_subcommand("leave", "leave FED");
  fleave->add_option("federation", a1)->required();
  fleave->callback([&] {
    run = [&](session& s) {
      print_state(s.post(fed_path(s, a1, "/leave")), opts.json);
      return 0;
    };
  });
  auto* fshow = fed->add_subcommand("show", "FED's members and rules");
  fshow->add_option("federation", a1)->required();
  fshow->callback([&] {
    run = [&](session& s) {
      print_state(s.get(fed_path(s, a1)), opts.json);
      return 0;
    };
  });
  auto* frekey = fed->add_subcommand(
      "rekey", "make FED's next key, sealed to every member (leader only; "
               "after creating it and whenever its members change)");
  frekey->add_option("federation", a1)->required();
  frekey->add_option("--key", v.key_file, "the agent's key file")->required();
  frekey->callback([&] {
    v.writing = true;
    run = [&](session& s) {
      auto keys = load_keys(v.key_file);
      auto epoch
          = rotate_group_key(s, a1, keys, v.key_file, load_trust(v.opts));
      if (opts.json)
        std::cout << show(json{{"federation", a1}, {"epoch", epoch}}, 2)
                  << '\n';
      else
        std::cout << "federation " << a1 << ": key epoch " << epoch << '\n';
      return 0;
    };
  });
  auto* flist = fed->add_subcommand("list", "the federations on this node");
  flist->callback([&] {
    run = [&](session& s) {
      auto st = s.get("/v1/status");
      json out = json::array();
      for (auto& f : st["federations"]) {
        auto id = f.get<std::string>();
        if (opts.agent.empty()) {
          out.push_back({{"id", id}});
          continue;
        }
        try {
          out.push_back(s.get(fed_path(s, id)));
        } catch (const failure&) {
          out.push_back({{"id", id}}); // not a member: its id only
        }
      }
      if (opts.json) {
        std::cout << show(out, 2) << '\n';
        return 0;
      }
      for (auto& f : out) {
        std::cout << text_of(f, "id");
        if (f.contains("name"))
          std::cout << "  " << text_of(f, "name") << "  led by "
                    << text_of(f, "leader") << ", " << f["members"].size()
                    << " members";
        std::cout << '\n';
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
      print_state(
          s.call("PUT", fed_path(s, a1, "/members/" + http::percent_encode(a2)),
                 {{"role", role_of(a3)}}),
          opts.json);
      return 0;
    };
  });
  auto* fremove = fed->add_subcommand("remove", "FED AGENT (leader only)");
  fremove->add_option("federation", a1)->required();
  fremove->add_option("member", a2)->required();
  fremove->callback([&] {
    run = [&](session& s) {
      print_state(
          s.call("DELETE",
                 fed_path(s, a1, "/members/" + http::percent_encode(a2))),
          opts.json);
      return 0;
    };
  });

  auto* broadcast = app.add_subcommand(
      "broadcast", "tell every other member of FED the TEXT");
  broadcast->add_option("federation", a1)->required();
  broadcast->add_option("text", a2)->required();
  broadcast->callback([&] {
    run = [&](session& s) {
      auto r = s.post(s.agent_path("/broadcasts"),
                      {{"federation", a1}, {"text", a2}});
      auto n = r.value("reached", uint64_t{0});
      std::cout << (opts.json ? show(r)
                              : "reached " + std::to_string(n)
                                    + " members (the others get it when "
                                      "they are back)")
                << '\n';
      return 0;
    };
  });
}

} // namespace engram::cli
