#pragma once

#include "core/error.hpp"
#include "core/hlc.hpp"
#include "core/ids.hpp"
#include "core/scope.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace engram {

// -- memory types -----------------------------------------------------------

/// The four memory types of Engram.
enum class memory_type : uint8_t {
  /// Working memory of the moment.
  instant,
  /// Experiences: episodes of ordered events.
  episodic,
  /// Knowledge: facts and beliefs.
  semantic,
  /// Skills and their refinements.
  procedural,
};

/// Number of memory types, for per-type tables.
constexpr size_t memory_type_count = 4;

/// Returns "instant", "episodic", "semantic" or "procedural".
const char* to_string(memory_type type) noexcept;

// -- content ----------------------------------------------------------------

/// A keyed value: `key` → `value`.
struct fact {
  std::string key;
  std::string value;

  friend bool operator==(const fact& x, const fact& y) {
    return x.key == y.key && x.value == y.value;
  }
};

/// A belief: (subject, relation, object). Beliefs with the same subject and
/// relation but different objects contradict each other.
struct belief {
  std::string subject;
  std::string relation;
  std::string object;

  friend bool operator==(const belief& x, const belief& y) {
    return x.subject == y.subject && x.relation == y.relation
           && x.object == y.object;
  }
};

/// One event of an episode.
struct event {
  hlc_timestamp at;
  std::string description;

  friend bool operator==(const event& x, const event& y) {
    return x.at == y.at && x.description == y.description;
  }

  friend bool operator<(const event& x, const event& y) {
    if (x.at != y.at)
      return x.at < y.at;
    return x.description < y.description;
  }
};

/// An experience: an episode id and its events in order.
struct episode {
  std::string episode_id;
  std::vector<event> events;

  friend bool operator==(const episode& x, const episode& y) {
    return x.episode_id == y.episode_id && x.events == y.events;
  }
};

/// One refinement of a skill.
struct refinement {
  uint32_t version = 0;
  std::string description;

  friend bool operator==(const refinement& x, const refinement& y) {
    return x.version == y.version && x.description == y.description;
  }

  friend bool operator<(const refinement& x, const refinement& y) {
    if (x.version != y.version)
      return x.version < y.version;
    return x.description < y.description;
  }
};

/// A skill: an id and its refinements in order.
struct skill {
  std::string skill_id;
  std::vector<refinement> refinements;

  friend bool operator==(const skill& x, const skill& y) {
    return x.skill_id == y.skill_id && x.refinements == y.refinements;
  }
};

/// What an engram holds.
using content = std::variant<fact, belief, episode, skill>;

/// Returns "fact", "belief", "episode" or "skill".
const char* content_name(const content& body) noexcept;

// -- epistemic status and provenance ----------------------------------------

/// How the holder came to know an engram.
enum class epistemic_kind : uint8_t {
  /// Observed first-hand.
  observed,
  /// Derived by reasoning.
  inferred,
  /// Told by another agent, with the trust placed in that source.
  reported,
};

/// Returns "observed", "inferred" or "reported".
const char* to_string(epistemic_kind kind) noexcept;

/// The epistemic status of an engram: Observed, Inferred or
/// Reported{source, trust}.
struct epistemic_status {
  epistemic_kind kind = epistemic_kind::observed;
  /// The reporting agent (Reported only).
  std::string source;
  /// The trust placed in the source, in [0, 1] (Reported only).
  double trust = 1.0;

  static epistemic_status observed() { return {}; }

  static epistemic_status inferred() {
    return {epistemic_kind::inferred, {}, 1.0};
  }

  static epistemic_status reported(std::string source, double trust) {
    return {epistemic_kind::reported, std::move(source), trust};
  }

  friend bool operator==(const epistemic_status& x, const epistemic_status& y) {
    return x.kind == y.kind && x.source == y.source && x.trust == y.trust;
  }
};

/// One hop in an engram's provenance chain: who passed it on, the trust the
/// receiver applied, and the transform applied on the way (if any).
struct provenance_hop {
  std::string agent;
  double trust = 1.0;
  std::string transform;
  /// Shared read-only: the receiver may not modify it (nor pass it on).
  bool read_only = false;

  friend bool operator==(const provenance_hop& x, const provenance_hop& y) {
    return x.agent == y.agent && x.trust == y.trust
           && x.transform == y.transform && x.read_only == y.read_only;
  }
};

/// Where an engram comes from: its origin and every hop since.
struct provenance {
  std::string origin_agent;
  std::string origin_instance;
  std::vector<provenance_hop> hops;

  friend bool operator==(const provenance& x, const provenance& y) {
    return x.origin_agent == y.origin_agent
           && x.origin_instance == y.origin_instance && x.hops == y.hops;
  }
};

// -- the engram --------------------------------------------------------------

/// A unit of memory. Engrams are data: replicas hold versions of them.
struct engram_record {
  engram_id id;
  memory_type type = memory_type::semantic;
  memory_scope scope;
  content body;
  /// Confidence in [0, 1].
  double confidence = 1.0;
  epistemic_status epistemic{};
  provenance origin{};
  /// When the engram was first learned.
  hlc_timestamp created{};
  /// When this version was written (set by the replica on every write).
  hlc_timestamp updated{};
  /// Archived engrams are kept but hidden from default queries.
  bool archived = false;
  /// A tombstone marks a forgotten engram; its content is cleared.
  bool tombstone = false;
  /// Why a tombstoned engram was forgotten.
  std::string forget_reason{};

  friend bool operator==(const engram_record& x, const engram_record& y);
};

/// Checks an engram: non-empty id, valid scope, confidence in [0, 1], content
/// that names its key, trust in [0, 1] for reported status.
expected<void> validate(const engram_record& value);

/// Derives the id of keyed content in a scope: facts by key, beliefs by
/// (subject, relation), episodes by episode id, skills by skill id. Two
/// replicas writing the same entity therefore address the same engram.
engram_id derive_id(const memory_scope& scope, const content& body);

/// A hash of what an engram says (type, scope, content, confidence, status,
/// flags), excluding timestamps and provenance. Equal hashes mean two
/// versions agree; it is the `old_value_hash` of update deltas.
uint64_t content_hash(const engram_record& value);

/// The content of a forgotten engram: the key that addresses it, with the
/// value, object, events or refinements cleared.
content cleared_content(const content& body);

/// Returns a short human-readable rendering of the content, e.g.
/// "fact user.name=Bob" or "belief sky color blue".
std::string describe(const content& body);

// -- scope defaults ---------------------------------------------------------

/// The default scope per memory type, used by `learn` when the caller names
/// none. Instance and Agent scopes without an id mean "the learning
/// instance" / "the learning agent".
struct scope_defaults {
  memory_scope instant = memory_scope::instance({});
  memory_scope episodic = memory_scope::instance({});
  memory_scope semantic = memory_scope::agent({});
  memory_scope procedural = memory_scope::agent({});

  /// The spec's defaults: instant and episodic → Instance, semantic and
  /// procedural → Agent.
  static scope_defaults spec() { return {}; }

  /// Instant stays per instance; everything else is shared by the agent.
  static scope_defaults agent_shared();

  /// The configured scope for `type`.
  const memory_scope& for_type(memory_type type) const noexcept;

  /// Resolves the configured scope for `type` for the given learner, filling
  /// placeholders; fails if the result is not a valid scope.
  expected<memory_scope> resolve(memory_type type, const std::string& agent_id,
                                 const std::string& instance_id) const;
};

} // namespace engram
