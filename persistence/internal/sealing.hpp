#pragma once

// How a store keeps its values and the text in its index keys: as they are,
// or — encrypted at rest — each value sealed (AES-256-GCM under the
// keyring's active data key) with its column family and whole key as
// associated data, so a value moved under another key or family does not
// open, and each piece of text an index key is built from (a scope, a
// subject, a relation) replaced by a keyed hash. The index's values are
// engram ids (random, no content) and stay as they are: a query checks
// each entry it finds against the engram's authenticated record. Not
// installed.

#include "core/error.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "crypto/keyring.hpp"

namespace engram::persistence::internal {

class sealing {
public:
  /// Values and index text as they are.
  sealing() = default;

  /// Sealed with `keys`.
  explicit sealing(std::shared_ptr<const crypto::keyring> keys)
      : keys_(std::move(keys)) {
    // nop
  }

  bool on() const noexcept { return keys_ != nullptr; }

  /// `value` as it is stored under `key` of column family `family`. Error:
  /// the random number generator or the cipher failed.
  expected<std::string> seal(size_t family, std::string_view key,
                             std::string value) const;

  /// The value stored as `stored` under `key` of `family`: `stored` itself,
  /// or opened into `buffer`. Error (corrupt_record): it does not
  /// authenticate, or names a data key the keyring does not hold; the
  /// message never holds the value.
  expected<std::string_view> open(size_t family, std::string_view key,
                                  std::string_view stored,
                                  std::string& buffer) const;

  /// `text` as an index key holds it: itself, or its keyed hash (16 bytes).
  std::string index_text(std::string_view text) const;

private:
  std::shared_ptr<const crypto::keyring> keys_;
};

} // namespace engram::persistence::internal
