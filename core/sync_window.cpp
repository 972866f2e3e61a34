#include "core/sync_window.hpp"

#include <algorithm>

namespace engram {

uint64_t outbox::add(std::string frame, time_point now) {
  auto seq = next_++;
  bytes_ += frame.size();
  pending_.emplace(seq, entry{std::move(frame), now + retransmit_after_, 0});
  return seq;
}

bool outbox::acknowledge(uint64_t sequence) {
  auto i = pending_.find(sequence);
  if (i == pending_.end())
    return false;
  bytes_ -= i->second.frame.size();
  pending_.erase(i);
  return true;
}

std::vector<const std::string*> outbox::due(time_point now) {
  std::vector<const std::string*> result;
  for (auto i = pending_.begin(); i != pending_.end();) {
    auto& e = i->second;
    if (e.next_attempt > now) {
      ++i;
      continue;
    }
    if (++e.attempts >= max_attempts_) {
      bytes_ -= e.frame.size();
      ++expired_;
      i = pending_.erase(i);
      continue;
    }
    // Backoff: 2x, 4x, then 8x the interval between attempts.
    e.next_attempt = now + retransmit_after_ * (1u << std::min(e.attempts, 3u));
    result.push_back(&e.frame);
    ++i;
  }
  return result;
}

bool delivery_window::contains(uint64_t epoch, uint64_t sequence) const {
  if (epoch != epoch_)
    return false;
  return sequence <= contiguous_ || above_.count(sequence) > 0;
}

void outbox::clear() {
  pending_.clear();
  bytes_ = 0;
}

bool delivery_window::first_time(uint64_t epoch, uint64_t sequence) {
  if (epoch != epoch_) {
    if (epoch < epoch_)
      return true;
    epoch_ = epoch;
    contiguous_ = 0;
    above_.clear();
  }
  if (sequence <= contiguous_ || above_.count(sequence) > 0)
    return false;
  above_.insert(sequence);
  if (above_.size() > max_gap_entries) { // give the oldest gap up
    contiguous_ = *above_.begin();
    above_.erase(above_.begin());
  }
  while (!above_.empty() && *above_.begin() == contiguous_ + 1) {
    ++contiguous_;
    above_.erase(above_.begin());
  }
  return true;
}

} // namespace engram
