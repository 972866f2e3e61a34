#include "core/scope.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace engram {

const char* to_string(scope_kind kind) noexcept {
  switch (kind) {
    case scope_kind::instance: return "instance";
    case scope_kind::agent: return "agent";
    case scope_kind::collective: return "collective";
    case scope_kind::universal: return "universal";
  }
  return "invalid";
}

memory_scope memory_scope::instance(std::string instance_id) {
  memory_scope result;
  result.kind_ = scope_kind::instance;
  result.id_ = std::move(instance_id);
  return result;
}

memory_scope memory_scope::agent(std::string agent_id) {
  memory_scope result;
  result.kind_ = scope_kind::agent;
  result.id_ = std::move(agent_id);
  return result;
}

memory_scope memory_scope::collective(std::string collective_id,
                                      std::vector<std::string> members) {
  memory_scope result;
  result.kind_ = scope_kind::collective;
  result.id_ = std::move(collective_id);
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  result.members_ = std::move(members);
  return result;
}

memory_scope memory_scope::universal() { return memory_scope{}; }

bool is_utf8(const std::string& text) noexcept {
  auto* p = reinterpret_cast<const unsigned char*>(text.data());
  auto* end = p + text.size();
  while (p < end) {
    auto c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false; // a continuation byte first, or 0xf8..0xff
    }
    if (end - p <= static_cast<ptrdiff_t>(n))
      return false;
    for (size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    // Overlong forms, surrogates, beyond U+10FFFF.
    static constexpr uint32_t least[] = {0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return false;
    p += n + 1;
  }
  return true;
}

expected<void> validate_id(const std::string& id, const char* what) {
  if (id.empty())
    return make_error(errc::empty_id, std::string{what} + " is empty");
  if (id.size() > 256)
    return make_error(errc::empty_id,
                      std::string{what} + " is longer than 256 bytes");
  for (auto c : id)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return make_error(errc::invalid_argument,
                        std::string{what} + " contains a control character");
  if (!is_utf8(id))
    return make_error(errc::invalid_argument,
                      std::string{what} + " is not valid UTF-8");
  return {};
}

expected<void> validate_name(const std::string& name, const char* what) {
  if (name.empty())
    return make_error(errc::empty_id, std::string{what} + " is empty");
  if (name.size() > 128)
    return make_error(errc::invalid_argument,
                      std::string{what} + " is longer than 128 bytes");
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9');
  };
  if (!alnum(name.front()))
    return make_error(errc::invalid_argument,
                      std::string{what} + " '" + (is_utf8(name) ? name : "?")
                          + "' must start with a letter or a digit");
  for (auto c : name)
    if (!alnum(c) && c != '-' && c != '_' && c != '.' && c != ':' && c != '@')
      return make_error(errc::invalid_argument,
                        std::string{what}
                            + " may hold only letters, digits "
                              "and -_.:@ (not '"
                            + (static_cast<unsigned char>(c) >= 0x20
                                       && static_cast<unsigned char>(c) < 0x7f
                                   ? std::string(1, c)
                                   : std::string{"a byte outside ASCII"})
                            + "')");
  return {};
}

expected<void> memory_scope::validate() const {
  switch (kind_) {
    case scope_kind::instance:
      return validate_id(id_, "instance id of an Instance scope");
    case scope_kind::agent:
      return validate_id(id_, "agent id of an Agent scope");
    case scope_kind::collective: {
      if (auto ok = validate_id(id_, "collective id of a Collective scope");
          !ok)
        return ok;
      if (members_.empty())
        return make_error(errc::empty_collective,
                          "Collective scope '" + id_ + "' has no members");
      for (auto& m : members_)
        if (auto ok = validate_id(m, "member of a Collective scope"); !ok)
          return ok;
      return {};
    }
    case scope_kind::universal:
      if (!id_.empty() || !members_.empty())
        return make_error(errc::invalid_scope,
                          "Universal scope carries no id or members");
      return {};
  }
  return make_error(errc::invalid_scope, "unknown scope kind");
}

std::string memory_scope::key() const {
  std::string result = ::engram::to_string(kind_);
  if (kind_ != scope_kind::universal) {
    result += ':';
    result += id_;
  }
  return result;
}

std::string memory_scope::to_string() const {
  switch (kind_) {
    case scope_kind::instance: return "Instance{" + id_ + "}";
    case scope_kind::agent: return "Agent{" + id_ + "}";
    case scope_kind::collective: {
      std::string result = "Collective{" + id_ + ", members=[";
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i > 0)
          result += ", ";
        result += members_[i];
      }
      return result + "]}";
    }
    case scope_kind::universal: return "Universal";
  }
  return "Invalid";
}

} // namespace engram
