// The sync flow under CAF's test coordinator: deterministic, simulated time,
// links that lose, duplicate and reorder frames with fixed seeds.

#include "messages/codec.hpp"

#include <set>

#include "sim.hpp"
#include "test_util.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

std::string joined(const std::vector<std::string>& xs) {
  std::string out;
  for (auto& x : xs)
    out += (out.empty() ? "" : " ") + x;
  return out;
}

// "k=v,..." of the facts visible to an instance, sorted.
std::string facts(const std::vector<memory_view>& views) {
  std::vector<std::string> out;
  for (auto& v : views)
    if (auto f = std::get_if<fact>(&v.value.body))
      out.push_back(f->key + "=" + f->value);
  std::sort(out.begin(), out.end());
  return joined(out);
}

const actors::session_stats& session_of(const actors::node_status& st,
                                        const std::string& peer) {
  for (auto& s : st.session_details)
    if (s.peer_node == peer)
      return s;
  BOOST_FAIL("no session with " + peer);
  return st.session_details.front();
}

} // namespace

BOOST_AUTO_TEST_SUITE(sync_flow)

BOOST_FIXTURE_TEST_CASE(the_sync_flow_message_by_message, sim_fixture) {
  auto& a = start("A");
  auto& b = start("B");
  auto ia = instance(a, "planner", "a1");
  auto ib = instance(b, "planner", "b1");
  // The nodes ping each other (measuring each other's clock) and tell
  // each other which agents they host (the directory); then per agent the
  // handshake and a first anti-entropy round: equal (empty) digests, so the
  // response is empty.
  auto log = link(a, b);
  BOOST_CHECK_EQUAL(
      joined(log->types_from("A")),
      "PING DIRECTORY HELLO PONG HELLO_ACK SYNC_REQUEST SYNC_RESPONSE");
  BOOST_CHECK_EQUAL(
      joined(log->types_from("B")),
      "PING DIRECTORY HELLO PONG HELLO_ACK SYNC_REQUEST SYNC_RESPONSE");
  // A change is pushed (debounced) and acknowledged once merged.
  log->entries.clear();
  ok(learn(ia, fact_of("plan", "ship friday")));
  advance(20ms);
  BOOST_CHECK_EQUAL(joined(log->types_from("A")), "SYNC_RESPONSE");
  BOOST_CHECK_EQUAL(joined(log->types_from("B")), "SYNC_ACK");
  BOOST_CHECK_EQUAL(facts(query(ib)), "plan=ship friday");
  // An explicit sync: B asks for what it misses (its context), A answers
  // with the deltas and its clock, B acknowledges; nothing to send back.
  log->entries.clear();
  auto res = ok(ask<actors::sync_result>(ib, actors::sync_atom::value,
                                         actors::sync_config{}));
  BOOST_CHECK_EQUAL(joined(log->types_from("B")), "SYNC_REQUEST SYNC_ACK");
  BOOST_CHECK_EQUAL(joined(log->types_from("A")), "SYNC_RESPONSE");
  BOOST_CHECK(res.clean());
  BOOST_CHECK_EQUAL(res.peers, 1u);
  // Idle anti-entropy: one digest each way, empty responses (and the
  // nodes' periodic clock pings).
  log->entries.clear();
  auto before = session_of(status(a), "B");
  advance(1000ms);
  auto after = session_of(status(a), "B");
  BOOST_CHECK_EQUAL(joined(log->types_from("A")),
                    "PING PONG SYNC_REQUEST SYNC_RESPONSE");
  BOOST_CHECK_EQUAL(joined(log->types_from("B")),
                    "PING PONG SYNC_REQUEST SYNC_RESPONSE");
  BOOST_CHECK_EQUAL(after.idle_rounds, before.idle_rounds + 1);
  auto idle_bytes = (after.bytes_out - before.bytes_out)
                    + (after.bytes_in - before.bytes_in);
  BOOST_TEST_MESSAGE("idle round: " << idle_bytes << " bytes");
  BOOST_CHECK_LT(idle_bytes, 200u);
}

BOOST_FIXTURE_TEST_CASE(concurrent_writes_conflict_and_converge, sim_fixture) {
  auto& a = start("A");
  auto& b = start("B");
  auto ia = instance(a, "planner", "a1");
  auto ib = instance(b, "planner", "b1");
  // Written before the nodes know each other: concurrent versions.
  ok(learn(ia, fact_of("deadline", "friday")));
  wall->advance(1000);
  ok(learn(ib, fact_of("deadline", "monday")));
  auto log = link(a, b);
  advance(100ms);
  // Digests differ: the round pulls both ways, the merges detect the value
  // conflict and settle it by TakeNewest, each on its own: no
  // notification travels (a conflict left open is notified, below).
  auto from_a = joined(log->types_from("A"));
  auto from_b = joined(log->types_from("B"));
  BOOST_CHECK_MESSAGE(from_a.find("CONFLICT_NOTIFICATION") == std::string::npos
                          && from_b.find("CONFLICT_NOTIFICATION")
                                 == std::string::npos,
                      from_a << " / " << from_b);
  BOOST_CHECK_GE(session_of(status(a), "B").merged
                     + session_of(status(b), "A").merged,
                 2u);
  // TakeNewest: both keep the newer write (B's), and agree.
  BOOST_CHECK_EQUAL(facts(query(ia)), "deadline=monday");
  BOOST_CHECK_EQUAL(facts(query(ib)), "deadline=monday");
}

BOOST_FIXTURE_TEST_CASE(belief_conflicts_are_kept_contested, sim_fixture) {
  auto& a = start("A");
  auto& b = start("B");
  auto ia = instance(a, "planner", "a1");
  auto ib = instance(b, "planner", "b1");
  auto sky = [](const std::string& color) {
    auto e = make_belief("sky", "color", color, 0.8, memory_scope::agent({}));
    e.type = memory_type::semantic;
    return e;
  };
  // Linked but partitioned: the sessions cannot reach each other.
  auto log = link(a, b);
  log->partitioned = true;
  ok(learn(ia, sky("blue")));
  ok(learn(ib, sky("green")));
  advance(200ms);
  // Healed; the explicit sync finds and resolves the conflict.
  log->partitioned = false;
  log->entries.clear();
  auto res = ok(ask<actors::sync_result>(ia, actors::sync_atom::value,
                                         actors::sync_config{}));
  advance(100ms);
  // A conflict kept open (forked) is notified to the peer.
  auto notified
      = joined(log->types_from("A")) + " " + joined(log->types_from("B"));
  BOOST_CHECK_MESSAGE(
      notified.find("CONFLICT_NOTIFICATION") != std::string::npos, notified);
  // Fork{mark_contested}: both beliefs stay, marked contested, on both.
  query_filter contested;
  contested.contested_only = true;
  BOOST_CHECK_EQUAL(query(ia, contested).size(), 2u);
  BOOST_CHECK_EQUAL(query(ib, contested).size(), 2u);
  BOOST_CHECK(!res.clean());
  BOOST_CHECK_EQUAL(res.conflicts.size(), 1u);
}

BOOST_FIXTURE_TEST_CASE(changes_are_debounced_into_one_batch, sim_fixture) {
  auto& a = start("A");
  auto& b = start("B");
  auto ia = instance(a, "planner", "a1");
  auto ib = instance(b, "planner", "b1");
  auto log = link(a, b);
  log->entries.clear();
  // Ten writes within the push delay travel as one batch.
  for (int i = 0; i < 10; ++i)
    ok(learn(ia, fact_of("k" + std::to_string(i), "v")));
  advance(20ms);
  BOOST_CHECK_EQUAL(joined(log->types_from("A")), "SYNC_RESPONSE");
  BOOST_CHECK_EQUAL(query(ib).size(), 10u);
}

BOOST_FIXTURE_TEST_CASE(a_silent_peer_is_pinged_then_greeted_again,
                        sim_fixture) {
  auto& a = start("A");
  auto& b = start("B");
  instance(a, "planner", "a1");
  instance(b, "planner", "b1");
  auto log = link(a, b);
  BOOST_CHECK(session_of(status(a), "B").established);
  log->partitioned = true;
  advance(61'000ms, 100ms); // past the peer timeout (60 s here)
  BOOST_CHECK(!session_of(status(a), "B").established);
  auto from_a = joined(log->types_from("A"));
  BOOST_CHECK(from_a.find("PING") != std::string::npos);
  log->partitioned = false;
  log->entries.clear();
  advance(2000ms, 50ms);
  BOOST_CHECK(session_of(status(a), "B").established);
  BOOST_CHECK(joined(log->types_from("A")).find("HELLO") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(garbage_frames_are_refused_and_change_nothing,
                        sim_fixture) {
  auto& a = start("A");
  auto& b = start("B");
  auto ia = instance(a, "planner", "a1");
  instance(b, "planner", "b1");
  link(a, b);
  ok(learn(ia, fact_of("kept", "1")));
  advance(20ms);
  // Garbage, a truncated envelope, an envelope of a newer major version.
  auto hello = messages::make_envelope(v1::HELLO, "B", hlc_timestamp{1, 0},
                                       v1::Hello{});
  auto newer = hello;
  newer.set_version(messages::protocol_version + 1);
  auto bytes = messages::serialize(hello);
  for (auto frame :
       {std::string("\xff\xfe garbage"), bytes.substr(0, bytes.size() / 2),
        messages::serialize(newer)})
    caf::anon_send(a.handle(), actors::wire_frame{"B", "planner", frame});
  advance(100ms);
  BOOST_CHECK_EQUAL(facts(query(ia)), "kept=1");
  auto st = status(a);
  BOOST_CHECK_EQUAL(st.respawns, 0u);
  BOOST_CHECK(session_of(st, "B").established);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(swarm_convergence)

// 3 nodes × 10 agents × 2 instances per agent and node: concurrent writes
// to shared keys, then every instance of an agent sees the same memory on
// every node, value conflicts resolved by TakeNewest, belief conflicts
// forked (both kept) as configured.
BOOST_FIXTURE_TEST_CASE(many_agents_and_instances_converge, sim_fixture) {
  std::vector<actors::node*> ns{&start("N1"), &start("N2"), &start("N3")};
  link(*ns[0], *ns[1]);
  link(*ns[1], *ns[2]);
  link(*ns[0], *ns[2]);
  constexpr int agents = 10;
  std::vector<std::vector<actors::instance_actor>> insts(agents);
  for (int g = 0; g < agents; ++g)
    for (size_t n = 0; n < ns.size(); ++n)
      for (int i = 0; i < 2; ++i)
        insts[g].push_back(
            instance(*ns[n], "agent-" + std::to_string(g),
                     "i" + std::to_string(n) + std::to_string(i)));
  advance(100ms);
  std::mt19937_64 rng{42};
  for (int w = 0; w < 300; ++w) {
    auto g = rng() % agents;
    auto& inst = insts[g][rng() % insts[g].size()];
    if (w % 10 == 0) {
      auto e = make_belief("topic" + std::to_string(rng() % 3), "is",
                           "opinion" + std::to_string(w), 0.6,
                           memory_scope::agent({}));
      ok(learn(inst, e));
    } else {
      ok(learn(inst, fact_of("k" + std::to_string(rng() % 8),
                             "v" + std::to_string(w))));
    }
    if (w % 7 == 0)
      advance(std::chrono::milliseconds{rng() % 20});
  }
  advance(3000ms, 50ms);
  for (int g = 0; g < agents; ++g) {
    auto reference = facts(query(insts[g].front()));
    auto views = query(insts[g].front()).size();
    BOOST_CHECK_GT(views, 3u);
    for (auto& inst : insts[g]) {
      BOOST_CHECK_EQUAL(facts(query(inst)), reference);
      BOOST_CHECK_EQUAL(query(inst).size(), views);
    }
    // One value per fact key (TakeNewest) on every instance.
    query_filter semantic;
    std::set<std::string> keys;
    size_t fact_views = 0;
    for (auto& v : query(insts[g].front(), semantic))
      if (auto f = std::get_if<fact>(&v.value.body)) {
        keys.insert(f->key);
        ++fact_views;
      }
    BOOST_CHECK_EQUAL(keys.size(), fact_views);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(lossy_transport)

// Loss up to 66 %, 20 % duplication, 30 % of frames delayed (reordered):
// every acknowledged write reaches the other node, each batch is merged
// exactly once, and the replicas converge.
BOOST_AUTO_TEST_CASE(every_acknowledged_delta_arrives_exactly_once) {
  for (double loss : {0.0, 0.33, 0.5, 0.66}) {
    for (uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
      BOOST_TEST_CONTEXT("loss " << loss << " seed " << seed) {
        sim_fixture sim;
        auto& a = sim.start("A");
        auto& b = sim.start("B");
        auto ia = sim.instance(a, "planner", "a1");
        auto ib = sim.instance(b, "planner", "b1");
        link_params p;
        p.loss = loss;
        p.duplication = 0.2;
        p.delay = 0.3;
        p.seed = seed;
        auto log = sim.link(a, b, p);
        std::mt19937_64 rng{seed};
        std::set<std::string> written;
        for (int i = 0; i < 40; ++i) {
          auto key = "k" + std::to_string(rng() % 25);
          auto value = "v" + std::to_string(i);
          auto& inst = i % 2 == 0 ? ia : ib;
          ok(sim.learn(inst, fact_of(key, value)));
          written.insert(key);
          sim.advance(std::chrono::milliseconds{rng() % 30});
        }
        // Heal: the links stay lossy, retransmission and anti-entropy
        // deliver everything (bounded: 60 simulated seconds).
        std::string fa;
        std::string fb;
        for (int round = 0; round < 60; ++round) {
          sim.advance(1000ms, 50ms);
          fa = facts(sim.query(ia));
          fb = facts(sim.query(ib));
          auto pending = session_of(sim.status(a), "B").outstanding
                         + session_of(sim.status(b), "A").outstanding;
          if (fa == fb && sim.query(ia).size() == written.size()
              && pending == 0)
            break;
        }
        sim.advance(200ms); // frames still delayed on a link arrive
        // A round may have started meanwhile: let it finish (bounded).
        for (int i = 0; i < 200; ++i) {
          if (session_of(sim.status(a), "B").outstanding
                  + session_of(sim.status(b), "A").outstanding
              == 0)
            break;
          sim.advance(50ms);
        }
        BOOST_CHECK_EQUAL(fa, fb);
        BOOST_CHECK_EQUAL(sim.query(ia).size(), written.size());
        if (loss > 0)
          BOOST_CHECK_GT(log->dropped, 0u);
        BOOST_CHECK_GT(log->duplicated, 0u);
        // Exactly once: each side merged one batch per distinct sequence
        // number the other side's frames carried, however many copies
        // arrived.
        for (auto [self_id, peer_id] :
             {std::pair{"A", "B"}, std::pair{"B", "A"}}) {
          auto& me = self_id == std::string{"A"} ? a : b;
          auto stats = session_of(sim.status(me), peer_id);
          std::set<uint64_t> delivered;
          size_t copies = 0;
          for (auto& e : log->entries)
            if (e.from == peer_id && e.type == "SYNC_RESPONSE"
                && e.sequence != 0 && e.delivered) {
              delivered.insert(e.sequence);
              ++copies;
            }
          BOOST_CHECK_EQUAL(stats.merged, delivered.size());
          BOOST_CHECK_EQUAL(stats.outstanding, 0u);
          if (copies > delivered.size())
            BOOST_CHECK_GT(stats.duplicates, 0u);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(backpressure)

namespace {

// Nodes A and B with their sessions tuned, each with an instance of agent
// "planner" (a1 on A, b1 on B); linked by each test.
struct pair_fixture : sim_fixture {
  void start_pair(std::function<void(actors::session_settings&)> tune) {
    a = &start("A", tune);
    b = &start("B", tune);
    ia = instance(*a, "planner", "a1");
    ib = instance(*b, "planner", "b1");
  }

  // Writes facts k<from>..k<from + n - 1> at A.
  void learn_at_a(size_t n, size_t from = 0) {
    for (size_t i = from; i < from + n; ++i)
      ok(learn(ia, fact_of("k" + std::to_string(i), "v")));
  }

  actors::node* a = nullptr;
  actors::node* b = nullptr;
  actors::instance_actor ia;
  actors::instance_actor ib;
};

// The bytes of one copy of facts k0..k<n-1>, encoded as the wire carries
// them.
size_t one_copy_of(size_t n) {
  node local{1};
  for (size_t i = 0; i < n; ++i)
    must(local.mem.put(fact_of("k" + std::to_string(i), "v")));
  return messages::encode_delta(local.mem.full_state()).size();
}

} // namespace

// A peer behind a slow link (150 ms each way) while 3 000 changes are made
// quickly: the sender never has more frames in flight than its window nor
// more versions waiting than its bound (the excess is left to
// anti-entropy, not lost), and the slow peer catches up with everything.
BOOST_FIXTURE_TEST_CASE(a_slow_peer_is_throttled_and_catches_up, pair_fixture) {
  auto tune = [](actors::session_settings& s) {
    s.max_outstanding = 4;
    s.max_pending_versions = 400;
  };
  start_pair(tune);
  link_params p;
  p.latency = 150ms;
  link(*a, *b, p);
  advance(1000ms);
  size_t max_outstanding = 0;
  size_t max_pending = 0;
  for (int i = 0; i < 3000; ++i) {
    ok(learn(ia, fact_of("k" + std::to_string(i), "v")));
    if (i % 10 == 0) {
      auto st = session_of(status(*a), "B");
      max_outstanding = std::max<size_t>(max_outstanding, st.outstanding);
      max_pending = std::max<size_t>(max_pending, st.pending_versions);
      advance(2ms, 1ms);
    }
  }
  BOOST_CHECK_LE(max_outstanding, 4u);
  BOOST_CHECK_LE(max_pending, 400u);
  BOOST_CHECK_GT(max_outstanding, 0u);
  auto overflows = session_of(status(*a), "B").pending_overflows;
  BOOST_TEST_MESSAGE("window peak " << max_outstanding << ", pending peak "
                                    << max_pending << ", overflows "
                                    << overflows);
  BOOST_CHECK_GT(overflows, 0u); // the bound was reached, and held
  size_t seen = 0;
  for (int round = 0; round < 60 && seen < 3000; ++round) {
    advance(1000ms, 50ms);
    seen = query(ib).size();
  }
  BOOST_CHECK_EQUAL(seen, 3000u);
}

// A pull larger than the window streams once: neither the answer to the
// peer's own round nor a periodic round sends again what is on its way.
BOOST_FIXTURE_TEST_CASE(a_large_pull_streams_once, pair_fixture) {
  auto tune = [](actors::session_settings& s) {
    s.max_outstanding = 1;   // one frame in flight: the stream takes seconds
    s.retransmit_after = 5s; // longer than a round trip: no resends
  };
  start_pair(tune);
  constexpr size_t n = 3000;
  learn_at_a(n);
  auto one_copy = one_copy_of(n);
  link_params p;
  p.latency = 200ms; // 3 frames, one at a time: > 1 s, past a round
  link(*a, *b, p);
  size_t seen = 0;
  for (int round = 0; round < 60 && seen < n; ++round) {
    advance(500ms, 50ms);
    seen = query(ib).size();
  }
  BOOST_REQUIRE_EQUAL(seen, n);
  advance(3000ms, 50ms); // and the rounds after it
  auto sent = session_of(status(*a), "B").bytes_out;
  BOOST_TEST_MESSAGE("one copy " << one_copy << " B, sent " << sent << " B");
  BOOST_CHECK_LT(sent, one_copy * 3 / 2);
  BOOST_CHECK_EQUAL(session_of(status(*b), "A").refused, 0u);
}

// An answer leaves out what is already on its way to the peer: B's sync,
// asked while A's changes are in flight over a slow link, does not bring
// them a second time.
BOOST_FIXTURE_TEST_CASE(an_answer_leaves_out_what_is_in_flight, pair_fixture) {
  auto tune = [](actors::session_settings& s) {
    s.retransmit_after = 5s; // longer than a round trip: no resends
  };
  start_pair(tune);
  link_params p;
  p.latency = 300ms;
  link(*a, *b, p);
  advance(2000ms, 50ms); // greeted, first rounds done
  constexpr size_t n = 500;
  learn_at_a(n);
  advance(20ms, 5ms); // pushed, 300 ms away from B
  auto before = session_of(status(*a), "B");
  BOOST_REQUIRE_GT(before.outstanding, 0u);
  auto one_copy = one_copy_of(n);
  auto res = ok(ask<actors::sync_result>(ib, actors::sync_atom::value,
                                         actors::sync_config{}));
  BOOST_CHECK(res.clean());
  advance(1000ms, 50ms);
  BOOST_CHECK_EQUAL(query(ib).size(), n);
  auto answered = session_of(status(*a), "B").bytes_out - before.bytes_out;
  BOOST_TEST_MESSAGE("one copy " << one_copy << " B, sent after the pushes "
                                 << answered << " B");
  BOOST_CHECK_LT(answered, one_copy / 4);
}

// A large delta is read from the replica in pieces as the peer acknowledges
// (the sender holds about two pieces decoded, not the whole delta), and an
// explicit sync ends once all of what it pulled arrived: the answer's last
// frame carries the clock.
BOOST_FIXTURE_TEST_CASE(a_large_delta_is_read_in_pieces, pair_fixture) {
  auto tune = [](actors::session_settings& s) {
    s.max_outstanding = 2;
    s.stream_piece = 200;
    s.anti_entropy_interval = 600s; // only the greeting's round, and sync
    s.on_change = false;            // changes reach B by pulls only
  };
  start_pair(tune);
  constexpr size_t n = 2000;
  learn_at_a(n);
  link_params p;
  p.latency = 20ms;
  link(*a, *b, p);
  size_t max_pending = 0;
  size_t max_unread = 0;
  size_t seen = 0;
  for (int round = 0; round < 2000 && seen < n; ++round) {
    advance(10ms, 10ms);
    auto st = session_of(status(*a), "B");
    max_pending = std::max<size_t>(max_pending, st.pending_versions);
    max_unread = std::max<size_t>(max_unread, st.unread_engrams);
    seen = query(ib).size();
  }
  BOOST_REQUIRE_EQUAL(seen, n);
  BOOST_TEST_MESSAGE("unread peak " << max_unread << ", pending peak "
                                    << max_pending);
  BOOST_CHECK_GE(max_unread, n / 2); // not read whole
  BOOST_CHECK_LE(max_pending, 400u); // two pieces
  BOOST_CHECK_EQUAL(session_of(status(*a), "B").unread_engrams, 0u);
  // More changes at A (not pushed): B's sync pulls all of them before it
  // ends.
  learn_at_a(n, n);
  actors::sync_config cfg;
  cfg.timeout = 60s;
  auto res = ok(ask<actors::sync_result>(ib, actors::sync_atom::value, cfg));
  BOOST_CHECK(res.clean());
  BOOST_CHECK_EQUAL(query(ib).size(), 2 * n);
}

BOOST_AUTO_TEST_SUITE_END()
