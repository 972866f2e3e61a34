#include "cluster.hpp"

#include <algorithm>
#include <stdexcept>

namespace engram::consensus::test {

cluster::cluster(size_t voters, size_t learners,
                 std::function<void(config&)> tweak, uint64_t seed)
    : tweak_(std::move(tweak)), seed_(seed) {
  conf_state cs;
  for (node_id id = 1; id <= voters; ++id)
    cs.voters.push_back(id);
  for (node_id id = voters + 1; id <= voters + learners; ++id)
    cs.learners.push_back(id);
  for (node_id id = 1; id <= voters + learners; ++id) {
    auto m = std::make_unique<member>();
    snapshot s;
    s.meta.index = 1;
    s.meta.term = 1;
    s.meta.conf = cs;
    (void)m->disk.apply_snapshot(s);
    m->disk.set_hard_state({1, no_node, 1});
    m->conf = cs;
    m->cfg.id = id;
    m->cfg.election_ticks = 10;
    m->cfg.heartbeat_ticks = 1;
    m->cfg.seed = seed;
    m->cfg.applied = 1;
    if (tweak_)
      tweak_(m->cfg);
    make_node(*m);
    members_.emplace(id, std::move(m));
  }
}

void cluster::make_node(member& m) {
  m.node = std::make_unique<raw_node>(m.cfg, m.disk);
}

std::vector<node_id> cluster::ids() const {
  std::vector<node_id> out;
  for (auto& [id, m] : members_)
    out.push_back(id);
  return out;
}

void cluster::add_empty(node_id id) {
  auto m = std::make_unique<member>();
  m->cfg.id = id;
  m->cfg.election_ticks = 10;
  m->cfg.heartbeat_ticks = 1;
  m->cfg.seed = seed_;
  if (tweak_)
    tweak_(m->cfg);
  m->cfg.applied = 0;
  make_node(*m);
  members_.emplace(id, std::move(m));
}

void cluster::process(node_id id) {
  auto& m = at(id);
  if (!m.up)
    return;
  while (m.node->has_ready()) {
    auto rd = m.node->get_ready();
    // A crash around the sync of this ready: the store writes a ready as one
    // batch, so it reached the disk whole (a crash after the sync, before
    // anything was sent) or not at all (before the sync) — never in part.
    bool crash
        = torn_member == id && (rd.snap || !rd.entries.empty() || rd.hard);
    if (crash && torn_keep == 0) {
      torn_member = no_node;
      m.up = false;
      m.node.reset();
      return;
    }
    // 1. Persist (snapshot, entries, hard state) — "synced" here.
    if (rd.snap) {
      (void)m.disk.apply_snapshot(*rd.snap);
      m.applied.clear();
      // The snapshot's data is the state machine ("k=v\n" lines).
      size_t at = 0;
      auto& d = rd.snap->data;
      while (at < d.size()) {
        auto nl = d.find('\n', at);
        auto line = d.substr(at, nl - at);
        auto sep = line.find('\t');
        m.applied.emplace(std::stoull(line.substr(0, sep)),
                          line.substr(sep + 1));
        at = nl + 1;
      }
      m.conf = rd.snap->meta.conf;
      if (watcher)
        watcher->installed(id, *rd.snap);
    }
    if (!rd.entries.empty()) {
      if (!m.disk.append(rd.entries))
        throw std::runtime_error("storage refused an append");
      if (watcher)
        watcher->persisted(id, rd.entries);
    }
    if (rd.hard)
      m.disk.set_hard_state(*rd.hard);
    if (crash) {
      torn_member = no_node;
      m.up = false;
      m.node.reset();
      return;
    }
    // 2. Send.
    for (auto& msg : rd.messages)
      wire_.push_back(std::move(msg));
    // 3. Apply.
    for (auto& e : rd.committed) {
      if (e.type == entry_type::conf_change) {
        auto cc = decode_conf_change(e.data);
        if (!cc)
          throw std::runtime_error("undecodable committed conf change");
        conf_state cs;
        if (m.node->apply_conf_change(*cc, cs) == step_error::none)
          m.conf = cs;
      } else if (!e.data.empty()) {
        m.applied[e.index] = e.data;
      }
      if (watcher)
        watcher->applied(id, e);
    }
    for (auto& r : rd.reads)
      m.reads.push_back(r);
    m.node->advance(rd);
  }
}

void cluster::process_all() {
  for (auto& [id, m] : members_)
    process(id);
}

void cluster::deliver(const message& msg, bool process_now) {
  auto found = members_.find(msg.to);
  if (found == members_.end() || !found->second->up || cut(msg.from, msg.to)) {
    if (on_deliver)
      on_deliver(msg, true);
    lost(msg);
    return;
  }
  if (on_deliver)
    on_deliver(msg, false);
  (void)found->second->node->step(msg);
  if (process_now)
    process(msg.to);
  report(msg, true);
}

void cluster::lost(const message& msg) { report(msg, false); }

void cluster::report(const message& msg, bool delivered) {
  // A transport tells the sender whether a snapshot arrived (it streams
  // them and sees the end, or a failure).
  if (msg.type != msg_type::install_snapshot)
    return;
  auto sender = members_.find(msg.from);
  if (sender == members_.end() || !sender->second->up)
    return;
  sender->second->node->report_snapshot(msg.to, delivered);
  process(msg.from);
}

size_t cluster::stabilize(size_t max_rounds) {
  size_t delivered = 0;
  process_all();
  for (size_t round = 0; round < max_rounds && !wire_.empty(); ++round) {
    auto batch = std::move(wire_);
    wire_.clear();
    for (auto& msg : batch) {
      deliver(msg);
      ++delivered;
    }
  }
  return delivered;
}

void cluster::tick(node_id id, int n) {
  for (int i = 0; i < n; ++i) {
    if (!at(id).up)
      return;
    at(id).node->tick();
    process(id);
  }
}

node_id cluster::elect(node_id candidate) {
  at(candidate).node->campaign();
  stabilize();
  return leader();
}

node_id cluster::leader() const {
  node_id best = no_node;
  term_t best_term = 0;
  for (auto& [id, m] : members_) {
    if (!m->up)
      continue;
    auto& r = m->node->machine();
    if (r.state() == role::leader && r.term() >= best_term) {
      best = id;
      best_term = r.term();
    }
  }
  return best;
}

void cluster::isolate(node_id id) {
  for (auto& [other, m] : members_) {
    if (other == id)
      continue;
    cut_.insert({id, other});
    cut_.insert({other, id});
  }
}

void cluster::heal() { cut_.clear(); }

void cluster::crash(node_id id) {
  auto& m = at(id);
  m.up = false;
  m.node.reset();
}

void cluster::restart(node_id id) {
  auto& m = at(id);
  // The state machine is rebuilt from the snapshot and the log: the test
  // state machine keeps its map (it is the "applied" record), so restart
  // from the applied index the disk's snapshot guarantees.
  m.cfg.applied = m.disk.current_snapshot().meta.index;
  // Drop what was applied beyond the snapshot: it is re-applied.
  for (auto i = m.applied.upper_bound(m.cfg.applied); i != m.applied.end();)
    i = m.applied.erase(i);
  m.conf = m.disk.current_snapshot().meta.conf;
  m.up = true;
  make_node(m);
}

void cluster::compact(node_id id) {
  auto& m = at(id);
  auto applied = m.node->machine().log().applied;
  if (applied <= m.disk.current_snapshot().meta.index
      || applied > m.disk.last_index())
    return;
  std::string data;
  for (auto& [i, v] : m.applied)
    if (i <= applied)
      data += std::to_string(i) + "\t" + v + "\n";
  if (m.disk.create_snapshot(applied, m.conf, data) != storage_error::none)
    return;
  (void)m.disk.compact(applied);
}

std::string state_of(const member& m) {
  std::string out;
  for (auto& [i, v] : m.applied)
    out += std::to_string(i) + ":" + v + " ";
  return out;
}

} // namespace engram::consensus::test
