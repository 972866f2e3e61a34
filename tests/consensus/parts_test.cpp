// The parts of the Raft machine on their own: quorums, flow control,
// membership changes, storage, the log, the change codec.

#include <boost/test/unit_test.hpp>

#include "consensus/conf_changer.hpp"
#include "consensus/linearizability.hpp"
#include "consensus/quorum.hpp"
#include "consensus/raft_log.hpp"

using namespace engram::consensus;

namespace {

std::function<std::optional<index_t>(node_id)>
acked(std::map<node_id, index_t> m) {
  return [m](node_id id) -> std::optional<index_t> {
    auto i = m.find(id);
    if (i == m.end())
      return std::nullopt;
    return i->second;
  };
}

std::vector<entry> ents(std::initializer_list<std::pair<index_t, term_t>> l) {
  std::vector<entry> out;
  for (auto [i, t] : l) {
    entry e;
    e.index = i;
    e.term = t;
    e.data = "e" + std::to_string(i);
    out.push_back(e);
  }
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(consensus_parts)

BOOST_AUTO_TEST_CASE(a_majority_commits_the_index_most_voters_hold) {
  BOOST_TEST(committed_index({1, 2, 3}, acked({{1, 5}, {2, 3}, {3, 1}})) == 3u);
  BOOST_TEST(committed_index({1, 2, 3}, acked({{1, 5}})) == 0u);
  BOOST_TEST(
      committed_index({1, 2, 3, 4}, acked({{1, 9}, {2, 8}, {3, 2}, {4, 1}}))
      == 2u);
  BOOST_TEST(committed_index({1}, acked({{1, 7}})) == 7u);
}

BOOST_AUTO_TEST_CASE(a_joint_configuration_needs_both_majorities) {
  joint_config j{{1, 2, 3}, {3, 4, 5}};
  // Incoming holds 5 on a majority, outgoing only 1.
  BOOST_TEST(j.committed(acked({{1, 5}, {2, 5}, {3, 1}, {4, 1}, {5, 0}}))
             == 1u);
  BOOST_TEST(j.committed(acked({{1, 5}, {2, 5}, {3, 4}, {4, 4}, {5, 0}}))
             == 4u);
  auto votes = [](std::map<node_id, bool> v) {
    return [v](node_id id) -> std::optional<bool> {
      auto i = v.find(id);
      if (i == v.end())
        return std::nullopt;
      return i->second;
    };
  };
  BOOST_TEST((j.count(votes({{1, true}, {2, true}})) == vote_result::pending));
  BOOST_TEST((j.count(votes({{1, true}, {2, true}, {4, true}, {5, true}}))
              == vote_result::won));
  BOOST_TEST((j.count(votes({{4, false}, {5, false}})) == vote_result::lost));
  BOOST_TEST((count_votes({}, votes({})) == vote_result::won));
}

BOOST_AUTO_TEST_CASE(the_in_flight_window_is_bounded_and_freed_in_order) {
  inflights w{3};
  w.add(10);
  w.add(20);
  w.add(30);
  BOOST_TEST(w.full());
  w.free_le(15);
  BOOST_TEST(w.count() == 2u);
  BOOST_TEST(!w.full());
  w.add(40);
  w.free_le(100);
  BOOST_TEST(w.count() == 0u);
  for (index_t i = 1; i < 1000; ++i) {
    w.add(i);
    w.free_le(i);
  }
  BOOST_TEST(w.count() == 0u);
}

BOOST_AUTO_TEST_CASE(progress_ignores_stale_rejections) {
  progress p;
  p.match = 5;
  p.next = 6;
  p.become_replicate();
  p.optimistic_update(9);
  BOOST_TEST(!p.maybe_decrease_to(4, 4)); // below match: stale
  BOOST_TEST(p.maybe_decrease_to(8, 6));
  BOOST_TEST(p.next == 6u);
  p.become_probe();
  p.match = 2;
  p.next = 6;
  BOOST_TEST(!p.maybe_decrease_to(9, 3)); // not the probe just sent
  BOOST_TEST(p.maybe_decrease_to(5, 3));
  BOOST_TEST(p.next == 4u);
  BOOST_TEST(p.maybe_update(7));
  BOOST_TEST(p.next == 8u);
}

BOOST_AUTO_TEST_CASE(membership_changes_keep_their_invariants) {
  progress_tracker t;
  t.members
      = conf_changer::restore(conf_state{{1, 2, 3}, {}, {}, {}, false}, 10, 256)
            .members;
  t.config.voters.incoming = {1, 2, 3};
  conf_changer c{t, 10};
  changed_membership out;
  std::string error;
  // Two voters at once needs joint consensus.
  BOOST_TEST(!c.simple(
      {{change_type::add_voter, 4}, {change_type::add_voter, 5}}, out, error));
  BOOST_TEST(error.find("joint") != std::string::npos);
  BOOST_TEST(c.simple({{change_type::add_learner, 4}}, out, error));
  BOOST_TEST(out.config.learners.count(4) == 1u);
  BOOST_TEST(!c.simple({{change_type::remove_node, 1},
                        {change_type::remove_node, 2},
                        {change_type::remove_node, 3}},
                       out, error));
  BOOST_TEST(!c.leave_joint(out, error));
  // Enter joint: replace 3 by 4 and demote 2 to learner.
  BOOST_TEST(c.enter_joint(true,
                           {{change_type::remove_node, 3},
                            {change_type::add_voter, 4},
                            {change_type::add_learner, 2}},
                           out, error));
  BOOST_TEST(out.config.voters.joint());
  BOOST_TEST(out.config.learners_next.count(2) == 1u);
  BOOST_TEST(out.members.count(3) == 1u); // still an outgoing voter
  t.config = out.config;
  t.members = out.members;
  conf_changer c2{t, 10};
  BOOST_TEST(!c2.simple({{change_type::add_voter, 5}}, out, error));
  BOOST_TEST(c2.leave_joint(out, error));
  BOOST_TEST(!out.config.voters.joint());
  BOOST_TEST(out.members.count(3) == 0u);
  BOOST_TEST(out.config.learners.count(2) == 1u);
  BOOST_TEST(out.members.at(2).learner);
  BOOST_TEST((out.config.voters.incoming == majority_config{1, 4}));
}

BOOST_AUTO_TEST_CASE(memory_storage_appends_truncates_and_compacts) {
  memory_storage s;
  BOOST_TEST(s.append(ents({{1, 1}, {2, 1}, {3, 2}})));
  BOOST_TEST(s.last_index() == 3u);
  // Overwrite a conflicting suffix.
  BOOST_TEST(s.append(ents({{3, 3}, {4, 3}})));
  term_t t = 0;
  BOOST_TEST((s.term(3, t) == storage_error::none));
  BOOST_TEST(t == 3u);
  // A gap is refused.
  BOOST_TEST(!s.append(ents({{7, 3}})));
  BOOST_TEST((s.create_snapshot(2, conf_state{{1}, {}, {}, {}, false}, "x")
              == storage_error::none));
  BOOST_TEST((s.compact(2) == storage_error::none));
  BOOST_TEST(s.first_index() == 3u);
  std::vector<entry> out;
  BOOST_TEST((s.entries(2, 5, no_limit, out) == storage_error::compacted));
  BOOST_TEST((s.entries(3, 5, no_limit, out) == storage_error::none));
  BOOST_TEST(out.size() == 2u);
  BOOST_TEST((s.entries(3, 5, 0, out) == storage_error::none));
  BOOST_TEST(out.size() == 1u); // at least one entry whatever the limit
  s.truncate_after(3);
  BOOST_TEST(s.last_index() == 3u);
}

BOOST_AUTO_TEST_CASE(the_log_appends_what_matches_and_finds_conflicts) {
  memory_storage s;
  BOOST_TEST(s.append(ents({{1, 1}, {2, 2}, {3, 2}, {4, 3}})));
  raft_log log{s, no_limit};
  bool refused = false;
  // A leader's append after (4, 3).
  auto last = log.maybe_append(4, 3, 4, ents({{5, 3}, {6, 3}}), refused);
  BOOST_TEST(last.has_value());
  BOOST_TEST(*last == 6u);
  BOOST_TEST(log.committed == 4u);
  // Mismatch: (5, 4) is not held.
  BOOST_TEST(!log.maybe_append(5, 4, 6, {}, refused).has_value());
  // A conflicting suffix from a newer leader replaces 5..6.
  last = log.maybe_append(4, 3, 5, ents({{5, 4}}), refused);
  BOOST_TEST(*last == 5u);
  BOOST_TEST(log.last_index() == 5u);
  BOOST_TEST(log.term_or_zero(5) == 4u);
  // Overwriting a committed entry is refused, not applied.
  BOOST_TEST(!log.maybe_append(2, 2, 5, ents({{3, 9}}), refused).has_value());
  BOOST_TEST(refused);
  BOOST_TEST(log.term_or_zero(3) == 2u);
  // The hint skips whole terms.
  BOOST_TEST(log.find_conflict_by_term(5, 2) == 3u);
  BOOST_TEST(log.find_conflict_by_term(5, 1) == 1u);
  BOOST_TEST(log.find_conflict_by_term(5, 0) == 0u);
  BOOST_TEST(log.up_to_date(5, 4));
  BOOST_TEST(!log.up_to_date(9, 3));
  auto committed = log.next_committed();
  BOOST_TEST(committed.size() == 5u);
}

BOOST_AUTO_TEST_CASE(membership_changes_round_trip_and_garbage_is_refused) {
  conf_change cc;
  cc.mode = transition::joint_explicit;
  cc.changes
      = {{change_type::add_voter, 7}, {change_type::remove_node, 1ull << 40}};
  auto back = decode_conf_change(encode(cc));
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST((back->mode == transition::joint_explicit));
  BOOST_TEST(back->changes.size() == 2u);
  BOOST_TEST(back->changes[1].node == (1ull << 40));
  BOOST_TEST(decode_conf_change("").value().leaves_joint());
  auto bytes = encode(cc);
  // Every truncation and every single-byte corruption of the header or a
  // type is refused or decodes to a well-formed change.
  for (size_t n = 1; n < bytes.size(); ++n)
    BOOST_TEST(!decode_conf_change(bytes.substr(0, n)).has_value());
  for (size_t at : {0u, 1u, 4u, 13u}) {
    auto bad = bytes;
    bad[at] = static_cast<char>(0x7f);
    BOOST_TEST(!decode_conf_change(bad).has_value());
  }
  std::string zero_node = bytes;
  for (int i = 0; i < 8; ++i)
    zero_node[5 + i] = 0;
  BOOST_TEST(!decode_conf_change(zero_node).has_value());
}

BOOST_AUTO_TEST_CASE(the_checker_tells_linearizable_histories_from_others) {
  using op = register_op;
  auto put = [](std::string v, uint64_t a, std::optional<uint64_t> b) {
    return op{op::put, "x", std::move(v), a, b};
  };
  auto get = [](std::string v, uint64_t a, uint64_t b) {
    return op{op::get, "x", std::move(v), a, b};
  };
  // Sequential, and reads overlapping a write may see either value.
  BOOST_TEST(check_linearizable({put("a", 0, 1), get("a", 2, 3)}).ok);
  BOOST_TEST(
      check_linearizable({put("a", 0, 10), get("", 1, 2), get("a", 3, 4)}).ok);
  // A value never written.
  BOOST_TEST(!check_linearizable({put("a", 0, 1), get("b", 2, 3)}).ok);
  // Nothing read after the write returned.
  BOOST_TEST(!check_linearizable({put("a", 0, 1), get("", 2, 3)}).ok);
  // A stale read after a later write returned.
  BOOST_TEST(
      !check_linearizable({put("a", 0, 1), put("b", 2, 3), get("a", 4, 5)}).ok);
  // Reads that go back in time: a then "" while the write overlaps both.
  BOOST_TEST(
      !check_linearizable({put("a", 0, 10), get("a", 1, 2), get("", 3, 4)}).ok);
  // A write whose client never heard back may or may not have happened,
  // but not both.
  BOOST_TEST(
      check_linearizable({put("a", 0, std::nullopt), get("a", 5, 6)}).ok);
  BOOST_TEST(check_linearizable({put("a", 0, std::nullopt), get("", 5, 6)}).ok);
  BOOST_TEST(!check_linearizable(
                  {put("a", 0, std::nullopt), get("a", 5, 6), get("", 7, 8)})
                  .ok);
  // Keys are independent; the failing one is named.
  auto r = check_linearizable({put("a", 0, 1), op{op::get, "y", "", 2, 3},
                               op{op::put, "y", "b", 4, 5},
                               op{op::get, "y", "c", 6, 7}});
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.key == "y");
  // Many concurrent writers stay tractable.
  std::vector<op> many;
  for (uint64_t i = 0; i < 60; ++i)
    many.push_back(put("v" + std::to_string(i), i, 100 + i));
  many.push_back(get("v59", 200, 201));
  auto big = check_linearizable(many);
  BOOST_TEST(big.ok);
  BOOST_TEST(!big.gave_up);
}

BOOST_AUTO_TEST_SUITE_END()
