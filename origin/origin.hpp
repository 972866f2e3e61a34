#pragma once

// Proof of origin for versions: a node signs what its replicas write, so a
// version whose dot names a node is taken only with that node's signature —
// also when another node relays it.
//
// Per frame, a node hashes each of its own versions (`leaf`), builds a
// Merkle tree over those hashes (`tree`) and signs the root with its
// Ed25519 key: one signature per frame, not per version. The key is bound
// to the node's certificate by an OriginKey (`bind`). A receiver checks
// each version against such a proof and keeps the proof — the leaves it
// holds, the hashes beside their paths, the signature — so that what it
// relays later carries the origin's own proof, narrowed to what it sends
// (`tree::siblings`). The book (origin/book.hpp) does this per memory.
//
// Pure: SHA-256 (OpenSSL EVP) for hashes, Ed25519 and X.509 through
// crypto/ and pki/; no CAF, no storage, no clock of its own.

#include "core/error.hpp"
#include "core/ids.hpp"
#include "core/version.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engram/v1/sync.pb.h"

namespace engram::pki {
class certificate;
class private_key;
class revocation_list;
} // namespace engram::pki

namespace engram::origin {

/// A node of a Merkle tree: SHA-256 truncated to 16 bytes (second
/// preimages cost 2^128; only the signer could look for collisions, and it
/// signs anyway).
using digest = std::array<unsigned char, 16>;

/// The hash of a version: SHA-256/128 of a domain byte and the version's
/// canonical bytes (every field, in a fixed order, lengths prefixed), so
/// any change of any field changes it.
digest leaf(const version& v);

/// A hash naming bytes (a stored proof's key): SHA-256/128.
digest fingerprint(std::string_view bytes);

/// The most leaves a tree may have (a frame carries at most a few
/// thousand versions).
inline constexpr uint32_t max_leaves = uint32_t{1} << 20;

/// The known nodes of one level of a tree, sorted by index.
using tree_level = std::vector<std::pair<uint32_t, digest>>;

/// Checks the shape of a proof's leaves: a tree of 1 to `max_leaves`
/// leaves, positions strictly ascending below `n`. Error: invalid_argument.
expected<void> check_positions(uint32_t n,
                               const std::vector<uint32_t>& positions);

/// A Merkle tree over `size()` leaves of which some are known: all of them
/// for the signer, those a frame carried (and the hashes beside their
/// paths) for a receiver. An odd node at the end of a level moves up
/// unchanged; inner nodes hash a domain byte and both children.
class tree {
public:
  /// The tree of `leaves`, all known (at least one).
  static tree of(const std::vector<digest>& leaves);

  /// The tree a proof gives: `n` leaves, the known ones at `positions`
  /// (strictly ascending, below n) with hashes `known`, and `siblings`, the
  /// hashes their paths need, in proof order (16 bytes each). Errors
  /// (invalid_argument): a bad shape, too few or too many siblings.
  static expected<tree> partial(uint32_t n,
                                const std::vector<uint32_t>& positions,
                                const std::vector<digest>& known,
                                std::string_view siblings);

  /// The root a proof gives (as `partial`, without keeping the tree: what
  /// a receiver checks a signature against).
  static expected<digest> root_of(uint32_t n,
                                  const std::vector<uint32_t>& positions,
                                  const std::vector<digest>& known,
                                  std::string_view siblings);

  const digest& root() const noexcept { return root_; }

  uint32_t size() const noexcept { return n_; }

  /// The siblings a receiver holding the leaves at `positions` (strictly
  /// ascending, known to this tree) needs, in proof order. Error
  /// (invalid_argument): a position this tree does not know.
  expected<std::string> siblings(const std::vector<uint32_t>& positions) const;

private:
  tree() = default;

  const digest* find(size_t height, uint32_t index) const;

  uint32_t n_ = 0;
  digest root_{};
  // Known nodes per level (level 0: the leaves).
  std::vector<tree_level> levels_;
};

/// What a node signs for a tree of versions of `replica` (incarnation
/// `incarnation` of the node's partition) in `agent`'s memory.
std::string signed_message(std::string_view agent, std::string_view node,
                           replica_id replica, uint32_t incarnation, uint32_t n,
                           const digest& root);

/// What a certificate's key signs to bind `key` to `node`.
std::string key_message(std::string_view node, std::string_view key);

/// Binds `key` (a raw Ed25519 public key) to `node`, whose certificate
/// (PEM) and its key sign it. Error: the signature failed.
expected<v1::OriginKey> bind(const std::string& node,
                             const std::string& cert_pem,
                             const pki::private_key& cert_key,
                             const std::string& key);

/// What makes an OriginKey count: the cluster's CA and its revocation list.
struct trust {
  const pki::certificate* ca = nullptr;
  const pki::revocation_list* crl = nullptr;
};

/// A key an OriginKey bound, checked: its node and the validity of its
/// certificate (µs since the epoch). Versions it proves must have been
/// written before that validity ended (a node proves its older versions
/// with the key of its current certificate).
struct trusted_key {
  std::string node;
  uint64_t not_after_us = 0;
};

/// Checks an OriginKey: a node certificate of the cluster's CA naming the
/// node, not revoked, whose key signed the binding. An expired certificate
/// still proves what was written while it was valid. Errors
/// (unauthenticated) say which check failed.
expected<trusted_key> check_key(const v1::OriginKey& binding, const trust& t);

/// The hex of bytes (key ids in messages and store keys).
std::string hex(std::string_view bytes);

} // namespace engram::origin
