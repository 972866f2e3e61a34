#include "persistence/internal/sealing.hpp"

#include <openssl/crypto.h>

namespace engram::persistence::internal {

namespace {

/// What a value is bound to: its family and its whole key (the partition's
/// name included: a value moved to another replica does not open either).
/// Built in a buffer of the thread's (no allocation per value).
std::string_view aad_of(size_t family, std::string_view key) {
  thread_local std::string aad;
  aad.clear();
  aad.push_back(static_cast<char>(family));
  aad.append(key);
  return aad;
}

} // namespace

expected<std::string> sealing::seal(size_t family, std::string_view key,
                                    std::string value) const {
  if (!keys_)
    return value;
  auto sealed = keys_->seal(value, aad_of(family, key));
  OPENSSL_cleanse(value.data(), value.size());
  return sealed;
}

expected<std::string_view> sealing::open(size_t family, std::string_view key,
                                         std::string_view stored,
                                         std::string& buffer) const {
  if (!keys_)
    return stored;
  auto opened = keys_->open(stored, aad_of(family, key));
  if (!opened)
    return opened.error_value();
  buffer = std::move(*opened);
  return std::string_view{buffer};
}

std::string sealing::index_text(std::string_view text) const {
  if (!keys_)
    return std::string{text};
  return keys_->index_hash(text).substr(0, 16);
}

} // namespace engram::persistence::internal
