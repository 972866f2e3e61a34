#pragma once

#include "core/hlc.hpp"
#include "core/ids.hpp"

#include <tuple>
#include <utility>

namespace engram {

/// A last-writer-wins register. The winner is the write with the greatest
/// (HLC timestamp, writer replica, value) triple: HLC timestamps never depend
/// on synchronized wall clocks, and the writer id (then the value itself)
/// breaks ties deterministically, so every replica picks the same winner.
/// A delta is a register holding just the new write.
template<class T>
class lww_register {
public:
  lww_register() = default;

  lww_register(T value, hlc_timestamp stamp, replica_id writer)
      : value_(std::move(value)), stamp_(stamp), writer_(writer) {
    // nop
  }

  /// Writes `value` at `stamp` by `writer`; returns the delta to ship.
  lww_register assign(T value, hlc_timestamp stamp, replica_id writer) {
    lww_register delta{std::move(value), stamp, writer};
    join(delta);
    return delta;
  }

  /// Joins another state or delta into this one.
  void join(const lww_register& other) {
    if (wins_over(other, *this))
      *this = other;
  }

  const T& value() const noexcept { return value_; }

  hlc_timestamp stamp() const noexcept { return stamp_; }

  replica_id writer() const noexcept { return writer_; }

  friend bool operator==(const lww_register& x, const lww_register& y) {
    return x.stamp_ == y.stamp_ && x.writer_ == y.writer_
           && x.value_ == y.value_;
  }

private:
  static bool wins_over(const lww_register& x, const lww_register& y) {
    if (x.stamp_ != y.stamp_)
      return y.stamp_ < x.stamp_;
    if (x.writer_ != y.writer_)
      return x.writer_ > y.writer_;
    return y.value_ < x.value_;
  }

  T value_{};
  hlc_timestamp stamp_;
  replica_id writer_ = 0;
};

} // namespace engram
