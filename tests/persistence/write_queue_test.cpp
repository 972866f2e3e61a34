#include "persistence/write_queue.hpp"

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "temp_dir.hpp"
#include "test_util.hpp"

using namespace engram;
using namespace engram::test;
using persistence::database;
using persistence::prepared_write;
using persistence::store;
using persistence::store_options;
using persistence::write_queue;

namespace {

const persistence::partition_options in_memory{false, false};

// A replica whose changes are prepared for a queue.
struct writer {
  std::shared_ptr<database> db;
  std::unique_ptr<store> st;
  node n{1};

  explicit writer(const std::string& path, bool sync = true) {
    store_options opts{path};
    opts.sync = sync;
    auto opened = database::open(opts);
    if (!opened)
      throw std::runtime_error(opened.error_value().to_string());
    db = *opened;
    auto attached = store::attach(db, "agent/w", 1, in_memory);
    if (!attached)
      throw std::runtime_error(attached.error_value().to_string());
    st = std::move(*attached);
  }

  prepared_write put(const std::string& key, const std::string& value) {
    auto delta = must(n.mem.put(make_fact(key, value)));
    auto batch = st->prepare(delta, n.mem);
    if (!batch)
      throw std::runtime_error(batch.error_value().to_string());
    return std::move(*batch);
  }
};

// The replica stored at `path` equals `expected`.
bool stored_equals(const std::string& path, const replica& expected) {
  auto db = database::open(store_options{path});
  BOOST_REQUIRE(db);
  auto st = store::attach(*db, "agent/w", 1, in_memory);
  BOOST_REQUIRE(st);
  node loaded{1};
  BOOST_REQUIRE((*st)->load(loaded.mem));
  return loaded.mem.same_state(expected);
}

} // namespace

BOOST_AUTO_TEST_SUITE(write_queue_order)

BOOST_AUTO_TEST_CASE(
    what_queues_during_a_write_is_written_as_one_synced_group) {
  temp_dir dir;
  auto path = dir.sub("db");
  writer w{path};
  std::mutex mtx;
  std::condition_variable cv;
  bool first_running = false;
  bool release = false;
  std::vector<int> done;
  {
    write_queue q{w.db};
    BOOST_CHECK(q.threaded());
    BOOST_CHECK(!q.busy());
    // The first batch's callback holds the writer until 50 more queued.
    // (Callbacks run on the queue's thread: no Boost.Test macro there, they
    // are not thread-safe; failures are recorded as -1.)
    q.submit(w.put("k0", "v"), [&](expected<void> ok) {
      std::unique_lock<std::mutex> guard{mtx};
      done.push_back(ok ? 0 : -1);
      first_running = true;
      cv.notify_all();
      cv.wait(guard, [&] {
        return release;
      });
    });
    {
      std::unique_lock<std::mutex> guard{mtx};
      cv.wait(guard, [&] {
        return first_running;
      });
    }
    // Updates of one key among new ones: order matters.
    for (int i = 1; i <= 50; ++i)
      q.submit(w.put(i % 2 == 0 ? "k0" : "k" + std::to_string(i),
                     "v" + std::to_string(i)),
               [&, i](expected<void> ok) {
                 std::lock_guard<std::mutex> guard{mtx};
                 done.push_back(ok ? i : -1);
               });
    BOOST_CHECK(q.busy()); // 50 queued behind the first
    {
      std::lock_guard<std::mutex> guard{mtx};
      release = true;
    }
    cv.notify_all();
    q.drain();
    BOOST_CHECK(!q.busy());
    BOOST_CHECK_EQUAL(q.batches_written(), 51u);
    BOOST_CHECK_EQUAL(q.groups_written(), 2u);
    // A write on the caller's thread, after the queue's.
    auto last = w.put("k0", "here");
    BOOST_REQUIRE(q.write_here(last));
  }
  std::vector<int> expected(51);
  for (int i = 0; i <= 50; ++i)
    expected[static_cast<size_t>(i)] = i;
  BOOST_CHECK(done == expected);
  auto& mem = w.n.mem;
  w.st.reset();
  w.db.reset();
  BOOST_CHECK(stored_equals(path, mem));
}

BOOST_AUTO_TEST_CASE(a_synchronous_write_waits_for_what_was_queued_before) {
  temp_dir dir;
  auto path = dir.sub("db");
  writer w{path, false};
  write_queue q{w.db};
  std::atomic<int> callbacks{0};
  std::atomic<int> failed{0};
  for (int i = 0; i < 20; ++i)
    q.submit(w.put("k" + std::to_string(i % 5), std::to_string(i)),
             // On the queue's thread: no Boost.Test macro here (they are
             // not thread-safe), the main thread checks the counts.
             [&](expected<void> ok) {
               if (!ok)
                 ++failed;
               ++callbacks;
             });
  BOOST_REQUIRE(q.write(w.put("last", "v")));
  BOOST_CHECK_EQUAL(callbacks.load(), 20);
  BOOST_CHECK_EQUAL(failed.load(), 0);
  BOOST_CHECK_EQUAL(q.batches_written(), 21u);
  // Written twice is refused.
  auto batch = w.put("again", "v");
  BOOST_REQUIRE(batch.write());
  auto twice = batch.write();
  BOOST_REQUIRE(!twice);
  BOOST_CHECK(twice.error_value().message.find("written already")
              != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_indexed_partition_prepares_after_the_last_write) {
  // Its `prepare` reads the stored records (to move index keys): a batch
  // prepared while the one before is unwritten would read stale ones.
  temp_dir dir;
  auto db = database::open(store_options{dir.sub("db")});
  BOOST_REQUIRE(db);
  auto st = store::attach(*db, "agent/i", 1);
  BOOST_REQUIRE(st);
  node n{1};
  auto first = (*st)->prepare(must(n.mem.put(make_fact("k", "1"))), n.mem);
  BOOST_REQUIRE(first);
  auto second = (*st)->prepare(must(n.mem.put(make_fact("k", "2"))), n.mem);
  BOOST_REQUIRE(!second);
  BOOST_CHECK(second.error_value().message.find("keeps an index")
              != std::string::npos);
  BOOST_REQUIRE(first->write());
  auto third = (*st)->prepare(must(n.mem.put(make_fact("k", "3"))), n.mem);
  BOOST_REQUIRE(third);
  BOOST_REQUIRE(third->write());
  auto scoped = (*st)->by_scope(memory_scope::agent("alpha"));
  BOOST_REQUIRE(scoped);
  BOOST_CHECK_EQUAL(scoped->size(), 1u);
}

BOOST_AUTO_TEST_CASE(a_batch_of_another_database_is_refused) {
  temp_dir dir;
  writer a{dir.sub("a"), false};
  writer b{dir.sub("b"), false};
  write_queue q{a.db};
  std::optional<error> refused;
  q.submit(b.put("k", "v"), [&](expected<void> ok) {
    if (!ok)
      refused = ok.error_value();
  });
  BOOST_REQUIRE(refused);
  BOOST_CHECK(refused->code == errc::invalid_argument);
  BOOST_CHECK(refused->message.find("its own database") != std::string::npos);
  q.drain();
  BOOST_CHECK_EQUAL(q.batches_written(), 0u);
}

BOOST_AUTO_TEST_CASE(unthreaded_it_writes_before_submit_returns) {
  temp_dir dir;
  auto path = dir.sub("db");
  writer w{path, false};
  {
    write_queue q{w.db, false};
    BOOST_CHECK(!q.threaded());
    bool written = false;
    q.submit(w.put("k", "v"), [&](expected<void> ok) {
      written = static_cast<bool>(ok);
    });
    BOOST_CHECK(written); // deterministic: no other thread involved
    BOOST_REQUIRE(q.write(w.put("k2", "v")));
    q.drain();
    BOOST_CHECK_EQUAL(q.batches_written(), 2u);
  }
  auto& mem = w.n.mem;
  w.st.reset();
  w.db.reset();
  BOOST_CHECK(stored_equals(path, mem));
}

BOOST_AUTO_TEST_SUITE_END()
