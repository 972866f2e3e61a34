// The sync session machine without actors: two machines, each in front of
// a replica that answers what the machine asks (as the agent actor does),
// connected by a seeded network that loses, duplicates and reorders frames.
// Thousands of schedules run in seconds; invariants are checked after every
// step.

#include "messages/envelope.hpp"

#include <boost/test/unit_test.hpp>

#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "engram/v1/sync.pb.h"
#include "sync/session.hpp"
#include "test_util.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;
using sync::time_point;
using ms = std::chrono::milliseconds;

namespace {

/// One side: a replica, the session in front of it, and the replica's
/// answers to the machine's requests, queued as an agent's mailbox would.
struct side {
  std::string name;
  node n;
  std::unique_ptr<sync::session> s;
  std::deque<sync::action> agent_mailbox;
  bool clock_agrees = true;
  /// Since when changes wait with nothing in flight (unset: none wait).
  std::optional<time_point> idle_pending_since;
  /// Rounds and replications the machine finished.
  std::map<uint64_t, bool> rounds;
  std::map<uint64_t, bool> replications;
  std::vector<time_point> flushes;
  /// Distinct reliable frames delivered to this side: (epoch, sequence).
  std::set<std::pair<uint64_t, uint64_t>> delivered;

  side(std::string id, replica_id rid) : name(std::move(id)), n(rid) {
    // nop
  }
};

struct in_flight {
  time_point at;
  uint64_t order;
  int to;
  std::string bytes;
};

/// Two sessions over a seeded network.
struct harness {
  std::mt19937_64 rng;
  time_point now{};
  side a{"A", 1};
  side b{"B", 2};
  double loss = 0;
  double dup = 0;
  ms min_latency{1};
  ms max_latency{1};
  bool cut = false;
  std::vector<in_flight> net;
  uint64_t order = 0;
  time_point last_tick{};
  sync::settings cfg;

  explicit harness(uint64_t seed, sync::settings settings = {})
      : rng(seed), cfg(settings) {
    start(a, b);
    start(b, a);
  }

  side& other(side& x) { return &x == &a ? b : a; }

  void start(side& x, side& peer) {
    sync::identity who{x.name, peer.name, "agent",
                       std::hash<std::string>{}(x.name)};
    auto* self = &x;
    x.s = std::make_unique<sync::session>(
        who, cfg, x.n.hlc, x.n.wall,
        [self](uint64_t) {
          return self->clock_agrees;
        },
        now);
    take(x);
  }

  // The machine's actions: frames into the network, requests into the
  // agent's mailbox, outcomes recorded.
  void take(side& x) {
    for (auto& act : x.s->take_actions()) {
      if (auto* send = std::get_if<sync::act::send>(&act)) {
        send_frame(x, std::move(send->bytes));
      } else if (auto* f = std::get_if<sync::act::flush_after>(&act)) {
        x.flushes.push_back(now + f->after);
      } else if (auto* done = std::get_if<sync::act::rounds_done>(&act)) {
        for (auto r : done->rounds)
          x.rounds[r] = true;
      } else if (auto* failed = std::get_if<sync::act::round_failed>(&act)) {
        x.rounds[failed->round] = false;
      } else if (auto* ok = std::get_if<sync::act::replicated>(&act)) {
        x.replications[ok->waiter] = true;
      } else if (auto* no = std::get_if<sync::act::replication_failed>(&act)) {
        x.replications[no->waiter] = false;
      } else if (std::holds_alternative<sync::act::report>(act)) {
        // the node's log
      } else {
        x.agent_mailbox.push_back(std::move(act));
      }
    }
  }

  void send_frame(side& from, std::string bytes) {
    std::uniform_real_distribution<double> coin{0, 1};
    if (cut || coin(rng) < loss)
      return;
    int to = &from == &a ? 1 : 0;
    std::uniform_int_distribution<int64_t> lat{min_latency.count(),
                                               max_latency.count()};
    net.push_back({now + ms{lat(rng)}, order++, to, bytes});
    if (coin(rng) < dup)
      net.push_back({now + ms{lat(rng)}, order++, to, std::move(bytes)});
  }

  // The agent answers one request (in order), as agent.cpp does.
  void answer(side& x) {
    auto act = std::move(x.agent_mailbox.front());
    x.agent_mailbox.pop_front();
    auto& mem = x.n.mem;
    if (auto* d = std::get_if<sync::act::ask_digest>(&act)) {
      x.s->on_digest(d->tag, mem.digest(), mem.context());
    } else if (auto* q = std::get_if<sync::act::ask_since>(&act)) {
      auto rest = mem.missing_since(q->peer);
      auto n
          = static_cast<ptrdiff_t>(std::min<uint64_t>(q->first, rest.size()));
      auto piece = mem.delta_of({rest.begin(), rest.begin() + n});
      rest.erase(rest.begin(), rest.begin() + n);
      if (rest.empty())
        piece.context = mem.context();
      x.s->on_since(q->tag, std::move(piece), std::move(rest), mem.context(),
                    now);
    } else if (auto* p = std::get_if<sync::act::ask_piece>(&act)) {
      x.s->on_piece(p->tag, mem.delta_of(p->ids), now);
    } else if (auto* m = std::get_if<sync::act::ask_merge>(&act)) {
      auto report = mem.join(m->delta);
      if (!report) {
        x.s->on_failed(m->tag, now);
      } else {
        sync::merged result;
        result.applied = report->applied;
        result.conflicts = report->conflicts;
        for (auto& c : report->forked)
          result.open.push_back(c.id);
        x.s->on_merged(m->tag, std::move(result), now);
      }
    } else if (std::holds_alternative<sync::act::ask_caught_up>(act)) {
      x.s->on_caught_up(mem.size() > 0);
    }
    take(x);
  }

  // Records the reliable frames delivered (exactly-once is checked against
  // them).
  void note_delivery(side& x, const std::string& bytes) {
    auto env = messages::decode_envelope(bytes);
    if (!env || env->type() != v1::SYNC_RESPONSE)
      return;
    auto r
        = messages::decode_payload<v1::SyncResponse>(*env, v1::SYNC_RESPONSE);
    if (r && r->sequence() != 0)
      x.delivered.emplace(r->epoch(), r->sequence());
  }

  // One step of `dt`: frames due arrive, timers fire, ticks every 50 ms,
  // the agents answer; then the invariants.
  void step(ms dt = 5ms) {
    now += dt;
    a.n.wall.advance(static_cast<uint64_t>(dt.count()) * 1000);
    b.n.wall.advance(static_cast<uint64_t>(dt.count()) * 1000);
    std::sort(net.begin(), net.end(), [](auto& x, auto& y) {
      return std::tie(x.at, x.order) < std::tie(y.at, y.order);
    });
    while (!net.empty() && net.front().at <= now) {
      auto f = std::move(net.front());
      net.erase(net.begin());
      auto& to = f.to == 0 ? a : b;
      note_delivery(to, f.bytes);
      to.s->on_frame(f.bytes, now);
      take(to);
    }
    for (auto* x : {&a, &b}) {
      auto fired = std::partition(x->flushes.begin(), x->flushes.end(),
                                  [&](time_point t) {
                                    return t > now;
                                  });
      auto n = std::distance(fired, x->flushes.end());
      x->flushes.erase(fired, x->flushes.end());
      for (ptrdiff_t i = 0; i < n; ++i) {
        x->s->on_flush(now);
        take(*x);
      }
    }
    if (now - last_tick >= 50ms) {
      last_tick = now;
      for (auto* x : {&a, &b}) {
        x->s->on_tick(now);
        take(*x);
      }
    }
    for (auto* x : {&a, &b})
      while (!x->agent_mailbox.empty())
        answer(*x);
    check();
  }

  void check() {
    for (auto* x : {&a, &b}) {
      BOOST_REQUIRE_LE(x->s->outstanding(), cfg.max_outstanding);
      BOOST_REQUIRE_LE(x->s->pending_versions(),
                       cfg.max_pending_versions + cfg.frame_versions);
      // Every reliable frame merged at most once.
      BOOST_REQUIRE_LE(x->s->stats().merged, x->delivered.size());
      // Changes never wait forever with the window open: they leave after
      // push_delay, at the latest with the next ticks.
      auto waits = x->s->established() && x->clock_agrees
                   && other(*x).clock_agrees && x->s->pending_versions() > 0
                   && x->s->outstanding() == 0;
      if (!waits)
        x->idle_pending_since.reset();
      else if (!x->idle_pending_since)
        x->idle_pending_since = now;
      else
        BOOST_REQUIRE_MESSAGE(now - *x->idle_pending_since
                                  <= cfg.push_delay + 200ms,
                              x->name << ": changes held with the window open");
    }
  }

  void write(side& x, const std::string& key, const std::string& value) {
    auto delta = x.n.mem.put(make_fact(key, value));
    BOOST_REQUIRE(delta);
    x.s->on_push(std::move(*delta), now);
    take(x);
  }

  bool converged() const {
    return a.n.mem.digest() == b.n.mem.digest() && a.n.mem.same_state(b.n.mem);
  }

  bool run_until(const std::function<bool()>& done, ms limit) {
    for (auto end = now + limit; now < end;) {
      if (done())
        return true;
      step();
    }
    return done();
  }
};

sync::settings fast() {
  sync::settings s;
  s.push_delay = 5ms;
  s.retransmit_after = 50ms;
  s.anti_entropy_interval = 300ms;
  s.ping_interval = 1000ms;
  s.peer_timeout = 60'000ms;
  return s;
}

} // namespace

BOOST_AUTO_TEST_SUITE(sync_session_machine)

// Both sides write (some keys on both), over a network that loses 40 % of
// the frames, duplicates 10 % and reorders them (1–40 ms); then the network
// heals and the replicas converge. 4 000 schedules.
BOOST_AUTO_TEST_CASE(replicas_converge_over_a_lossy_reordering_network) {
  size_t steps = 0;
  for (uint64_t seed = 1; seed <= 4000; ++seed) {
    harness h{seed, fast()};
    h.loss = 0.4;
    h.dup = 0.1;
    h.min_latency = 1ms;
    h.max_latency = 40ms;
    std::uniform_int_distribution<int> keys{0, 30};
    for (int i = 0; i < 40; ++i) {
      auto& x = h.rng() % 2 == 0 ? h.a : h.b;
      h.write(x, "k" + std::to_string(keys(h.rng)), std::to_string(i));
      h.step(ms{static_cast<int64_t>(h.rng() % 20)});
    }
    h.loss = 0;
    h.dup = 0;
    bool ok = h.run_until(
        [&] {
          return h.converged();
        },
        20'000ms);
    BOOST_REQUIRE_MESSAGE(ok, "seed " << seed << " did not converge");
    steps += static_cast<size_t>((h.now - time_point{}) / 5ms);
  }
  BOOST_TEST_MESSAGE(steps << " steps checked");
}

// A lone change written between rounds and ticks (on a session whose last
// answer left a flush due) is still sent: a flush during the push's hold
// must not forget it. 1 000 schedules, each ending with no writes.
BOOST_AUTO_TEST_CASE(a_lone_held_push_is_never_forgotten) {
  for (uint64_t seed = 1; seed <= 1000; ++seed) {
    auto cfg = fast();
    cfg.push_delay = 30ms;
    cfg.anti_entropy_interval = 100ms;
    harness h{seed, cfg};
    h.min_latency = 0ms;
    h.max_latency = 2ms;
    for (int i = 0; i < 3; ++i) {
      h.run_until(
          [] {
            return false;
          },
          ms{static_cast<int64_t>(h.rng() % 150)});
      auto& x = h.rng() % 2 == 0 ? h.a : h.b;
      h.write(x, "k" + std::to_string(i), "v");
      h.step(ms{static_cast<int64_t>(h.rng() % 6)});
    }
    bool ok = h.run_until(
        [&] {
          return h.converged();
        },
        3'000ms);
    BOOST_REQUIRE_MESSAGE(ok, "seed " << seed << " did not converge");
  }
}

// An explicit sync: B pulls everything A has and pushes what A misses; the
// round finishes once both directions are done.
BOOST_AUTO_TEST_CASE(an_explicit_sync_round_finishes_with_everything_across) {
  auto cfg = fast();
  cfg.anti_entropy_interval = 600'000ms; // only the greeting's round
  cfg.on_change = false;                 // nothing pushed: the round carries it
  harness h{7, cfg};
  h.run_until(
      [&] {
        return h.a.s->established() && h.b.s->established();
      },
      1000ms);
  for (int i = 0; i < 300; ++i)
    h.write(h.a, "a" + std::to_string(i), "x");
  for (int i = 0; i < 20; ++i)
    h.write(h.b, "b" + std::to_string(i), "y");
  h.b.s->on_sync(1, h.now, h.now + 10'000ms, ms{0}, false);
  h.take(h.b);
  BOOST_REQUIRE(h.run_until(
      [&] {
        return h.b.rounds.count(1) > 0;
      },
      5000ms));
  BOOST_CHECK(h.b.rounds[1]);
  BOOST_CHECK(h.converged());
}

// With the peer gone, a round ends at its deadline with a timeout, and a
// replication is refused.
BOOST_AUTO_TEST_CASE(rounds_and_replications_end_when_the_peer_is_gone) {
  harness h{3, fast()};
  h.run_until(
      [&] {
        return h.a.s->established();
      },
      1000ms);
  h.cut = true;
  h.a.s->on_sync(1, h.now, h.now + 500ms, ms{0}, true);
  auto delta = h.a.n.mem.put(make_fact("k", "v"));
  h.a.s->on_replicate(2, std::move(*delta), h.now, h.now + 400ms);
  h.take(h.a);
  h.run_until(
      [&] {
        return h.a.rounds.count(1) && h.a.replications.count(2);
      },
      2000ms);
  BOOST_CHECK(h.a.rounds.count(1) && !h.a.rounds[1]);
  BOOST_CHECK(h.a.replications.count(2) && !h.a.replications[2]);
}

// A replication is confirmed once the peer merged it (durably).
BOOST_AUTO_TEST_CASE(a_replication_is_confirmed_once_stored) {
  harness h{4, fast()};
  h.loss = 0.3;
  h.run_until(
      [&] {
        return h.a.s->established() && h.b.s->established();
      },
      5000ms);
  auto delta = h.a.n.mem.put(make_fact("k", "v"));
  h.a.s->on_replicate(1, std::move(*delta), h.now, h.now + 5000ms);
  h.take(h.a);
  BOOST_REQUIRE(h.run_until(
      [&] {
        return h.a.replications.count(1) > 0;
      },
      6000ms));
  BOOST_CHECK(h.a.replications[1]);
  BOOST_CHECK(h.b.n.mem.size() == 1);
}

// Pushes are held push_delay, then leave together.
BOOST_AUTO_TEST_CASE(pushes_are_held_push_delay) {
  auto cfg = fast();
  cfg.push_delay = 400ms;
  cfg.anti_entropy_interval = 600'000ms;
  harness h{5, cfg};
  h.run_until(
      [&] {
        return h.a.s->established() && h.b.s->established();
      },
      1000ms);
  h.run_until(
      [] {
        return false;
      },
      100ms); // the greeting's round is over
  auto sent = h.a.s->stats().frames_out;
  h.write(h.a, "k1", "v");
  h.write(h.a, "k2", "v");
  h.run_until(
      [] {
        return false;
      },
      300ms);
  BOOST_CHECK_EQUAL(h.b.n.mem.size(), 0u);
  h.run_until(
      [&] {
        return h.b.n.mem.size() == 2;
      },
      300ms);
  BOOST_CHECK_EQUAL(h.b.n.mem.size(), 2u);
  BOOST_CHECK_LE(h.a.s->stats().frames_out - sent, 3u); // one push (+ pings)
}

// A large delta streams in pieces: the sender reads the replica a piece at a
// time while the receiver acknowledges.
BOOST_AUTO_TEST_CASE(a_large_delta_streams_in_pieces) {
  auto cfg = fast();
  cfg.stream_piece = 200;
  cfg.max_outstanding = 2;
  cfg.anti_entropy_interval = 600'000ms;
  cfg.on_change = false;
  harness h{6, cfg};
  for (int i = 0; i < 2000; ++i)
    BOOST_REQUIRE(h.a.n.mem.put(make_fact("k" + std::to_string(i), "v")));
  size_t unread = 0;
  h.run_until(
      [&] {
        unread = std::max(unread, h.a.s->unread_engrams());
        return h.converged();
      },
      20'000ms);
  BOOST_CHECK(h.converged());
  BOOST_CHECK_GE(unread, 1000u); // read in pieces, not whole
}

// A peer whose clock is off gets no sync frame; once it agrees, sync runs.
BOOST_AUTO_TEST_CASE(no_sync_with_a_peer_whose_clock_is_off) {
  harness h{8, fast()};
  h.a.clock_agrees = false;
  h.b.clock_agrees = false;
  h.write(h.a, "k", "v");
  h.run_until(
      [] {
        return false;
      },
      2000ms);
  BOOST_CHECK_EQUAL(h.b.n.mem.size(), 0u);
  BOOST_CHECK(!h.a.s->established());
  h.a.clock_agrees = true;
  h.b.clock_agrees = true;
  BOOST_CHECK(h.run_until(
      [&] {
        return h.converged();
      },
      5000ms));
}

// Bytes that are not an envelope, or an envelope of nonsense, change
// nothing and crash nothing.
BOOST_AUTO_TEST_CASE(hostile_frames_are_dropped) {
  harness h{9, fast()};
  std::mt19937_64 rng{99};
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 200, '\0');
    for (auto& c : junk)
      c = static_cast<char>(rng());
    h.a.s->on_frame(junk, h.now);
  }
  // Well-formed envelopes with hostile payloads, of every type.
  for (auto type : {v1::HELLO, v1::HELLO_ACK, v1::SYNC_REQUEST,
                    v1::SYNC_RESPONSE, v1::SYNC_ACK, v1::PING}) {
    auto env = messages::make_envelope(type, "B", hlc_timestamp{},
                                       v1::SyncResponse{});
    std::string junk(64, '\xff');
    env.set_payload(junk);
    h.a.s->on_frame(messages::serialize(env), h.now);
  }
  h.take(h.a);
  BOOST_CHECK_EQUAL(h.a.n.mem.size(), 0u);
  BOOST_CHECK(h.run_until(
      [&] {
        return h.a.s->established();
      },
      2000ms));
}

BOOST_AUTO_TEST_SUITE_END()
