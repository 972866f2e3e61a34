#pragma once

#include <cstdint>
#include <tuple>

namespace engram {

/// A hybrid logical clock timestamp (Kulkarni et al., 2014): a physical part
/// in microseconds plus a logical counter. Ordered lexicographically; the
/// order respects causality even when wall clocks are skewed or jump back.
struct hlc_timestamp {
  uint64_t wall_us = 0;
  uint32_t logical = 0;

  friend bool operator==(const hlc_timestamp& x,
                         const hlc_timestamp& y) noexcept {
    return x.wall_us == y.wall_us && x.logical == y.logical;
  }

  friend bool operator!=(const hlc_timestamp& x,
                         const hlc_timestamp& y) noexcept {
    return !(x == y);
  }

  friend bool operator<(const hlc_timestamp& x,
                        const hlc_timestamp& y) noexcept {
    return std::tie(x.wall_us, x.logical) < std::tie(y.wall_us, y.logical);
  }

  friend bool operator>(const hlc_timestamp& x,
                        const hlc_timestamp& y) noexcept {
    return y < x;
  }

  friend bool operator<=(const hlc_timestamp& x,
                         const hlc_timestamp& y) noexcept {
    return !(y < x);
  }
};

/// The source of physical time, injected so that cores never read the wall
/// clock themselves (simulation and tests substitute their own).
class physical_clock {
public:
  virtual ~physical_clock();

  /// Microseconds since the Unix epoch (or since any fixed origin).
  virtual uint64_t now_us() = 0;
};

/// The system's real-time clock.
class system_physical_clock final : public physical_clock {
public:
  uint64_t now_us() override;
};

/// A clock that only moves when told to: for tests and simulation. It may be
/// set backwards to model a wall clock that jumps.
class manual_clock final : public physical_clock {
public:
  explicit manual_clock(uint64_t start_us = 0) : now_(start_us) {
    // nop
  }

  uint64_t now_us() override { return now_; }

  void set(uint64_t us) noexcept { now_ = us; }

  void advance(uint64_t us) noexcept { now_ += us; }

private:
  uint64_t now_;
};

/// A hybrid logical clock over an injected physical clock. Timestamps it
/// issues strictly increase, and exceed every timestamp it has observed, even
/// when the physical clock goes backwards.
class hybrid_logical_clock {
public:
  /// Remote timestamps more than `max_forward_skew_us` ahead of the local
  /// physical clock do not drag this clock further than that bound, so a peer
  /// with a broken (or hostile) clock cannot push everyone into the future.
  /// Zero disables the bound.
  explicit hybrid_logical_clock(physical_clock& source,
                                uint64_t max_forward_skew_us = 300'000'000);

  /// Issues a timestamp for a local event.
  hlc_timestamp now();

  /// Observes a timestamp received from a peer and issues one for the
  /// receive event (greater than both the last local and the remote one,
  /// within the skew bound).
  hlc_timestamp update(hlc_timestamp remote);

  /// The last timestamp issued.
  hlc_timestamp last() const noexcept { return last_; }

private:
  physical_clock* source_;
  uint64_t max_forward_skew_us_;
  hlc_timestamp last_;
};

} // namespace engram
