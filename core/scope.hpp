#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace engram {

/// The four scopes of the spec, narrowest first.
enum class scope_kind : uint8_t {
  /// Private to one agent instance (conversation); never replicated.
  instance,
  /// Shared across the instances of one agent.
  agent,
  /// Shared within a group of agents (a federation).
  collective,
  /// Shared by every agent (curated; consensus-backed in later milestones).
  universal,
};

/// Returns "instance", "agent", "collective" or "universal".
const char* to_string(scope_kind kind) noexcept;

/// The scope an engram lives in: decides who sees it and where it replicates.
class memory_scope {
public:
  /// Universal by default.
  memory_scope() = default;

  static memory_scope instance(std::string instance_id);

  static memory_scope agent(std::string agent_id);

  /// A Collective scope; members are sorted and deduplicated.
  static memory_scope collective(std::string collective_id,
                                 std::vector<std::string> members);

  static memory_scope universal();

  scope_kind kind() const noexcept { return kind_; }

  /// The instance, agent or collective id; empty for Universal.
  const std::string& id() const noexcept { return id_; }

  /// The members of a Collective scope (sorted); empty otherwise.
  const std::vector<std::string>& members() const noexcept { return members_; }

  /// True for an Instance or Agent scope without an id: a placeholder in
  /// `scope_defaults` that means "this instance" / "this agent".
  bool is_placeholder() const noexcept {
    return (kind_ == scope_kind::instance || kind_ == scope_kind::agent)
           && id_.empty();
  }

  /// Checks the scope is complete: ids present, a Collective has members.
  expected<void> validate() const;

  /// A stable key identifying the scope (kind and id, not the members):
  /// e.g. "agent:alpha". Used to derive engram ids and to route sync.
  std::string key() const;

  /// Human-readable form, e.g. "Collective{team-a, members=[a, b]}".
  std::string to_string() const;

  friend bool operator==(const memory_scope& x, const memory_scope& y) {
    return x.kind_ == y.kind_ && x.id_ == y.id_ && x.members_ == y.members_;
  }

  friend bool operator!=(const memory_scope& x, const memory_scope& y) {
    return !(x == y);
  }

private:
  scope_kind kind_ = scope_kind::universal;
  std::string id_;
  std::vector<std::string> members_;
};

/// Checks a text identifier or key (a fact's key, a belief's subject,
/// relation and object, a scope's id): non-empty, at most 256 bytes, valid
/// UTF-8, no control characters. (Values — a fact's value, a message's
/// text — are bytes and are not checked.)
expected<void> validate_id(const std::string& id, const char* what);

/// Checks the name of a node, an agent or an instance: 1 to 128 bytes of
/// ASCII letters, digits and `-_.:@`, starting with a letter or a digit.
/// Names become parts of store keys, directory entries, file names and log
/// lines: nothing else is accepted (no '/', no "..", no spaces).
expected<void> validate_name(const std::string& name, const char* what);

/// True when `text` is valid UTF-8 (no overlong forms, no surrogates).
bool is_utf8(const std::string& text) noexcept;

} // namespace engram
