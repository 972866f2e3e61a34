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
      // Texts are bytes: those that are not UTF-8 travel as base64.
      s.post(s.agent_path("/messages"),
             is_utf8(a2) ? json{{"to", a1}, {"text", a2}}
                         : json{{"to", a1}, {"text_base64", api::base64(a2)}});
      std::cout << (opts.json ? show(json{{"told", a1}}) : "told " + a1)
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
  inbox->callback([&] {
    run = [&](session& s) {
      auto messages = s.get(s.agent_path("/inbox"));
      if (opts.json) {
        std::cout << show(messages, 2) << '\n';
        return 0;
      }
      for (auto& m : messages)
        std::cout << printable(text_of(m, "from")) << ": "
                  << printable(text_of(m, "text")) << '\n';
      return 0;
    };
  });
}

} // namespace engram::cli
