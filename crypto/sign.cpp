#include "crypto/sign.hpp"

#include <openssl/evp.h>

#include <stdexcept>

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

std::string signed_digest(std::string_view context, std::string_view bytes) {
  unsigned char len[4];
  for (int i = 0; i < 4; ++i)
    len[i] = static_cast<unsigned char>(context.size() >> (24 - 8 * i));
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  auto* md = EVP_MD_CTX_new();
  bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1
            && EVP_DigestUpdate(md, len, sizeof(len)) == 1
            && EVP_DigestUpdate(md, context.data(), context.size()) == 1
            && EVP_DigestUpdate(md, bytes.data(), bytes.size()) == 1
            && EVP_DigestFinal_ex(md, out, &n) == 1;
  EVP_MD_CTX_free(md);
  if (!ok)
    throw std::runtime_error("SHA-256 failed");
  return "engram/v1 envelope\n"
         + std::string{reinterpret_cast<const char*>(out), n};
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
    // (Counted by the gap, not up to `seq`: no wrap at the largest.)
    auto gap = seq - high_;
    if (gap >= width) {
      seen_.fill(0);
    } else {
      for (uint64_t i = 1; i <= gap; ++i) {
        auto bit = (high_ + i) % width;
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
