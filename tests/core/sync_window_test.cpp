#include "core/query.hpp"
#include "core/sync_window.hpp"

#include <boost/test/unit_test.hpp>

#include "test_util.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(sync_window)

BOOST_AUTO_TEST_CASE(nothing_is_resent_while_acknowledgements_flow) {
  outbox out{100ms};
  outbox::time_point t0{};
  for (int i = 0; i < 10; ++i)
    out.add("f", t0);
  // The peer works through the window, one frame every 50 ms.
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    auto t = t0 + seq * 50ms;
    BOOST_CHECK(out.acknowledge(seq, t));
    BOOST_CHECK(out.due(t).empty());
  }
  // Then it stalls: once a timeout passed without progress, the rest is
  // due.
  auto stalled = t0 + 250ms;
  BOOST_CHECK(out.due(stalled + out.timeout() / 2).empty());
  BOOST_CHECK_EQUAL(out.due(stalled + out.timeout()).size(), 5u);
  // A frame lost while others keep being acknowledged is resent once it
  // is three timeouts overdue.
  outbox busy{100ms};
  auto lost = busy.add("lost", t0);
  for (int i = 1; i <= 6; ++i) {
    auto t = t0 + i * 50ms;
    busy.acknowledge(busy.add("ok", t), t);
    auto due = busy.due(t);
    BOOST_CHECK_EQUAL(due.size(), t >= t0 + 300ms ? 1u : 0u);
  }
  BOOST_CHECK(busy.acknowledge(lost, t0 + 400ms));
}

BOOST_AUTO_TEST_CASE(the_timeout_adapts_to_slow_acknowledgements) {
  outbox out{100ms};
  outbox::time_point t0{};
  BOOST_CHECK(out.timeout() == outbox::duration{100ms});
  // A peer that takes 400 ms to acknowledge (it merges large batches).
  for (int i = 0; i < 8; ++i) {
    auto t = t0 + i * 1s;
    auto seq = out.add("frame", t);
    BOOST_CHECK(out.acknowledge(seq, t + 400ms));
  }
  BOOST_CHECK(out.timeout() >= outbox::duration{400ms});
  // A frame sent now is not resent before that long.
  auto t = t0 + 10s;
  out.add("big", t);
  BOOST_CHECK(out.due(t + 300ms).empty());
  BOOST_CHECK_EQUAL(out.due(t + out.timeout()).size(), 1u);
  // A retransmitted frame gives no sample (Karn): the timeout stays.
  auto before = out.timeout();
  BOOST_CHECK(out.acknowledge(9, t + 5s));
  BOOST_CHECK(out.timeout() == before);
  // Fast acknowledgements bring it back down, never below the minimum.
  for (int i = 0; i < 40; ++i) {
    auto u = t0 + 20s + i * 1s;
    auto seq = out.add("f", u);
    out.acknowledge(seq, u + 1ms);
  }
  BOOST_CHECK(out.timeout() == outbox::duration{100ms});
}

BOOST_AUTO_TEST_CASE(outbox_resends_until_acknowledged_with_backoff) {
  outbox out{100ms};
  outbox::time_point t0{};
  auto s1 = out.add("one", t0);
  auto s2 = out.add("two", t0);
  BOOST_CHECK_EQUAL(s1, 1u);
  BOOST_CHECK_EQUAL(s2, 2u);
  BOOST_CHECK_EQUAL(out.bytes(), 6u);
  BOOST_CHECK(out.due(t0 + 50ms).empty());
  BOOST_CHECK_EQUAL(out.due(t0 + 100ms).size(), 2u);
  BOOST_CHECK(out.acknowledge(s1));
  BOOST_CHECK(!out.acknowledge(s1)); // a duplicate ack
  // Backoff: the second attempt waits twice as long.
  BOOST_CHECK(out.due(t0 + 250ms).empty());
  auto again = out.due(t0 + 300ms);
  BOOST_REQUIRE_EQUAL(again.size(), 1u);
  BOOST_CHECK_EQUAL(*again.front(), "two");
  BOOST_CHECK(out.acknowledge(s2));
  BOOST_CHECK_EQUAL(out.size(), 0u);
  BOOST_CHECK_EQUAL(out.bytes(), 0u);
}

BOOST_AUTO_TEST_CASE(a_frame_is_on_its_way_until_resent_or_overdue) {
  outbox out{100ms};
  outbox::time_point t0{};
  auto s1 = out.add("one", t0);
  auto s2 = out.add("two", t0 + 60ms);
  BOOST_CHECK(out.on_its_way(s1, t0 + 50ms));
  BOOST_CHECK(!out.on_its_way(99, t0 + 50ms)); // unknown
  // Overdue without acknowledgements: maybe lost.
  BOOST_CHECK(!out.on_its_way(s1, t0 + 120ms));
  BOOST_CHECK(out.on_its_way(s2, t0 + 120ms));
  // Resent: maybe lost (a resent copy may be on its way, or not).
  BOOST_CHECK_EQUAL(out.due(t0 + 170ms).size(), 2u);
  BOOST_CHECK(!out.on_its_way(s2, t0 + 170ms));
  // While acknowledgements flow, a frame is on its way until it is three
  // timeouts old (as `due` waits before resending it).
  auto s3 = out.add("three", t0 + 200ms);
  BOOST_CHECK(out.acknowledge(s1, t0 + 290ms));
  BOOST_CHECK(out.on_its_way(s3, t0 + 350ms));
  BOOST_CHECK(!out.on_its_way(s3, t0 + 400ms + 2 * out.timeout()));
  BOOST_CHECK(out.acknowledge(s3));
  BOOST_CHECK(!out.on_its_way(s3, t0 + 210ms)); // acknowledged
}

BOOST_AUTO_TEST_CASE(outbox_gives_up_a_frame_never_acknowledged) {
  outbox out{10ms, 3};
  outbox::time_point t{};
  out.add("lost", t);
  size_t sends = 0;
  for (int i = 0; i < 100 && out.size() > 0; ++i) {
    t += 100ms;
    sends += out.due(t).size();
  }
  BOOST_CHECK_EQUAL(out.size(), 0u);
  BOOST_CHECK_EQUAL(out.bytes(), 0u);
  BOOST_CHECK_EQUAL(sends, 2u); // resent twice, the third attempt gives up
  BOOST_CHECK_EQUAL(out.take_expired(), 1u);
  BOOST_CHECK_EQUAL(out.take_expired(), 0u);
}

BOOST_AUTO_TEST_CASE(delivery_window_stays_bounded_over_a_gap) {
  delivery_window w;
  // Sequence 1 never arrives; the window does not grow without bound.
  for (uint64_t s = 2; s < 10'000; ++s)
    BOOST_CHECK(w.first_time(1, s));
  BOOST_CHECK(w.contains(1, 9'999));
  BOOST_CHECK(!w.contains(1, 10'000));
  BOOST_CHECK(!w.contains(2, 5));
}

BOOST_AUTO_TEST_CASE(delivery_window_admits_each_sequence_once) {
  delivery_window w;
  BOOST_CHECK(w.first_time(7, 2));
  BOOST_CHECK(w.first_time(7, 1));
  BOOST_CHECK(!w.first_time(7, 2));
  BOOST_CHECK(!w.first_time(7, 1));
  BOOST_CHECK(w.first_time(7, 5));
  BOOST_CHECK(w.first_time(7, 3));
  BOOST_CHECK(!w.first_time(7, 5));
  // A new incarnation of the sender starts over.
  BOOST_CHECK(w.first_time(9, 1));
  BOOST_CHECK(!w.first_time(9, 1));
  BOOST_CHECK_EQUAL(w.epoch(), 9u);
  // A straggler of an older incarnation is idempotent state: let through.
  BOOST_CHECK(w.first_time(7, 1));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(query_filters)

BOOST_AUTO_TEST_CASE(filters_select_by_type_scope_subject_time_and_flags) {
  node n{1};
  must(n.mem.put(make_fact("a", "1")));
  must(n.mem.put(make_belief("sky", "color", "blue")));
  must(n.mem.put(make_belief("sky", "size", "big")));
  auto ep = must(n.mem.put(make_episode("e1", {})));
  auto mine = make_fact("m", "2", memory_scope::instance("i1"));
  must(n.mem.put(mine));
  auto archived = must(n.mem.put(make_fact("old", "3")));
  must(n.mem.archive(archived.entries.front().id));
  auto count = [&](const query_filter& f) {
    std::vector<memory_view> out;
    select(n.mem, f, out);
    finish(f, out);
    return out.size();
  };
  BOOST_CHECK_EQUAL(count({}), 5u);
  query_filter f;
  f.type = memory_type::episodic;
  BOOST_CHECK_EQUAL(count(f), 1u);
  f = {};
  f.kind = scope_kind::instance;
  BOOST_CHECK_EQUAL(count(f), 1u);
  f = {};
  f.subject = "sky";
  BOOST_CHECK_EQUAL(count(f), 2u);
  f.relation = "color";
  BOOST_CHECK_EQUAL(count(f), 1u);
  f = {};
  f.include_archived = true;
  BOOST_CHECK_EQUAL(count(f), 6u);
  f = {};
  f.limit = 2;
  BOOST_CHECK_EQUAL(count(f), 2u);
  // A limit keeps the newest writes: the instance fact, then the episode.
  std::vector<memory_view> newest;
  select(n.mem, f, newest);
  finish(f, newest);
  BOOST_REQUIRE_EQUAL(newest.size(), 2u);
  BOOST_CHECK(std::holds_alternative<fact>(newest[0].value.body));
  BOOST_CHECK(std::holds_alternative<episode>(newest[1].value.body));
  f = {};
  f.since = ep.entries.front().versions.front().value.updated;
  BOOST_CHECK_EQUAL(count(f), 2u); // the episode and the instance fact
  f = {};
  f.contested_only = true;
  BOOST_CHECK_EQUAL(count(f), 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(delta_parts)

BOOST_AUTO_TEST_CASE(split_parts_join_to_the_same_state_in_any_order) {
  node a{1};
  replica_delta all;
  for (int i = 0; i < 50; ++i)
    join_deltas(all, must(a.mem.put(make_fact("k" + std::to_string(i % 30),
                                              std::to_string(i)))));
  auto whole = all;
  auto parts = split_delta(std::move(all), 7);
  BOOST_CHECK_GT(parts.size(), 4u);
  size_t versions = 0;
  for (auto& p : parts) {
    BOOST_CHECK_LE(p.version_count(), 7u);
    versions += p.version_count();
  }
  BOOST_CHECK_EQUAL(versions, whole.version_count());
  // Parts joined in reverse order, or joined back into one delta, give the
  // state the whole delta gives.
  node b{2};
  must_join(b.mem, whole);
  node c{3};
  for (auto i = parts.rbegin(); i != parts.rend(); ++i)
    must_join(c.mem, *i);
  BOOST_CHECK_EQUAL(c.mem.digest(), b.mem.digest());
  node d{4};
  must_join(d.mem, join_deltas(std::move(parts)));
  BOOST_CHECK_EQUAL(d.mem.digest(), b.mem.digest());
  // A receiver missing a part holds no context for it: the sender's
  // delta_since still offers what is missing.
  auto again = split_delta(a.mem.full_state(), 7);
  node e{5};
  for (size_t i = 1; i < again.size(); ++i)
    must_join(e.mem, again[i]);
  auto missing = a.mem.delta_since(e.mem.context());
  must_join(e.mem, missing);
  BOOST_CHECK_EQUAL(e.mem.digest(), a.mem.digest());
}

BOOST_AUTO_TEST_CASE(parts_merged_in_order_keep_the_receivers_context_compact) {
  // Two writers: parts follow each one's events in order.
  node a{1};
  node b{2};
  for (int i = 0; i < 3000; ++i) {
    auto& writer = i % 3 == 0 ? b : a;
    must(writer.mem.put(make_fact("k" + std::to_string(i), "v")));
  }
  must_join(a.mem, b.mem.full_state());
  auto parts = split_delta(a.mem.full_state(), 100);
  BOOST_CHECK_GE(parts.size(), 30u);
  node r{3};
  size_t largest_cloud = 0;
  for (auto& p : parts) {
    for (size_t i = 1; i < p.entries.size(); ++i)
      BOOST_REQUIRE(p.entries[i - 1].id < p.entries[i].id);
    must_join(r.mem, p);
    largest_cloud = std::max(largest_cloud, r.mem.context().cloud().size());
  }
  BOOST_CHECK_EQUAL(r.mem.digest(), a.mem.digest());
  // Consecutive events per writer: at most a part's worth is ever loose
  // (in id order it grew to most of the 3 000 dots).
  BOOST_CHECK_LE(largest_cloud, 100u);
  BOOST_CHECK(r.mem.context().cloud().empty());
}

BOOST_AUTO_TEST_CASE(a_delta_read_in_pieces_is_the_delta_since) {
  node a{1};
  node b{2};
  for (int i = 0; i < 400; ++i) {
    auto& writer = i % 4 == 0 ? b : a;
    must(writer.mem.put(
        make_fact("k" + std::to_string(i % 300), "v" + std::to_string(i))));
  }
  must_join(a.mem, b.mem.full_state());
  // The peer holds part of it already.
  node p{3};
  must_join(p.mem, b.mem.full_state());
  auto ids = a.mem.missing_since(p.mem.context());
  auto whole = a.mem.delta_since(p.mem.context());
  BOOST_REQUIRE_EQUAL(ids.size(), whole.entries.size());
  BOOST_REQUIRE_GT(ids.size(), 100u);
  // In the order of each engram's oldest event, as split_delta sends them.
  auto oldest = [&](const engram_id& id) {
    auto vs = *a.mem.versions(id);
    dot d = vs.front().tag;
    for (auto& v : vs)
      d = std::min(d, v.tag);
    return d;
  };
  for (size_t i = 1; i < ids.size(); ++i)
    BOOST_REQUIRE(oldest(ids[i - 1]) < oldest(ids[i]));
  // Read in pieces of 37 (plus an id the replica does not hold, skipped),
  // each piece names just its versions' dots; merged in order they give
  // the state the whole delta gives.
  node q{4};
  must_join(q.mem, b.mem.full_state());
  size_t versions = 0;
  for (size_t i = 0; i < ids.size(); i += 37) {
    std::vector<engram_id> piece_ids(
        ids.begin() + static_cast<ptrdiff_t>(i),
        ids.begin() + static_cast<ptrdiff_t>(std::min(ids.size(), i + 37)));
    piece_ids.push_back(engram_id{99, 99});
    auto piece = a.mem.delta_of(piece_ids);
    BOOST_REQUIRE_EQUAL(piece.entries.size(), piece_ids.size() - 1);
    for (size_t k = 0; k < piece.entries.size(); ++k) {
      BOOST_CHECK(piece.entries[k].id == piece_ids[k]);
      BOOST_CHECK(piece.entries[k].context
                  == a.mem.entry_of(piece_ids[k])->context);
    }
    std::vector<dot> dots;
    for (auto& e : piece.entries)
      for (auto& v : e.versions)
        dots.push_back(v.tag);
    BOOST_CHECK(piece.context == causal_context{dots});
    versions += piece.version_count();
    must_join(q.mem, piece);
  }
  BOOST_CHECK_EQUAL(versions, whole.version_count());
  must_join(p.mem, whole);
  BOOST_CHECK_EQUAL(q.mem.digest(), p.mem.digest());
  BOOST_CHECK_EQUAL(q.mem.digest(), a.mem.digest());
  BOOST_CHECK(a.mem.missing_since(q.mem.context()).empty());
  BOOST_CHECK(a.mem.missing_since(a.mem.context()).empty());
}

BOOST_AUTO_TEST_SUITE_END()
