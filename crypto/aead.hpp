#pragma once

// AES-256-GCM (OpenSSL EVP) for values at rest. A sealed value is
//
//   version (1 byte, 1) | key id (4 bytes, big-endian) | nonce (12) |
//   ciphertext | tag (16)
//
// and authenticates, besides the plaintext, the caller's associated data
// (the record's key: a value moved under another key does not open) and
// its own header (the key id cannot be swapped). Nonces are random (96
// bits): a data key seals at most 2^32 values before it is rotated
// (keyring::add_key), as NIST SP 800-38D bounds random nonces.

#include "core/error.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace engram::crypto {

/// A 256-bit key, wiped when it goes.
class key256 {
public:
  key256() noexcept { bytes_.fill(0); }
  ~key256();
  key256(const key256&) = default;
  key256& operator=(const key256&) = default;

  /// A fresh random key (RAND_bytes). Error: the RNG failed.
  static expected<key256> random();

  /// A key from exactly 32 bytes.
  static expected<key256> from_bytes(std::string_view bytes);

  const uint8_t* data() const noexcept { return bytes_.data(); }
  static constexpr size_t size() noexcept { return 32; }
  std::string_view view() const noexcept {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }

private:
  std::array<uint8_t, 32> bytes_;
};

/// Bytes a seal adds to its plaintext.
inline constexpr size_t seal_overhead = 1 + 4 + 12 + 16;

/// Seals `plaintext` under `key` (named `key_id` in the header), binding
/// `aad`.
expected<std::string> seal(const key256& key, uint32_t key_id,
                           std::string_view plaintext, std::string_view aad);

/// The key id a sealed value names. Error: not a sealed value.
expected<uint32_t> sealed_key_id(std::string_view sealed);

/// Opens a sealed value. Error (corrupt_record): too short, another format
/// version, or it does not authenticate — a wrong key, another `aad`, or a
/// changed byte (the message says which checks, never the content).
expected<std::string> open(const key256& key, std::string_view sealed,
                           std::string_view aad);

/// Seals and opens with OpenSSL's EVP even where libsodium's AES-NI
/// implementation (the default where the CPU has AES-NI and CLMUL) is
/// available: both write and read the same format, and tests check that
/// each opens what the other sealed.
void use_evp_only(bool on);

/// HMAC-SHA256 of `data` under `key` (throws std::runtime_error should
/// OpenSSL fail: never an empty hash).
std::string keyed_hash(const key256& key, std::string_view data);

} // namespace engram::crypto
