// Each Raft feature over an in-process group with in-order delivery.

#include <boost/test/unit_test.hpp>

#include "cluster.hpp"

using namespace engram::consensus;
using engram::consensus::test::cluster;

namespace {

size_t count_to(cluster& c, node_id to, msg_type t) {
  size_t n = 0;
  for (auto& m : c.in_flight())
    if (m.to == to && m.type == t)
      ++n;
  return n;
}

std::string last_applied(cluster& c, node_id id) {
  auto& a = c.at(id).applied;
  return a.empty() ? std::string{} : a.rbegin()->second;
}

} // namespace

BOOST_AUTO_TEST_SUITE(raft_features)

BOOST_AUTO_TEST_CASE(a_leader_is_elected_and_every_member_applies_its_log) {
  cluster c{3};
  BOOST_TEST(c.elect(1) == 1u);
  BOOST_TEST(c.at(1).node->machine().term() == 2u);
  BOOST_TEST((c.at(1).node->propose("a=1") == step_error::none));
  BOOST_TEST((c.at(1).node->propose("b=2") == step_error::none));
  c.stabilize();
  for (auto id : c.ids()) {
    BOOST_TEST(c.at(id).applied.size() == 2u);
    BOOST_TEST(last_applied(c, id) == "b=2");
  }
}

BOOST_AUTO_TEST_CASE(followers_forward_proposals_to_the_leader) {
  cluster c{3};
  c.elect(1);
  BOOST_TEST((c.at(3).node->propose("x=1") == step_error::none));
  c.stabilize();
  BOOST_TEST(last_applied(c, 1) == "x=1");
  cluster d{3, 0, [](config& cfg) {
              cfg.disable_forwarding = true;
            }};
  d.elect(1);
  BOOST_TEST((d.at(3).node->propose("x=1") == step_error::proposal_dropped));
}

BOOST_AUTO_TEST_CASE(
    pre_vote_keeps_a_rejoining_member_from_deposing_the_leader) {
  for (bool pre_vote : {true, false}) {
    cluster c{3, 0, [pre_vote](config& cfg) {
                cfg.pre_vote = pre_vote;
                cfg.check_quorum = false;
              }};
    c.elect(1);
    auto term = c.at(1).node->machine().term();
    c.isolate(3);
    c.tick(3, 100);
    c.stabilize();
    c.heal();
    // Time passes for everyone.
    for (int i = 0; i < 30; ++i) {
      for (auto id : c.ids())
        c.tick(id);
      c.stabilize();
    }
    if (pre_vote) {
      BOOST_TEST(c.at(3).node->machine().term() == term);
      BOOST_TEST(c.leader() == 1u);
      BOOST_TEST(c.at(1).node->machine().term() == term);
    } else {
      // Without pre-vote the isolated member's term ran ahead and its
      // return forces an election.
      BOOST_TEST(c.at(1).node->machine().term() > term);
    }
  }
}

BOOST_AUTO_TEST_CASE(check_quorum_steps_down_a_leader_that_lost_its_quorum) {
  cluster c{3};
  c.elect(1);
  c.isolate(1);
  for (int i = 0; i < 25; ++i) {
    c.tick(1);
    c.stabilize();
  }
  BOOST_TEST((c.at(1).node->machine().state() == role::follower));
  // The majority side elects a new leader.
  for (int i = 0; i < 40 && c.leader() != 2 && c.leader() != 3; ++i) {
    c.tick(2);
    c.tick(3);
    c.stabilize();
  }
  BOOST_TEST((c.leader() == 2u || c.leader() == 3u));
}

BOOST_AUTO_TEST_CASE(
    check_quorum_lets_members_ignore_votes_while_a_leader_is_heard) {
  cluster c{3, 0, [](config& cfg) {
              cfg.pre_vote = false;
            }};
  c.elect(1);
  auto term = c.at(1).node->machine().term();
  // Node 3 campaigns; 2 heard its leader recently and ignores the vote.
  c.at(3).node->campaign();
  c.stabilize();
  BOOST_TEST(c.leader() == 1u);
  BOOST_TEST(c.at(2).node->machine().term() == term);
}

BOOST_AUTO_TEST_CASE(appends_in_flight_are_bounded_and_batched_when_paused) {
  cluster c{3, 0, [](config& cfg) {
              cfg.max_inflight = 2;
            }};
  c.elect(1);
  c.in_flight().clear();
  for (int i = 0; i < 10; ++i)
    BOOST_TEST(
        (c.at(1).node->propose("k=" + std::to_string(i)) == step_error::none));
  c.process(1);
  // Two appends in flight to each follower, the rest waits.
  BOOST_TEST(count_to(c, 2, msg_type::append) == 2u);
  BOOST_TEST(count_to(c, 3, msg_type::append) == 2u);
  c.stabilize();
  BOOST_TEST(c.at(3).applied.size() == 10u);
  // The entries waiting were sent in fewer messages than entries.
  BOOST_TEST(c.at(2).node->machine().log().last_index()
             == c.at(1).node->machine().log().last_index());
}

BOOST_AUTO_TEST_CASE(a_follower_behind_the_compacted_log_gets_a_snapshot) {
  cluster c{3};
  c.elect(1);
  c.crash(3);
  for (int i = 0; i < 20; ++i)
    c.at(1).node->propose("k" + std::to_string(i) + "=" + std::to_string(i));
  c.stabilize();
  c.compact(1);
  c.compact(2);
  BOOST_TEST(c.at(1).disk.first_index() > 10u);
  c.restart(3);
  // The leader probes 3, finds its log compacted away, sends the snapshot.
  for (int i = 0; i < 5; ++i) {
    c.tick(1);
    c.stabilize();
  }
  BOOST_TEST(c.at(3).disk.current_snapshot().meta.index > 10u);
  BOOST_TEST(test::state_of(c.at(3)) == test::state_of(c.at(1)));
  c.at(1).node->propose("after=1");
  c.stabilize();
  BOOST_TEST(last_applied(c, 3) == "after=1");
}

BOOST_AUTO_TEST_CASE(joint_consensus_replaces_several_voters_at_once) {
  cluster c{3};
  c.elect(1);
  c.at(1).node->propose("before=1");
  c.stabilize();
  c.add_empty(4);
  c.add_empty(5);
  conf_change cc;
  cc.changes = {{change_type::add_voter, 4},
                {change_type::add_voter, 5},
                {change_type::remove_node, 3}};
  BOOST_TEST((c.at(1).node->propose_conf_change(cc) == step_error::none));
  for (int i = 0; i < 10; ++i) {
    c.tick(1);
    c.stabilize();
  }
  auto& cs = c.at(1).conf;
  BOOST_TEST(cs.voters_outgoing.empty()); // left the joint state by itself
  BOOST_TEST((cs.voters == std::vector<node_id>{1, 2, 4, 5}));
  BOOST_TEST((c.at(4).conf.voters == std::vector<node_id>{1, 2, 4, 5}));
  BOOST_TEST(last_applied(c, 5) == "before=1");
  // The new configuration commits without the removed member.
  c.crash(3);
  c.at(1).node->propose("after=1");
  c.stabilize();
  BOOST_TEST(last_applied(c, 4) == "after=1");
}

BOOST_AUTO_TEST_CASE(an_explicit_joint_state_waits_for_the_leave_change) {
  cluster c{3};
  c.elect(1);
  c.add_empty(4);
  conf_change cc;
  cc.mode = transition::joint_explicit;
  cc.changes = {{change_type::add_voter, 4}};
  c.at(1).node->propose_conf_change(cc);
  for (int i = 0; i < 5; ++i) {
    c.tick(1);
    c.stabilize();
  }
  BOOST_TEST(!c.at(1).conf.voters_outgoing.empty());
  // Another change while joint is refused (turned into a no-op).
  conf_change more;
  more.changes = {{change_type::remove_node, 2}};
  c.at(1).node->propose_conf_change(more);
  c.stabilize();
  BOOST_TEST(!c.at(1).conf.voters_outgoing.empty());
  BOOST_TEST(c.at(1).conf.voters.size() == 4u);
  c.at(1).node->propose_conf_change(conf_change{});
  c.stabilize();
  BOOST_TEST(c.at(1).conf.voters_outgoing.empty());
  BOOST_TEST(c.at(1).conf.voters.size() == 4u);
}

BOOST_AUTO_TEST_CASE(learners_receive_the_log_but_never_vote_or_campaign) {
  cluster c{3, 1};
  c.elect(1);
  c.at(1).node->propose("a=1");
  c.stabilize();
  BOOST_TEST(last_applied(c, 4) == "a=1");
  // A learner never campaigns.
  c.in_flight().clear();
  c.tick(4, 200);
  BOOST_TEST(c.in_flight().empty());
  // Its acknowledgement does not commit: with both other voters cut off the
  // leader commits nothing.
  c.isolate(2);
  c.isolate(3);
  auto committed = c.at(1).node->machine().log().committed;
  c.at(1).node->propose("b=2");
  c.stabilize();
  BOOST_TEST(c.at(1).node->machine().log().committed == committed);
  BOOST_TEST(c.at(4).node->machine().log().last_index()
             == c.at(1).node->machine().log().last_index());
  // Promoted, it counts.
  c.heal();
  conf_change cc;
  cc.changes = {{change_type::add_voter, 4}};
  c.at(1).node->propose_conf_change(cc);
  c.stabilize();
  BOOST_TEST((c.at(1).conf.voters == std::vector<node_id>{1, 2, 3, 4}));
}

BOOST_AUTO_TEST_CASE(leadership_is_transferred_after_the_target_catches_up) {
  cluster c{3};
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 5; ++i)
    c.at(1).node->propose("k=" + std::to_string(i));
  c.stabilize();
  c.heal();
  c.at(1).node->transfer_leader(3);
  // Proposals are refused while the transfer runs.
  BOOST_TEST(
      (c.at(1).node->propose("during=1") == step_error::proposal_dropped));
  c.stabilize();
  BOOST_TEST(c.leader() == 3u);
  BOOST_TEST((c.at(1).node->machine().state() == role::follower));
  c.at(3).node->propose("new=1");
  c.stabilize();
  BOOST_TEST(last_applied(c, 1) == "new=1");
}

BOOST_AUTO_TEST_CASE(read_index_confirms_leadership_before_answering) {
  cluster c{3};
  c.elect(1);
  c.at(1).node->propose("a=1");
  c.stabilize();
  auto commit = c.at(1).node->machine().log().committed;
  // From a follower: forwarded, confirmed by a heartbeat round.
  BOOST_TEST((c.at(2).node->read_index("r1") == step_error::none));
  c.stabilize();
  BOOST_REQUIRE(c.at(2).reads.size() == 1u);
  BOOST_TEST(c.at(2).reads[0].request == "r1");
  BOOST_TEST(c.at(2).reads[0].index == commit);
  // A leader cut off from its quorum cannot confirm: no answer.
  c.isolate(1);
  BOOST_TEST((c.at(1).node->read_index("r2") == step_error::none));
  c.stabilize();
  BOOST_TEST(c.at(1).reads.empty());
}

BOOST_AUTO_TEST_CASE(
    a_new_leader_answers_reads_only_after_committing_in_its_term) {
  cluster c{3};
  c.elect(1);
  c.at(1).node->propose("a=1");
  c.stabilize();
  // Elect 2 but hold back its messages: its no-op is not committed yet.
  c.at(2).node->campaign();
  c.process_all();
  for (int i = 0; i < 6 && c.leader() != 2; ++i) {
    auto batch = std::move(c.in_flight());
    c.in_flight().clear();
    for (auto& m : batch)
      if (m.type != msg_type::append && m.type != msg_type::append_response)
        c.deliver(m);
      else
        c.in_flight().push_back(m);
  }
  if (c.leader() == 2) {
    c.at(2).node->read_index("r");
    c.process(2);
    BOOST_TEST(c.at(2).reads.empty());
    c.stabilize();
    BOOST_REQUIRE(c.at(2).reads.size() == 1u);
    BOOST_TEST(c.at(2).reads[0].index
               == c.at(2).node->machine().log().committed);
  }
}

BOOST_AUTO_TEST_CASE(
    lease_reads_answer_without_a_round_trip_while_the_lease_runs) {
  cluster c{3, 0, [](config& cfg) {
              cfg.reads = read_mode::lease;
            }};
  // Started members ignore campaigns for an election timeout (they may have
  // been in a leader's lease before they stopped).
  c.at(1).node->campaign();
  c.stabilize();
  BOOST_TEST(c.leader() == 0u);
  for (auto id : c.ids())
    c.tick(id, 10);
  c.stabilize();
  BOOST_TEST(c.elect(1) == 1u);
  // A heartbeat round answered by a quorum starts the lease.
  c.tick(1);
  c.stabilize();
  c.at(1).node->read_index("r1");
  c.process(1);
  BOOST_TEST(c.at(1).reads.size() == 1u);
  BOOST_TEST(c.in_flight().empty());
  // Cut off, the leader's lease runs out: reads wait for a quorum instead.
  c.isolate(1);
  c.tick(1, 9);
  c.in_flight().clear();
  c.at(1).node->read_index("r2");
  c.process(1);
  BOOST_TEST(c.at(1).reads.size() == 1u);
  BOOST_TEST(!c.in_flight().empty()); // a heartbeat round asks the quorum
  c.heal();
  c.stabilize();
  BOOST_TEST(c.at(1).reads.size() == 2u);
  // While leadership is handed over there are no lease reads.
  c.at(1).node->transfer_leader(2);
  c.process(1);
  c.at(1).node->read_index("r3");
  c.process(1);
  BOOST_TEST(c.at(1).reads.size() == 2u);
}

BOOST_AUTO_TEST_CASE(uncommitted_bytes_are_bounded) {
  cluster c{3, 0, [](config& cfg) {
              cfg.max_uncommitted_bytes = 64;
            }};
  c.elect(1);
  c.isolate(1);
  std::string value(30, 'v');
  BOOST_TEST((c.at(1).node->propose(value) == step_error::none));
  BOOST_TEST((c.at(1).node->propose(value) == step_error::none));
  BOOST_TEST((c.at(1).node->propose(value) == step_error::proposal_dropped));
  c.heal();
  c.stabilize();
  c.tick(1);
  c.stabilize();
  BOOST_TEST((c.at(1).node->propose(value) == step_error::none));
}

BOOST_AUTO_TEST_CASE(a_restart_keeps_the_term_and_the_vote) {
  cluster c{3};
  c.elect(1);
  auto term = c.at(2).node->machine().term();
  auto vote = c.at(2).node->machine().vote();
  BOOST_TEST(vote == 1u);
  c.crash(2);
  c.restart(2);
  BOOST_TEST(c.at(2).node->machine().term() == term);
  BOOST_TEST(c.at(2).node->machine().vote() == vote);
  // It does not vote for another candidate in the same term.
  message m;
  m.type = msg_type::vote;
  m.from = 3;
  m.to = 2;
  m.term = term;
  m.index = 100;
  m.log_term = term;
  c.in_flight().clear();
  c.at(2).node->step(m);
  c.process(2);
  BOOST_REQUIRE(c.in_flight().size() == 1u);
  BOOST_TEST(c.in_flight()[0].reject);
}

BOOST_AUTO_TEST_CASE(
    malformed_and_local_messages_from_the_network_are_refused) {
  cluster c{3};
  c.elect(1);
  auto& n = *c.at(2).node;
  auto before = n.get_status();
  auto refused = [&](message m) {
    return n.step(std::move(m)) == step_error::invalid_message;
  };
  message m;
  m.from = 1;
  m.to = 2;
  m.term = before.hard.term;
  for (auto t : {msg_type::hup, msg_type::beat, msg_type::check_quorum,
                 msg_type::unreachable, msg_type::snapshot_status}) {
    m.type = t;
    BOOST_TEST(refused(m));
  }
  m.type = msg_type::append;
  m.from = 2; // from itself
  BOOST_TEST(refused(m));
  m.from = 0;
  BOOST_TEST(refused(m));
  m.from = 1;
  m.to = 3; // not for this member
  BOOST_TEST(refused(m));
  m.to = 2;
  m.index = before.last_index;
  m.log_term = before.hard.term;
  m.entries.resize(2);
  m.entries[0].index = before.last_index + 1;
  m.entries[0].term = before.hard.term;
  m.entries[1].index = before.last_index + 5; // a gap
  m.entries[1].term = before.hard.term;
  BOOST_TEST(refused(m));
  m.entries[1].index = before.last_index + 2;
  m.entries[1].term = before.hard.term + 7; // beyond the leader's term
  BOOST_TEST(refused(m));
  m.entries.clear();
  m.term = 0; // an append without a term
  BOOST_TEST(refused(m));
  m.type = msg_type::install_snapshot;
  m.term = before.hard.term;
  BOOST_TEST(refused(m)); // no snapshot
  m.type = msg_type::read_index;
  m.term = 0;
  BOOST_TEST(refused(m)); // no request
  auto after = n.get_status();
  BOOST_TEST((after.hard == before.hard));
  BOOST_TEST(after.last_index == before.last_index);
  // A heartbeat claiming a commit beyond the log is clamped.
  message hb;
  hb.type = msg_type::heartbeat;
  hb.from = 1;
  hb.to = 2;
  hb.term = before.hard.term;
  hb.commit = 1000;
  BOOST_TEST((n.step(hb) == step_error::none));
  BOOST_TEST(n.machine().log().committed <= n.machine().log().last_index());
}

BOOST_AUTO_TEST_CASE(a_removed_leader_hands_over_and_the_rest_carry_on) {
  cluster c{3};
  c.elect(1);
  conf_change cc;
  cc.changes = {{change_type::remove_node, 1}};
  c.at(1).node->propose_conf_change(cc);
  c.stabilize();
  // Removed, it refuses proposals and hands leadership to a voter within an
  // election timeout (the first timeout-now may arrive before the voter
  // applied the change; it is sent again).
  BOOST_TEST((c.at(1).node->propose("late=1") == step_error::proposal_dropped));
  // It learns the new term from the answers to its next heartbeats.
  for (int i = 0; i < 40 && c.at(1).node->machine().state() == role::leader;
       ++i) {
    c.tick(1);
    c.stabilize();
  }
  BOOST_TEST((c.at(1).node->machine().state() == role::follower));
  auto lead = c.leader();
  BOOST_TEST((lead == 2u || lead == 3u));
  c.at(lead).node->propose("z=1");
  c.stabilize();
  BOOST_TEST(last_applied(c, 2) == "z=1");
  BOOST_TEST(last_applied(c, 3) == "z=1");
}

BOOST_AUTO_TEST_SUITE_END()
