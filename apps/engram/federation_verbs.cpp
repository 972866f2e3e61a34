// The CLI's federation verbs: federation create, join, leave, show, list,
// set-role, remove; broadcast.

#include "apps/engram/verbs.hpp"

#include <iostream>

namespace engram::cli {

namespace {

// A role named on the command line (empty: member); a bad one is bad usage.
federation::agent_role role_of(const std::string& name) {
  auto role = federation::parse_role(name.empty() ? "member" : name);
  if (!role)
    throw failure{exit_usage, role.error_value().message};
  return *role;
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
      print_state(s.fed(state->id(), federation::cmd::create{*state}),
                  opts.json);
      return 0;
    };
  });
  auto* fjoin = fed->add_subcommand("join", "join FED as --role");
  fjoin->add_option("federation", a1)->required();
  fjoin->add_option("--role", role, "member or observer");
  fjoin->callback([&] {
    run = [&](session& s) {
      print_state(s.fed(a1, federation::cmd::join{role_of(role)}), opts.json);
      return 0;
    };
  });
  auto* fleave = fed->add_subcommand("leave", "leave FED");
  fleave->add_option("federation", a1)->required();
  fleave->callback([&] {
    run = [&](session& s) {
      print_state(s.fed(a1, federation::cmd::leave{}), opts.json);
      return 0;
    };
  });
  auto* fshow = fed->add_subcommand("show", "FED's members and rules");
  fshow->add_option("federation", a1)->required();
  fshow->callback([&] {
    run = [&](session& s) {
      print_state(s.fed(a1, federation::cmd::read_state{}), opts.json);
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
          out.push_back(to_json(s.fed(id, federation::cmd::read_state{})));
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
      print_state(s.fed(a1, federation::cmd::set_role{a2, role_of(a3)}),
                  opts.json);
      return 0;
    };
  });
  auto* fremove = fed->add_subcommand("remove", "FED AGENT (leader only)");
  fremove->add_option("federation", a1)->required();
  fremove->add_option("member", a2)->required();
  fremove->callback([&] {
    run = [&](session& s) {
      print_state(s.fed(a1, federation::cmd::remove{a2}), opts.json);
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
}

} // namespace engram::cli
