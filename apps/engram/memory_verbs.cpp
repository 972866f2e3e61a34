// The CLI's memory verbs: status, learn, believe, query, forget, sync,
// conflicts.

#include "apps/engram/verbs.hpp"

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
  auto add_filter_options = [&](CLI::App* cmd) {
    v.add_filter_options(cmd);
  };
  auto* status = app.add_subcommand("status", "the node's agents and sessions");
  status->callback([&] {
    run = [&](session& s) {
      auto st
          = s.call<actors::node_status>(s.node(), actors::status_atom::value);
      auto hosted = s.call<std::vector<std::string>>(
          s.node(), actors::locate_atom::value);
      if (opts.json) {
        json sessions = json::array();
        for (auto& x : st.session_details)
          sessions.push_back({{"peer", x.peer_node},
                              {"agent", x.agent},
                              {"established", x.established},
                              {"frames_in", x.frames_in},
                              {"frames_out", x.frames_out},
                              {"retransmits", x.retransmits}});
        json clocks = json::array();
        for (auto& c : st.clock_offsets)
          clocks.push_back(
              {{"peer", c.peer},
               {"offset_ms", static_cast<double>(c.offset_us) / 1000},
               {"rtt_ms", static_cast<double>(c.rtt_us) / 1000}});
        json out{{"node", st.node_id},        {"agents", hosted},
                 {"instances", st.instances}, {"respawns", st.respawns},
                 {"sessions", sessions},      {"clock_offsets", clocks},
                 {"peers_up", st.peers_up},   {"peers_down", st.peers_down}};
        if (!st.clock_refusal.empty())
          out["writes_refused"] = st.clock_refusal;
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      } else {
        std::cout << "node " << st.node_id << ": " << st.agents << " agents, "
                  << st.instances << " instances, " << st.sessions
                  << " sync sessions, " << st.respawns << " respawns\n";
        for (auto& a : hosted)
          std::cout << "  " << a << '\n';
        for (auto& p : st.peers_up)
          std::cout << "  peer " << p << ": up\n";
        for (auto& p : st.peers_down)
          std::cout << "  peer " << p << ": down\n";
        for (auto& c : st.clock_offsets)
          std::cout << "  clock of " << c.peer << ": " << std::showpos
                    << c.offset_us / 1000 << std::noshowpos
                    << " ms (round trip " << c.rtt_us / 1000.0 << " ms)\n";
        if (!st.clock_refusal.empty())
          std::cout << "  WRITES REFUSED: " << st.clock_refusal << '\n';
      }
      return 0;
    };
  });

  auto add_learn_options = [&](CLI::App* cmd) {
    cmd->add_option("--confidence", confidence, "in [0, 1]")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--federation", fed_id,
                    "into this federation's Collective memory");
    cmd->add_flag("--instance-scope", instance_scope,
                  "keep it in this instance only");
  };
  auto* learn = app.add_subcommand("learn", "learn a fact KEY = VALUE");
  learn->add_option("key", a1)->required();
  learn->add_option("value", a2)->required();
  add_learn_options(learn);
  learn->callback([&] {
    writing = true;
    run = [&](session& s) {
      return v.learn_record(s, keyed(fact{a1, a2}, confidence));
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
      return v.learn_record(s, keyed(belief{a1, a2, a3}, confidence));
    };
  });

  auto* query = app.add_subcommand("query", "what the agent remembers");
  add_filter_options(query);
  query->add_flag("--contested", contested, "only contested alternatives");
  query->add_option("--federation", fed_id, "a federation's memory instead");
  query->add_option("--consistency", consistency,
                    "one, quorum, all or local (the node's default)");
  query->callback([&] {
    run = [&](session& s) {
      auto f = v.filter();
      std::vector<memory_view> views;
      if (!fed_id.empty())
        views = s.call<std::vector<memory_view>>(
            s.instance(), actors::query_atom::value, fed_id, f);
      else if (!consistency.empty()) {
        auto level = parse_consistency(consistency);
        if (!level)
          throw failure{exit_usage,
                        "--consistency: " + level.error_value().message};
        views = s.call<std::vector<memory_view>>(s.instance(),
                                                 actors::query_atom::value, f,
                                                 actors::code_of(*level));
      } else
        views = s.call<std::vector<memory_view>>(s.instance(),
                                                 actors::query_atom::value, f);
      if (opts.json) {
        json out = json::array();
        for (auto& v : views)
          out.push_back(to_json(v));
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      } else {
        for (auto& v : views)
          std::cout << line_of(v) << '\n';
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
      auto id = engram_id::parse(a1);
      if (!id)
        throw failure{exit_usage, "id: " + id.error_value().message};
      return v.learned(s, s.call<engram_id>(s.instance(),
                                            actors::forget_atom::value, *id,
                                            reason));
    };
  });

  auto* sync = app.add_subcommand("sync", "sync the agent's memory now");
  sync->callback([&] {
    run = [&](session& s) {
      actors::sync_config cfg;
      cfg.timeout = std::chrono::milliseconds{opts.timeout_ms};
      auto r = s.call_for<actors::sync_result>(
          std::chrono::milliseconds{opts.timeout_ms * 2}, s.instance(),
          actors::sync_atom::value, cfg);
      if (opts.json)
        std::cout << json{{"clean", r.clean()},
                          {"synced", r.synced_count},
                          {"merged", r.merged_count},
                          {"conflicts", r.conflicts.size()},
                          {"peers", r.peers}}
                         .dump(-1, ' ', false, json::error_handler_t::replace)
                  << '\n';
      else
        std::cout << (r.clean() ? "clean" : "merged") << ": " << r.synced_count
                  << " synced, " << r.merged_count << " merged, "
                  << r.conflicts.size() << " conflicts, " << r.peers
                  << " peers\n";
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
      auto qs = fed_id.empty()
                    ? s.call<std::vector<pending_question>>(
                        s.instance(), actors::pending_atom::value)
                    : s.call<std::vector<pending_question>>(
                        s.instance(), actors::pending_atom::value, fed_id);
      if (opts.json) {
        json out = json::array();
        for (auto& q : qs)
          out.push_back(to_json(q));
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      } else {
        for (auto& q : qs) {
          std::cout << q.subject.id << "  " << q.question.question
                    << "  options:";
          for (auto& o : q.question.options)
            std::cout << ' ' << o;
          std::cout << '\n';
          for (auto& v : q.subject.versions())
            std::cout << "  " << describe(v.value.body) << "  (from "
                      << v.value.origin.origin_agent << ")\n";
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
      auto id = fed_id.empty() ? s.call<engram_id>(
                    s.instance(), actors::answer_atom::value, conflict_id, a1)
                               : s.call<engram_id>(s.instance(),
                                                   actors::answer_atom::value,
                                                   fed_id, conflict_id, a1);
      return v.learned(s, id);
    };
  });
}

} // namespace engram::cli
