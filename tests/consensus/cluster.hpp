#pragma once

// A Raft group driven in one process for the tests: every member's
// storage, machine and applied state, and the messages between them. The
// unit tests deliver messages in order; the simulator (consensus_sim.cpp)
// drops, duplicates, reorders and partitions them, crashes members with an
// unsynced tail, and checks Raft's invariants after every step.

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "consensus/raw_node.hpp"

namespace engram::consensus::test {

/// One member.
struct member {
  config cfg;
  /// What survived on disk.
  memory_storage disk;
  std::unique_ptr<raw_node> node;
  bool up = true;
  /// The applied commands, by index (the state machine).
  std::map<index_t, std::string> applied;
  /// The membership after the last applied change.
  conf_state conf;
  /// Every read served: (request, read index, applied index at serving).
  std::vector<read_state> reads;
};

/// Observes what the cluster does (the simulator's invariant checks).
struct observer {
  virtual ~observer() = default;
  /// `id` persisted `entries` (after persisting them).
  virtual void persisted(node_id, const std::vector<entry>&) {}
  /// `id` applied a committed entry.
  virtual void applied(node_id, const entry&) {}
  /// `id` installed a snapshot.
  virtual void installed(node_id, const snapshot&) {}
};

class cluster {
public:
  /// Members 1..voters vote; voters+1..voters+learners learn. All start from
  /// a snapshot at index 1, term 1 recording that membership.
  cluster(size_t voters, size_t learners = 0,
          std::function<void(config&)> tweak = nullptr, uint64_t seed = 1);

  member& at(node_id id) { return *members_.at(id); }

  std::vector<node_id> ids() const;

  /// Processes every member's ready: persist, queue messages, apply.
  void process(node_id id);
  void process_all();

  /// Delivers every queued message (and what they cause) until quiet, at
  /// most `max_rounds` rounds. Returns the messages delivered.
  size_t stabilize(size_t max_rounds = 1000);

  /// Ticks one member n times (processing its ready each time).
  void tick(node_id id, int n = 1);

  /// Ticks every member until someone leads (bounded); returns the leader.
  node_id elect(node_id candidate);

  /// The leader in the highest term, or 0.
  node_id leader() const;

  /// Messages waiting for delivery.
  std::vector<message>& in_flight() { return wire_; }

  /// Drops messages between the two sides (both ways).
  void isolate(node_id id);
  void heal();
  bool cut(node_id from, node_id to) const {
    return cut_.count({from, to}) > 0;
  }
  void cut_one_way(node_id from, node_id to) { cut_.insert({from, to}); }

  /// Delivers one message to its recipient (unless cut or down), and
  /// processes what it caused unless `process_now` is false (a slow disk).
  void deliver(const message& m, bool process_now = true);

  /// A message was lost (dropped by the network).
  void lost(const message& m);

  /// Crashes a member: it loses its machine and anything not persisted.
  void crash(node_id id);

  /// Restarts a crashed member from its disk.
  void restart(node_id id);

  /// Adds a member with an empty disk (to be added by a conf change).
  void add_empty(node_id id);

  /// Compacts a member's log up to its applied index, keeping a snapshot.
  void compact(node_id id);

  observer* watcher = nullptr;

  /// Called with every message about to be delivered (transcripts).
  std::function<void(const message&, bool lost)> on_deliver;

  /// A crash around a sync: when set, the next ready of `torn_member` that
  /// writes anything crashes it — before the sync (nothing of the ready on
  /// disk) when `torn_keep` is 0, after it (nothing sent) otherwise.
  node_id torn_member = no_node;
  size_t torn_keep = 0;

private:
  void make_node(member& m);
  void report(const message& m, bool delivered);

  std::map<node_id, std::unique_ptr<member>> members_;
  std::vector<message> wire_;
  std::set<std::pair<node_id, node_id>> cut_;
  std::function<void(config&)> tweak_;
  uint64_t seed_;
};

/// The state machine's contents as "k=v" (commands are "k=v").
std::string state_of(const member& m);

} // namespace engram::consensus::test
