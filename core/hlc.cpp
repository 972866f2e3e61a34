#include "core/hlc.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

namespace engram {

physical_clock::~physical_clock() {
  // nop
}

uint64_t system_physical_clock::now_us() {
  using namespace std::chrono;
  auto since_epoch = system_clock::now().time_since_epoch();
  return static_cast<uint64_t>(
      duration_cast<microseconds>(since_epoch).count());
}

hybrid_logical_clock::hybrid_logical_clock(physical_clock& source,
                                           uint64_t max_forward_skew_us)
    : source_(&source), max_forward_skew_us_(max_forward_skew_us) {
  // nop
}

namespace {

// Advances `ts` by one logical tick; on logical overflow, moves to the next
// microsecond so that timestamps keep increasing.
hlc_timestamp tick(hlc_timestamp ts) {
  if (ts.logical == std::numeric_limits<uint32_t>::max())
    return {ts.wall_us + 1, 0};
  return {ts.wall_us, ts.logical + 1};
}

} // namespace

hlc_timestamp hybrid_logical_clock::now() {
  auto pt = source_->now_us();
  if (pt > last_.wall_us)
    last_ = {pt, 0};
  else
    last_ = tick(last_);
  return last_;
}

hlc_timestamp hybrid_logical_clock::update(hlc_timestamp remote) {
  auto pt = source_->now_us();
  if (max_forward_skew_us_ != 0 && remote.wall_us > pt
      && remote.wall_us - pt > max_forward_skew_us_)
    remote = {pt + max_forward_skew_us_, 0};
  auto wall = std::max({last_.wall_us, remote.wall_us, pt});
  if (wall == last_.wall_us && wall == remote.wall_us)
    last_ = tick({wall, std::max(last_.logical, remote.logical)});
  else if (wall == last_.wall_us)
    last_ = tick(last_);
  else if (wall == remote.wall_us)
    last_ = tick(remote);
  else
    last_ = {wall, 0};
  return last_;
}

} // namespace engram
