#pragma once

// A closed store opened with plain RocksDB, as a tool (or an attacker)
// would: what the tests read and change beneath the store.

#include <boost/test/unit_test.hpp>
#include <rocksdb/db.h>

#include <string>
#include <vector>

namespace engram::test {

// Opens a closed store with plain RocksDB and passes it to `f(db, family)`,
// where `family(name)` is the handle of a column family.
template<class F>
void with_raw(const std::string& path, F f) {
  std::vector<std::string> names{"default",   "engrams", "clocks",
                                 "delta_log", "index",   "meta"};
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (auto& name : names)
    cfs.emplace_back(name, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::Open(rocksdb::DBOptions{}, path, cfs, &handles, &raw);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  f(raw, [&](const std::string& name) {
    size_t i = 0;
    while (names[i] != name)
      ++i;
    return handles[i];
  });
  for (auto* h : handles)
    raw->DestroyColumnFamilyHandle(h);
  delete raw;
}

} // namespace engram::test
