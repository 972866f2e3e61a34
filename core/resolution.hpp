#pragma once

#include "core/conflict.hpp"
#include "core/engram.hpp"
#include "core/error.hpp"

#include <functional>
#include <string>
#include <variant>
#include <vector>

namespace engram {

// -- resolutions: what to do with one conflict ----------------------------

/// Keep the local version (the newest one if several).
struct take_local {};
/// Keep the remote version (the newest one if several).
struct take_remote {};
/// Keep the version with the greatest HLC timestamp.
struct take_newest {};
/// Keep the version with the highest confidence (then the newest).
struct take_highest_confidence {};
/// Merge the versions: events and refinements are united in order; facts
/// and beliefs fall back to the newest / most confident version; a merge
/// function configured for the memory type overrides these rules.
struct merge {};
/// Keep every version as an alternative; `mark_contested` flags them in
/// query results.
struct fork_versions {
  bool mark_contested = true;
};
/// Ask a human: the conflict stays pending until `replica::answer`.
struct ask_user {
  std::string question;
  /// Offered answers. "Local", "Remote", "Both", "Newest" and "Merge" map to
  /// the resolutions of the same name (Both = Fork).
  std::vector<std::string> options;
};
/// Replace the versions with this engram (a handler's or user's own answer).
struct use_value {
  engram_record value;
};

/// The outcome chosen for one conflict.
using resolution = std::variant<take_local, take_remote, take_newest,
                                take_highest_confidence, merge, fork_versions,
                                ask_user, use_value>;

/// Returns e.g. "TakeNewest", "Fork{mark_contested=true}", "AskUser".
std::string to_string(const resolution& r);

// -- strategies: how a kind of conflict gets its resolution ---------------

/// Decides conflicts that cannot be auto-resolved, and hears about every
/// resolution.
struct conflict_handler {
  /// Called for each escalated conflict; returns its resolution (which may be
  /// `ask_user`).
  std::function<resolution(const conflict&)> on_conflict;
  /// Called after a conflict has been resolved (optional).
  std::function<void(const conflict&, const resolution&)> on_resolved;
};

/// Escalate to a handler.
struct escalate {
  conflict_handler handler;
};

/// A resolver function.
struct custom {
  std::function<resolution(const conflict&)> resolver;
};

/// A configured strategy: the eight of the spec.
using conflict_resolution = std::variant<take_local, take_remote, take_newest,
                                         take_highest_confidence, merge,
                                         fork_versions, escalate, custom>;

/// Returns e.g. "TakeNewest", "Escalate", "Custom".
std::string to_string(const conflict_resolution& r);

/// The strategy per conflict kind, with the spec's defaults.
struct conflict_resolution_config {
  conflict_resolution value_conflict = take_newest{};
  conflict_resolution belief_conflict = fork_versions{true};
  conflict_resolution episodic_conflict = merge{};
  conflict_resolution skill_conflict = take_highest_confidence{};

  const conflict_resolution& for_kind(conflict_kind kind) const noexcept;
};

/// Merges two versions of one engram into one (a CRDT "Custom" strategy).
/// Should be deterministic; convergence does not depend on it, because its
/// result is recorded as a write.
using merge_function = std::function<engram_record(
    const engram_record& local, const engram_record& remote)>;

/// The built-in merge of two engrams (see `merge`).
engram_record builtin_merge(const engram_record& local,
                            const engram_record& remote);

/// Computes the engram a resolution keeps. Fails for `fork_versions` and
/// `ask_user`, which keep no single engram, and for a `use_value` of another
/// engram. `custom_merge` (may be empty) overrides the built-in merge.
expected<engram_record> choose(const conflict& c, const resolution& r,
                               const merge_function& custom_merge);

/// Maps an answer to an `ask_user` option to its resolution; fails with
/// `errc::unknown_option` if the option was not offered or has no meaning.
expected<resolution> resolution_for_option(const ask_user& question,
                                           const std::string& option);

} // namespace engram
