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
  for (auto& [seq, e] : pending_) {
    if (e.next_attempt > now)
      continue;
    e.attempts = std::min<uint32_t>(e.attempts + 1, 3);
    e.next_attempt = now + retransmit_after_ * (1u << e.attempts);
    result.push_back(&e.frame);
  }
  return result;
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
  while (!above_.empty() && *above_.begin() == contiguous_ + 1) {
    ++contiguous_;
    above_.erase(above_.begin());
  }
  return true;
}

} // namespace engram
