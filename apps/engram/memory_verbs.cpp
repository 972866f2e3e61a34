// The CLI's memory verbs: status, learn, believe, query, forget, sync,
// conflicts.

#include "apps/engram/sealing.hpp"
#include "apps/engram/verbs.hpp"
#include "core/placement.hpp"
#include "federation/sealed.hpp"

#include <iostream>

namespace engram::cli {

void add_memory_verbs(CLI::App& app, verbs& v) {
  auto& opts = v.opts;
  auto& a1 = v.a1;
  auto& a2 = v.a2;
  auto& a3 = v.a3;
  auto& fed_id = v.fed_id;
  auto& run = v.run;
  auto& writing = v.writing;
  auto& reason = v.reason;
  auto& consistency = v.consistency;
  auto& confidence = v.confidence;
  auto& conflict_id = v.conflict_id;
  auto& contested = v.contested;
  auto& instance_scope = v.instance_scope;
  auto& universal = v.universal;
  auto add_filter_options = [&](CLI::App* cmd) {
    v.add_filter_options(cmd);
  };

  auto* status = app.add_subcommand(
      "status", "the node: version, uptime, peers, agents, sessions");
  status->callback([&] {
    run = [&](session& s) {
      auto st = s.get("/v1/status");
      if (opts.json) {
        std::cout << show(st, 2) << '\n';
        return 0;
      }
      std::cout << "node " << text_of(st, "node") << " (engramd "
                << text_of(st, "version") << ", up "
                << st.value("uptime_s", int64_t{0})
                << " s): " << st["agents"].size() << " agents, "
                << st["federations"].size() << " federations, "
                << st["sessions"].size() << " sync sessions, "
                << st.value("respawns", size_t{0}) << " respawns\n";
      for (auto& a : st["agents"])
        std::cout << "  " << printable(a.get<std::string>()) << '\n';
      for (auto& p : st["peers"])
        std::cout << "  peer " << text_of(p, "node") << ": "
                  << (p.value("up", false) ? "up" : "down") << '\n';
      for (auto& c : st["clock_offsets"])
        std::cout << "  clock of " << text_of(c, "peer") << ": " << std::showpos
                  << c.value("offset_ms", 0.0) << std::noshowpos
                  << " ms (round trip " << c.value("rtt_ms", 0.0) << " ms)\n";
      if (!text_of(st, "writes_refused").empty())
        std::cout << "  WRITES REFUSED: " << text_of(st, "writes_refused")
                  << '\n';
      return 0;
    };
  });

  auto add_learn_options = [&](CLI::App* cmd) {
    cmd->add_option("--confidence", confidence, "in [0, 1]")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--federation", fed_id,
                    "into this federation's Collective memory");
    auto* in_instance = cmd->add_flag("--instance-scope", instance_scope,
                                      "keep it in this instance only");
    cmd->add_flag("--universal", universal,
                  "into the Universal scope, decided by consensus (Raft): "
                  "answered once committed")
        ->excludes(in_instance)
        ->excludes("--federation");
  };
  auto* learn = app.add_subcommand("learn", "learn a fact KEY = VALUE");
  learn->add_option("key", a1)->required();
  learn->add_option("value", a2)->required();
  add_learn_options(learn);
  learn->add_option("--key", v.key_file,
                    "with --federation sealed end to end: seal the value "
                    "with its key, opened with this agent's key file");
  learn->callback([&] {
    writing = true;
    run = [&](session& s) {
      require_text(a1, "the key");
      if (!v.key_file.empty()) {
        if (fed_id.empty())
          throw failure{exit_usage,
                        "--key seals a value of a federation "
                        "sealed end to end: name it (--federation)"};
        auto keys = load_keys(v.key_file);
        auto [held, state]
            = held_group_keys(s, fed_id, keys, load_trust(v.opts));
        auto epoch = keys_of(state).epoch;
        auto sealed = e2e::seal_value(held.at(epoch), epoch, a1, a2);
        if (!sealed)
          throw failure{exit_failed, sealed.error_value().message};
        return v.learn_record(s, {{"key", a1}, {"value", *sealed}});
      }
      // Values are bytes: those that are not UTF-8 travel as base64.
      if (!is_utf8(a2))
        return v.learn_record(s,
                              {{"key", a1}, {"value_base64", api::base64(a2)}});
      return v.learn_record(s, {{"key", a1}, {"value", a2}});
    };
  });
  auto* believe
      = app.add_subcommand("believe", "learn a belief SUBJECT RELATION OBJECT");
  believe->add_option("subject", a1)->required();
  believe->add_option("relation", a2)->required();
  believe->add_option("object", a3)->required();
  add_learn_options(believe);
  believe->callback([&] {
    writing = true;
    run = [&](session& s) {
      require_text(a1, "the subject");
      require_text(a2, "the relation");
      require_text(a3, "the object");
      return v.learn_record(
          s, {{"subject", a1}, {"relation", a2}, {"object", a3}});
    };
  });

  auto* query = app.add_subcommand("query", "what the agent remembers");
  add_filter_options(query);
  query->add_flag("--contested", contested, "only contested alternatives");
  query->add_option("--federation", fed_id, "a federation's memory instead");
  query
      ->add_flag("--universal", universal,
                 "the Universal scope instead, read linearizably")
      ->excludes("--federation");
  query->add_option("--consistency", consistency,
                    "one, quorum, all or local (the node's default)");
  query->add_option("--key", v.key_file,
                    "with --federation sealed end to end: open its values "
                    "with this agent's key file");
  query->callback([&] {
    run = [&](session& s) {
      if (!v.key_file.empty()) {
        if (fed_id.empty())
          throw failure{exit_usage,
                        "--key opens the values of a federation "
                        "sealed end to end: name it (--federation)"};
        auto keys = load_keys(v.key_file);
        auto held = held_group_keys(s, fed_id, keys, load_trust(v.opts)).first;
        auto views = s.get(s.agent_path("/memories"), {{"federation", fed_id}});
        json out = json::array();
        for (auto& m : views) {
          if (!m.contains("key"))
            continue;
          auto key = text_of(m, "key");
          auto value = text_of(m, "value");
          json o{{"key", key}};
          auto opened
              = federation::open_fact_value(held, s.agent(), key, value);
          if (opened && is_utf8(*opened))
            o["value"] = *opened;
          else if (opened)
            o["value_base64"] = api::base64(*opened);
          else
            o["error"] = opened.error_value().message;
          out.push_back(std::move(o));
        }
        if (opts.json) {
          std::cout << show(out, 2) << '\n';
        } else {
          for (auto& o : out)
            std::cout << text_of(o, "key") << " = "
                      << (o.contains("error")
                              ? "(" + text_of(o, "error") + ")"
                              : o.value("value", std::string{"(bytes)"}))
                      << '\n';
        }
        return 0;
      }
      auto q = v.filter();
      if (!fed_id.empty())
        q["federation"] = fed_id;
      if (universal)
        q["scope"] = "universal";
      if (!consistency.empty()) {
        if (auto level = parse_consistency(consistency); !level)
          throw failure{exit_usage,
                        "--consistency: " + level.error_value().message};
        q["consistency"] = consistency;
      }
      auto views = s.get(s.agent_path("/memories"), q);
      if (opts.json) {
        std::cout << show(views, 2) << '\n';
      } else {
        for (auto& m : views)
          std::cout << line_of(m) << '\n';
      }
      return 0;
    };
  });

  auto* forget = app.add_subcommand("forget", "forget an engram by id");
  forget->add_option("id", a1)->required();
  forget->add_option("--reason", reason, "why (kept with the tombstone)");
  forget->callback([&] {
    writing = true;
    run = [&](session& s) {
      if (auto id = engram_id::parse(a1); !id)
        throw failure{exit_usage, "id: " + id.error_value().message};
      return v.learned(s.call("DELETE", s.agent_path("/memories/" + a1),
                              nullptr, {{"reason", reason}}));
    };
  });

  auto* sync = app.add_subcommand("sync", "sync the agent's memory now");
  sync->callback([&] {
    run = [&](session& s) {
      auto r = s.call("POST", s.agent_path("/sync"), json::object(), {},
                      opts.timeout_ms);
      if (opts.json)
        std::cout << show(r) << '\n';
      else
        std::cout << (r.value("clean", false) ? "clean" : "merged") << ": "
                  << r.value("synced", 0) << " synced, " << r.value("merged", 0)
                  << " merged, " << r.value("conflicts", 0) << " conflicts, "
                  << r.value("peers", 0) << " peers\n";
      return 0;
    };
  });

  auto* conflicts
      = app.add_subcommand("conflicts", "conflicts waiting for an answer");
  conflicts->require_subcommand(1);
  auto* clist = conflicts->add_subcommand("list", "the pending questions");
  clist->add_option("--federation", fed_id, "a federation's instead");
  clist->callback([&] {
    run = [&](session& s) {
      auto qs = s.get(s.agent_path("/conflicts"), {{"federation", fed_id}});
      if (opts.json) {
        std::cout << show(qs, 2) << '\n';
        return 0;
      }
      for (auto& q : qs) {
        std::cout << q.value("conflict", uint64_t{0}) << "  "
                  << text_of(q, "question") << "  options:";
        for (auto& o : q["options"])
          std::cout << ' ' << o.get<std::string>();
        std::cout << '\n';
        for (auto& m : q["versions"]) {
          auto from = m.contains("origin") ? text_of(m["origin"], "agent") : "";
          std::cout << "  " << printable(text_of(m, "content")) << "  (from "
                    << from << ")\n";
        }
      }
      return 0;
    };
  });
  auto* canswer = conflicts->add_subcommand("answer", "answer ID with OPTION");
  canswer->add_option("id", conflict_id)->required();
  canswer->add_option("option", a1)->required();
  canswer->add_option("--federation", fed_id, "a federation's question");
  canswer->callback([&] {
    writing = true;
    run = [&](session& s) {
      json body{{"option", a1}};
      if (!fed_id.empty())
        body["federation"] = fed_id;
      return v.learned(s.post(
          s.agent_path("/conflicts/" + std::to_string(conflict_id) + "/answer"),
          body));
    };
  });
}

} // namespace engram::cli
