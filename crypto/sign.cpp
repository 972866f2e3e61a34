#include "crypto/sign.hpp"

#include <openssl/evp.h>

namespace engram::crypto {

struct signing_key::impl {
  EVP_PKEY* key = nullptr;
  ~impl() { EVP_PKEY_free(key); }
};

expected<signing_key> signing_key::generate() {
  signing_key k;
  k.impl_ = std::make_unique<impl>();
  auto* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1
            && EVP_PKEY_keygen(ctx, &k.impl_->key) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok)
    return make_error(errc::storage_failed,
                      "cannot generate an Ed25519 key (the random generator "
                      "or OpenSSL failed)");
  k.public_.resize(ed25519_public_bytes);
  size_t len = k.public_.size();
  if (EVP_PKEY_get_raw_public_key(
          k.impl_->key, reinterpret_cast<unsigned char*>(k.public_.data()),
          &len)
          != 1
      || len != ed25519_public_bytes)
    return make_error(errc::storage_failed, "cannot read an Ed25519 key");
  return k;
}

signing_key::signing_key(signing_key&&) noexcept = default;
signing_key& signing_key::operator=(signing_key&&) noexcept = default;
signing_key::~signing_key() = default;

expected<std::string> signing_key::sign(std::string_view data) const {
  if (!impl_ || impl_->key == nullptr)
    return make_error(errc::invalid_argument, "no signing key");
  std::string sig(ed25519_signature_bytes, '\0');
  size_t len = sig.size();
  auto* md = EVP_MD_CTX_new();
  bool ok
      = md != nullptr
        && EVP_DigestSignInit(md, nullptr, nullptr, nullptr, impl_->key) == 1
        && EVP_DigestSign(
               md, reinterpret_cast<unsigned char*>(sig.data()), &len,
               reinterpret_cast<const unsigned char*>(data.data()), data.size())
               == 1
        && len == ed25519_signature_bytes;
  EVP_MD_CTX_free(md);
  if (!ok)
    return make_error(errc::storage_failed, "Ed25519 signing failed");
  return sig;
}

bool verify_ed25519(std::string_view public_key, std::string_view data,
                    std::string_view signature) {
  if (public_key.size() != ed25519_public_bytes
      || signature.size() != ed25519_signature_bytes)
    return false;
  auto* key = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr,
      reinterpret_cast<const unsigned char*>(public_key.data()),
      public_key.size());
  if (key == nullptr)
    return false;
  auto* md = EVP_MD_CTX_new();
  bool ok
      = md != nullptr
        && EVP_DigestVerifyInit(md, nullptr, nullptr, nullptr, key) == 1
        && EVP_DigestVerify(
               md, reinterpret_cast<const unsigned char*>(signature.data()),
               signature.size(),
               reinterpret_cast<const unsigned char*>(data.data()), data.size())
               == 1;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
  return ok;
}

bool replay_window::test(uint64_t seq) const noexcept {
  auto bit = seq % width;
  return (seen_[bit / 64] >> (bit % 64)) & 1u;
}

void replay_window::set(uint64_t seq) noexcept {
  auto bit = seq % width;
  seen_[bit / 64] |= uint64_t{1} << (bit % 64);
}

bool replay_window::accept(uint64_t seq) noexcept {
  if (seq == 0 || seq <= floor_)
    return false;
  if (seq > high_) {
    // Slide: the bits of the numbers skipped over are cleared.
    auto gap = seq - high_;
    if (gap >= width) {
      seen_.fill(0);
    } else {
      for (auto s = high_ + 1; s <= seq; ++s) {
        auto bit = s % width;
        seen_[bit / 64] &= ~(uint64_t{1} << (bit % 64));
      }
    }
    high_ = seq;
    set(seq);
    return true;
  }
  if (high_ - seq >= width)
    return false; // older than the window: cannot tell, refused
  if (test(seq))
    return false;
  set(seq);
  return true;
}

} // namespace engram::crypto
