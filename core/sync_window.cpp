#include "core/sync_window.hpp"

#include <algorithm>

namespace engram {

uint64_t outbox::add(std::string frame, time_point now) {
  auto seq = next_++;
  bytes_ += frame.size();
  pending_.emplace(seq, entry{std::move(frame), now, now, 0});
  return seq;
}

bool outbox::acknowledge(uint64_t sequence, time_point now) {
  auto i = pending_.find(sequence);
  if (i == pending_.end())
    return false;
  last_ack_ = std::max(last_ack_, now);
  if (i->second.attempts == 0 && now >= i->second.sent) { // Karn's rule
    auto sample = now - i->second.sent;
    if (srtt_.count() == 0) {
      srtt_ = sample;
      rttvar_ = sample / 2;
    } else {
      auto diff = srtt_ > sample ? srtt_ - sample : sample - srtt_;
      rttvar_ = (rttvar_ * 3 + diff) / 4;
      srtt_ = (srtt_ * 7 + sample) / 8;
    }
    constexpr duration ceiling = std::chrono::seconds{60};
    rto_ = std::min(ceiling, std::max(retransmit_after_, srtt_ + 4 * rttvar_));
  }
  return acknowledge(sequence);
}

bool outbox::acknowledge(uint64_t sequence) {
  auto i = pending_.find(sequence);
  if (i == pending_.end())
    return false;
  bytes_ -= i->second.frame.size();
  pending_.erase(i);
  return true;
}

bool outbox::overdue(const entry& e, time_point now) const {
  // Backoff: 2x, 4x, then 8x the timeout between attempts.
  auto next = e.last_sent + rto_ * (1u << std::min(e.attempts, 3u));
  bool progressing = last_ack_ != time_point{} && now - last_ack_ < rto_;
  return next <= now && !(progressing && next + 2 * rto_ > now);
}

bool outbox::on_its_way(uint64_t sequence, time_point now) const {
  auto i = pending_.find(sequence);
  return i != pending_.end() && i->second.attempts == 0
         && !overdue(i->second, now);
}

std::vector<const std::string*> outbox::due(time_point now) {
  std::vector<const std::string*> result;
  for (auto i = pending_.begin(); i != pending_.end();) {
    auto& e = i->second;
    if (!overdue(e, now)) {
      ++i;
      continue;
    }
    if (++e.attempts >= max_attempts_) {
      bytes_ -= e.frame.size();
      ++expired_;
      i = pending_.erase(i);
      continue;
    }
    e.last_sent = now;
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
