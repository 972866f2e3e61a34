#include "crypto/keyring.hpp"

#include <openssl/crypto.h>

#include <iterator>

namespace engram::crypto {

namespace {

// "EGKR" | version (1) | active id (4) | count (4) | per key: id (4),
// length (4), the key sealed by the master key (id 0 is the index key).
constexpr std::string_view magic = "EGKR";
constexpr uint8_t saved_version = 1;
constexpr uint32_t index_key_id = 0;
constexpr size_t max_keys = 1u << 16;

void put32(std::string& out, uint32_t x) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((x >> (24 - 8 * i)) & 0xFF));
}

bool get32(std::string_view& in, uint32_t& x) {
  if (in.size() < 4)
    return false;
  x = 0;
  for (int i = 0; i < 4; ++i)
    x = (x << 8) | static_cast<unsigned char>(in[static_cast<size_t>(i)]);
  in.remove_prefix(4);
  return true;
}

// What a wrapped key is bound to: its id, and the keyring's header (the
// active key and how many there are): a key moved to another id, a header
// pointing new values at a retired key, or a keyring missing a key does
// not open.
std::string wrap_aad(uint32_t id, uint32_t active, uint32_t count) {
  return "engram keyring key " + std::to_string(id) + " of "
         + std::to_string(count) + ", active " + std::to_string(active);
}

error not_a_keyring(const std::string& why) {
  return make_error(errc::corrupt_record, "not a saved keyring: " + why);
}

} // namespace

expected<keyring> keyring::create() {
  keyring k;
  auto data = key256::random();
  auto index = key256::random();
  if (!data)
    return data.error_value();
  if (!index)
    return index.error_value();
  k.keys_.emplace(1, *data);
  k.active_ = 1;
  k.index_ = *index;
  return k;
}

expected<keyring> keyring::load(std::string_view saved, const key256& master) {
  if (saved.substr(0, magic.size()) != magic)
    return not_a_keyring("no EGKR header");
  saved.remove_prefix(magic.size());
  if (saved.empty() || static_cast<uint8_t>(saved[0]) != saved_version)
    return not_a_keyring("an unknown version");
  saved.remove_prefix(1);
  uint32_t active = 0;
  uint32_t count = 0;
  if (!get32(saved, active) || !get32(saved, count) || count > max_keys)
    return not_a_keyring("a truncated header");
  keyring k;
  bool have_index = false;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t id = 0;
    uint32_t len = 0;
    if (!get32(saved, id) || !get32(saved, len) || saved.size() < len)
      return not_a_keyring("a truncated key");
    auto wrapped = saved.substr(0, len);
    saved.remove_prefix(len);
    auto raw = crypto::open(master, wrapped, wrap_aad(id, active, count));
    if (!raw)
      return make_error(errc::unauthenticated,
                        "the master key does not open the keyring (key "
                            + std::to_string(id)
                            + "): a wrong master key, or a changed keyring?");
    auto key = key256::from_bytes(*raw);
    OPENSSL_cleanse(raw->data(), raw->size());
    if (!key)
      return not_a_keyring("a key of the wrong size");
    if (id == index_key_id) {
      if (have_index)
        return not_a_keyring("two index keys");
      k.index_ = *key;
      have_index = true;
    } else if (!k.keys_.emplace(id, *key).second) {
      return not_a_keyring("key " + std::to_string(id) + " twice");
    }
  }
  if (!saved.empty())
    return not_a_keyring("bytes after the last key");
  if (!have_index || k.keys_.count(active) == 0)
    return not_a_keyring("no index key or no active data key");
  k.active_ = active;
  return k;
}

expected<std::string> keyring::save(const key256& master) const {
  std::string out{magic};
  out.push_back(static_cast<char>(saved_version));
  auto count = static_cast<uint32_t>(keys_.size() + 1);
  put32(out, active_);
  put32(out, count);
  auto add = [&](uint32_t id, const key256& key) -> expected<void> {
    auto wrapped
        = crypto::seal(master, 0, key.view(), wrap_aad(id, active_, count));
    if (!wrapped)
      return wrapped.error_value();
    put32(out, id);
    put32(out, static_cast<uint32_t>(wrapped->size()));
    out += *wrapped;
    return {};
  };
  if (auto ok = add(index_key_id, index_); !ok)
    return ok.error_value();
  for (auto& [id, key] : keys_)
    if (auto ok = add(id, key); !ok)
      return ok.error_value();
  return out;
}

expected<uint32_t> keyring::add_key() {
  if (keys_.size() + 1 >= max_keys || keys_.rbegin()->first == UINT32_MAX)
    return make_error(errc::limit_exceeded, "the keyring is full");
  auto key = key256::random();
  if (!key)
    return key.error_value();
  auto id = keys_.rbegin()->first + 1;
  keys_.emplace(id, *key);
  active_ = id;
  return id;
}

void keyring::drop_retired() {
  for (auto i = keys_.begin(); i != keys_.end();)
    i = i->first == active_ ? std::next(i) : keys_.erase(i);
}

expected<std::string> keyring::seal(std::string_view plaintext,
                                    std::string_view aad) const {
  return crypto::seal(keys_.at(active_), active_, plaintext, aad);
}

expected<std::string> keyring::open(std::string_view sealed,
                                    std::string_view aad) const {
  auto id = sealed_key_id(sealed);
  if (!id)
    return id.error_value();
  auto i = keys_.find(*id);
  if (i == keys_.end())
    return make_error(errc::corrupt_record,
                      "a value sealed with data key " + std::to_string(*id)
                          + ", which the keyring does not hold");
  return crypto::open(i->second, sealed, aad);
}

std::string keyring::index_hash(std::string_view data) const {
  return keyed_hash(index_, data);
}

} // namespace engram::crypto
