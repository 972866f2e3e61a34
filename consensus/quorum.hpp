#pragma once

// Majorities and joint majorities: which index a configuration has
// committed and whether an election is won. Pure functions over sets.

#include <functional>
#include <set>

#include "consensus/types.hpp"

namespace engram::consensus {

/// A set of voters deciding by simple majority.
using majority_config = std::set<node_id>;

/// The outcome of a vote count.
enum class vote_result : uint8_t { pending, lost, won };

/// The largest index acknowledged by a majority of `voters`, given each
/// voter's acknowledged index (`acked` returns nullopt for "nothing yet").
/// An empty configuration commits everything (so a non-joint configuration
/// is a joint one with an empty second half).
index_t
committed_index(const majority_config& voters,
                const std::function<std::optional<index_t>(node_id)>& acked);

/// The state of an election in `voters` given the votes cast so far
/// (true = granted). An empty configuration wins.
vote_result
count_votes(const majority_config& voters,
            const std::function<std::optional<bool>(node_id)>& votes);

/// Two majorities that must both agree while a membership change is joint.
struct joint_config {
  majority_config incoming;
  majority_config outgoing;

  bool joint() const { return !outgoing.empty(); }

  /// Whether `id` votes in either half.
  bool contains(node_id id) const {
    return incoming.count(id) > 0 || outgoing.count(id) > 0;
  }

  /// Every voter of either half, ascending.
  std::vector<node_id> ids() const;

  index_t
  committed(const std::function<std::optional<index_t>(node_id)>& acked) const;

  vote_result
  count(const std::function<std::optional<bool>(node_id)>& votes) const;
};

} // namespace engram::consensus
