#pragma once

// Membership changes: the next configuration and progress map from the
// current ones, for simple changes (one voter at a time), for entering and
// leaving a joint configuration (Raft's joint consensus), and for restoring
// a configuration from a snapshot. Errors are values: a change that would
// break an invariant of membership is refused with the reason.

#include <string>

#include "consensus/progress.hpp"

namespace engram::consensus {

/// A membership and the progress map that goes with it.
struct changed_membership {
  membership config;
  std::map<node_id, progress> members;
};

/// Computes membership changes against a tracker without modifying it.
class conf_changer {
public:
  /// `last_index` seeds the progress of members added by a change.
  conf_changer(const progress_tracker& tracker, index_t last_index)
      : tracker_(tracker), last_index_(last_index) {}

  /// Enters a joint configuration: the current voters become the outgoing
  /// half, the changes apply to the incoming half.
  [[nodiscard]] bool enter_joint(bool auto_leave,
                                 const std::vector<single_change>& changes,
                                 changed_membership& out,
                                 std::string& error) const;

  /// Leaves the joint configuration: the outgoing half goes away, demoted
  /// voters become learners, members in neither half are dropped.
  [[nodiscard]] bool leave_joint(changed_membership& out,
                                 std::string& error) const;

  /// Applies changes that alter the voters by at most one member, outside a
  /// joint configuration.
  [[nodiscard]] bool simple(const std::vector<single_change>& changes,
                            changed_membership& out, std::string& error) const;

  /// The configuration a snapshot records, with fresh progress.
  static changed_membership restore(const conf_state& cs, index_t last_index,
                                    size_t max_inflight);

private:
  bool apply(changed_membership& m, const std::vector<single_change>& changes,
             std::string& error) const;
  void make_voter(changed_membership& m, node_id id) const;
  void make_learner(changed_membership& m, node_id id) const;
  void remove(changed_membership& m, node_id id) const;
  void init_progress(changed_membership& m, node_id id, bool learner) const;
  bool check(const changed_membership& m, std::string& error) const;

  const progress_tracker& tracker_;
  index_t last_index_;
};

} // namespace engram::consensus
