#pragma once

// Ed25519 signatures (OpenSSL EVP) for what nodes send each other: a node
// signs every envelope with a key of its own, whose public half it binds to
// its certificate when it proves its id to a peer; and a replay window per
// sender, so an envelope is accepted once.

#include "core/error.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace engram::crypto {

/// Bytes of an Ed25519 public key and of a signature.
inline constexpr size_t ed25519_public_bytes = 32;
inline constexpr size_t ed25519_signature_bytes = 64;

/// An Ed25519 private key. Move-only; freed (and wiped by OpenSSL) when it
/// goes.
class signing_key {
public:
  /// A fresh key. Error: the random generator failed.
  static expected<signing_key> generate();

  signing_key(signing_key&&) noexcept;
  signing_key& operator=(signing_key&&) noexcept;
  ~signing_key();

  /// The raw public key (32 bytes).
  const std::string& public_key() const noexcept { return public_; }

  /// The signature of `data` (64 bytes). Thread-safe.
  expected<std::string> sign(std::string_view data) const;

private:
  signing_key() = default;
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string public_;
};

/// What is signed for `bytes` sent in `context` (who sends, to whom, for
/// what): a fixed label and the SHA-256 of the context's length, the
/// context and the bytes — computed in one pass, without copying a frame
/// of megabytes. Throws std::runtime_error should OpenSSL fail.
std::string signed_digest(std::string_view context, std::string_view bytes);

/// True when `signature` is `public_key`'s Ed25519 signature of `data`
/// (false for keys or signatures of the wrong size).
bool verify_ed25519(std::string_view public_key, std::string_view data,
                    std::string_view signature);

/// Which sequence numbers of one sender were accepted: the highest, and a
/// window of the 65 536 below it (out-of-order arrivals inside it are
/// accepted once; older ones are refused: a sender's many actors number
/// their envelopes from one counter, and one of them can be overtaken by
/// thousands of others). Pure; 8 KiB.
class replay_window {
public:
  static constexpr uint64_t width = uint64_t{1} << 16;

  replay_window() = default;

  /// A window that refuses everything up to `floor` (what a restart
  /// restores: accepted before, or too old to tell).
  explicit replay_window(uint64_t floor) : high_(floor), floor_(floor) {
    // nop
  }

  /// Accepts `seq` (and remembers it) unless it was accepted before, is 0,
  /// or is older than the window.
  bool accept(uint64_t seq) noexcept;

  /// The highest sequence accepted (or the floor).
  uint64_t high() const noexcept { return high_; }

private:
  bool test(uint64_t seq) const noexcept;
  void set(uint64_t seq) noexcept;

  uint64_t high_ = 0;
  uint64_t floor_ = 0;
  std::array<uint64_t, width / 64> seen_{};
};

} // namespace engram::crypto
