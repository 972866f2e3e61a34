// Damaged data directories, with real engramd processes: a truncated
// MANIFEST, a write-ahead log damaged in its middle after a SIGKILL, a
// directory of unrelated files. The node refuses each with exit 3 and a
// message naming the damage and the file, deletes nothing, and
// `engramd repair` (after keeping a copy) is the way forward.

#include <boost/test/unit_test.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "cluster.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::set<std::string> files_with(const std::string& dir,
                                 const std::string& suffix) {
  std::set<std::string> out;
  for (auto& e : fs::directory_iterator(dir)) {
    auto n = e.path().filename().string();
    if (n.size() >= suffix.size()
        && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.insert(n);
  }
  return out;
}

// A node n1 that learned `n` facts k0.. through its CLI-like client, then
// stopped with `sig` (SIGTERM flushes to table files; SIGKILL leaves the
// write-ahead log).
struct stored_node {
  cluster c;
  std::string dir = c.dir.sub("n1");
  std::vector<std::string> args;

  explicit stored_node(size_t n, int sig) {
    auto i = c.start("n1", {});
    args = c.argv("n1", {});
    args.erase(args.begin()); // the program itself
    auto inst = c.instance(i, "ann", "main");
    for (size_t k = 0; k < n; ++k)
      c.learn(inst,
              fact_of("k" + std::to_string(k), "value " + std::to_string(k)));
    c.nodes[i].proc.signal(sig);
    BOOST_REQUIRE(c.nodes[i].proc.wait(10s));
    c.nodes.clear();
  }

  // Starts the node on its store again (expecting it to run).
  size_t restart() { return c.start("n1", {}); }
};

} // namespace

BOOST_AUTO_TEST_SUITE(damaged_store)

BOOST_AUTO_TEST_CASE(a_truncated_manifest_is_refused_and_repaired) {
  stored_node n{30, SIGTERM};
  std::string manifest;
  std::getline(std::ifstream{n.dir + "/CURRENT"}, manifest);
  BOOST_REQUIRE(!manifest.empty());
  auto tables = files_with(n.dir, ".sst");
  BOOST_REQUIRE(!tables.empty());
  fs::resize_file(n.dir + "/" + manifest,
                  fs::file_size(n.dir + "/" + manifest) / 2);
  auto refused = run(n.args, n.c.dir.sub("refused.log"));
  BOOST_CHECK_EQUAL(refused.first, 3);
  BOOST_CHECK_MESSAGE(
      refused.second.find(manifest) != std::string::npos
          && refused.second.find("damaged_store") != std::string::npos
          && refused.second.find("engramd repair") != std::string::npos,
      refused.second);
  // Nothing was deleted.
  BOOST_CHECK(files_with(n.dir, ".sst") == tables);
  auto repaired
      = run({"repair", "--data-dir", n.dir}, n.c.dir.sub("repair.log"));
  BOOST_CHECK_EQUAL(repaired.first, 0);
  BOOST_CHECK_MESSAGE(repaired.second.find("copy of the damaged store")
                          != std::string::npos,
                      repaired.second);
  bool copied = false;
  for (auto& e : fs::directory_iterator(n.c.dir.path()))
    copied
        = copied || e.path().filename().string().rfind("n1.damaged-", 0) == 0;
  BOOST_CHECK(copied);
  auto i = n.restart();
  auto inst = n.c.instance(i, "ann", "main");
  BOOST_CHECK_EQUAL(n.c.count(inst), 30u);
}

BOOST_AUTO_TEST_CASE(a_log_damaged_in_its_middle_is_refused_and_repaired) {
  stored_node n{30, SIGKILL};
  // The largest write-ahead log holds the 30 writes.
  std::string log;
  uintmax_t size = 0;
  for (auto& f : files_with(n.dir, ".log"))
    if (auto s = fs::file_size(n.dir + "/" + f); s > size) {
      size = s;
      log = f;
    }
  BOOST_REQUIRE(size > 1024);
  {
    std::fstream f{n.dir + "/" + log,
                   std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(static_cast<std::streamoff>(size / 2));
    f.write("ZZZZZZZZZZZZZZZZ", 16);
  }
  auto refused = run(n.args, n.c.dir.sub("refused.log"));
  BOOST_CHECK_EQUAL(refused.first, 3);
  BOOST_CHECK_MESSAGE(refused.second.find(log) != std::string::npos
                          && refused.second.find("is damaged")
                                 != std::string::npos,
                      refused.second);
  BOOST_CHECK_EQUAL(fs::file_size(n.dir + "/" + log), size); // untouched
  auto repaired
      = run({"repair", "--data-dir", n.dir}, n.c.dir.sub("repair.log"));
  BOOST_CHECK_EQUAL(repaired.first, 0);
  BOOST_CHECK_MESSAGE(repaired.second.find("not recovered: " + log)
                          != std::string::npos,
                      repaired.second);
  auto i = n.restart();
  auto inst = n.c.instance(i, "ann", "main");
  auto held = n.c.read(inst, consistency_level::local);
  // What is served is what was written (no half or foreign records), and
  // the damaged record is missing.
  BOOST_CHECK_GT(held.size(), 0u);
  BOOST_CHECK_LT(held.size(), 30u);
  for (auto& v : held) {
    auto* f = std::get_if<fact>(&v.value.body);
    BOOST_REQUIRE(f != nullptr);
    BOOST_CHECK_EQUAL(f->value, "value " + f->key.substr(1));
  }
  // The replica keeps working: a new write is stored and served.
  n.c.learn(inst, fact_of("after", "repair"));
  BOOST_CHECK_EQUAL(n.c.count(inst), held.size() + 1);
}

BOOST_AUTO_TEST_CASE(a_directory_of_other_files_is_refused_untouched) {
  temp_dir dir;
  auto data = dir.sub("data");
  fs::create_directories(data);
  std::ofstream{data + "/notes.txt"} << "my notes\n";
  std::ofstream{data + "/000123.txt"} << "x\n";
  auto refused = run({"--node-id", "n1", "--data-dir", data, "--listen",
                      "127.0.0.1:0", "--insecure"},
                     dir.sub("out.log"));
  BOOST_CHECK_EQUAL(refused.first, 3);
  BOOST_CHECK_MESSAGE(refused.second.find("is not an Engram store")
                          != std::string::npos,
                      refused.second);
  BOOST_CHECK((files_with(data, "")
               == std::set<std::string>{"notes.txt", "000123.txt"}));
  auto checked = run(
      {"--node-id", "n1", "--data-dir", data, "--check-config", "--insecure"},
      dir.sub("check.log"));
  BOOST_CHECK_EQUAL(checked.first, 3);
}

BOOST_AUTO_TEST_SUITE_END()
