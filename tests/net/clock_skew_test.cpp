// Clock skew with real processes: n3's wall clock runs ten minutes ahead
// (libfaketime, the monotonic clock left alone). Both sides log the offset,
// they do not sync, n3 refuses writes (it is off from both its peers), and
// once n3's clock agrees again everything resumes.

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "cluster.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

const char* libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

bool has_key(cluster& c, size_t node, const std::string& key) {
  auto views = call<std::vector<memory_view>>(
      c.sys, c.instance(node, "ann", "probe"), 2s, actors::query_atom::value,
      query_filter{}, actors::code_of(consistency_level::local));
  if (!views)
    return false;
  for (auto& v : *views)
    if (auto* f = std::get_if<fact>(&v.value.body); f && f->key == key)
      return true;
  return false;
}

} // namespace

BOOST_AUTO_TEST_SUITE(clock_skew)

BOOST_AUTO_TEST_CASE(a_node_ten_minutes_ahead_is_refused_until_it_agrees) {
  BOOST_REQUIRE_MESSAGE(std::filesystem::exists(libfaketime),
                        "libfaketime is missing (Debian package faketime, "
                        "installed by scripts/setup.sh)");
  cluster c;
  auto skew_file = c.dir.sub("skew");
  std::ofstream{skew_file} << "+10m\n";
  c.env["n3"] = {std::string{"LD_PRELOAD="} + libfaketime,
                 "FAKETIME_TIMESTAMP_FILE=" + skew_file,
                 "FAKETIME_CACHE_DURATION=1", "FAKETIME_DONT_FAKE_MONOTONIC=1"};
  auto n1 = c.start("n1", {});
  auto n2 = c.start("n2", {c.nodes[n1].port});
  auto n3 = c.start("n3", {c.nodes[n1].port, c.nodes[n2].port});
  // Both sides say so, with the offset each measured.
  auto logged = [&](size_t i, const std::string& peer, long expected_ms) {
    auto log = c.nodes[i].proc.output();
    auto needle = "event=clock_offset_exceeded node=" + c.nodes[i].id
                  + " peer=" + peer + " offset_ms=";
    auto pos = log.find(needle);
    if (pos == std::string::npos)
      return false;
    auto ms = std::stol(log.substr(pos + needle.size()));
    return std::labs(ms - expected_ms) < 5000;
  };
  BOOST_REQUIRE_MESSAGE(until([&] {
                          return logged(n1, "n3", 600'000)
                                 && logged(n3, "n1", -600'000);
                        }),
                        c.nodes[n1].proc.output() << c.nodes[n3].proc.output());
  // n3 is off from both its peers once it measured n2 too.
  BOOST_CHECK(until([&] {
    auto status = call<actors::node_status>(c.sys, c.node(n3), 2s,
                                            actors::status_atom::value);
    return status
           && status->clock_refusal.find("writes are refused")
                  != std::string::npos;
  }));
  // n3 refuses writes; a write at n1 reaches n2 but not n3.
  auto refused
      = c.try_learn(c.instance(n3, "ann", "chat"), fact_of("from-n3", "x"));
  BOOST_REQUIRE(!refused);
  BOOST_CHECK_EQUAL(to_string(refused.error_value().code), "clock_offset");
  c.learn(c.instance(n1, "ann", "chat"), fact_of("from-n1", "1"));
  BOOST_CHECK(until([&] {
    return has_key(c, n2, "from-n1");
  }));
  // Three anti-entropy rounds later n3 still lacks it.
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline)
    BOOST_REQUIRE(!has_key(c, n3, "from-n1"));
  // n3's clock agrees again: it catches up and takes writes.
  std::ofstream{skew_file, std::ios::trunc} << "+0\n";
  BOOST_CHECK(until(
      [&] {
        return has_key(c, n3, "from-n1");
      },
      20s));
  BOOST_CHECK(until([&] {
    return c.try_learn(c.instance(n3, "ann", "chat"), fact_of("from-n3", "y"))
        .has_value();
  }));
  BOOST_CHECK(until([&] {
    return has_key(c, n1, "from-n3");
  }));
  BOOST_CHECK(until([&] {
    return c.nodes[n1].proc.output().find(
               "event=clock_offset_ok node=n1 peer=n3")
           != std::string::npos;
  }));
}

BOOST_AUTO_TEST_SUITE_END()
