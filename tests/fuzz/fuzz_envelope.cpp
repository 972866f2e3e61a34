// libFuzzer target: envelope decoding of untrusted bytes, then decoding of
// the payload its type names. Nothing may crash; an accepted envelope must
// re-encode and decode to the same message; no input passes as signed by a
// key whose holder never signed it.
#include "messages/envelope.hpp"

#include <cstdlib>

using namespace engram;
using namespace engram::messages;

namespace {

template<class Payload>
void payload(const v1::SyncMessage& env, v1::MessageType type) {
  if (env.type() == type)
    (void)decode_payload<Payload>(env, type);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto signer = crypto::signing_key::generate();
  if (verify_envelope(
          std::string_view{reinterpret_cast<const char*>(data), size},
          signer->public_key(), messages::route("a", "b", "c")))
    std::abort(); // a signature nobody made
  limits bounds;
  bounds.max_frame_bytes = 1 << 16;
  auto env = decode_envelope(
      std::string_view{reinterpret_cast<const char*>(data), size}, bounds);
  if (!env)
    return 0;
  auto again = decode_envelope(serialize(*env), bounds);
  if (!again || serialize(*again) != serialize(*env))
    std::abort();
  payload<v1::Hello>(*env, v1::HELLO);
  payload<v1::SyncRequest>(*env, v1::SYNC_REQUEST);
  payload<v1::SyncResponse>(*env, v1::SYNC_RESPONSE);
  payload<v1::ConflictNotification>(*env, v1::CONFLICT_NOTIFICATION);
  payload<v1::JoinRequest>(*env, v1::JOIN_REQUEST);
  payload<v1::Share>(*env, v1::SHARE);
  return 0;
}
