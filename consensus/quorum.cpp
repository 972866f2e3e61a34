#include "consensus/quorum.hpp"

#include <algorithm>
#include <limits>

namespace engram::consensus {

index_t
committed_index(const majority_config& voters,
                const std::function<std::optional<index_t>(node_id)>& acked) {
  if (voters.empty())
    return std::numeric_limits<index_t>::max();
  std::vector<index_t> matched;
  matched.reserve(voters.size());
  for (auto id : voters)
    matched.push_back(acked(id).value_or(0));
  std::sort(matched.begin(), matched.end());
  // With n voters sorted ascending, the entry at n - (n/2 + 1) is held by a
  // majority: it and every entry above it.
  auto n = matched.size();
  return matched[n - (n / 2 + 1)];
}

vote_result
count_votes(const majority_config& voters,
            const std::function<std::optional<bool>(node_id)>& votes) {
  if (voters.empty())
    return vote_result::won;
  size_t granted = 0;
  size_t missing = 0;
  for (auto id : voters) {
    auto v = votes(id);
    if (!v)
      ++missing;
    else if (*v)
      ++granted;
  }
  auto quorum = voters.size() / 2 + 1;
  if (granted >= quorum)
    return vote_result::won;
  if (granted + missing >= quorum)
    return vote_result::pending;
  return vote_result::lost;
}

std::vector<node_id> joint_config::ids() const {
  std::set<node_id> all = incoming;
  all.insert(outgoing.begin(), outgoing.end());
  return {all.begin(), all.end()};
}

index_t joint_config::committed(
    const std::function<std::optional<index_t>(node_id)>& acked) const {
  return std::min(committed_index(incoming, acked),
                  committed_index(outgoing, acked));
}

vote_result joint_config::count(
    const std::function<std::optional<bool>(node_id)>& votes) const {
  auto r1 = count_votes(incoming, votes);
  auto r2 = count_votes(outgoing, votes);
  if (r1 == r2)
    return r1;
  if (r1 == vote_result::lost || r2 == vote_result::lost)
    return vote_result::lost;
  return vote_result::pending;
}

} // namespace engram::consensus
