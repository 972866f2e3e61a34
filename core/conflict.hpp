#pragma once

#include "core/engram.hpp"
#include "core/version.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace engram {

/// The spec's four conflict types; each follows from the content type.
enum class conflict_kind : uint8_t {
  /// Same entity, different values (facts).
  value,
  /// Contradictory beliefs: same subject and relation, different objects.
  belief,
  /// Different accounts of one episode.
  episodic,
  /// Different refinements of one skill.
  skill,
};

constexpr size_t conflict_kind_count = 4;

/// Returns "value", "belief", "episodic" or "skill".
const char* to_string(conflict_kind kind) noexcept;

/// The conflict kind of a content type.
conflict_kind kind_of(const content& body) noexcept;

/// The conflict kind of a set of concurrent versions: by content type, except
/// that beliefs agreeing on the object (differing only in confidence or
/// status) are a value conflict, not a contradiction.
conflict_kind classify(const std::vector<version>& versions);

/// Concurrent versions of one engram that say different things.
struct conflict {
  /// Identifies the conflict by the exact set of versions in it: replicas
  /// that see the same versions compute the same id.
  uint64_t id = 0;
  /// The engram in conflict.
  engram_id key;
  conflict_kind kind = conflict_kind::value;
  /// The versions this replica held before the conflicting ones arrived,
  /// sorted by dot.
  std::vector<version> local;
  /// The versions that arrived, sorted by dot.
  std::vector<version> remote;

  /// Every version in the conflict, sorted by dot.
  std::vector<version> versions() const;

  /// The newest local (remote) version; precondition: the side is non-empty.
  const version& newest_local() const;
  const version& newest_remote() const;

  /// True for conflicts worth a human's attention: Universal scope, or a
  /// version held with confidence of at least 0.9.
  bool is_critical() const;

  /// E.g. "value conflict on <id>: fact k=a vs fact k=b".
  std::string to_string() const;
};

/// Computes a conflict id from the dots of its versions (order-insensitive).
uint64_t conflict_id_of(std::vector<dot> dots);

// -- the spec's typed views --------------------------------------------------

/// ValueConflict{key, local, remote}.
struct value_conflict {
  engram_id key;
  std::string local;
  std::string remote;
};

/// BeliefConflict{subject, relation, local_object, remote_object}.
struct belief_conflict {
  std::string subject;
  std::string relation;
  std::string local_object;
  std::string remote_object;
};

/// EpisodicConflict{episode_id, local_events, remote_events}.
struct episodic_conflict {
  std::string episode_id;
  std::vector<event> local_events;
  std::vector<event> remote_events;
};

/// SkillConflict{skill_id, local_refinements, remote_refinements}.
struct skill_conflict {
  std::string skill_id;
  std::vector<refinement> local_refinements;
  std::vector<refinement> remote_refinements;
};

/// The typed views compare the newest local with the newest remote version;
/// each returns nullopt for a conflict of another kind (or a side that is
/// empty or a tombstone).
std::optional<value_conflict> as_value_conflict(const conflict& c);
std::optional<belief_conflict> as_belief_conflict(const conflict& c);
std::optional<episodic_conflict> as_episodic_conflict(const conflict& c);
std::optional<skill_conflict> as_skill_conflict(const conflict& c);

} // namespace engram
