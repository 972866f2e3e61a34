#include "persistence/write_queue.hpp"

#include <exception>
#include <future>
#include <optional>
#include <utility>
#include <vector>

namespace engram::persistence {

write_queue::write_queue(std::shared_ptr<database> db, bool threaded)
    : db_(std::move(db)) {
  if (threaded)
    writer_ = std::thread{[this] {
      run();
    }};
}

write_queue::~write_queue() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  changed_.notify_all();
  if (writer_.joinable())
    writer_.join();
}

void write_queue::submit(prepared_write batch, callback done) {
  if (!batch.empty() && batch.owner() != db_.get()) {
    if (done)
      done(make_error(errc::invalid_argument,
                      "a write queue writes the batches of its own database "
                      "only"));
    return;
  }
  if (!threaded()) {
    auto written = batch.empty() ? expected<void>{} : batch.write();
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (written && !batch.empty()) {
        ++batches_;
        ++groups_;
      }
    }
    if (done)
      done(std::move(written));
    return;
  }
  {
    std::lock_guard<std::mutex> guard{mtx_};
    queued_.fetch_add(1, std::memory_order_acq_rel);
    queue_.push_back(item{std::move(batch), std::move(done)});
  }
  changed_.notify_one();
}

expected<void> write_queue::write_here(prepared_write& batch) {
  direct_.fetch_add(1, std::memory_order_acq_rel);
  auto written = batch.write();
  direct_.fetch_sub(1, std::memory_order_acq_rel);
  return written;
}

expected<void> write_queue::write(prepared_write batch) {
  std::promise<expected<void>> result;
  auto written = result.get_future();
  submit(std::move(batch), [&result](expected<void> r) {
    result.set_value(std::move(r));
  });
  return written.get();
}

void write_queue::drain() { (void)write(prepared_write{}); }

uint64_t write_queue::batches_written() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return batches_;
}

uint64_t write_queue::groups_written() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return groups_;
}

void write_queue::run() {
  std::vector<item> group;
  for (;;) {
    {
      std::unique_lock<std::mutex> guard{mtx_};
      changed_.wait(guard, [this] {
        return stopping_ || !queue_.empty();
      });
      if (queue_.empty())
        return; // stopping, and everything was written
      group.clear();
      while (!queue_.empty()) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    // One write of every batch, synced once (an empty batch is a barrier:
    // only waited for). A failure fails the whole group: none of it may be
    // acknowledged.
    std::vector<prepared_write*> batches;
    for (auto& i : group)
      if (!i.batch.empty())
        batches.push_back(&i.batch);
    std::optional<error> failed;
    uint64_t written = 0;
    if (auto r = prepared_write::write_all(batches, true); !r)
      failed = r.error_value();
    else
      written = batches.size();
    {
      std::lock_guard<std::mutex> guard{mtx_};
      batches_ += failed ? 0 : written;
      if (written > 0)
        ++groups_;
    }
    for (size_t i = 0; i < group.size(); ++i) {
      queued_.fetch_sub(1, std::memory_order_acq_rel);
      if (!group[i].done)
        continue;
      try {
        group[i].done(failed ? expected<void>{*failed} : expected<void>{});
      } catch (...) {
        // A callback must not stop the writer; it has nothing to report
        // to.
      }
    }
  }
}

} // namespace engram::persistence
