#include "consensus/raw_node.hpp"

#include "consensus/internal/check.hpp"

namespace engram::consensus {

namespace {

/// More voters than any group has (a bound on what a message may list).
constexpr size_t max_voters = 4096;

/// Terms and indexes beyond this come from a broken or hostile peer: far
/// from any real log, and far enough from 2^64 that no increment wraps.
constexpr uint64_t max_position = uint64_t{1} << 62;

bool in_range(const message& m) {
  if (m.term > max_position || m.log_term > max_position
      || m.index > max_position || m.commit > max_position
      || m.reject_hint > max_position
      || m.entries.size() > max_position - m.index)
    return false;
  for (auto& e : m.entries)
    if (e.term > max_position || e.index > max_position)
      return false;
  if (m.snap
      && (m.snap->meta.index > max_position
          || m.snap->meta.term > max_position))
    return false;
  return true;
}

} // namespace

raw_node::raw_node(const config& cfg, const storage& store)
    : raft_(cfg, store) {
  prev_soft_ = raft_.soft();
  prev_hard_ = raft_.hard();
}

void raw_node::campaign() {
  message m;
  m.type = msg_type::hup;
  raft_.step(std::move(m));
}

step_error raw_node::propose(std::string data) {
  message m;
  m.type = msg_type::propose;
  m.from = raft_.id();
  m.entries.emplace_back();
  m.entries.back().data = std::move(data);
  return raft_.step(std::move(m));
}

step_error raw_node::propose_conf_change(const conf_change& cc) {
  message m;
  m.type = msg_type::propose;
  m.from = raft_.id();
  m.entries.emplace_back();
  m.entries.back().type = entry_type::conf_change;
  m.entries.back().data = encode(cc);
  return raft_.step(std::move(m));
}

step_error raw_node::read_index(std::string request) {
  message m;
  m.type = msg_type::read_index;
  m.entries.emplace_back();
  m.entries.back().data = std::move(request);
  return raft_.step(std::move(m));
}

void raw_node::transfer_leader(node_id transferee) {
  message m;
  m.type = msg_type::transfer_leader;
  m.from = transferee;
  raft_.step(std::move(m));
}

void raw_node::report_unreachable(node_id id) {
  message m;
  m.type = msg_type::unreachable;
  m.from = id;
  raft_.step(std::move(m));
}

void raw_node::report_snapshot(node_id id, bool delivered) {
  message m;
  m.type = msg_type::snapshot_status;
  m.from = id;
  m.reject = !delivered;
  raft_.step(std::move(m));
}

bool raw_node::valid(const message& m) const {
  if (!is_network_message(m.type) || m.from == no_node || m.from == raft_.id())
    return false;
  if (m.to != no_node && m.to != raft_.id())
    return false;
  if (!in_range(m))
    return false;
  // The candidate's incoming voters: only on votes, ascending, bounded.
  if (!m.voters.empty()) {
    if ((m.type != msg_type::vote && m.type != msg_type::pre_vote)
        || m.voters.size() > max_voters || m.voters.front() == no_node)
      return false;
    for (size_t i = 1; i < m.voters.size(); ++i)
      if (m.voters[i] <= m.voters[i - 1])
        return false;
  }
  switch (m.type) {
    case msg_type::propose:
      // Forwarded proposals carry no term and at least one entry.
      return m.term == 0 && !m.entries.empty();
    case msg_type::read_index: return m.term == 0 && m.entries.size() == 1;
    case msg_type::transfer_leader: return m.term == 0 && m.entries.empty();
    case msg_type::append: {
      if (m.term == 0)
        return false;
      // Entries follow `index` consecutively, with terms that never go
      // down, start at or above log_term and stay at or below the leader's.
      auto expected = m.index + 1;
      term_t prev = m.log_term;
      for (auto& e : m.entries) {
        if (e.index != expected++ || e.term < prev || e.term > m.term)
          return false;
        prev = e.term;
      }
      return m.log_term <= m.term;
    }
    case msg_type::install_snapshot:
      return m.term > 0 && m.snap && !m.snap->empty()
             && m.snap->meta.term <= m.term
             && !m.snap->meta.conf.voters.empty();
    case msg_type::read_index_response:
      return m.term > 0 && m.entries.size() == 1;
    default: return m.term > 0;
  }
}

step_error raw_node::step(message m) {
  if (!valid(m))
    return step_error::invalid_message;
  // Responses from members the leader does not know are ignored inside.
  return raft_.step(std::move(m));
}

bool raw_node::has_ready() const {
  if (raft_.soft() != prev_soft_)
    return true;
  auto hs = raft_.hard();
  if (!hs.empty() && hs != prev_hard_)
    return true;
  auto& log = raft_.log();
  return log.unstable_snapshot().has_value() || !log.unstable_entries().empty()
         || !raft_.msgs_.empty() || log.has_next_committed()
         || !raft_.read_states_.empty();
}

ready raw_node::get_ready() {
  ready rd;
  auto& log = raft_.log();
  rd.entries = log.unstable_entries();
  rd.committed = log.next_committed();
  rd.messages = std::move(raft_.msgs_);
  raft_.msgs_.clear();
  rd.reads = std::move(raft_.read_states_);
  raft_.read_states_.clear();
  if (log.unstable_snapshot())
    rd.snap = *log.unstable_snapshot();
  auto soft = raft_.soft();
  if (soft != prev_soft_) {
    rd.soft = soft;
    prev_soft_ = soft;
  }
  auto hard = raft_.hard();
  if (hard != prev_hard_) {
    rd.hard = hard;
    // Term and vote must be on disk before a vote or append response
    // leaves; a commit-only change need not be synced (it is recomputed).
    rd.must_sync = hard.term != prev_hard_.term || hard.vote != prev_hard_.vote;
    prev_hard_ = hard;
  }
  if (!rd.entries.empty())
    rd.must_sync = true;
  return rd;
}

void raw_node::advance(const ready& rd) {
  if (!rd.committed.empty()) {
    raft_.applied_to(rd.committed.back().index);
    raft_.reduce_uncommitted(rd.committed);
  } else if (rd.snap) {
    if (rd.snap->meta.index > raft_.log_.applied)
      raft_.log_.applied_to(rd.snap->meta.index);
  }
  if (!rd.entries.empty())
    raft_.log_.stable_to(rd.entries.back().index, rd.entries.back().term);
  if (rd.snap)
    raft_.log_.stable_snap_to(rd.snap->meta.index);
}

status raw_node::get_status() const {
  status s;
  s.id = raft_.id();
  s.hard = raft_.hard();
  s.soft = raft_.soft();
  s.applied = raft_.log().applied;
  s.last_index = raft_.log().last_index();
  s.transferee = raft_.transferee();
  s.config = raft_.tracker().config;
  if (raft_.state() == role::leader)
    s.members = raft_.tracker().members;
  return s;
}

} // namespace engram::consensus
