#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace engram {

/// The sender's side of reliable delivery between two sync sessions: every
/// frame that must arrive gets a sequence number and stays here until the
/// peer acknowledges it; frames not acknowledged within the retransmission
/// timeout are due again (with the interval doubling per attempt, up to 8x).
/// The timeout adapts to the acknowledgements' round trips as TCP's does
/// (RFC 6298: smoothed RTT + 4 × its variation, samples only from frames
/// sent once), never below `retransmit_after`: a peer that takes long to
/// merge large batches is not flooded with copies of them. While
/// acknowledgements keep arriving (within a timeout of each other) a frame
/// is resent only once it is three timeouts overdue: a busy peer is working
/// through the window, not losing it.
/// Pure: the caller passes the time.
class outbox {
public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  /// Frames not acknowledged after `max_attempts` sends are given up (the
  /// caller falls back to anti-entropy).
  explicit outbox(duration retransmit_after, uint32_t max_attempts = 30)
      : retransmit_after_(retransmit_after), max_attempts_(max_attempts) {
    // nop
  }

  /// The sequence number the next frame gets.
  uint64_t next_sequence() const noexcept { return next_; }

  /// Keeps `frame` (sent at `now`) until acknowledged; returns its number.
  uint64_t add(std::string frame, time_point now);

  /// Drops an acknowledged frame; false when unknown (a duplicate ack).
  bool acknowledge(uint64_t sequence);

  /// As above, at `now`: a frame sent once gives a round-trip sample.
  bool acknowledge(uint64_t sequence, time_point now);

  /// The current retransmission timeout.
  duration timeout() const noexcept { return rto_; }

  /// The frames due for retransmission at `now` (marked as resent).
  std::vector<const std::string*> due(time_point now);

  /// How many frames were given up since the last call.
  size_t take_expired() noexcept {
    auto n = expired_;
    expired_ = 0;
    return n;
  }

  /// Frames waiting for an acknowledgement.
  size_t size() const noexcept { return pending_.size(); }

  /// True while frame `sequence` waits for its acknowledgement.
  bool contains(uint64_t sequence) const {
    return pending_.count(sequence) > 0;
  }

  /// True while frame `sequence` is on its way as far as the sender can
  /// tell at `now`: sent once and not due for a resend yet (see `due`). A
  /// frame resent, or overdue, may be lost.
  bool on_its_way(uint64_t sequence, time_point now) const;

  /// Bytes held.
  size_t bytes() const noexcept { return bytes_; }

  /// Forgets everything (the peer restarted: anti-entropy takes over).
  void clear();

private:
  struct entry {
    std::string frame;
    /// First and latest send.
    time_point sent;
    time_point last_sent;
    uint32_t attempts = 0;
  };
  /// True when `e` is due for a resend at `now`.
  bool overdue(const entry& e, time_point now) const;
  duration retransmit_after_;
  duration rto_ = retransmit_after_;
  duration srtt_{0};
  duration rttvar_{0};
  time_point last_ack_{};
  uint32_t max_attempts_;
  size_t expired_ = 0;
  uint64_t next_ = 1;
  size_t bytes_ = 0;
  std::map<uint64_t, entry> pending_;
};

/// The receiver's side: which sequence numbers of the sender's current
/// epoch (one epoch per sender incarnation) arrived, so a retransmitted or
/// duplicated frame is applied once. Memory stays bounded: numbers are held
/// as "all up to N" plus the few above N.
class delivery_window {
public:
  /// True the first time (epoch, sequence) is seen. A new epoch resets the
  /// window; frames of an older epoch than the current one count as new
  /// (their contents are idempotent state, applying them again is safe).
  bool first_time(uint64_t epoch, uint64_t sequence);

  /// True when (epoch, sequence) was admitted before (nothing recorded).
  bool contains(uint64_t epoch, uint64_t sequence) const;

  /// Numbers held above a gap before the gap is given up (a sender that
  /// skips numbers cannot grow the window without bound).
  static constexpr size_t max_gap_entries = 4096;

  uint64_t epoch() const noexcept { return epoch_; }

private:
  uint64_t epoch_ = 0;
  uint64_t contiguous_ = 0;
  std::set<uint64_t> above_;
};

} // namespace engram
