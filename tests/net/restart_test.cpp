// Restarts with real engramd processes: a restarted node hosts again every
// agent and federation its store holds, so what it acknowledged spreads
// without any client touching it; and a node that never held an agent does
// not answer a read at a level other than Local from its empty replica.

#include "federation/codec.hpp"
#include "federation/membership.hpp"

#include <boost/test/unit_test.hpp>

#include <csignal>
#include <set>
#include <string>

#include "cluster.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

// The keys of the facts `node` serves for `agent` at Local.
std::set<std::string> local_keys(cluster& c, size_t node,
                                 const std::string& agent) {
  std::set<std::string> keys;
  auto views = call<std::vector<memory_view>>(
      c.sys, c.instance(node, agent, "probe"), 2s, actors::query_atom::value,
      query_filter{}, actors::code_of(consistency_level::local));
  if (views)
    for (auto& v : *views)
      if (auto* f = std::get_if<fact>(&v.value.body))
        keys.insert(f->key);
  return keys;
}

std::vector<std::string> hosted(cluster& c, size_t node) {
  auto r = call<std::vector<std::string>>(c.sys, c.node(node), 2s,
                                          actors::locate_atom::value);
  return r ? *r : std::vector<std::string>{};
}

} // namespace

BOOST_AUTO_TEST_SUITE(restarts)

// The sequence: n1 and n2 stop; a fact learned through n3; n3
// killed; all three restarted; nothing touches the agent on n3. n1 and n2
// receive the fact, and n3 lists the agent again.
BOOST_AUTO_TEST_CASE(a_restarted_node_spreads_what_it_acknowledged) {
  cluster c;
  auto n1 = c.start("n1", {});
  auto n2 = c.start("n2", {c.nodes[n1].port});
  auto n3 = c.start("n3", {c.nodes[n1].port, c.nodes[n2].port});
  std::vector<uint16_t> ports{c.nodes[n1].port, c.nodes[n2].port,
                              c.nodes[n3].port};
  c.learn(c.instance(n1, "ann", "chat"), fact_of("k0", "v"));
  for (auto i : {n1, n2, n3})
    BOOST_REQUIRE(until([&] {
      return local_keys(c, i, "ann").count("k0");
    }));
  for (auto i : {n1, n2}) {
    c.nodes[i].proc.signal(SIGTERM);
    BOOST_REQUIRE(c.nodes[i].proc.wait(10s));
  }
  c.learn(c.instance(n3, "ann", "chat"), fact_of("k1", "acknowledged"));
  c.nodes[n3].proc.signal(SIGKILL);
  BOOST_REQUIRE(c.nodes[n3].proc.wait(10s));
  c.nodes.clear();
  // All three back, on their ports; no client uses "ann" on n3.
  auto r1 = c.start("n1", {ports[1], ports[2]}, ports[0]);
  auto r2 = c.start("n2", {ports[0], ports[2]}, ports[1]);
  auto r3 = c.start("n3", {ports[0], ports[1]}, ports[2]);
  auto on3 = hosted(c, r3);
  BOOST_CHECK(until([&] {
    on3 = hosted(c, r3);
    return std::find(on3.begin(), on3.end(), "ann") != on3.end();
  }));
  for (auto i : {r1, r2})
    BOOST_CHECK_MESSAGE(until([&] {
                          return local_keys(c, i, "ann").count("k1") > 0;
                        }),
                        c.nodes[i].id << " never received k1");
  BOOST_CHECK(c.nodes[r3].proc.output().find("event=agents_hosted node=n3")
              != std::string::npos);
}

// A federation is hosted again too: querying it on a restarted node works
// before any other verb opened it there.
BOOST_AUTO_TEST_CASE(a_restarted_node_hosts_its_federations) {
  cluster c;
  auto n1 = c.start("n1", {});
  auto port = c.nodes[n1].port;
  federation::federation_config cfg;
  cfg.name = "Research";
  cfg.initial_members = {"ann"};
  auto state = federation::federation_state::create(cfg, 1);
  BOOST_REQUIRE(state);
  auto fed = state->id();
  auto made = call<federation::federation_state>(
      c.sys, c.instance(n1, "ann", "chat"), 5s, actors::federation_atom::value,
      fed,
      federation::federation_command{"ann", federation::cmd::create{*state}});
  BOOST_REQUIRE_MESSAGE(made, (made ? "" : made.error_value().to_string()));
  c.nodes[n1].proc.signal(SIGTERM);
  BOOST_REQUIRE(c.nodes[n1].proc.wait(10s));
  c.nodes.clear();
  auto r1 = c.start("n1", {}, port);
  // The first thing after the restart: a query of the federation.
  auto views = call<std::vector<memory_view>>(
      c.sys, c.instance(r1, "ann", "cli"), 5s, actors::query_atom::value, fed,
      query_filter{});
  BOOST_CHECK_MESSAGE(views, (views ? "" : views.error_value().to_string()));
}

// n2 never held "ann": its first read at the default level (One) answers
// what n1 holds, not an empty list.
BOOST_AUTO_TEST_CASE(a_first_read_on_a_new_node_is_not_empty) {
  cluster c;
  auto n1 = c.start("n1", {});
  auto a1 = c.instance(n1, "ann", "chat");
  for (int i = 0; i < 5; ++i)
    c.learn(a1, fact_of("k" + std::to_string(i), "v"));
  auto n2 = c.start("n2", {c.nodes[n1].port});
  // n2 knows where ann runs once the nodes met.
  BOOST_REQUIRE(until([&] {
    auto where = call<std::vector<std::string>>(
        c.sys, c.node(n2), 2s, actors::locate_atom::value, std::string{"ann"});
    return where && !where->empty();
  }));
  auto first = call<std::vector<memory_view>>(
      c.sys, c.instance(n2, "ann", "chat"), 5s, actors::query_atom::value,
      query_filter{});
  BOOST_REQUIRE(first);
  BOOST_CHECK_EQUAL(first->size(), 5u);
}

BOOST_AUTO_TEST_SUITE_END()
