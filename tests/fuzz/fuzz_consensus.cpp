// libFuzzer target: Raft messages as a member receives them from peers that
// may lie — decoded from bytes (messages/consensus_codec) and stepped into a
// member with a committed log, its readies persisted and applied, with
// ticks, proposals and reads in between. Nothing may crash (a broken
// invariant aborts), and entries committed before the run never change.
//
// Input: records of [op byte][length: 2 bytes LE][payload]. op % 4: 0 tick,
// 1 propose the payload, 2 read, 3 step the payload as a RaftMessage.
#include "messages/consensus_codec.hpp"

#include <cstdlib>
#include <string_view>

#include "consensus/raw_node.hpp"

using namespace engram;
namespace c = engram::consensus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  c::memory_storage disk;
  c::snapshot boot;
  boot.meta.index = 1;
  boot.meta.term = 1;
  boot.meta.conf.voters = {1, 2, 3};
  (void)disk.apply_snapshot(boot);
  std::vector<c::entry> log;
  for (c::index_t i = 2; i <= 4; ++i) {
    c::entry e;
    e.index = i;
    e.term = 2;
    e.data = "e" + std::to_string(i);
    log.push_back(e);
  }
  if (!disk.append(log))
    std::abort();
  disk.set_hard_state({2, 2, 3});
  c::config cfg;
  cfg.id = 1;
  cfg.election_ticks = 4;
  cfg.applied = 1;
  cfg.max_uncommitted_bytes = 1 << 16;
  c::raw_node node{cfg, disk};
  auto process = [&] {
    for (int rounds = 0; rounds < 64 && node.has_ready(); ++rounds) {
      auto rd = node.get_ready();
      if (rd.snap)
        (void)disk.apply_snapshot(*rd.snap);
      if (!rd.entries.empty() && !disk.append(rd.entries))
        std::abort(); // the machine handed out entries that do not follow
      if (rd.hard)
        disk.set_hard_state(*rd.hard);
      for (auto& e : rd.committed) {
        if (e.type != c::entry_type::conf_change)
          continue;
        auto cc = c::decode_conf_change(e.data);
        if (!cc)
          std::abort(); // committed a change that does not decode
        c::conf_state cs;
        (void)node.apply_conf_change(*cc, cs);
      }
      node.advance(rd);
    }
  };
  size_t at = 0;
  while (at + 3 <= size) {
    auto op = data[at] % 4;
    size_t len = data[at + 1] | (static_cast<size_t>(data[at + 2]) << 8);
    at += 3;
    len = std::min(len, size - at);
    std::string_view bytes{reinterpret_cast<const char*>(data + at), len};
    at += len;
    switch (op) {
      case 0: node.tick(); break;
      case 1: (void)node.propose(std::string{bytes}); break;
      case 2: (void)node.read_index(std::string{bytes}); break;
      default:
        if (auto m = messages::decode_message(bytes))
          (void)node.step(std::move(*m));
        break;
    }
    process();
  }
  // What was committed before the run is still there, unchanged (or in a
  // snapshot that covers it).
  for (c::index_t i = 2; i <= 3; ++i) {
    c::term_t t = 0;
    auto err = disk.term(i, t);
    if (err == c::storage_error::none && t != 2)
      std::abort();
    if (err == c::storage_error::unavailable)
      std::abort();
  }
  return 0;
}
