#include "crypto/aead.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace engram::crypto {

namespace {

constexpr uint8_t format_version = 1;
constexpr size_t header_size = 1 + 4;
constexpr size_t nonce_size = 12;
constexpr size_t tag_size = 16;

using cipher_ctx
    = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

cipher_ctx new_ctx() {
  return cipher_ctx{EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free};
}

bool fits_int(size_t n) noexcept { return n <= static_cast<size_t>(INT32_MAX); }

// Starts AES-256-GCM in `ctx` (encrypting or decrypting) with the nonce
// that follows the header at `sealed`, and feeds it the associated data:
// the header, then the caller's.
bool start_gcm(EVP_CIPHER_CTX* ctx, bool encrypt, const key256& key,
               const unsigned char* sealed, std::string_view aad) {
  int len = 0;
  int enc = encrypt ? 1 : 0;
  return ctx != nullptr
         && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr,
                              enc)
                == 1
         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
                                static_cast<int>(nonce_size), nullptr)
                == 1
         && EVP_CipherInit_ex(ctx, nullptr, nullptr, key.data(),
                              sealed + header_size, enc)
                == 1
         && EVP_CipherUpdate(ctx, nullptr, &len, sealed,
                             static_cast<int>(header_size))
                == 1
         && (aad.empty()
             || EVP_CipherUpdate(
                    ctx, nullptr, &len,
                    reinterpret_cast<const unsigned char*>(aad.data()),
                    static_cast<int>(aad.size()))
                    == 1);
}

} // namespace

key256::~key256() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

expected<key256> key256::random() {
  key256 k;
  if (RAND_bytes(k.bytes_.data(), static_cast<int>(k.bytes_.size())) != 1)
    return make_error(errc::storage_failed, "the random generator failed");
  return k;
}

expected<key256> key256::from_bytes(std::string_view bytes) {
  if (bytes.size() != size())
    return make_error(errc::invalid_argument,
                      "a key is 32 bytes, not " + std::to_string(bytes.size()));
  key256 k;
  std::copy(bytes.begin(), bytes.end(), k.bytes_.begin());
  return k;
}

expected<std::string> seal(const key256& key, uint32_t key_id,
                           std::string_view plaintext, std::string_view aad) {
  if (!fits_int(plaintext.size()) || !fits_int(aad.size()))
    return make_error(errc::limit_exceeded, "a value too large to seal");
  std::string out(header_size + nonce_size + plaintext.size() + tag_size, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  p[0] = format_version;
  for (int i = 0; i < 4; ++i)
    p[1 + i] = static_cast<unsigned char>((key_id >> (24 - 8 * i)) & 0xFF);
  auto* nonce = p + header_size;
  if (RAND_bytes(nonce, static_cast<int>(nonce_size)) != 1)
    return make_error(errc::storage_failed, "the random generator failed");
  auto ctx = new_ctx();
  int len = 0;
  bool ok = start_gcm(ctx.get(), true, key, p, aad);
  auto* body = nonce + nonce_size;
  int written = 0;
  ok = ok
       && (plaintext.empty()
           || EVP_EncryptUpdate(
                  ctx.get(), body, &written,
                  reinterpret_cast<const unsigned char*>(plaintext.data()),
                  static_cast<int>(plaintext.size()))
                  == 1)
       && EVP_EncryptFinal_ex(ctx.get(), body + written, &len) == 1
       && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG,
                              static_cast<int>(tag_size),
                              body + plaintext.size())
              == 1;
  if (!ok)
    return make_error(errc::storage_failed, "AES-256-GCM sealing failed");
  return out;
}

expected<uint32_t> sealed_key_id(std::string_view sealed) {
  if (sealed.size() < seal_overhead)
    return make_error(errc::corrupt_record,
                      "a sealed value is at least "
                          + std::to_string(seal_overhead) + " bytes, not "
                          + std::to_string(sealed.size()));
  auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  if (p[0] != format_version)
    return make_error(errc::corrupt_record,
                      "a sealed value of format " + std::to_string(p[0])
                          + " (this build reads format 1)");
  uint32_t id = 0;
  for (int i = 0; i < 4; ++i)
    id = (id << 8) | p[1 + i];
  return id;
}

expected<std::string> open(const key256& key, std::string_view sealed,
                           std::string_view aad) {
  if (auto id = sealed_key_id(sealed); !id)
    return id.error_value();
  if (!fits_int(sealed.size()) || !fits_int(aad.size()))
    return make_error(errc::limit_exceeded, "a value too large to open");
  auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  auto* nonce = p + header_size;
  auto* body = nonce + nonce_size;
  auto body_size = sealed.size() - seal_overhead;
  std::string out(body_size, '\0');
  auto ctx = new_ctx();
  int len = 0;
  // The tag is read-only to us; OpenSSL's ctrl takes a non-const pointer.
  unsigned char tag[tag_size];
  std::copy(body + body_size, body + body_size + tag_size, tag);
  bool ok = start_gcm(ctx.get(), false, key, p, aad);
  int written = 0;
  ok = ok
       && (body_size == 0
           || EVP_DecryptUpdate(ctx.get(),
                                reinterpret_cast<unsigned char*>(out.data()),
                                &written, body, static_cast<int>(body_size))
                  == 1)
       && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG,
                              static_cast<int>(tag_size), tag)
              == 1;
  // The tag is checked here: nothing decrypted is returned unless it holds.
  if (!ok
      || EVP_DecryptFinal_ex(
             ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + written,
             &len)
             != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return make_error(errc::corrupt_record,
                      "a sealed value does not authenticate (a wrong key, a "
                      "value moved to another key, or a changed byte)");
  }
  return out;
}

std::string keyed_hash(const key256& key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(),
           mac, &len)
      == nullptr)
    // Never an empty hash: every index key would be the same.
    throw std::runtime_error("HMAC-SHA256 failed");
  return {reinterpret_cast<const char*>(mac), len};
}

} // namespace engram::crypto
