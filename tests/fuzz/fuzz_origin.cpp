// libFuzzer target: a delta batch's proofs of origin as a node receives
// them (after the envelope's signature: from a proven peer that may lie).
// Nothing may crash, and no version is kept: every key must be bound by
// this run's CA, which signed nothing but the receiver's own certificate,
// so no input can prove a version.
#include "messages/codec.hpp"

#include <cstdlib>
#include <memory>
#include <string_view>

#include "crypto/sign.hpp"
#include "origin/book.hpp"
#include "pki/pki.hpp"

using namespace engram;

namespace {

template<class T>
T take(expected<T> x) {
  if (!x)
    std::abort();
  return std::move(*x);
}

struct world {
  pki::private_key ca_key = take(pki::private_key::generate());
  pki::certificate ca = take(pki::make_ca(ca_key, "fuzz"));
  pki::private_key node_key = take(pki::private_key::generate());
  pki::certificate cert
      = take(pki::issue(ca, ca_key, pki::role::node, "n2", node_key));
  std::shared_ptr<const crypto::signing_key> signer
      = std::make_shared<const crypto::signing_key>(
          take(crypto::signing_key::generate()));

  std::unique_ptr<origin::book> book() {
    origin::book::config cfg;
    cfg.node = "n2";
    cfg.agent = "alpha";
    cfg.key = signer;
    cfg.binding = take(
        origin::bind("n2", cert.to_pem(), node_key, signer->public_key()));
    cfg.own = {replica_of("n2", agent_partition("alpha"))};
    cfg.trust = {&ca, nullptr};
    return std::make_unique<origin::book>(std::move(cfg));
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static world w;
  static auto b = w.book();
  v1::DeltaBatch batch;
  std::string_view in{reinterpret_cast<const char*>(data), size};
  if (!messages::parse(in, batch, messages::limits{}, "DeltaBatch"))
    return 0;
  auto delta = messages::from_proto(batch, messages::limits{});
  if (!delta)
    return 0;
  auto checked = b->check(batch, *delta);
  if (checked && delta->version_count() != 0)
    std::abort(); // a version kept without a proof this run could make
  (void)b->take_unsaved();
  v1::DeltaBatch out;
  (void)b->prove(*delta, out);
  return 0;
}
