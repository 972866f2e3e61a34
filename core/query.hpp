#pragma once

#include "core/engram.hpp"
#include "core/hlc.hpp"
#include "core/replica.hpp"
#include "core/scope.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace engram {

/// What `query` selects: every set field must match. The default selects
/// every live (not archived, not forgotten) memory.
struct query_filter {
  std::optional<memory_type> type;
  /// Only memories of this scope kind (Instance, Agent, ...).
  std::optional<scope_kind> kind;
  /// Beliefs about `subject` (and `relation`, when non-empty).
  std::string subject;
  std::string relation;
  /// Written (last updated) in [since, until].
  std::optional<hlc_timestamp> since;
  std::optional<hlc_timestamp> until;
  /// Only alternatives of contested engrams (forked or awaiting an answer).
  bool contested_only = false;
  bool include_archived = false;
  bool include_forgotten = false;
  /// At most this many results (0: no limit).
  size_t limit = 0;
};

/// True when `view` is selected by `filter`.
bool matches(const query_filter& filter, const memory_view& view);

/// The views of `source` selected by `filter`, newest write first, ties
/// broken by id; appended to `out` (which the limit counts).
void select(const replica& source, const query_filter& filter,
            std::vector<memory_view>& out);

/// Orders views newest write first (ties by id then dot) and applies the
/// filter's limit.
void finish(const query_filter& filter, std::vector<memory_view>& views);

} // namespace engram
