// An agent program built against the installed package: two nodes in one
// process, an instance of an agent learns on the first, an instance of the
// same agent on the second reads it (and not the first's private note).

#include "actors/node.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

using namespace engram;

struct config : caf::actor_system_config {
  config() { actors::register_types(*this); }
};

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: agent_program DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  config cfg;
  caf::actor_system sys{cfg};
  actors::node_config a_cfg;
  a_cfg.node_id = "A";
  a_cfg.data_dir = dir + "/a";
  auto b_cfg = a_cfg;
  b_cfg.node_id = "B";
  b_cfg.data_dir = dir + "/b";
  auto a = actors::node::start(sys, a_cfg);
  auto b = actors::node::start(sys, b_cfg);
  if (!a || !b) {
    std::fprintf(stderr, "cannot start the nodes\n");
    return 1;
  }
  actors::connect(**a, **b);
  auto writer = (*a)->open("researcher", "lab-1");
  auto reader = (*b)->open("researcher", "lab-2");
  if (!writer || !reader)
    return 1;
  engram_record finding;
  finding.type = memory_type::semantic;
  finding.body = fact{"result", "42"};
  engram_record note = finding;
  note.body = fact{"draft", "private"};
  if (!writer->learn(finding)
      || !writer->learn_scoped(note, memory_scope::instance({})))
    return 1;
  for (int i = 0; i < 500; ++i) {
    auto seen = reader->query();
    if (seen && seen->size() == 1) {
      auto* f = std::get_if<fact>(&seen->front().value.body);
      bool ok = f != nullptr && f->key == "result" && f->value == "42";
      std::printf("%s: B read %s=%s\n", ok ? "ok" : "wrong",
                  f ? f->key.c_str() : "?", f ? f->value.c_str() : "?");
      return ok ? 0 : 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  std::fprintf(stderr, "B never read what A learned\n");
  return 1;
}
