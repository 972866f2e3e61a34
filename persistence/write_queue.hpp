#pragma once

#include "core/error.hpp"
#include "persistence/store.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace engram::persistence {

/// Writes prepared batches in the order they were queued, on its own
/// thread, so the thread that owns a replica prepares the next batch while
/// the last one is written (and synced). What queued while a write was in
/// progress is written as one group, synced once, on its last batch: the
/// write-ahead log is synced up to there, so every batch of the group is
/// durable when its callback runs.
///
/// One queue per database keeps every replica's batches in order; a
/// replica's owner that also writes synchronously (`write`) stays in order
/// with what it queued before.
class write_queue {
public:
  /// Runs on the queue's thread once the batch was written (or failed).
  /// Keep it short: post a message, do not write.
  using callback = std::function<void(expected<void>)>;

  /// A queue for the batches of stores attached to `db`. Not `threaded`,
  /// it writes each batch on the caller's thread before `submit` returns
  /// (and runs its callback there): deterministic, for simulations.
  explicit write_queue(std::shared_ptr<database> db, bool threaded = true);

  /// Writes everything queued, then stops.
  ~write_queue();

  write_queue(const write_queue&) = delete;
  write_queue& operator=(const write_queue&) = delete;

  /// Queues `batch`; `done` runs when it was written. A batch of another
  /// database is refused (`done` hears why).
  void submit(prepared_write batch, callback done);

  /// Queues `batch` and waits until it was written.
  expected<void> write(prepared_write batch);

  /// Waits until everything queued before was written.
  void drain();

  /// Writes on a thread of its own.
  bool threaded() const noexcept { return writer_.joinable(); }

  /// Writes (and syncs) `batch` on the caller's thread, counted as a write
  /// in progress: for a lone write, which a thread hop would only delay.
  expected<void> write_here(prepared_write& batch);

  /// Whether a batch is queued or being written, here or by `write_here`:
  /// a write now would wait for a sync anyway, so queueing it (to share
  /// the next sync) costs nothing and frees the caller's thread.
  bool busy() const noexcept {
    return queued_.load(std::memory_order_acquire) > 0
           || direct_.load(std::memory_order_acquire) > 0;
  }

  /// Batches written so far, and the writes (syncs) that wrote them.
  uint64_t batches_written() const;
  uint64_t groups_written() const;

private:
  struct item {
    prepared_write batch;
    callback done;
  };

  void run();

  std::shared_ptr<database> db_;
  mutable std::mutex mtx_;
  std::condition_variable changed_;
  std::deque<item> queue_;
  bool stopping_ = false;
  uint64_t batches_ = 0;
  uint64_t groups_ = 0;
  /// Batches submitted whose callback has not run; writes by write_here in
  /// progress.
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint32_t> direct_{0};
  std::thread writer_;
};

} // namespace engram::persistence
