// Property tests: replicas applying random operations, exchanging deltas in
// random order with duplication and loss-then-retransmit, end in identical
// state under every CRDT and resolution strategy.
#include "core/replica.hpp"

#include <boost/test/unit_test.hpp>

#include <memory>
#include <random>

#include "test_util.hpp"

using namespace engram;
using namespace engram::test;

namespace {

constexpr uint64_t seeds[] = {1, 7, 42, 1234, 99991};

struct message {
  size_t to;
  replica_delta delta;
};

class simulation {
public:
  simulation(uint64_t seed, size_t n, const replica_config& cfg) : rng_(seed) {
    for (size_t i = 0; i < n; ++i)
      nodes_.push_back(std::make_unique<node>(
          i + 1, cfg, 1'000'000 + (rng_() % 5'000))); // skewed wall clocks
  }

  void run(int ops) {
    for (int i = 0; i < ops; ++i) {
      random_op(rng_() % nodes_.size());
      auto deliveries = rng_() % 3;
      for (uint64_t k = 0; k < deliveries && !in_flight_.empty(); ++k)
        deliver_one(true);
      if (rng_() % 200 == 0)
        retransmit();
    }
    flush();
  }

  void flush() {
    retransmit();
    size_t budget = 2'000'000;
    while (!in_flight_.empty()) {
      BOOST_REQUIRE_MESSAGE(budget-- > 0, "sync did not quiesce");
      deliver_one(false);
    }
  }

  void check_converged() {
    auto& first = nodes_.front()->mem;
    for (size_t i = 1; i < nodes_.size(); ++i) {
      auto& other = nodes_[i]->mem;
      BOOST_REQUIRE_MESSAGE(first.same_state(other),
                            "replica " << i + 1 << " differs from replica 1");
      first.for_each([&](const engram_id& id, const std::vector<version>&) {
        auto xs = first.read(id);
        auto ys = other.read(id);
        BOOST_REQUIRE_EQUAL(xs.size(), ys.size());
        for (size_t k = 0; k < xs.size(); ++k)
          BOOST_REQUIRE(xs[k].value == ys[k].value);
      });
    }
  }

  size_t conflicts_seen() const { return conflicts_; }

  replica& at(size_t i) { return nodes_[i]->mem; }

private:
  void broadcast(size_t from, const replica_delta& d) {
    if (d.empty())
      return;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (i != from)
        in_flight_.push_back(message{i, d});
  }

  void deliver_one(bool faults) {
    auto k = rng_() % in_flight_.size();
    auto msg = std::move(in_flight_[k]);
    in_flight_[k] = std::move(in_flight_.back());
    in_flight_.pop_back();
    if (faults && rng_() % 5 == 0) { // lost, retransmitted later
      lost_.push_back(std::move(msg));
      return;
    }
    if (faults && rng_() % 5 == 0) // duplicated
      in_flight_.push_back(msg);
    auto& target = *nodes_[msg.to];
    target.wall.advance(rng_() % 100);
    auto report = must_join(target.mem, msg.delta);
    conflicts_ += report.conflicts.size();
    broadcast(msg.to, report.resolutions);
  }

  void retransmit() {
    for (auto& m : lost_)
      in_flight_.push_back(std::move(m));
    lost_.clear();
  }

  std::string pick(std::initializer_list<const char*> xs) {
    auto i = rng_() % xs.size();
    return *(xs.begin() + i);
  }

  void random_op(size_t i) {
    auto& n = *nodes_[i];
    n.wall.advance(rng_() % 1000);
    auto conf = static_cast<double>(rng_() % 101) / 100.0;
    expected<replica_delta> d = replica_delta{};
    switch (rng_() % 20) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
        d = n.mem.put(make_fact(pick({"k1", "k2", "k3", "k4"}),
                                pick({"a", "b", "c", "d", "e"}),
                                memory_scope::agent("alpha"), conf));
        break;
      case 7:
      case 8:
      case 9:
        d = n.mem.put(make_belief(pick({"sky", "grass"}), "color",
                                  pick({"blue", "green", "grey"}), conf));
        break;
      case 10:
      case 11: {
        std::vector<event> events;
        for (uint64_t k = 0, m = rng_() % 4; k < m; ++k)
          events.push_back(event{{rng_() % 10, 0}, pick({"x", "y", "z"})});
        std::sort(events.begin(), events.end());
        d = n.mem.put(make_episode(pick({"e1", "e2"}), events));
        break;
      }
      case 12:
      case 13: {
        std::vector<refinement> refs;
        for (uint32_t k = 0, m = uint32_t(rng_() % 3); k < m; ++k)
          refs.push_back(refinement{k, pick({"p", "q"})});
        d = n.mem.put(make_skill(pick({"s1", "s2"}), refs, conf));
        break;
      }
      case 14:
      case 15: {
        auto key = pick({"k1", "k2", "k3", "k4"});
        auto id = derive_id(memory_scope::agent("alpha"), fact{key, ""});
        if (n.mem.get(id))
          d = rng_() % 2 ? n.mem.forget(id, "random") : n.mem.archive(id);
        break;
      }
      default: {
        auto questions = n.mem.pending_questions();
        if (questions.empty())
          return;
        auto& q = questions[rng_() % questions.size()];
        auto& opts = q.question.options;
        d = n.mem.answer(q.subject.id, opts[rng_() % opts.size()]);
        break;
      }
    }
    if (d) // refused operations (e.g. archiving a forgotten engram) are fine
      broadcast(i, *d);
  }

  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<node>> nodes_;
  std::vector<message> in_flight_;
  std::vector<message> lost_;
  size_t conflicts_ = 0;
};

replica_config all(conflict_resolution r) {
  replica_config cfg;
  cfg.resolution.value_conflict = r;
  cfg.resolution.belief_conflict = r;
  cfg.resolution.episodic_conflict = r;
  cfg.resolution.skill_conflict = r;
  return cfg;
}

void check_strategy(const std::string& name, const replica_config& cfg,
                    bool expect_conflicts = true) {
  for (auto seed : seeds) {
    auto n = 3 + seed % 3; // 3 to 5 replicas
    BOOST_TEST_CONTEXT("strategy " << name << ", seed " << seed << ", " << n
                                   << " replicas") {
      simulation sim{seed, n, cfg};
      sim.run(1500);
      sim.check_converged();
      if (expect_conflicts)
        BOOST_CHECK_GT(sim.conflicts_seen(), 0u);
    }
  }
}

conflict_handler asking_handler() {
  conflict_handler h;
  h.on_conflict = [](const conflict& c) -> resolution {
    if (c.kind == conflict_kind::value)
      return ask_user{"Which?", {"Local", "Remote", "Both", "Newest"}};
    return take_highest_confidence{};
  };
  return h;
}

} // namespace

BOOST_AUTO_TEST_SUITE(replica_convergence)

BOOST_AUTO_TEST_CASE(spec_defaults_converge) {
  check_strategy("spec defaults", replica_config{});
}

BOOST_AUTO_TEST_CASE(take_local_converges) {
  check_strategy("TakeLocal", all(take_local{}));
}

BOOST_AUTO_TEST_CASE(take_remote_converges) {
  check_strategy("TakeRemote", all(take_remote{}));
}

BOOST_AUTO_TEST_CASE(take_newest_converges) {
  check_strategy("TakeNewest", all(take_newest{}));
}

BOOST_AUTO_TEST_CASE(take_highest_confidence_converges) {
  check_strategy("TakeHighestConfidence", all(take_highest_confidence{}));
}

BOOST_AUTO_TEST_CASE(merge_converges) { check_strategy("Merge", all(merge{})); }

BOOST_AUTO_TEST_CASE(fork_converges) {
  check_strategy("Fork", all(fork_versions{true}));
}

BOOST_AUTO_TEST_CASE(escalate_with_pending_questions_converges) {
  check_strategy("Escalate", all(escalate{asking_handler()}));
}

BOOST_AUTO_TEST_CASE(custom_resolvers_that_disagree_across_replicas_converge) {
  // A resolver that answers differently on every call (a counter): the
  // recorded resolutions must still collapse identically everywhere.
  auto calls = std::make_shared<int>(0);
  check_strategy("Custom", all(custom{[calls](const conflict& c) -> resolution {
                   if (++*calls % 3 == 0)
                     return take_local{};
                   auto v = c.newest_remote().value;
                   v.confidence = static_cast<double>(*calls % 10) / 10.0;
                   return use_value{v};
                 }}));
}

BOOST_AUTO_TEST_CASE(lww_strategy_converges) {
  replica_config cfg;
  cfg.strategy.fill(crdt_strategy::lww);
  check_strategy("LWW", cfg, false);
}

BOOST_AUTO_TEST_CASE(aw_set_strategy_converges) {
  replica_config cfg;
  cfg.strategy.fill(crdt_strategy::aw_set);
  check_strategy("AWSet", cfg, false);
}

BOOST_AUTO_TEST_CASE(custom_merge_strategy_converges) {
  replica_config cfg;
  cfg.strategy.fill(crdt_strategy::custom);
  for (auto& m : cfg.merge)
    m = [](const engram_record& l, const engram_record& r) {
      auto result = builtin_merge(l, r);
      result.confidence = (l.confidence + r.confidence) / 2;
      return result;
    };
  check_strategy("CRDT Custom", cfg);
}

BOOST_AUTO_TEST_CASE(replica_join_is_commutative_associative_idempotent) {
  // Fork everywhere: joins make no resolving writes, so a join is a pure
  // function of the two states.
  auto cfg = all(fork_versions{true});
  for (auto seed : seeds) {
    BOOST_TEST_CONTEXT("seed " << seed) {
      std::mt19937_64 rng{seed};
      std::vector<std::unique_ptr<node>> parts;
      for (int i = 0; i < 3; ++i)
        parts.push_back(std::make_unique<node>(10 + i, cfg));
      // Each part gets a random subset of writes of its own.
      for (int i = 0; i < 300; ++i) {
        auto& p = *parts[rng() % 3];
        p.wall.advance(rng() % 50);
        auto key = "k" + std::to_string(rng() % 8);
        must(p.mem.put(make_fact(key, std::to_string(rng() % 4))));
        if (rng() % 4 == 0) {
          auto& q = *parts[rng() % 3];
          must_join(q.mem, p.mem.full_state());
        }
      }
      auto join_into
          = [&](replica_id id, std::initializer_list<const replica*> xs) {
              auto result = std::make_unique<node>(id, cfg);
              for (auto* x : xs)
                must_join(result->mem, x->full_state());
              return result;
            };
      auto& a = parts[0]->mem;
      auto& b = parts[1]->mem;
      auto& c = parts[2]->mem;
      auto ab = join_into(20, {&a, &b});
      auto ba = join_into(21, {&b, &a});
      BOOST_REQUIRE(ab->mem.same_state(ba->mem));
      auto bc = join_into(22, {&b, &c});
      auto ab_c = join_into(23, {&ab->mem, &c});
      auto a_bc = join_into(24, {&a, &bc->mem});
      BOOST_REQUIRE(ab_c->mem.same_state(a_bc->mem));
      auto digest = a.digest();
      auto size = a.version_count();
      must_join(a, a.full_state());
      BOOST_REQUIRE_EQUAL(a.digest(), digest);
      BOOST_REQUIRE_EQUAL(a.version_count(), size);
      auto aa = join_into(25, {&a, &a});
      auto a1 = join_into(26, {&a});
      BOOST_REQUIRE(aa->mem.same_state(a1->mem));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
