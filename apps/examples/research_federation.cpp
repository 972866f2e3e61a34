// Example: a research federation sharing findings, with a leader, a member
// and an observer.
//
// Three nodes run in this process (stores under DATA_DIR). "lead" on node A
// creates the federation "Research" (uniform trust 0.8) with member "ana"
// on node B; "otto" on node C joins as an observer. Each agent's program is
// a CAF actor talking to its instance actor with typed messages:
//  * ana learns her findings into the federation's Collective memory, then
//    tells lead she is done;
//  * lead, told, broadcasts "review the findings" to the federation;
//  * otto reads the federation's memory — ana's findings as Reported{ana,
//    0.8}, confidence scaled, with the hop in their provenance — tries to
//    add one of his own (refused: observers read only) and reads his inbox.
//
//   engram-example-research-federation [DATA_DIR]
#include "actors/node.hpp"
#include "federation/membership.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace engram;
using namespace std::chrono_literals;

namespace {

struct config : caf::actor_system_config {
  config() { actors::register_types(*this); }
};

using done_atom = caf::atom_constant<caf::atom("done")>;
using read_atom = caf::atom_constant<caf::atom("read")>;

const std::vector<std::pair<std::string, std::string>> findings{
    {"protein.fold", "the loop region folds last"},
    {"assay.batch7", "batch 7 is contaminated"},
    {"model.v2", "v2 overfits below 1k samples"},
};

// ana: learns each finding into the federation, then tells lead.
caf::behavior ana_program(caf::event_based_actor* self,
                          actors::instance_actor inst, std::string fed) {
  return {
      [=](done_atom) {
        auto rp = self->make_response_promise();
        auto left = std::make_shared<size_t>(findings.size());
        for (auto& [key, text] : findings) {
          engram_record e;
          e.type = memory_type::semantic;
          e.scope = memory_scope::collective(fed, {"ana"});
          e.body = fact{key, text};
          e.confidence = 0.9;
          self->request(inst, 5s, actors::learn_atom::value, e, true)
              .then(
                  [=](engram_id) mutable {
                    if (--*left > 0)
                      return;
                    self->request(inst, 5s, actors::tell_atom::value,
                                  std::string{"lead"},
                                  std::string{"findings are in"})
                        .then(
                            [=](bool) mutable {
                              rp.deliver(true);
                            },
                            [=](caf::error& e) mutable {
                              rp.deliver(e);
                            });
                  },
                  [=](caf::error& e) mutable {
                    rp.deliver(e);
                  });
        }
        return rp;
      },
  };
}

// lead: once told, broadcasts to the federation; answers how many it reached.
caf::behavior lead_program(caf::event_based_actor* self,
                           actors::instance_actor inst, std::string fed) {
  return {
      [=](read_atom) {
        auto rp = self->make_response_promise();
        self->request(inst, 5s, actors::inbox_atom::value)
            .then(
                [=](std::vector<std::string>& inbox) mutable {
                  for (size_t i = 0; i + 1 < inbox.size(); i += 2)
                    std::printf("lead's inbox: %s says \"%s\"\n",
                                inbox[i].c_str(), inbox[i + 1].c_str());
                  if (inbox.empty()) {
                    rp.deliver(uint64_t{0});
                    return;
                  }
                  self->request(inst, 5s, actors::broadcast_atom::value, fed,
                                std::string{"review the findings"})
                      .then(
                          [=](uint64_t n) mutable {
                            rp.deliver(n);
                          },
                          [=](caf::error& e) mutable {
                            rp.deliver(e);
                          });
                },
                [=](caf::error& e) mutable {
                  rp.deliver(e);
                });
        return rp;
      },
  };
}

struct otto_report {
  size_t reported = 0; // findings read as Reported{ana, 0.8}
  bool refused = false;
  bool got_broadcast = false;
};

// otto: reads the federation's memory and inbox, tries to write.
caf::behavior otto_program(caf::event_based_actor* self,
                           actors::instance_actor inst, std::string fed,
                           std::shared_ptr<otto_report> report) {
  return {
      [=](read_atom) {
        auto rp = self->make_response_promise();
        self->request(inst, 5s, actors::query_atom::value, fed, query_filter{})
            .then(
                [=](std::vector<memory_view>& views) mutable {
                  for (auto& v : views) {
                    auto& e = v.value;
                    auto* f = std::get_if<fact>(&e.body);
                    std::printf(
                        "otto reads %-13s \"%s\" from %s: "
                        "confidence %.2f, %s (hops: %zu)\n",
                        f ? f->key.c_str() : "?", f ? f->value.c_str() : "",
                        e.origin.origin_agent.c_str(), e.confidence,
                        to_string(e.epistemic.kind), e.origin.hops.size());
                    if (e.epistemic == epistemic_status::reported("ana", 0.8))
                      ++report->reported;
                  }
                  engram_record mine;
                  mine.type = memory_type::semantic;
                  mine.scope = memory_scope::collective(fed, {"otto"});
                  mine.body = fact{"otto.opinion", "all wrong"};
                  self->request(inst, 5s, actors::learn_atom::value, mine, true)
                      .then(
                          [=](engram_id) mutable {
                            rp.deliver(std::string{"written?!"});
                          },
                          [=](caf::error& err) mutable {
                            auto e = actors::from_caf(err);
                            report->refused = e.code == errc::permission_denied;
                            std::printf("otto's write refused: %s\n",
                                        e.message.c_str());
                            self->request(inst, 5s, actors::inbox_atom::value)
                                .then(
                                    [=](std::vector<std::string>& in) mutable {
                                      for (size_t i = 0; i + 1 < in.size();
                                           i += 2) {
                                        std::printf("otto's inbox: %s says "
                                                    "\"%s\"\n",
                                                    in[i].c_str(),
                                                    in[i + 1].c_str());
                                        report->got_broadcast = true;
                                      }
                                      rp.deliver(std::string{"read"});
                                    },
                                    [=](caf::error& e) mutable {
                                      rp.deliver(e);
                                    });
                          });
                },
                [=](caf::error& e) mutable {
                  rp.deliver(e);
                });
        return rp;
      },
  };
}

// Retries `f` (a blocking call returning expected) until it succeeds:
// another node learns where an agent or federation lives within moments.
template<class F>
auto retry(F f) {
  auto r = f();
  for (int i = 0; i < 200 && !r; ++i) {
    std::this_thread::sleep_for(25ms);
    r = f();
  }
  return r;
}

} // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1
                        ? argv[1]
                        : (std::filesystem::temp_directory_path()
                           / ("engram-federation-" + std::to_string(getpid())))
                              .string();
  config cfg;
  caf::actor_system sys{cfg};
  std::vector<std::unique_ptr<actors::node>> nodes;
  for (auto id : {"A", "B", "C"}) {
    actors::node_config c;
    c.node_id = id;
    c.data_dir = dir + "/" + id;
    auto n = actors::node::start(sys, c);
    if (!n) {
      std::fprintf(stderr, "cannot start node %s: %s\n", id,
                   n.error_value().to_string().c_str());
      return 2;
    }
    nodes.push_back(std::move(*n));
  }
  for (size_t i = 0; i < nodes.size(); ++i)
    for (size_t j = i + 1; j < nodes.size(); ++j)
      actors::connect(*nodes[i], *nodes[j]);
  auto lead = nodes[0]->open("lead", "desk");
  auto ana = nodes[1]->open("ana", "lab");
  auto otto = nodes[2]->open("otto", "tablet");
  if (!lead || !ana || !otto)
    return 2;
  // Setting up the federation (blocking calls, from main).
  federation::federation_config fc;
  fc.name = "Research";
  fc.initial_members = {"ana"};
  fc.trust = federation::uniform_trust{0.8};
  auto created = lead->create_federation(fc);
  if (!created) {
    std::fprintf(stderr, "%s\n", created.error_value().to_string().c_str());
    return 1;
  }
  auto fed = created->id();
  std::printf("lead created %s (%s)\n", created->name().c_str(), fed.c_str());
  // ana is an initial member; otto joins once the leader invites him.
  if (auto invited = lead->invite_to_federation(
          fed, "otto", federation::agent_role::observer);
      !invited) {
    std::fprintf(stderr, "%s\n", invited.error_value().to_string().c_str());
    return 1;
  }
  auto joined = retry([&] {
    return ana->join_federation(fed);
  });
  auto watching = retry([&] {
    return otto->join_federation(fed, federation::agent_role::observer);
  });
  if (!joined || !watching) {
    std::fprintf(stderr, "join failed\n");
    return 1;
  }
  std::printf("ana joined as member, otto as observer\n");
  // The joins reach lead's node by sync: lead broadcasts to the members it
  // knows, so wait until its view holds both.
  for (int i = 0; i < 200; ++i) {
    auto view = lead->federation_state(fed);
    if (view && view->find("ana") != nullptr && view->find("otto") != nullptr)
      break;
    std::this_thread::sleep_for(25ms);
  }
  // The agents' programs.
  auto report = std::make_shared<otto_report>();
  auto ana_actor = sys.spawn(ana_program, *ana->actor(), fed);
  auto lead_actor = sys.spawn(lead_program, *lead->actor(), fed);
  auto otto_actor = sys.spawn(otto_program, *otto->actor(), fed, report);
  caf::scoped_actor self{sys};
  bool ok = true;
  self->request(ana_actor, 10s, done_atom::value)
      .receive([](bool) {},
               [&](caf::error& e) {
                 std::fprintf(stderr, "ana: %s\n", to_string(e).c_str());
                 ok = false;
               });
  self->request(lead_actor, 10s, read_atom::value)
      .receive(
          [](uint64_t n) {
            std::printf("lead broadcast to %llu member(s)\n",
                        static_cast<unsigned long long>(n));
          },
          [&](caf::error& e) {
            std::fprintf(stderr, "lead: %s\n", to_string(e).c_str());
            ok = false;
          });
  // The findings reach otto's node by sync: read until all are there.
  for (int i = 0; i < 200 && report->reported < findings.size(); ++i) {
    report->reported = 0;
    self->request(otto_actor, 10s, read_atom::value)
        .receive([](const std::string&) {},
                 [&](caf::error& e) {
                   std::fprintf(stderr, "otto: %s\n", to_string(e).c_str());
                 });
    if (report->reported < findings.size())
      std::this_thread::sleep_for(25ms);
  }
  for (auto& a : {ana_actor, lead_actor, otto_actor})
    self->send_exit(a, caf::exit_reason::user_shutdown);
  nodes.clear();
  if (argc <= 1)
    std::filesystem::remove_all(dir);
  ok = ok && report->reported == findings.size() && report->refused
       && report->got_broadcast;
  std::printf("%s\n", ok ? "ok: findings shared with trust, observer "
                           "read-only, broadcast delivered"
                         : "FAILED");
  return ok ? 0 : 1;
}
