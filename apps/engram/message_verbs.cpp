// The CLI's message verbs: tell, ask, inbox.

#include "apps/engram/verbs.hpp"

#include <iostream>

namespace engram::cli {

void add_message_verbs(CLI::App& app, verbs& v) {
  auto& opts = v.opts;
  auto& a1 = v.a1;
  auto& a2 = v.a2;
  auto& run = v.run;
  auto& writing = v.writing;
  auto& ask_timeout_ms = v.ask_timeout_ms;
  auto* tell = app.add_subcommand("tell", "leave TEXT in agent TO's inbox");
  tell->add_option("to", a1)->required();
  tell->add_option("text", a2)->required();
  tell->callback([&] {
    writing = true; // the message is a write to the recipient's memory
    run = [&](session& s) {
      s.call<bool>(s.instance(), actors::tell_atom::value, a1, a2);
      std::cout << (opts.json ? json{{"told", a1}}.dump(
                        -1, ' ', false, json::error_handler_t::replace)
                              : "told " + a1)
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
      auto answer = s.call_for<std::string>(
          std::chrono::milliseconds{ask_timeout_ms + opts.timeout_ms},
          s.instance(), actors::ask_atom::value, a1, a2,
          static_cast<uint64_t>(ask_timeout_ms));
      std::cout << (opts.json ? json{{"answer", answer}}.dump(
                        -1, ' ', false, json::error_handler_t::replace)
                              : answer)
                << '\n';
      return 0;
    };
  });
  auto* inbox = app.add_subcommand("inbox", "read (and empty) the inbox");
  inbox->callback([&] {
    run = [&](session& s) {
      auto raw = s.call<std::vector<std::string>>(s.instance(),
                                                  actors::inbox_atom::value);
      json out = json::array();
      for (size_t i = 0; i + 1 < raw.size(); i += 2) {
        if (opts.json)
          out.push_back({{"from", raw[i]}, {"text", raw[i + 1]}});
        else
          std::cout << printable(raw[i]) << ": " << printable(raw[i + 1])
                    << '\n';
      }
      if (opts.json)
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace)
                  << '\n';
      return 0;
    };
  });
}

} // namespace engram::cli
