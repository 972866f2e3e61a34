// libFuzzer target: end-to-end encryption's untrusted bytes — a key
// binding, a sealed text, a sealed share — as a node or a client receives
// them. Nothing may crash, and nothing opens: opening needs a box made
// with the recipient's key by the holder of the sender's, which no input
// can forge.
#include "federation/share.hpp"

#include <cstdlib>
#include <string_view>

#include "e2e/e2e.hpp"

using namespace engram;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto keys = e2e::key_pair::generate();
  std::string_view in{reinterpret_cast<const char*>(data), size};
  // Unvouched bindings pass here: the box is what must not open.
  e2e::trust t{nullptr, nullptr, true};
  if (auto b = e2e::decode_binding(in))
    (void)e2e::verify(*b, b->agent, t, 0);
  if (e2e::open(in, "alice", "bob", keys, t, 0))
    std::abort(); // opened without the sender's secret key
  if (auto s = federation::decode_share(in)) {
    (void)federation::encode(*s);
    if (federation::open_share(*s, "bob", keys, t, 0))
      std::abort();
  }
  return 0;
}
