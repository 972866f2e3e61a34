#include "crypto/aead.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sodium.h>

#include <array>
#include <atomic>
#include <memory>
#include <stdexcept>

namespace engram::crypto {

namespace {

constexpr uint8_t format_version = 1;
constexpr size_t header_size = 1 + 4;
constexpr size_t nonce_size = 12;
constexpr size_t tag_size = 16;

bool fits_int(size_t n) noexcept { return n <= static_cast<size_t>(INT32_MAX); }

// The cipher, fetched once (an implicit fetch per call costs more than
// sealing a small value).
const EVP_CIPHER* aes_256_gcm() {
  static EVP_CIPHER* fetched
      = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return fetched != nullptr ? fetched : EVP_aes_256_gcm();
}

// A context per thread and direction that keeps the expanded key of the
// last key it was given: sealing or opening under the same key again sets
// only the nonce. It holds a copy of that key (wiped when the thread ends)
// and compares the whole key, never an address.
struct keyed_ctx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::array<uint8_t, 32> key{};
  bool keyed = false;

  keyed_ctx() = default;
  keyed_ctx(const keyed_ctx&) = delete;
  keyed_ctx& operator=(const keyed_ctx&) = delete;

  ~keyed_ctx() {
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(key.data(), key.size());
  }

  // Starts AES-256-GCM (encrypting or decrypting) with the nonce that
  // follows the header at `sealed`, and feeds it the associated data: the
  // header, then the caller's. A failure forgets the key (the next start
  // initializes everything).
  bool start(bool encrypt, const key256& k, const unsigned char* sealed,
             std::string_view aad) {
    int len = 0;
    int enc = encrypt ? 1 : 0;
    if (ctx == nullptr)
      return false;
    bool same = keyed && CRYPTO_memcmp(key.data(), k.data(), key.size()) == 0;
    bool ok = same ? EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr,
                                       sealed + header_size, enc)
                         == 1
                   : EVP_CipherInit_ex(ctx, aes_256_gcm(), nullptr, nullptr,
                                       nullptr, enc)
                             == 1
                         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
                                                static_cast<int>(nonce_size),
                                                nullptr)
                                == 1
                         && EVP_CipherInit_ex(ctx, nullptr, nullptr, k.data(),
                                              sealed + header_size, enc)
                                == 1;
    ok = ok
         && EVP_CipherUpdate(ctx, nullptr, &len, sealed,
                             static_cast<int>(header_size))
                == 1
         && (aad.empty()
             || EVP_CipherUpdate(
                    ctx, nullptr, &len,
                    reinterpret_cast<const unsigned char*>(aad.data()),
                    static_cast<int>(aad.size()))
                    == 1);
    keyed = ok;
    if (ok && !same)
      std::copy(k.data(), k.data() + k.size(), key.begin());
    return ok;
  }
};

keyed_ctx& sealing_ctx() {
  thread_local keyed_ctx ctx;
  return ctx;
}

keyed_ctx& opening_ctx() {
  thread_local keyed_ctx ctx;
  return ctx;
}

// libsodium's AES-256-GCM (AES-NI and CLMUL), where the CPU has them: the
// same algorithm and format as EVP's (96-bit nonce, 128-bit tag, the
// associated data as one stream), without OpenSSL 3's per-call parameter
// handling, which costs more than sealing a small value. A state per
// thread and direction holds the expanded key of the last key it was given
// (compared whole, wiped when the thread ends).
struct sodium_gcm {
  crypto_aead_aes256gcm_state state;
  std::array<uint8_t, 32> key{};
  bool keyed = false;
  /// The header and the caller's associated data, one stream.
  std::string ad;

  sodium_gcm() = default;
  sodium_gcm(const sodium_gcm&) = delete;
  sodium_gcm& operator=(const sodium_gcm&) = delete;

  ~sodium_gcm() {
    sodium_memzero(&state, sizeof(state));
    sodium_memzero(key.data(), key.size());
  }

  // Keyed with `k` and holding the associated data; false: not usable.
  bool start(const key256& k, const unsigned char* header,
             std::string_view aad) {
    if (!keyed || sodium_memcmp(key.data(), k.data(), key.size()) != 0) {
      if (crypto_aead_aes256gcm_beforenm(&state, k.data()) != 0)
        return keyed = false;
      std::copy(k.data(), k.data() + k.size(), key.begin());
      keyed = true;
    }
    ad.assign(reinterpret_cast<const char*>(header), header_size);
    ad.append(aad);
    return true;
  }
};

std::atomic<bool> evp_only{false};

bool sodium_gcm_available() {
  static const bool available
      = sodium_init() >= 0 && crypto_aead_aes256gcm_is_available() == 1;
  return available && !evp_only.load(std::memory_order_relaxed);
}

sodium_gcm& sodium_sealing() {
  thread_local sodium_gcm s;
  return s;
}

sodium_gcm& sodium_opening() {
  thread_local sodium_gcm s;
  return s;
}

// Counts forks: a forked child must not use nonces its parent drew.
std::atomic<uint64_t> forks{0};

uint64_t fork_generation() {
  static bool registered = [] {
    return ::pthread_atfork(nullptr, nullptr,
                            [] {
                              forks.fetch_add(1, std::memory_order_relaxed);
                            })
           == 0;
  }();
  // Without the handler, every nonce is drawn on its own.
  return registered ? forks.load(std::memory_order_relaxed) : UINT64_MAX;
}

// Random nonces, drawn from the generator in blocks (one call per 32
// nonces); a forked child draws its own.
bool random_nonce(unsigned char* out) {
  struct pool {
    std::array<unsigned char, 32 * nonce_size> bytes{};
    size_t used = 32 * nonce_size;
    uint64_t generation = 0;
    ~pool() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
  };
  thread_local pool p;
  auto generation = fork_generation();
  if (generation == UINT64_MAX)
    return RAND_bytes(out, static_cast<int>(nonce_size)) == 1;
  if (p.used == p.bytes.size() || p.generation != generation) {
    if (RAND_bytes(p.bytes.data(), static_cast<int>(p.bytes.size())) != 1)
      return false;
    p.used = 0;
    p.generation = generation;
  }
  std::copy(p.bytes.data() + p.used, p.bytes.data() + p.used + nonce_size, out);
  OPENSSL_cleanse(p.bytes.data() + p.used, nonce_size);
  p.used += nonce_size;
  return true;
}

} // namespace

void use_evp_only(bool on) { evp_only.store(on, std::memory_order_relaxed); }

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
  if (!random_nonce(nonce))
    return make_error(errc::storage_failed, "the random generator failed");
  if (sodium_gcm_available()) {
    auto& s = sodium_sealing();
    auto* body = nonce + nonce_size;
    unsigned long long tag_len = 0;
    if (!s.start(key, p, aad)
        || crypto_aead_aes256gcm_encrypt_detached_afternm(
               body, body + plaintext.size(), &tag_len,
               reinterpret_cast<const unsigned char*>(plaintext.data()),
               plaintext.size(),
               reinterpret_cast<const unsigned char*>(s.ad.data()), s.ad.size(),
               nullptr, nonce, &s.state)
               != 0
        || tag_len != tag_size)
      return make_error(errc::storage_failed, "AES-256-GCM sealing failed");
    return out;
  }
  auto& c = sealing_ctx();
  auto* ctx = c.ctx;
  int len = 0;
  bool ok = c.start(true, key, p, aad);
  auto* body = nonce + nonce_size;
  int written = 0;
  ok = ok
       && (plaintext.empty()
           || EVP_EncryptUpdate(
                  ctx, body, &written,
                  reinterpret_cast<const unsigned char*>(plaintext.data()),
                  static_cast<int>(plaintext.size()))
                  == 1)
       && EVP_EncryptFinal_ex(ctx, body + written, &len) == 1
       && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
                              static_cast<int>(tag_size),
                              body + plaintext.size())
              == 1;
  if (!ok) {
    c.keyed = false;
    return make_error(errc::storage_failed, "AES-256-GCM sealing failed");
  }
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
  if (sodium_gcm_available()) {
    auto& s = sodium_opening();
    // The tag is checked before anything is decrypted into `out`.
    if (!s.start(key, p, aad)
        || crypto_aead_aes256gcm_decrypt_detached_afternm(
               reinterpret_cast<unsigned char*>(out.data()), nullptr, body,
               body_size, body + body_size,
               reinterpret_cast<const unsigned char*>(s.ad.data()), s.ad.size(),
               nonce, &s.state)
               != 0) {
      sodium_memzero(out.data(), out.size());
      return make_error(errc::corrupt_record,
                        "a sealed value does not authenticate (a wrong key, "
                        "a value moved to another key, or a changed byte)");
    }
    return out;
  }
  auto& c = opening_ctx();
  auto* ctx = c.ctx;
  int len = 0;
  // The tag is read-only to us; OpenSSL's ctrl takes a non-const pointer.
  unsigned char tag[tag_size];
  std::copy(body + body_size, body + body_size + tag_size, tag);
  bool ok = c.start(false, key, p, aad);
  int written = 0;
  ok = ok
       && (body_size == 0
           || EVP_DecryptUpdate(ctx,
                                reinterpret_cast<unsigned char*>(out.data()),
                                &written, body, static_cast<int>(body_size))
                  == 1)
       && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
                              static_cast<int>(tag_size), tag)
              == 1;
  // The tag is checked here: nothing decrypted is returned unless it holds.
  if (!ok
      || EVP_DecryptFinal_ex(
             ctx, reinterpret_cast<unsigned char*>(out.data()) + written, &len)
             != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    // A failed operation leaves no state the next one relies on.
    c.keyed = false;
    return make_error(errc::corrupt_record,
                      "a sealed value does not authenticate (a wrong key, a "
                      "value moved to another key, or a changed byte)");
  }
  return out;
}

std::string keyed_hash(const key256& key, std::string_view data) {
  // The last few answers of this thread: an index hashes the same scope
  // for engram after engram. Keyed by the whole key and the whole data.
  struct memo {
    std::array<uint8_t, 32> key{};
    std::string data;
    std::string hash;
  };
  struct memos {
    std::array<memo, 4> entries;
    size_t next = 0;
    ~memos() {
      for (auto& m : entries)
        OPENSSL_cleanse(m.key.data(), m.key.size());
    }
  };
  thread_local memos cache;
  constexpr size_t memo_max_data = 256;
  for (auto& m : cache.entries)
    if (!m.hash.empty() && m.data == data
        && CRYPTO_memcmp(m.key.data(), key.data(), key.size()) == 0)
      return m.hash;
  auto remember = [&](std::string hash) {
    if (data.size() <= memo_max_data) {
      auto& m = cache.entries[cache.next++ % cache.entries.size()];
      std::copy(key.data(), key.data() + key.size(), m.key.begin());
      m.data.assign(data);
      m.hash = hash;
    }
    return hash;
  };
  // A context per thread keeps the last key's state: the same key again
  // restarts it without setting the key up (EVP_MAC_init with no key).
  struct mac_ctx {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX* ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
    std::array<uint8_t, 32> key{};
    bool keyed = false;
    ~mac_ctx() {
      EVP_MAC_CTX_free(ctx);
      EVP_MAC_free(mac);
      OPENSSL_cleanse(key.data(), key.size());
    }
  };
  thread_local mac_ctx m;
  bool same
      = m.keyed && CRYPTO_memcmp(m.key.data(), key.data(), key.size()) == 0;
  char digest[] = "SHA256";
  OSSL_PARAM params[]
      = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
         OSSL_PARAM_construct_end()};
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  bool ok = m.ctx != nullptr
            && EVP_MAC_init(m.ctx, same ? nullptr : key.data(),
                            same ? 0 : key.size(), same ? nullptr : params)
                   == 1
            && EVP_MAC_update(
                   m.ctx, reinterpret_cast<const unsigned char*>(data.data()),
                   data.size())
                   == 1
            && EVP_MAC_final(m.ctx, out, &len, sizeof(out)) == 1 && len == 32;
  m.keyed = ok;
  if (!ok)
    // Never an empty hash: every index key would be the same.
    throw std::runtime_error("HMAC-SHA256 failed");
  if (!same)
    std::copy(key.data(), key.data() + key.size(), m.key.begin());
  return remember(std::string{reinterpret_cast<const char*>(out), len});
}

} // namespace engram::crypto
