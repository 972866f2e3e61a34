#include "consensus/conf_changer.hpp"

#include <algorithm>

namespace engram::consensus {

namespace {

changed_membership copy_of(const progress_tracker& t) {
  return {t.config, t.members};
}

size_t symmetric_difference(const majority_config& a,
                            const majority_config& b) {
  size_t n = 0;
  for (auto id : a)
    n += b.count(id) == 0 ? 1 : 0;
  for (auto id : b)
    n += a.count(id) == 0 ? 1 : 0;
  return n;
}

} // namespace

bool conf_changer::enter_joint(bool auto_leave,
                               const std::vector<single_change>& changes,
                               changed_membership& out,
                               std::string& error) const {
  out = copy_of(tracker_);
  if (out.config.voters.joint()) {
    error = "the configuration is already joint";
    return false;
  }
  if (out.config.voters.incoming.empty()) {
    error = "a configuration without voters cannot become joint";
    return false;
  }
  out.config.voters.outgoing = out.config.voters.incoming;
  if (!apply(out, changes, error))
    return false;
  out.config.auto_leave = auto_leave;
  return check(out, error);
}

bool conf_changer::leave_joint(changed_membership& out,
                               std::string& error) const {
  out = copy_of(tracker_);
  if (!out.config.voters.joint()) {
    error = "the configuration is not joint";
    return false;
  }
  for (auto id : out.config.learners_next) {
    out.config.learners.insert(id);
    auto i = out.members.find(id);
    if (i != out.members.end())
      i->second.learner = true;
  }
  out.config.learners_next.clear();
  for (auto id : out.config.voters.outgoing) {
    bool voter = out.config.voters.incoming.count(id) > 0;
    bool learner = out.config.learners.count(id) > 0;
    if (!voter && !learner)
      out.members.erase(id);
  }
  out.config.voters.outgoing.clear();
  out.config.auto_leave = false;
  return check(out, error);
}

bool conf_changer::simple(const std::vector<single_change>& changes,
                          changed_membership& out, std::string& error) const {
  out = copy_of(tracker_);
  if (out.config.voters.joint()) {
    error = "a simple change cannot apply to a joint configuration";
    return false;
  }
  if (!apply(out, changes, error))
    return false;
  if (symmetric_difference(tracker_.config.voters.incoming,
                           out.config.voters.incoming)
      > 1) {
    error = "more than one voter changed without joint consensus";
    return false;
  }
  return check(out, error);
}

changed_membership conf_changer::restore(const conf_state& cs,
                                         index_t last_index,
                                         size_t max_inflight) {
  changed_membership m;
  m.config.voters.incoming.insert(cs.voters.begin(), cs.voters.end());
  m.config.voters.outgoing.insert(cs.voters_outgoing.begin(),
                                  cs.voters_outgoing.end());
  m.config.learners.insert(cs.learners.begin(), cs.learners.end());
  m.config.learners_next.insert(cs.learners_next.begin(),
                                cs.learners_next.end());
  m.config.auto_leave = cs.auto_leave && m.config.voters.joint();
  auto add = [&](node_id id, bool learner) {
    if (m.members.count(id) > 0)
      return;
    progress p;
    p.next = last_index + 1;
    p.learner = learner;
    p.in_flight = inflights{max_inflight};
    m.members.emplace(id, std::move(p));
  };
  for (auto id : m.config.voters.ids())
    add(id, false);
  for (auto id : m.config.learners)
    add(id, true);
  for (auto id : m.config.learners_next)
    add(id, false);
  return m;
}

bool conf_changer::apply(changed_membership& m,
                         const std::vector<single_change>& changes,
                         std::string& error) const {
  for (auto& c : changes) {
    if (c.node == no_node) {
      error = "a membership change names node 0";
      return false;
    }
    switch (c.type) {
      case change_type::add_voter: make_voter(m, c.node); break;
      case change_type::add_learner: make_learner(m, c.node); break;
      case change_type::remove_node: remove(m, c.node); break;
    }
  }
  if (m.config.voters.incoming.empty()) {
    error = "the change removes every voter";
    return false;
  }
  return true;
}

void conf_changer::init_progress(changed_membership& m, node_id id,
                                 bool learner) const {
  progress p;
  // A new member is probed from the end of the log: the leader walks back
  // to where it matches (or sends a snapshot).
  p.next = last_index_ + 1;
  p.match = 0;
  p.learner = learner;
  p.in_flight = inflights{tracker_.max_inflight()};
  // Count it as active so check-quorum does not step down the leader before
  // the new member had a chance to answer.
  p.recent_active = true;
  m.members.emplace(id, std::move(p));
}

void conf_changer::make_voter(changed_membership& m, node_id id) const {
  auto i = m.members.find(id);
  if (i == m.members.end()) {
    init_progress(m, id, false);
  } else {
    i->second.learner = false;
  }
  m.config.learners.erase(id);
  m.config.learners_next.erase(id);
  m.config.voters.incoming.insert(id);
}

void conf_changer::make_learner(changed_membership& m, node_id id) const {
  auto i = m.members.find(id);
  if (i == m.members.end()) {
    init_progress(m, id, true);
    m.config.learners.insert(id);
    return;
  }
  if (i->second.learner)
    return;
  // Remove it as a voter first (keeping its progress), then add it back as
  // a learner: immediately, or when the joint state is left if it still
  // votes in the outgoing half.
  m.config.voters.incoming.erase(id);
  m.config.learners.erase(id);
  m.config.learners_next.erase(id);
  if (m.config.voters.outgoing.count(id) > 0) {
    m.config.learners_next.insert(id);
  } else {
    i->second.learner = true;
    m.config.learners.insert(id);
  }
}

void conf_changer::remove(changed_membership& m, node_id id) const {
  if (m.members.count(id) == 0)
    return;
  m.config.voters.incoming.erase(id);
  m.config.learners.erase(id);
  m.config.learners_next.erase(id);
  // An outgoing voter keeps its progress until the joint state is left.
  if (m.config.voters.outgoing.count(id) == 0)
    m.members.erase(id);
}

bool conf_changer::check(const changed_membership& m,
                         std::string& error) const {
  auto& c = m.config;
  for (auto id : c.voters.ids()) {
    if (m.members.count(id) == 0) {
      error = "a voter has no progress";
      return false;
    }
  }
  for (auto id : c.learners_next) {
    if (c.voters.outgoing.count(id) == 0 || m.members.count(id) == 0) {
      error = "a next learner is not an outgoing voter";
      return false;
    }
    if (m.members.at(id).learner) {
      error = "a next learner is already a learner";
      return false;
    }
  }
  for (auto id : c.learners) {
    if (m.members.count(id) == 0 || !m.members.at(id).learner) {
      error = "a learner has no learner progress";
      return false;
    }
    if (c.voters.contains(id)) {
      error = "a learner is also a voter";
      return false;
    }
  }
  if (!c.voters.joint() && (!c.learners_next.empty() || c.auto_leave)) {
    error = "a non-joint configuration has joint-only state";
    return false;
  }
  return true;
}

} // namespace engram::consensus
