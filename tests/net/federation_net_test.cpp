// Federations, sharing and agent communication across real engramd
// processes on 127.0.0.1 (and this test program, which runs a node of its
// own: agents written as actor programs join the cluster like engramd's).

#include "federation/codec.hpp"
#include "federation/membership.hpp"
#include "federation/share.hpp"

#include <csignal>
#include <set>

#include "cluster.hpp"
#include "netns.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

namespace cmd = federation::cmd;

expected<federation::federation_state>
fed_call(caf::actor_system& sys, const actors::instance_actor& inst,
         const std::string& fed, federation::command_kind what) {
  return call<federation::federation_state>(
      sys, inst, 10s, actors::federation_atom::value, fed,
      // The instance runs it for its own agent, whatever name it carries.
      federation::federation_command{"caller", std::move(what)});
}

} // namespace

BOOST_AUTO_TEST_SUITE(federation_net)

// A federation across three engramd processes: leader on n1, member on n2,
// observer on n3. Collective memory syncs to all; the observer's write is
// refused; killing the leader's node hands leadership to the member.
BOOST_AUTO_TEST_CASE(a_federation_spans_processes_and_survives_its_leader) {
  cluster c;
  auto n1 = c.start("n1", {});
  auto n2 = c.start("n2", {c.nodes[n1].port});
  auto n3 = c.start("n3", {c.nodes[n1].port, c.nodes[n2].port});
  auto lead = c.instance(n1, "lead", "main");
  auto ana = c.instance(n2, "ana", "main");
  auto otto = c.instance(n3, "otto", "main");
  auto call = [&](const actors::instance_actor& inst, const std::string& fed,
                  federation::command_kind what) {
    return fed_call(c.sys, inst, fed, std::move(what));
  };
  auto collective = [&](const actors::instance_actor& inst,
                        const std::string& fed, const std::string& key) {
    auto e = fact_of(key, "v");
    e.scope = memory_scope::collective(fed, {"x"});
    return engram::test::call<engram_id>(c.sys, inst, 10s,
                                         actors::learn_atom::value, e, true);
  };
  auto visible
      = [&](const actors::instance_actor& inst, const std::string& fed) {
          auto views = engram::test::call<std::vector<memory_view>>(
              c.sys, inst, 5s, actors::query_atom::value, fed, query_filter{});
          return views ? views->size() : size_t{0};
        };
  federation::federation_config cfg;
  cfg.name = "Research";
  cfg.initial_members = {"lead", "ana"};
  auto state = federation::federation_state::create(cfg, 1);
  BOOST_REQUIRE(state);
  auto fed = state->id();
  BOOST_REQUIRE(call(lead, fed, cmd::create{*state}));
  BOOST_REQUIRE(until([&] {
    return call(ana, fed, cmd::join{}).has_value();
  }));
  // Uninvited, otto is refused over the wire too; invited, he joins.
  auto uninvited = call(otto, fed, cmd::join{federation::agent_role::observer});
  BOOST_REQUIRE(!uninvited);
  BOOST_CHECK(uninvited.error_value().message.find("no standing invitation")
              != std::string::npos);
  BOOST_REQUIRE(
      call(lead, fed, cmd::invite{"otto", federation::agent_role::observer}));
  BOOST_REQUIRE(until([&] {
    return call(otto, fed, cmd::join{federation::agent_role::observer})
        .has_value();
  }));
  BOOST_REQUIRE(collective(lead, fed, "finding-1"));
  BOOST_REQUIRE(collective(ana, fed, "finding-2"));
  for (auto inst : {lead, ana, otto})
    BOOST_CHECK(until([&] {
      return visible(inst, fed) == 2;
    }));
  auto refused = collective(otto, fed, "sneaky");
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::permission_denied);
  // The leader's node is killed: ana (the first member) takes over.
  c.nodes[n1].proc.signal(SIGKILL);
  BOOST_CHECK(c.nodes[n1].proc.wait(5s));
  BOOST_CHECK(until([&] {
    auto st = call(otto, fed, cmd::read_state{});
    return st && st->leader() == "ana";
  }));
  BOOST_CHECK(
      call(ana, fed, cmd::set_role{"otto", federation::agent_role::member}));
  BOOST_CHECK(until([&] {
    return collective(otto, fed, "now-allowed").has_value();
  }));
  BOOST_CHECK(until([&] {
    return visible(ana, fed) == 3;
  }));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(communication_net)

// tell / ask / broadcast and sharing between agents in two engramd
// processes and agents of this program (a node of its own, peered with
// both): ask answered across processes and timing out, a broadcast to
// every member, a PII-redacted share accepted with trust (the redacted
// text never in the receiver's RocksDB files), a share declined, and each
// trust model's effect on what a member reads.
BOOST_AUTO_TEST_CASE(agents_talk_and_share_across_processes) {
  cluster c;
  auto n1 = c.start("n1", {});
  auto n2 = c.start("n2", {c.nodes[n1].port});
  // This program's node: the oracle answers, the sleeper answers late.
  actors::node_config app_cfg;
  app_cfg.node_id = "app";
  app_cfg.data_dir = c.dir.sub("app");
  // A node of the cluster: it proves its id with a certificate of the CA,
  // the one its actor system speaks TLS with (not this program's client
  // certificate: a node's proof is bound to its connections).
  app_cfg.tls = c.pki.node_tls("app");
  client_config app_sys_cfg{app_cfg.tls};
  caf::actor_system app_sys{app_sys_cfg};
  app_cfg.sync_writes = false;
  app_cfg.agent_defaults = [](const std::string& agent_id) {
    actors::agent_config a;
    if (agent_id == "oracle")
      a.on_ask = [](const std::string& from, const std::string& q) {
        return "oracle to " + from + ": " + q + " -> 42";
      };
    if (agent_id == "sleeper")
      a.on_ask = [](const std::string&, const std::string&) {
        std::this_thread::sleep_for(1500ms);
        return std::string{"late"};
      };
    return a;
  };
  auto app = actors::node::start(app_sys, std::move(app_cfg));
  BOOST_REQUIRE(app);
  auto oracle = (*app)->open("oracle", "main");
  auto sleeper = (*app)->open("sleeper", "main");
  BOOST_REQUIRE(oracle && sleeper);
  actors::peer_keeper keeper{app_sys,
                             **app,
                             {actors::endpoint{"127.0.0.1", c.nodes[n1].port},
                              actors::endpoint{"127.0.0.1", c.nodes[n2].port}},
                             nullptr};
  auto alice = c.instance(n1, "alice", "main");
  auto bob = c.instance(n2, "bob", "main");
  auto& sys = c.sys;
  auto inbox = [&](const actors::instance_actor& inst) {
    auto raw = call<std::vector<std::string>>(sys, inst, 5s,
                                              actors::inbox_atom::value);
    return raw ? *raw : std::vector<std::string>{};
  };
  // tell: n1 → n2 (once the directory knows where bob runs).
  BOOST_REQUIRE(until([&] {
    return call<bool>(sys, alice, 5s, actors::tell_atom::value,
                      std::string{"bob"}, std::string{"hello bob"})
        .has_value();
  }));
  BOOST_CHECK((inbox(bob) == std::vector<std::string>{"alice", "hello bob"}));
  // ask: n1 → this program, answered; and a timeout, never a hang.
  std::string answer;
  BOOST_CHECK(until([&] {
    auto r = call<std::string>(sys, alice, 5s, actors::ask_atom::value,
                               std::string{"oracle"}, std::string{"meaning?"},
                               uint64_t{2000});
    if (r)
      answer = *r;
    else
      answer = r.error_value().to_string(); // shown if it never works
    return r.has_value();
  }));
  BOOST_CHECK_EQUAL(answer, "oracle to alice: meaning? -> 42");
  auto t0 = std::chrono::steady_clock::now();
  auto late = call<std::string>(sys, alice, 5s, actors::ask_atom::value,
                                std::string{"sleeper"}, std::string{"now?"},
                                uint64_t{300});
  BOOST_REQUIRE(!late);
  BOOST_CHECK(late.error_value().code == errc::timeout);
  BOOST_CHECK_MESSAGE(
      late.error_value().message.find("sleeper did not answer within 300 ms")
          != std::string::npos,
      late.error_value().message);
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 < 1500ms);
  // broadcast: alice's federation reaches bob (n2) and the oracle (here).
  federation::federation_config fcfg;
  fcfg.name = "Wire";
  fcfg.initial_members = {"alice", "bob", "oracle"};
  auto state = federation::federation_state::create(fcfg, 1);
  BOOST_REQUIRE(state);
  auto fed = state->id();
  BOOST_REQUIRE(fed_call(sys, alice, fed, cmd::create{*state}));
  BOOST_REQUIRE(until([&] {
    return fed_call(sys, bob, fed, cmd::join{}).has_value();
  }));
  BOOST_REQUIRE(until([&] {
    return oracle->join_federation(fed).has_value();
  }));
  BOOST_REQUIRE(until([&] {
    auto n = call<uint64_t>(sys, alice, 5s, actors::broadcast_atom::value, fed,
                            std::string{"release at noon"});
    return n && *n == 2;
  }));
  BOOST_CHECK(
      (inbox(bob) == std::vector<std::string>{"alice", "release at noon"}));
  auto got = oracle->inbox();
  BOOST_REQUIRE(got);
  BOOST_CHECK((*got
               == std::vector<std::pair<std::string, std::string>>{
                   {"alice", "release at noon"}}));
  // Trust models: what alice reads of bob's claim in the federation.
  auto claim = fact_of("eta", "friday");
  claim.scope = memory_scope::collective(fed, {"x"});
  BOOST_REQUIRE(
      call<engram_id>(sys, bob, 10s, actors::learn_atom::value, claim, true));
  auto bobs_confidence = [&]() -> double {
    auto views = call<std::vector<memory_view>>(
        sys, alice, 5s, actors::query_atom::value, fed, query_filter{});
    if (!views)
      return -1;
    for (auto& v : *views)
      if (v.value.origin.origin_agent == "bob")
        return v.value.confidence;
    return -1;
  };
  auto with_model = [&](federation::trust_model model) {
    BOOST_REQUIRE(fed_call(sys, alice, fed, cmd::set_trust{model}));
  };
  with_model(federation::uniform_trust{0.7});
  BOOST_CHECK(until([&] {
    return std::abs(bobs_confidence() - 0.9 * 0.7) < 1e-9;
  }));
  with_model(federation::per_agent_trust{{{"bob", 0.5}}, 0.1});
  BOOST_CHECK_CLOSE(bobs_confidence(), 0.9 * 0.5, 1e-6);
  with_model(federation::transitive_trust{{{"bob", 0.8}}, 0.5, 3});
  BOOST_CHECK_CLOSE(bobs_confidence(), 0.9 * 0.8, 1e-6);
  federation::reputation_trust rep;
  rep.initial = 0.5;
  rep.boost_on_verification = 0.25;
  rep.decay = 0.0;
  with_model(rep);
  BOOST_CHECK_CLOSE(bobs_confidence(), 0.9 * 0.5, 1e-6);
  BOOST_REQUIRE(fed_call(sys, alice, fed, cmd::verify{"bob"}));
  BOOST_CHECK_CLOSE(bobs_confidence(), 0.9 * 0.75, 1e-6);
  // The leader removes the oracle: its writes are refused from then on
  // (once this node has the new rules).
  BOOST_REQUIRE(fed_call(sys, alice, fed, cmd::remove{"oracle"}));
  BOOST_CHECK(until([&] {
    auto r = oracle->learn_collective(fed, fact_of("late", "claim"));
    return !r && r.error_value().code == errc::permission_denied;
  }));
  // bob leaves once his node has the rules without the oracle (a federation's
  // rules are one newest-wins fact until consensus backs them: a leave made
  // from older rules would put the oracle back). n2 then stops holding the
  // federation and receives no more.
  BOOST_REQUIRE(until([&] {
    auto st = fed_call(sys, bob, fed, cmd::read_state{});
    return st && st->find("oracle") == nullptr;
  }));
  BOOST_REQUIRE(fed_call(sys, bob, fed, cmd::leave{}));
  auto after = fact_of("after", "bob left");
  after.scope = memory_scope::collective(fed, {"x"});
  BOOST_REQUIRE(
      call<engram_id>(sys, alice, 10s, actors::learn_atom::value, after, true));
  BOOST_CHECK(until([&] {
    auto r = call<std::vector<memory_view>>(
        sys, bob, 5s, actors::query_atom::value, fed, query_filter{});
    return !r && r.error_value().code == errc::unknown_agent;
  }));
  // alice's node has the rules without either (bob's node replicated his
  // leave before it stopped holding the federation).
  BOOST_CHECK(until([&] {
    auto members = fed_call(sys, alice, fed, cmd::read_state{});
    return members && members->find("bob") == nullptr
           && members->find("oracle") == nullptr;
  }));
  // Sharing with PII redaction, done on alice's node (n1).
  const std::string email = "carol.secret@example.org";
  auto contact = fact_of("contact", "write to " + email);
  BOOST_REQUIRE(call<engram_id>(sys, alice, 10s, actors::learn_atom::value,
                                contact, false));
  auto share_id = call<std::string>(sys, alice, 10s, actors::share_atom::value,
                                    std::string{"bob"}, query_filter{},
                                    std::string{"redact_pii"}, true);
  if (!share_id)
    BOOST_FAIL(share_id.error_value().to_string());
  auto unknown = call<std::string>(sys, alice, 10s, actors::share_atom::value,
                                   std::string{"bob"}, query_filter{},
                                   std::string{"rot13"}, true);
  BOOST_REQUIRE(!unknown);
  BOOST_CHECK(unknown.error_value().message.find("rot13") != std::string::npos);
  auto pending = [&] {
    auto shares = call<std::vector<federation::share>>(
        sys, bob, 5s, actors::shares_atom::value);
    BOOST_REQUIRE(shares);
    return *shares;
  };
  auto offered = pending();
  BOOST_REQUIRE_EQUAL(offered.size(), 1u);
  BOOST_CHECK_EQUAL(offered[0].transform, "redact_pii");
  BOOST_REQUIRE_EQUAL(offered[0].memories.size(), 1u);
  BOOST_CHECK_EQUAL(std::get<fact>(offered[0].memories[0].body).value,
                    "write to [email]");
  // A share cannot be sent in another agent's name.
  auto forged = *federation::make_share("carol", "bob", offered[0].memories,
                                        true, nullptr, 1);
  auto refused = call<std::string>(sys, alice, 5s, actors::share_atom::value,
                                   std::string{"bob"}, forged);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(refused.error_value().code == errc::permission_denied);
  // Accepted with trust 0.6: Reported{alice, 0.6}, confidence scaled.
  BOOST_CHECK_EQUAL(*call<uint64_t>(sys, bob, 5s, actors::accept_atom::value,
                                    std::string{"alice"}, *share_id, 0.6),
                    1u);
  auto mine = call<std::vector<memory_view>>(
      sys, bob, 5s, actors::query_atom::value, query_filter{});
  BOOST_REQUIRE(mine);
  BOOST_REQUIRE_EQUAL(mine->size(), 1u);
  auto& kept = (*mine)[0].value;
  BOOST_CHECK(kept.epistemic == epistemic_status::reported("alice", 0.6));
  BOOST_CHECK_CLOSE(kept.confidence, 0.9 * 0.6, 1e-6);
  BOOST_CHECK_EQUAL(std::get<fact>(kept.body).value, "write to [email]");
  // A second share, declined: nothing learned.
  auto second = call<std::string>(sys, alice, 10s, actors::share_atom::value,
                                  std::string{"bob"}, query_filter{},
                                  std::string{"redact_pii"}, true);
  BOOST_REQUIRE(second);
  BOOST_CHECK(
      call<std::string>(sys, bob, 5s, actors::decline_atom::value, *second));
  BOOST_CHECK(pending().empty());
  BOOST_CHECK_EQUAL(c.count(bob), 1u);
  // n2 shuts down (SIGTERM flushes): the e-mail address is in none of its
  // files (RocksDB tables, write-ahead log, manifest); it is in n1's.
  c.nodes[n2].proc.signal(SIGTERM);
  BOOST_REQUIRE(c.nodes[n2].proc.wait(10s));
  BOOST_CHECK(!any_file_contains(c.dir.sub("n2"), email));
  BOOST_CHECK(any_file_contains(c.dir.sub("n1"), email));
  (*app)->stop();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(contested_beliefs_net)

// The leader's node n1 (namespace A) and a member's node n2 (namespace B)
// are cut apart while both state contradictory beliefs in the federation's
// Collective memory; this test (namespace M, routing between them) still
// reaches both. After the heal, Fork{mark_contested} keeps both on both
// nodes, contested, each with its source.
BOOST_AUTO_TEST_CASE(contradictory_beliefs_are_kept_contested_on_every_node,
                     *boost::unit_test::precondition(netns_supported{})) {
  netns_routed net;
  BOOST_REQUIRE_MESSAGE(net.ok(), "cannot set up the namespaces");
  cluster c;
  auto n1 = c.start_at("n1", net.host_a(), {}, net.in_a());
  auto n2 = c.start_at("n2", net.host_b(), {c.address(n1)}, net.in_b());
  auto lead = c.instance(n1, "lead", "main");
  auto ana = c.instance(n2, "ana", "main");
  auto& sys = c.sys;
  federation::federation_config cfg;
  cfg.name = "Sky";
  cfg.initial_members = {"lead", "ana"};
  auto state = federation::federation_state::create(cfg, 1);
  BOOST_REQUIRE(state);
  auto fed = state->id();
  BOOST_REQUIRE(fed_call(sys, lead, fed, cmd::create{*state}));
  BOOST_REQUIRE(until([&] {
    return fed_call(sys, ana, fed, cmd::join{}).has_value();
  }));
  auto claim = [&](const actors::instance_actor& inst, const std::string& o) {
    engram_record e;
    e.type = memory_type::semantic;
    e.scope = memory_scope::collective(fed, {"x"});
    e.body = belief{"sky", "color", o};
    e.confidence = 0.8;
    return call<engram_id>(sys, inst, 10s, actors::learn_atom::value, e, true)
        .has_value();
  };
  auto beliefs = [&](const actors::instance_actor& inst) {
    auto views = call<std::vector<memory_view>>(
        sys, inst, 5s, actors::query_atom::value, fed, query_filter{});
    return views ? *views : std::vector<memory_view>{};
  };
  // Both nodes hold the federation before the cut.
  BOOST_REQUIRE(claim(lead, "unknown"));
  BOOST_REQUIRE(until([&] {
    return beliefs(ana).size() == 1;
  }));
  BOOST_REQUIRE(net.forward(false));
  // Let both sides notice the cut (heartbeats) before they write.
  std::this_thread::sleep_for(1500ms);
  BOOST_REQUIRE(claim(lead, "blue"));
  BOOST_REQUIRE(claim(ana, "green"));
  BOOST_REQUIRE(net.forward(true));
  auto both_contested = [&](const actors::instance_actor& inst) {
    auto views = beliefs(inst);
    std::set<std::string> sources, objects;
    for (auto& v : views)
      if (v.contested) {
        sources.insert(v.value.origin.origin_agent);
        objects.insert(std::get<belief>(v.value.body).object);
      }
    return views.size() == 2 && sources == std::set<std::string>{"ana", "lead"}
           && objects == std::set<std::string>{"blue", "green"};
  };
  BOOST_CHECK(until(
      [&] {
        return both_contested(lead) && both_contested(ana);
      },
      30s));
}

BOOST_AUTO_TEST_SUITE_END()
