#include "core/ids.hpp"

#include "core/hash.hpp"

#include <string>

namespace engram {

replica_id make_replica_id(std::string_view name) noexcept {
  auto id = hash_string(name, 0x5265706c696361ULL); // "Replica"
  return id == 0 ? 1 : id;
}

replica_id incarnation_of(replica_id base, uint32_t incarnation) noexcept {
  if (incarnation == 0)
    return base;
  std::string name = "incarnation/";
  name += std::to_string(base);
  name += '/';
  name += std::to_string(incarnation);
  return make_replica_id(name);
}

std::string agent_partition(std::string_view agent_id) {
  std::string out = "a/";
  out += agent_id;
  return out;
}

std::string instance_partition(std::string_view agent_id,
                               std::string_view instance_id) {
  std::string out = "i/";
  out += agent_id;
  out += '/';
  out += instance_id;
  return out;
}

replica_id replica_of(std::string_view node_id, std::string_view partition) {
  std::string name{node_id};
  name += '\0';
  name += partition;
  return make_replica_id(name);
}

std::string engram_id::to_string() const {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result(32, '0');
  for (int i = 0; i < 16; ++i) {
    result[15 - i] = digits[(hi >> (4 * i)) & 0xf];
    result[31 - i] = digits[(lo >> (4 * i)) & 0xf];
  }
  return result;
}

expected<engram_id> engram_id::parse(std::string_view text) {
  if (text.size() != 32)
    return make_error(errc::parse_error, "an engram id has 32 hex digits, got "
                                             + std::to_string(text.size())
                                             + " characters");
  engram_id result;
  for (size_t i = 0; i < 32; ++i) {
    auto c = text[i];
    uint64_t nibble;
    if (c >= '0' && c <= '9')
      nibble = static_cast<uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      nibble = static_cast<uint64_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      nibble = static_cast<uint64_t>(c - 'A' + 10);
    else
      return make_error(errc::parse_error,
                        "engram id has a non-hex character at position "
                            + std::to_string(i));
    auto& half = i < 16 ? result.hi : result.lo;
    half = (half << 4) | nibble;
  }
  return result;
}

} // namespace engram
