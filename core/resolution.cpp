#include "core/resolution.hpp"

#include "core/overload.hpp"

#include <algorithm>
#include <cassert>

namespace engram {

std::string to_string(const resolution& r) {
  return std::visit(overload{
                        [](const take_local&) -> std::string {
                          return "TakeLocal";
                        },
                        [](const take_remote&) -> std::string {
                          return "TakeRemote";
                        },
                        [](const take_newest&) -> std::string {
                          return "TakeNewest";
                        },
                        [](const take_highest_confidence&) -> std::string {
                          return "TakeHighestConfidence";
                        },
                        [](const merge&) -> std::string {
                          return "Merge";
                        },
                        [](const fork_versions& x) -> std::string {
                          return x.mark_contested
                                     ? "Fork{mark_contested=true}"
                                     : "Fork{mark_contested=false}";
                        },
                        [](const ask_user&) -> std::string {
                          return "AskUser";
                        },
                        [](const use_value&) -> std::string {
                          return "UseValue";
                        },
                    },
                    r);
}

std::string to_string(const conflict_resolution& r) {
  return std::visit(overload{
                        [](const escalate&) -> std::string {
                          return "Escalate";
                        },
                        [](const custom&) -> std::string {
                          return "Custom";
                        },
                        [](const auto& x) -> std::string {
                          return to_string(resolution{x});
                        },
                    },
                    r);
}

const conflict_resolution&
conflict_resolution_config::for_kind(conflict_kind kind) const noexcept {
  switch (kind) {
    case conflict_kind::value: return value_conflict;
    case conflict_kind::belief: return belief_conflict;
    case conflict_kind::episodic: return episodic_conflict;
    case conflict_kind::skill: return skill_conflict;
  }
  return value_conflict;
}

namespace {

bool less_confident(const version& x, const version& y) {
  if (x.value.confidence != y.value.confidence)
    return x.value.confidence < y.value.confidence;
  return older_than(x, y);
}

template<class T, class Less>
std::vector<T> unite(const std::vector<T>& xs, const std::vector<T>& ys,
                     Less less) {
  std::vector<T> result = xs;
  result.insert(result.end(), ys.begin(), ys.end());
  std::sort(result.begin(), result.end(), less);
  result.erase(std::unique(result.begin(), result.end()), result.end());
  return result;
}

} // namespace

engram_record builtin_merge(const engram_record& local,
                            const engram_record& remote) {
  // A tombstone merged with a live version: the live one survives (an add
  // concurrent with a forget wins, as in an add-wins set).
  if (local.tombstone != remote.tombstone)
    return local.tombstone ? remote : local;
  const engram_record& newer = remote.updated < local.updated ? local : remote;
  engram_record result = newer;
  result.confidence = std::max(local.confidence, remote.confidence);
  result.archived = local.archived && remote.archived;
  result.created = std::min(local.created, remote.created);
  if (auto l = std::get_if<episode>(&local.body)) {
    if (auto r = std::get_if<episode>(&remote.body)) {
      episode merged{l->episode_id,
                     unite(l->events, r->events, std::less<event>{})};
      result.body = std::move(merged);
    }
  } else if (auto l = std::get_if<skill>(&local.body)) {
    if (auto r = std::get_if<skill>(&remote.body)) {
      skill merged{l->skill_id, unite(l->refinements, r->refinements,
                                      std::less<refinement>{})};
      result.body = std::move(merged);
    }
  } else if (std::holds_alternative<belief>(local.body)) {
    // Contradicting beliefs do not blend: keep the most confident one.
    const engram_record& best
        = local.confidence != remote.confidence
              ? (local.confidence > remote.confidence ? local : remote)
              : newer;
    result.body = best.body;
  }
  return result;
}

expected<engram_record> choose(const conflict& c, const resolution& r,
                               const merge_function& custom_merge) {
  auto all = c.versions();
  if (all.empty())
    return make_error(errc::invalid_resolution, "conflict has no versions");
  auto newest_of = [](const std::vector<version>& xs) -> const version& {
    return *std::max_element(xs.begin(), xs.end(), older_than);
  };
  return std::visit(
      overload{
          [&](const take_local&) -> expected<engram_record> {
            return c.local.empty() ? newest_of(all).value
                                   : c.newest_local().value;
          },
          [&](const take_remote&) -> expected<engram_record> {
            return c.remote.empty() ? newest_of(all).value
                                    : c.newest_remote().value;
          },
          [&](const take_newest&) -> expected<engram_record> {
            return newest_of(all).value;
          },
          [&](const take_highest_confidence&) -> expected<engram_record> {
            return std::max_element(all.begin(), all.end(), less_confident)
                ->value;
          },
          [&](const merge&) -> expected<engram_record> {
            // Fold in dot order so every replica computes the same result.
            engram_record acc = all.front().value;
            for (size_t i = 1; i < all.size(); ++i)
              acc = custom_merge ? custom_merge(acc, all[i].value)
                                 : builtin_merge(acc, all[i].value);
            if (acc.id != c.key)
              return make_error(errc::invalid_resolution,
                                "merge function changed the engram id");
            return acc;
          },
          [&](const fork_versions&) -> expected<engram_record> {
            return make_error(errc::invalid_resolution,
                              "Fork keeps every version, not one");
          },
          [&](const ask_user&) -> expected<engram_record> {
            return make_error(errc::invalid_resolution,
                              "AskUser needs an answer first");
          },
          [&](const use_value& x) -> expected<engram_record> {
            if (x.value.id != c.key)
              return make_error(
                  errc::invalid_resolution,
                  "UseValue names engram " + x.value.id.to_string()
                      + " but the conflict is on " + c.key.to_string());
            if (auto ok = validate(x.value); !ok)
              return ok.error_value();
            return x.value;
          },
      },
      r);
}

expected<resolution> resolution_for_option(const ask_user& question,
                                           const std::string& option) {
  auto offered
      = std::find(question.options.begin(), question.options.end(), option)
        != question.options.end();
  if (!offered)
    return make_error(errc::unknown_option,
                      "'" + option + "' is not one of the offered options");
  if (option == "Local")
    return resolution{take_local{}};
  if (option == "Remote")
    return resolution{take_remote{}};
  if (option == "Both")
    return resolution{fork_versions{true}};
  if (option == "Newest")
    return resolution{take_newest{}};
  if (option == "Merge")
    return resolution{merge{}};
  return make_error(
      errc::unknown_option,
      "option '" + option
          + "' has no built-in meaning: answer with a resolution");
}

} // namespace engram
