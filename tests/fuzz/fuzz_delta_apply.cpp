// libFuzzer target: decode a delta batch from untrusted bytes and join it
// into a replica holding data. Nothing may crash; a refused delta leaves the
// replica unchanged; an accepted one leaves only valid engrams behind.
#include "messages/codec.hpp"

#include <cstdlib>

using namespace engram;
using namespace engram::messages;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  manual_clock wall{1'000'000};
  hybrid_logical_clock hlc{wall};
  replica target{99, hlc};
  engram_record mine;
  mine.scope = memory_scope::agent("fuzz");
  mine.body = fact{"mine", "1"};
  if (!target.put(mine))
    std::abort();
  auto before = target.digest();
  limits bounds;
  bounds.max_frame_bytes = 1 << 16;
  bounds.max_elements = 1024;
  v1::DeltaBatch batch;
  if (!parse(std::string_view{reinterpret_cast<const char*>(data), size}, batch,
             bounds, "DeltaBatch"))
    return 0;
  // Update, Delete and Archive deltas are expanded against the target.
  auto decoded = decode_against(batch, target, bounds);
  if (!decoded)
    return 0;
  auto* delta = &decoded->delta;
  auto report = target.join(*delta);
  if (!report && target.digest() != before)
    std::abort(); // a refused delta must change nothing
  target.for_each([](const engram_id& id, const std::vector<version>& vs) {
    for (auto& v : vs)
      if (v.value.id != id || !validate(v.value))
        std::abort();
  });
  return 0;
}
