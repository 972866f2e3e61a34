#include "core/causal_context.hpp"

#include <algorithm>
#include <cassert>

namespace engram {

causal_context::causal_context(std::vector<dot> dots)
    : cloud_(std::move(dots)) {
  std::sort(cloud_.begin(), cloud_.end());
  cloud_.erase(std::unique(cloud_.begin(), cloud_.end()), cloud_.end());
  compact();
}

causal_context causal_context::from_parts(vector_clock clock,
                                          std::vector<dot> cloud) {
  if (cloud.empty()) {
    causal_context result;
    result.clock_ = std::move(clock);
    return result;
  }
  causal_context result{std::move(cloud)};
  result.clock_.merge(clock);
  result.compact();
  return result;
}

bool causal_context::contains(const dot& d) const noexcept {
  if (clock_.covers(d))
    return true;
  return std::binary_search(cloud_.begin(), cloud_.end(), d);
}

void causal_context::insert(const dot& d) {
  if (contains(d))
    return;
  if (clock_.get(d.replica) + 1 == d.counter) {
    clock_.set(d.replica, d.counter);
    // The new dot may make cloud dots contiguous.
    if (!cloud_.empty())
      compact();
    return;
  }
  cloud_.insert(std::lower_bound(cloud_.begin(), cloud_.end(), d), d);
}

dot causal_context::next_dot(replica_id replica) {
  assert(replica != 0);
  dot result{replica, clock_.get(replica) + 1};
  // Our own dots are contiguous: the cloud never holds one beyond the clock.
  assert(!std::binary_search(cloud_.begin(), cloud_.end(), result));
  clock_.set(replica, result.counter);
  if (!cloud_.empty())
    compact();
  return result;
}

void causal_context::join(const causal_context& other) {
  clock_.merge(other.clock_);
  if (!other.cloud_.empty()) {
    std::vector<dot> merged;
    merged.reserve(cloud_.size() + other.cloud_.size());
    std::set_union(cloud_.begin(), cloud_.end(), other.cloud_.begin(),
                   other.cloud_.end(), std::back_inserter(merged));
    cloud_ = std::move(merged);
  }
  if (!cloud_.empty())
    compact();
}

void causal_context::compact() {
  // Cloud dots are sorted by (replica, counter): one pass folds each run that
  // continues the contiguous prefix and drops dots the prefix covers.
  size_t out = 0;
  for (size_t i = 0; i < cloud_.size(); ++i) {
    auto& d = cloud_[i];
    auto have = clock_.get(d.replica);
    if (d.counter <= have)
      continue;
    if (d.counter == have + 1) {
      clock_.set(d.replica, d.counter);
      continue;
    }
    cloud_[out++] = d;
  }
  cloud_.resize(out);
}

vector_clock causal_context::upper_bound() const {
  auto result = clock_;
  for (auto& d : cloud_)
    if (d.counter > result.get(d.replica))
      result.set(d.replica, d.counter);
  return result;
}

} // namespace engram
