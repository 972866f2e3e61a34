#include "core/replica.hpp"
#include "messages/codec.hpp"

#include <cstdio>
int main() {
  engram::system_physical_clock wall;
  engram::hybrid_logical_clock hlc{wall};
  engram::replica r{1, hlc};
  engram::engram_record e;
  e.scope = engram::memory_scope::agent("a");
  e.body = engram::fact{"k", "v"};
  auto d = r.put(e);
  if (!d || !engram::messages::decode_delta(engram::messages::encode_delta(*d)))
    return 1;
  std::printf("%s %zu\n", d ? "ok" : "fail", r.size());
  return d && r.size() == 1 ? 0 : 1;
}
