#include "consensus/raft.hpp"

#include <algorithm>

#include "consensus/internal/check.hpp"

namespace engram::consensus {

const char* to_string(step_error e) {
  switch (e) {
    case step_error::none: return "none";
    case step_error::proposal_dropped: return "proposal_dropped";
    case step_error::invalid_message: return "invalid_message";
    case step_error::invalid_change: return "invalid_change";
  }
  return "?";
}

namespace {

msg_type vote_response_type(msg_type t) {
  return t == msg_type::vote ? msg_type::vote_response
                             : msg_type::pre_vote_response;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

} // namespace

// -- construction -------------------------------------------------------------

raft::raft(const config& cfg, const storage& store)
    : id_(cfg.id), log_(store, cfg.max_committed_bytes_per_ready),
      tracker_(cfg.max_inflight),
      max_uncommitted_bytes_(cfg.max_uncommitted_bytes == 0
                                 ? no_limit
                                 : cfg.max_uncommitted_bytes),
      max_msg_bytes_(cfg.max_bytes_per_message),
      check_quorum_(cfg.check_quorum), pre_vote_(cfg.pre_vote),
      reads_(cfg.reads), disable_forwarding_(cfg.disable_forwarding),
      heartbeat_timeout_(cfg.heartbeat_ticks),
      election_timeout_(cfg.election_ticks),
      lease_margin_(cfg.lease_margin_ticks),
      rng_(cfg.seed ^ (cfg.id * 0x2545f4914f6cdd1dULL)) {
  ENGRAM_CONSENSUS_CHECK(cfg.id != no_node, "a member needs an id");
  ENGRAM_CONSENSUS_CHECK(cfg.heartbeat_ticks > 0, "heartbeat_ticks > 0");
  ENGRAM_CONSENSUS_CHECK(cfg.election_ticks > cfg.heartbeat_ticks,
                         "election_ticks > heartbeat_ticks");
  ENGRAM_CONSENSUS_CHECK(cfg.max_inflight > 0, "max_inflight > 0");
  ENGRAM_CONSENSUS_CHECK(cfg.reads != read_mode::lease || cfg.check_quorum,
                         "lease reads need check_quorum");
  ENGRAM_CONSENSUS_CHECK(cfg.lease_margin_ticks >= 0
                             && cfg.lease_margin_ticks < cfg.election_ticks,
                         "0 <= lease_margin_ticks < election_ticks");
  auto [hs, cs] = store.initial_state();
  auto restored
      = conf_changer::restore(cs, log_.last_index(), tracker_.max_inflight());
  switch_to_config(std::move(restored));
  if (!hs.empty()) {
    // A snapshot is committed by definition: a crash between installing it
    // and storing the hard state leaves the stored commit behind it.
    ENGRAM_CONSENSUS_CHECK(hs.commit <= log_.last_index(),
                           "stored commit beyond the stored log");
    log_.committed = std::max(hs.commit, log_.committed);
    term_ = hs.term;
    vote_ = hs.vote;
  }
  // What the application applied is committed, whatever the stored commit
  // says (a commit-only change of the hard state need not be synced).
  if (cfg.applied > log_.committed && cfg.applied <= log_.last_index())
    log_.committed = cfg.applied;
  if (cfg.applied > 0)
    log_.applied_to(cfg.applied);
  become_follower(term_, no_node);
  fresh_start_ = reads_ == read_mode::lease;
}

// -- roles --------------------------------------------------------------------

void raft::reset(term_t term) {
  if (term_ != term) {
    term_ = term;
    vote_ = no_node;
  }
  lead_ = no_node;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_randomized_election_timeout();
  abort_leader_transfer();
  tracker_.reset_votes();
  auto last = log_.last_index();
  for (auto& [id, p] : tracker_.members) {
    bool learner = p.learner;
    p = progress{};
    p.next = last + 1;
    p.learner = learner;
    p.in_flight = inflights{tracker_.max_inflight()};
    if (id == id_)
      p.match = last;
  }
  pending_conf_index_ = 0;
  uncommitted_bytes_ = 0;
  pending_reads_.clear();
  reads_before_commit_.clear();
  round_ = 0;
  round_sent_.clear();
  round_acked_.clear();
  timeout_now_at_.reset();
  hand_over_attempts_ = 0;
}

void raft::reset_randomized_election_timeout() {
  randomized_election_timeout_
      = election_timeout_
        + static_cast<int>(splitmix64(rng_)
                           % static_cast<uint64_t>(election_timeout_));
}

void raft::become_follower(term_t term, node_id lead) {
  reset(term);
  lead_ = lead;
  state_ = role::follower;
}

void raft::become_pre_candidate() {
  ENGRAM_CONSENSUS_CHECK(state_ != role::leader,
                         "a leader cannot become pre-candidate");
  // Neither the term nor the vote change: a pre-vote disturbs nobody.
  tracker_.reset_votes();
  lead_ = no_node;
  state_ = role::pre_candidate;
}

void raft::become_candidate() {
  ENGRAM_CONSENSUS_CHECK(state_ != role::leader,
                         "a leader cannot become candidate");
  reset(term_ + 1);
  vote_ = id_;
  state_ = role::candidate;
}

void raft::become_leader() {
  ENGRAM_CONSENSUS_CHECK(state_ != role::follower,
                         "a follower cannot become leader directly");
  reset(term_);
  lead_ = id_;
  state_ = role::leader;
  auto self = tracker_.members.find(id_);
  ENGRAM_CONSENSUS_CHECK(self != tracker_.members.end(),
                         "a leader must be a member");
  self->second.become_replicate();
  self->second.recent_active = true;
  // Conservatively treat every entry up to here as possibly a pending
  // membership change: no new change until they are applied.
  pending_conf_index_ = log_.last_index();
  std::vector<entry> noop(1);
  bool appended = append_entries(noop);
  ENGRAM_CONSENSUS_CHECK(appended, "a new leader could not append its no-op");
}

bool raft::promotable() const {
  auto self = tracker_.members.find(id_);
  return self != tracker_.members.end() && !self->second.learner
         && tracker_.is_voter(id_) && !log_.unstable_snapshot().has_value();
}

// -- time ---------------------------------------------------------------------

void raft::tick() {
  ++now_;
  if (state_ == role::leader)
    tick_heartbeat();
  else
    tick_election();
}

void raft::tick_election() {
  ++election_elapsed_;
  if (election_elapsed_ >= election_timeout_)
    fresh_start_ = false;
  if (promotable() && past_election_timeout()) {
    election_elapsed_ = 0;
    message m;
    m.type = msg_type::hup;
    m.from = id_;
    step(std::move(m));
  }
}

void raft::tick_heartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= election_timeout_) {
    election_elapsed_ = 0;
    // A transfer that did not finish within an election timeout is over;
    // a removed leader tries again (with whom it heard from in the window
    // that just ended).
    if (state_ == role::leader && lead_transferee_ != no_node)
      abort_leader_transfer();
    if (state_ == role::leader && !tracker_.is_voter(id_))
      hand_over();
    if (check_quorum_ && state_ == role::leader) {
      message m;
      m.type = msg_type::check_quorum;
      m.from = id_;
      step(std::move(m));
    }
  }
  if (state_ != role::leader)
    return;
  if (heartbeat_elapsed_ >= heartbeat_timeout_) {
    heartbeat_elapsed_ = 0;
    message m;
    m.type = msg_type::beat;
    m.from = id_;
    step(std::move(m));
  }
}

// -- elections ----------------------------------------------------------------

void raft::hup(campaign_kind kind) {
  if (state_ == role::leader || !promotable())
    return;
  // A membership change committed but not applied decides who may vote:
  // wait for it.
  if (log_.committed > log_.applied) {
    std::vector<entry> pending;
    if (log_.slice(log_.applied + 1, log_.committed + 1, no_limit, pending)
        == storage_error::none) {
      for (auto& e : pending)
        if (e.type == entry_type::conf_change)
          return;
    }
  }
  campaign(kind);
}

void raft::campaign(campaign_kind kind) {
  if (!promotable())
    return;
  msg_type type;
  term_t term;
  if (kind == campaign_kind::pre_election) {
    become_pre_candidate();
    type = msg_type::pre_vote;
    // Ask for the term we would use, without moving to it.
    term = term_ + 1;
  } else {
    become_candidate();
    type = msg_type::vote;
    term = term_;
  }
  for (auto id : tracker_.config.voters.ids()) {
    if (id == id_) {
      if (poll(id_, true) == vote_result::won) {
        if (kind == campaign_kind::pre_election)
          campaign(campaign_kind::election);
        else
          become_leader();
        return;
      }
      continue;
    }
    message m;
    m.type = type;
    m.to = id;
    m.term = term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    if (kind == campaign_kind::transfer)
      m.context = std::string{transfer_context};
    if (tracker_.config.voters.joint())
      m.voters.assign(tracker_.config.voters.incoming.begin(),
                      tracker_.config.voters.incoming.end());
    send(std::move(m));
  }
}

vote_result raft::poll(node_id id, bool granted) {
  tracker_.record_vote(id, granted);
  return tracker_.tally();
}

// -- step ---------------------------------------------------------------------

step_error raft::step(message m) {
  if (m.term == 0) {
    // Local message (or forwarded proposal / read / transfer).
  } else if (m.term > term_) {
    if (m.type == msg_type::vote || m.type == msg_type::pre_vote) {
      bool force = m.context == transfer_context;
      // A member that just started may have been in a leader's lease
      // before it stopped: with lease reads, it waits one election timeout.
      bool in_lease = check_quorum_ && (lead_ != no_node || fresh_start_)
                      && election_elapsed_ < election_timeout_;
      // A member that heard from its leader within the election timeout
      // ignores campaigns: a partitioned node rejoining cannot depose a
      // healthy leader.
      if (!force && in_lease)
        return step_error::none;
    }
    if (m.type == msg_type::pre_vote) {
      // Never change the term for a pre-vote.
    } else if (m.type == msg_type::pre_vote_response && !m.reject) {
      // Granted pre-votes carry the future term; the term moves only when a
      // quorum granted them.
    } else if (m.type == msg_type::append || m.type == msg_type::heartbeat
               || m.type == msg_type::install_snapshot) {
      become_follower(m.term, m.from);
    } else {
      become_follower(m.term, no_node);
    }
  } else if (m.term < term_) {
    if ((check_quorum_ || pre_vote_)
        && (m.type == msg_type::heartbeat || m.type == msg_type::append)) {
      // A stale leader (e.g. after a partition) learns the new term from the
      // response and steps down; without it, it would keep a follower that
      // cannot elect anyone (pre-vote) isolated forever.
      message r;
      r.type = msg_type::append_response;
      r.to = m.from;
      send(std::move(r));
    } else if (m.type == msg_type::pre_vote) {
      message r;
      r.type = msg_type::pre_vote_response;
      r.to = m.from;
      r.term = term_;
      r.reject = true;
      send(std::move(r));
    }
    return step_error::none;
  }

  switch (m.type) {
    case msg_type::hup:
      hup(pre_vote_ ? campaign_kind::pre_election : campaign_kind::election);
      return step_error::none;
    case msg_type::vote:
    case msg_type::pre_vote: {
      bool can_vote = vote_ == m.from || (vote_ == no_node && lead_ == no_node)
                      || (m.type == msg_type::pre_vote && m.term > term_);
      message r;
      r.type = vote_response_type(m.type);
      r.to = m.from;
      if (can_vote
          && (log_.up_to_date(m.index, m.log_term) || left_joint_for(m))) {
        // Answer with the candidate's term: a granted pre-vote is for a term
        // this member has not reached.
        r.term = m.term;
        send(std::move(r));
        if (m.type == msg_type::vote) {
          election_elapsed_ = 0;
          vote_ = m.from;
        }
      } else if (term_ > 0) {
        // (A member that never had a term has nothing to tell.)
        r.term = term_;
        r.reject = true;
        send(std::move(r));
      }
      return step_error::none;
    }
    default: break;
  }
  switch (state_) {
    case role::leader: return step_leader(m);
    case role::candidate:
    case role::pre_candidate: return step_candidate(m);
    case role::follower: return step_follower(m);
  }
  return step_error::none;
}

// -- leader -------------------------------------------------------------------

step_error raft::step_leader(message& m) {
  switch (m.type) {
    case msg_type::beat: broadcast_heartbeat(); return step_error::none;
    case msg_type::check_quorum: {
      auto self = tracker_.members.find(id_);
      if (self != tracker_.members.end())
        self->second.recent_active = true;
      if (!tracker_.quorum_active())
        become_follower(term_, no_node);
      for (auto& [id, p] : tracker_.members)
        if (id != id_)
          p.recent_active = false;
      return step_error::none;
    }
    case msg_type::propose: {
      if (m.entries.empty())
        return step_error::invalid_message;
      if (tracker_.members.count(id_) == 0)
        return step_error::proposal_dropped;
      if (lead_transferee_ != no_node)
        return step_error::proposal_dropped;
      auto pending_before = pending_conf_index_;
      for (size_t i = 0; i < m.entries.size(); ++i) {
        auto& e = m.entries[i];
        if (e.type != entry_type::conf_change)
          continue;
        auto cc = decode_conf_change(e.data);
        bool refuse = !cc;
        if (cc) {
          bool pending = pending_conf_index_ > log_.applied;
          bool joint = tracker_.config.voters.joint();
          bool leaves = cc->leaves_joint();
          refuse = pending || (joint && !leaves) || (!joint && leaves);
        }
        if (refuse) {
          // Keep the position (the proposer's indexes stay right) as a
          // no-op.
          e = entry{};
        } else {
          pending_conf_index_ = log_.last_index() + i + 1;
        }
      }
      if (!append_entries(m.entries)) {
        pending_conf_index_ = pending_before;
        return step_error::proposal_dropped;
      }
      broadcast_append();
      return step_error::none;
    }
    case msg_type::read_index: {
      if (m.entries.size() != 1)
        return step_error::invalid_message;
      if (tracker_.sole_voter(id_)) {
        respond_to_read(m, log_.committed);
        return step_error::none;
      }
      // Until an entry of this term commits, the leader's commit index may
      // be behind what earlier leaders committed: hold the read.
      if (!committed_entry_in_current_term()) {
        reads_before_commit_.push_back(std::move(m));
        return step_error::none;
      }
      send_read_index_response(m);
      return step_error::none;
    }
    default: break;
  }

  auto found = tracker_.members.find(m.from);
  if (found == tracker_.members.end())
    return step_error::none;
  auto& pr = found->second;
  switch (m.type) {
    case msg_type::append_response: {
      pr.recent_active = true;
      if (m.reject) {
        auto next_probe = m.reject_hint;
        if (m.log_term > 0)
          next_probe = log_.find_conflict_by_term(m.reject_hint, m.log_term);
        if (pr.maybe_decrease_to(m.index, next_probe)) {
          if (pr.state == progress_state::replicate)
            pr.become_probe();
          send_append(m.from);
        }
        return step_error::none;
      }
      if (m.index > log_.last_index())
        return step_error::invalid_message;
      bool was_paused = pr.paused();
      // An answer that confirms the match of a follower being probed also
      // ends the probe (it may have been probed after being unreachable).
      if (!pr.maybe_update(m.index)
          && !(pr.match == m.index && pr.state == progress_state::probe))
        return step_error::none;
      switch (pr.state) {
        case progress_state::probe: pr.become_replicate(); break;
        case progress_state::snapshot:
          if (pr.match + 1 >= log_.first_index()) {
            pr.become_probe();
            pr.become_replicate();
          }
          break;
        case progress_state::replicate: pr.in_flight.free_le(m.index); break;
      }
      if (maybe_commit()) {
        broadcast_append();
      } else if (was_paused) {
        send_append(m.from);
      }
      // Fill the window: pipelining.
      while (tracker_.members.count(m.from) > 0
             && maybe_send_append(m.from, false)) {
      }
      auto again = tracker_.members.find(m.from);
      if (again != tracker_.members.end() && m.from == lead_transferee_
          && again->second.match == log_.last_index())
        send_timeout_now(m.from);
      return step_error::none;
    }
    case msg_type::heartbeat_response: {
      pr.recent_active = true;
      pr.probe_sent = false;
      if (pr.state == progress_state::replicate && pr.in_flight.full())
        pr.in_flight.free_first();
      if (pr.match < log_.last_index() || pr.state == progress_state::probe)
        send_append(m.from);
      // The answer names the heartbeat round it answers: reads registered
      // before a round a quorum answered are confirmed.
      if (m.index > round_)
        return step_error::invalid_message;
      auto& acked = round_acked_[m.from];
      acked = std::max<uint64_t>(acked, m.index);
      confirm_reads();
      return step_error::none;
    }
    case msg_type::snapshot_status:
      if (pr.state != progress_state::snapshot)
        return step_error::none;
      if (m.reject)
        pr.pending_snapshot = 0;
      pr.become_probe();
      // Wait for an answer before probing again.
      pr.probe_sent = true;
      return step_error::none;
    case msg_type::unreachable:
      // Appends were probably lost: fall back to probing.
      if (pr.state == progress_state::replicate)
        pr.become_probe();
      return step_error::none;
    case msg_type::transfer_leader: {
      if (pr.learner)
        return step_error::none;
      auto target = m.from;
      if (lead_transferee_ != no_node) {
        if (lead_transferee_ == target)
          return step_error::none;
        abort_leader_transfer();
      }
      if (target == id_)
        return step_error::none;
      // The transfer must finish within an election timeout.
      election_elapsed_ = 0;
      lead_transferee_ = target;
      if (pr.match == log_.last_index())
        send_timeout_now(target);
      else
        send_append(target);
      return step_error::none;
    }
    default: return step_error::none;
  }
}

// -- candidate ----------------------------------------------------------------

step_error raft::step_candidate(message& m) {
  auto my_response = state_ == role::pre_candidate ? msg_type::pre_vote_response
                                                   : msg_type::vote_response;
  switch (m.type) {
    case msg_type::propose: return step_error::proposal_dropped;
    case msg_type::append:
      become_follower(m.term, m.from);
      handle_append(m);
      return step_error::none;
    case msg_type::heartbeat:
      become_follower(m.term, m.from);
      handle_heartbeat(m);
      return step_error::none;
    case msg_type::install_snapshot:
      become_follower(m.term, m.from);
      handle_snapshot(m);
      return step_error::none;
    default: break;
  }
  if (m.type == my_response) {
    switch (poll(m.from, !m.reject)) {
      case vote_result::won:
        if (state_ == role::pre_candidate) {
          campaign(campaign_kind::election);
        } else {
          become_leader();
          broadcast_append();
        }
        break;
      case vote_result::lost:
        // A rejection carries a term ≥ ours: stay at our term as follower.
        become_follower(term_, no_node);
        break;
      case vote_result::pending: break;
    }
  }
  return step_error::none;
}

// -- follower -----------------------------------------------------------------

step_error raft::step_follower(message& m) {
  switch (m.type) {
    case msg_type::propose:
      if (lead_ == no_node || disable_forwarding_)
        return step_error::proposal_dropped;
      m.to = lead_;
      send(std::move(m));
      return step_error::none;
    case msg_type::append:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_append(m);
      return step_error::none;
    case msg_type::heartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_heartbeat(m);
      return step_error::none;
    case msg_type::install_snapshot:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_snapshot(m);
      return step_error::none;
    case msg_type::transfer_leader:
      if (lead_ == no_node)
        return step_error::proposal_dropped;
      m.to = lead_;
      send(std::move(m));
      return step_error::none;
    case msg_type::timeout_now:
      // Campaign now, skipping pre-vote: the leader asked for it.
      hup(campaign_kind::transfer);
      return step_error::none;
    case msg_type::read_index:
      if (lead_ == no_node)
        return step_error::proposal_dropped;
      m.to = lead_;
      send(std::move(m));
      return step_error::none;
    case msg_type::read_index_response:
      if (m.entries.size() != 1)
        return step_error::invalid_message;
      read_states_.push_back({m.index, std::move(m.entries[0].data)});
      return step_error::none;
    default: return step_error::none;
  }
}

void raft::handle_append(const message& m) {
  message r;
  r.type = msg_type::append_response;
  r.to = m.from;
  if (m.index < log_.committed) {
    // Entries at or below the commit are known: say how far we are.
    r.index = log_.committed;
    send(std::move(r));
    return;
  }
  bool refused = false;
  auto last
      = log_.maybe_append(m.index, m.log_term, m.commit, m.entries, refused);
  if (refused)
    return; // would overwrite committed entries: a broken leader
  if (last) {
    r.index = *last;
    send(std::move(r));
    return;
  }
  // Reject, with a hint: the largest index ≤ the probed one whose term is
  // ≤ the probed term, so the leader skips a whole term per round trip.
  auto hint = std::min(m.index, log_.last_index());
  hint = log_.find_conflict_by_term(hint, m.log_term);
  r.index = m.index;
  r.reject = true;
  r.reject_hint = hint;
  r.log_term = log_.term_or_zero(hint);
  send(std::move(r));
}

void raft::handle_heartbeat(const message& m) {
  // The leader sends min(match, commit): never beyond what this member
  // acknowledged. Clamp anyway, so a broken leader cannot break the log.
  log_.commit_to(std::min(m.commit, log_.last_index()));
  message r;
  r.type = msg_type::heartbeat_response;
  r.to = m.from;
  r.index = m.index; // the round answered
  send(std::move(r));
}

void raft::handle_snapshot(const message& m) {
  message r;
  r.type = msg_type::append_response;
  r.to = m.from;
  if (m.snap && restore(*m.snap)) {
    r.index = log_.last_index();
  } else {
    r.index = log_.committed;
  }
  send(std::move(r));
}

bool raft::restore(const snapshot& s) {
  if (s.meta.index <= log_.committed)
    return false;
  if (state_ != role::follower) {
    // Only followers install snapshots; step down and let the leader retry.
    become_follower(term_ + 1, no_node);
    return false;
  }
  // A snapshot whose membership leaves this member out is taken too: it
  // comes from the current leader, so it is a prefix of the log, and the
  // changes after it (a new member added, a removed one added back) follow.
  // Until they are applied this member is not promotable and stays quiet.
  auto& cs = s.meta.conf;
  // The log already holds the snapshot's last entry: fast-forward the
  // commit instead of dropping the log.
  if (log_.match_term(s.meta.index, s.meta.term)) {
    log_.commit_to(s.meta.index);
    return false;
  }
  log_.restore(s);
  tracker_ = progress_tracker{tracker_.max_inflight()};
  switch_to_config(
      conf_changer::restore(cs, log_.last_index(), tracker_.max_inflight()));
  auto self = tracker_.members.find(id_);
  if (self != tracker_.members.end())
    self->second.maybe_update(self->second.next - 1);
  return true;
}

// -- replication --------------------------------------------------------------

void raft::send(message m) {
  if (m.from == no_node)
    m.from = id_;
  bool vote_kind = m.type == msg_type::vote || m.type == msg_type::pre_vote
                   || m.type == msg_type::vote_response
                   || m.type == msg_type::pre_vote_response;
  if (vote_kind) {
    ENGRAM_CONSENSUS_CHECK(m.term != 0, "vote messages carry a term");
  } else if (m.type != msg_type::propose && m.type != msg_type::read_index
             && m.type != msg_type::transfer_leader) {
    m.term = term_;
  }
  msgs_.push_back(std::move(m));
}

bool raft::maybe_send_append(node_id to, bool send_if_empty) {
  auto found = tracker_.members.find(to);
  if (found == tracker_.members.end())
    return false;
  auto& pr = found->second;
  if (pr.paused())
    return false;
  message m;
  m.to = to;
  term_t prev_term = 0;
  auto term_err = log_.term(pr.next - 1, prev_term);
  std::vector<entry> ents;
  auto ents_err = log_.entries(pr.next, max_msg_bytes_, ents);
  if (ents.empty() && !send_if_empty)
    return false;
  if (term_err != storage_error::none || ents_err != storage_error::none) {
    // The entries were compacted: send the snapshot instead (only to a
    // follower heard from recently, so snapshots are not sent into a void).
    if (!pr.recent_active)
      return false;
    snapshot snap;
    if (log_.get_snapshot(snap) != storage_error::none || snap.empty())
      return false;
    m.type = msg_type::install_snapshot;
    pr.become_snapshot(snap.meta.index);
    m.snap = std::move(snap);
  } else {
    m.type = msg_type::append;
    m.index = pr.next - 1;
    m.log_term = prev_term;
    m.commit = log_.committed;
    if (!ents.empty()) {
      auto last = ents.back().index;
      switch (pr.state) {
        case progress_state::replicate:
          pr.optimistic_update(last);
          pr.in_flight.add(last);
          break;
        case progress_state::probe: pr.probe_sent = true; break;
        case progress_state::snapshot:
          ENGRAM_CONSENSUS_CHECK(false, "append sent in snapshot state");
      }
    }
    m.entries = std::move(ents);
  }
  send(std::move(m));
  return true;
}

void raft::send_heartbeat(node_id to) {
  auto& pr = tracker_.members.at(to);
  message m;
  m.type = msg_type::heartbeat;
  m.to = to;
  // Never beyond what the follower acknowledged: its log may not hold more.
  m.commit = std::min(pr.match, log_.committed);
  m.index = round_;
  send(std::move(m));
}

void raft::send_timeout_now(node_id to) {
  // The transferee campaigns past every member's lease: no lease reads
  // here until it surely did (it may win before this member hears).
  timeout_now_at_ = now_;
  message m;
  m.type = msg_type::timeout_now;
  m.to = to;
  send(std::move(m));
}

void raft::broadcast_append() {
  for (auto& [id, p] : tracker_.members)
    if (id != id_)
      send_append(id);
}

void raft::broadcast_heartbeat() {
  // A new round: its answers confirm leadership as of now.
  ++round_;
  round_sent_.emplace_back(round_, now_);
  while (round_sent_.size() > max_rounds_kept)
    round_sent_.pop_front();
  for (auto& [id, p] : tracker_.members)
    if (id != id_)
      send_heartbeat(id);
}

bool raft::append_entries(std::vector<entry>& entries) {
  auto last = log_.last_index();
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].term = term_;
    entries[i].index = last + 1 + i;
  }
  if (!increase_uncommitted(entries))
    return false;
  last = log_.append(entries);
  // A removed leader handing over has no progress of its own.
  auto self = tracker_.members.find(id_);
  if (self != tracker_.members.end())
    self->second.maybe_update(last);
  maybe_commit();
  return true;
}

bool raft::maybe_commit() {
  if (!log_.maybe_commit(tracker_.committed(), term_))
    return false;
  release_pending_reads();
  return true;
}

bool raft::committed_entry_in_current_term() const {
  return log_.term_or_zero(log_.committed) == term_;
}

bool raft::increase_uncommitted(const std::vector<entry>& entries) {
  uint64_t size = 0;
  for (auto& e : entries)
    size += payload_size(e);
  // Always accept one proposal when nothing is outstanding, however large,
  // and empty entries (no-ops, leaving a joint state) always.
  if (uncommitted_bytes_ > 0 && size > 0
      && uncommitted_bytes_ + size > max_uncommitted_bytes_)
    return false;
  uncommitted_bytes_ += size;
  return true;
}

void raft::reduce_uncommitted(const std::vector<entry>& entries) {
  if (state_ != role::leader)
    return;
  uint64_t size = 0;
  for (auto& e : entries)
    size += payload_size(e);
  uncommitted_bytes_
      = size > uncommitted_bytes_ ? 0 : uncommitted_bytes_ - size;
}

// -- reads --------------------------------------------------------------------

void raft::send_read_index_response(const message& m) {
  if (reads_ == read_mode::lease && lease_valid()) {
    respond_to_read(m, log_.committed);
    return;
  }
  // ReadIndex: the commit index now, confirmed once a quorum answered a
  // heartbeat round sent after this point.
  pending_reads_.push_back({m, log_.committed, round_ + 1});
  broadcast_heartbeat();
}

uint64_t raft::quorum_round() const {
  return tracker_.config.voters.committed(
      [this](node_id id) -> std::optional<index_t> {
        if (id == id_)
          return round_;
        auto i = round_acked_.find(id);
        if (i == round_acked_.end())
          return std::nullopt;
        return i->second;
      });
}

void raft::confirm_reads() {
  if (pending_reads_.empty())
    return;
  auto confirmed = quorum_round();
  while (!pending_reads_.empty() && pending_reads_.front().round <= confirmed) {
    auto read = std::move(pending_reads_.front());
    pending_reads_.pop_front();
    respond_to_read(read.request, read.index);
  }
}

bool raft::lease_valid() const {
  // Followers ignore campaigns for an election timeout after hearing the
  // leader (check-quorum), so no other leader can exist until an election
  // timeout after the last round a quorum answered was sent — minus a
  // margin for clocks that run at different rates. Never while leadership
  // is being handed over (the transferee's campaign overrides the lease),
  // and never for a leader that no longer votes.
  if (!check_quorum_ || lead_transferee_ != no_node || !tracker_.is_voter(id_))
    return false;
  if (timeout_now_at_ && now_ < *timeout_now_at_ + election_timeout_)
    return false;
  auto q = quorum_round();
  if (q == 0)
    return false;
  for (auto& [round, sent] : round_sent_)
    if (round == q)
      return now_ + static_cast<uint64_t>(lease_margin_)
             < sent + static_cast<uint64_t>(election_timeout_);
  return false;
}

void raft::respond_to_read(const message& req, index_t index) {
  if (req.from == no_node || req.from == id_) {
    read_states_.push_back({index, req.entries[0].data});
    return;
  }
  message r;
  r.type = msg_type::read_index_response;
  r.to = req.from;
  r.index = index;
  r.entries = req.entries;
  send(std::move(r));
}

void raft::release_pending_reads() {
  if (reads_before_commit_.empty() || !committed_entry_in_current_term())
    return;
  auto held = std::move(reads_before_commit_);
  reads_before_commit_.clear();
  for (auto& m : held)
    send_read_index_response(m);
}

// -- membership ---------------------------------------------------------------

step_error raft::apply_conf_change(const conf_change& cc, conf_state& out) {
  conf_changer changer{tracker_, log_.last_index()};
  changed_membership next;
  std::string error;
  bool ok = false;
  bool auto_leave = false;
  if (cc.leaves_joint())
    ok = changer.leave_joint(next, error);
  else if (cc.enters_joint(auto_leave))
    ok = changer.enter_joint(auto_leave, cc.changes, next, error);
  else
    ok = changer.simple(cc.changes, next, error);
  if (!ok) {
    out = tracker_.config.to_conf_state();
    return step_error::invalid_change;
  }
  out = switch_to_config(std::move(next));
  return step_error::none;
}

conf_state raft::switch_to_config(changed_membership m) {
  tracker_.config = std::move(m.config);
  tracker_.members = std::move(m.members);
  auto self = tracker_.members.find(id_);
  learner_ = self != tracker_.members.end() && self->second.learner;
  auto cs = tracker_.config.to_conf_state();
  if (state_ != role::leader)
    return cs;
  if (self == tracker_.members.end() || learner_ || !tracker_.is_voter(id_)) {
    // The leader was removed (or demoted). It keeps leading — replicating
    // and advancing the commit, so the remaining voters learn that the
    // change committed and hold every entry — and hands leadership to the
    // most up-to-date voter. Stepping down at once could leave the voters
    // in the old (joint) configuration, without the latest entries, and no
    // one able to win an election.
    if (maybe_commit())
      broadcast_append();
    hand_over();
    return cs;
  }
  if (cs.voters.empty())
    return cs;
  // The quorum changed: the commit may advance; new members need appends.
  if (maybe_commit()) {
    broadcast_append();
  } else {
    for (auto& [id, p] : tracker_.members)
      if (id != id_)
        maybe_send_append(id, false);
  }
  if (lead_transferee_ != no_node && !tracker_.is_voter(lead_transferee_))
    abort_leader_transfer();
  return cs;
}

bool raft::left_joint_for(const message& m) const {
  // This member applied the configuration C that ends a joint state and is
  // not a voter in it; the candidate is a voter of C still in the joint
  // state (old | C), so it needs a majority of C by the usual rule, and C's
  // voters check its log. Every entry committed after C's change entered
  // was committed by a majority of C, and the candidate's log holds
  // everything this member knows committed (its last entry is at least as
  // recent as our commit). The log entries this member has beyond its
  // commit were not committed by C, so they may be lost: refusing the vote
  // for them would leave C's voters unable to elect anyone once the
  // removed leader is gone.
  auto& cfg = tracker_.config;
  if (m.voters.empty() || cfg.voters.joint() || cfg.voters.contains(id_))
    return false;
  if (m.voters.size() != cfg.voters.incoming.size()
      || !std::equal(m.voters.begin(), m.voters.end(),
                     cfg.voters.incoming.begin()))
    return false;
  auto commit_term = log_.term_or_zero(log_.committed);
  return m.log_term > commit_term
         || (m.log_term == commit_term && m.index >= log_.committed);
}

void raft::hand_over() {
  // After a few attempts (one per election timeout) the voters elect a
  // leader among themselves instead.
  if (hand_over_attempts_ >= max_hand_over_attempts) {
    become_follower(term_, no_node);
    return;
  }
  // The voters heard from recently (all when none was), most up to date
  // first; each attempt tries the next one, so a voter that crashed is not
  // tried forever.
  std::vector<std::pair<index_t, node_id>> candidates;
  for (bool active_only : {true, false}) {
    for (auto id : tracker_.config.voters.ids()) {
      auto& p = tracker_.members.at(id);
      if (id != id_ && (!active_only || p.recent_active))
        candidates.emplace_back(p.match, id);
    }
    if (!candidates.empty())
      break;
  }
  if (candidates.empty())
    return;
  std::sort(
      candidates.begin(), candidates.end(), [](const auto& x, const auto& y) {
        return x.first != y.first ? x.first > y.first : x.second < y.second;
      });
  auto target
      = candidates[static_cast<size_t>(hand_over_attempts_) % candidates.size()]
            .second;
  ++hand_over_attempts_;
  message m;
  m.type = msg_type::transfer_leader;
  m.from = target;
  step_leader(m);
}

void raft::applied_to(index_t applied) {
  auto before = log_.applied;
  log_.applied_to(applied);
  // Leave an automatic joint state once the change entering it is applied.
  if (tracker_.config.auto_leave && before <= pending_conf_index_
      && applied >= pending_conf_index_ && state_ == role::leader) {
    std::vector<entry> leave(1);
    leave[0].type = entry_type::conf_change;
    bool appended = append_entries(leave);
    ENGRAM_CONSENSUS_CHECK(appended, "could not append leave-joint");
    pending_conf_index_ = log_.last_index();
    broadcast_append();
  }
}

} // namespace engram::consensus
