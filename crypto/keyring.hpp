#pragma once

// A store's data keys (envelope encryption): values are sealed with a data
// key, and the data keys are kept wrapped (sealed) by the master key, which
// never touches a value. Rotating the master key re-wraps the data keys and
// nothing else; adding a data key makes new values use it while older ones
// stay readable under theirs until they are sealed again. An index key (for
// keyed hashes of index keys: subjects, relations, keys) is wrapped the same
// way and never changes (changing it would mean rebuilding the indexes).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "crypto/aead.hpp"

namespace engram::crypto {

class keyring {
public:
  /// A new keyring: one data key (id 1), active, and an index key.
  static expected<keyring> create();

  /// A keyring saved by `save`, unwrapped with `master`. Errors: not a
  /// saved keyring, or the master key does not open it ("a wrong master
  /// key?"), naming neither key.
  static expected<keyring> load(std::string_view saved, const key256& master);

  /// The keys wrapped by `master` (what a store keeps): loading it takes
  /// the same master key. Saving under a new master key rotates it.
  expected<std::string> save(const key256& master) const;

  /// The key new values are sealed with.
  uint32_t active() const noexcept { return active_; }

  /// How many data keys it holds (retired ones included).
  size_t size() const noexcept { return keys_.size(); }

  /// Adds a data key and makes it the active one; returns its id.
  expected<uint32_t> add_key();

  /// Drops every data key but the active one (once nothing is sealed with
  /// them any more: a value under a dropped key no longer opens).
  void drop_retired();

  /// Seals with the active key, binding `aad`.
  expected<std::string> seal(std::string_view plaintext,
                             std::string_view aad) const;

  /// Opens with the key the value names. Errors (corrupt_record): an
  /// unknown key id, or it does not authenticate.
  expected<std::string> open(std::string_view sealed,
                             std::string_view aad) const;

  /// A keyed hash (HMAC-SHA256 under the index key): what an index key is
  /// built from instead of the text it indexes.
  std::string index_hash(std::string_view data) const;

private:
  keyring() = default; // made by create or load only: never without keys

  std::map<uint32_t, key256> keys_;
  uint32_t active_ = 0;
  key256 index_;
};

} // namespace engram::crypto
