// libFuzzer target: the fuzzer's bytes drive a sequence of operations on
// three replicas (writes of every content type, forgets, archives, answers)
// interleaved with deliveries in the order the bytes choose, with drops and
// duplicates. After everything is delivered, the replicas must be identical;
// anything else aborts.
#include "core/replica.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

using namespace engram;

namespace {

struct byte_reader {
  const uint8_t* data;
  size_t size;

  uint8_t next() {
    if (size == 0)
      return 0;
    --size;
    return *data++;
  }
};

struct peer {
  manual_clock wall{1000};
  hybrid_logical_clock hlc{wall};
  replica mem;

  peer(replica_id id, const replica_config& cfg) : mem(id, hlc, cfg) {
    // nop
  }
};

replica_config config_for(uint8_t selector) {
  replica_config cfg;
  conflict_resolution choices[] = {take_local{},  take_remote{},
                                   take_newest{}, take_highest_confidence{},
                                   merge{},       fork_versions{true}};
  auto r = choices[selector % 6];
  cfg.resolution.value_conflict = r;
  cfg.resolution.belief_conflict = r;
  cfg.resolution.episodic_conflict = r;
  cfg.resolution.skill_conflict = r;
  if (selector & 0x40)
    cfg.strategy.fill(crdt_strategy::lww);
  return cfg;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  byte_reader in{data, size};
  auto cfg = config_for(in.next());
  std::vector<std::unique_ptr<peer>> peers;
  for (replica_id id = 1; id <= 3; ++id)
    peers.push_back(std::make_unique<peer>(id, cfg));
  struct message {
    size_t to;
    replica_delta delta;
  };
  std::vector<message> queue;
  auto broadcast = [&](size_t from, const replica_delta& d) {
    for (size_t i = 0; i < peers.size(); ++i)
      if (i != from && !d.empty())
        queue.push_back(message{i, d});
  };
  auto deliver = [&](size_t k, bool keep) {
    auto msg = queue[k];
    if (!keep) {
      queue[k] = std::move(queue.back());
      queue.pop_back();
    }
    auto report = peers[msg.to]->mem.join(msg.delta);
    if (!report)
      std::abort(); // deltas made by replicas are always well-formed
    broadcast(msg.to, report->resolutions);
  };
  const char* keys[] = {"a", "b", "c"};
  while (in.size > 0 && queue.size() < 10'000) {
    auto op = in.next();
    auto who = static_cast<size_t>(in.next() % 3);
    auto& p = *peers[who];
    p.wall.advance(in.next());
    engram_record e;
    e.scope = memory_scope::agent("fuzz");
    e.confidence = static_cast<double>(in.next() % 101) / 100.0;
    expected<replica_delta> d = replica_delta{};
    switch (op % 8) {
      case 0:
        e.body = fact{keys[in.next() % 3], std::string(1, char(in.next()))};
        d = p.mem.put(e);
        break;
      case 1:
        e.body = belief{keys[in.next() % 3], "is",
                        std::string(1, char('a' + in.next() % 3))};
        d = p.mem.put(e);
        break;
      case 2:
        e.type = memory_type::episodic;
        e.body = episode{keys[in.next() % 3],
                         {event{{in.next(), 0}, std::string(1, 'x')}}};
        d = p.mem.put(e);
        break;
      case 3: {
        auto id = derive_id(e.scope, fact{keys[in.next() % 3], {}});
        d = in.next() % 2 ? p.mem.forget(id, "fuzz") : p.mem.archive(id);
        break;
      }
      case 4: {
        auto qs = p.mem.pending_questions();
        if (!qs.empty())
          d = p.mem.answer(qs.front().subject.id, resolution{take_newest{}});
        break;
      }
      default:
        if (!queue.empty())
          deliver(in.next() % queue.size(), op % 8 == 7);
        continue;
    }
    if (d)
      broadcast(who, *d);
  }
  size_t budget = 1'000'000;
  while (!queue.empty()) {
    if (budget-- == 0)
      std::abort(); // sync must quiesce
    deliver(queue.size() - 1, false);
  }
  for (auto& p : peers)
    if (!p->mem.same_state(peers.front()->mem))
      std::abort(); // replicas must converge
  return 0;
}
