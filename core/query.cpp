#include "core/query.hpp"

#include <algorithm>
#include <optional>
#include <utility>

namespace engram {

namespace {

// Everything of the filter that needs no view (the contested mark), on a
// version's summary.
bool matches_summary(const query_filter& filter,
                     const packed::version_summary& e) {
  if (e.tombstone && !filter.include_forgotten)
    return false;
  if (e.archived && !filter.include_archived)
    return false;
  if (filter.type && e.type != *filter.type)
    return false;
  if (filter.kind && e.kind != *filter.kind)
    return false;
  if (filter.since && e.updated < *filter.since)
    return false;
  if (filter.until && *filter.until < e.updated)
    return false;
  if (!filter.subject.empty()) {
    if (!e.is_belief || e.subject != filter.subject)
      return false;
    if (!filter.relation.empty() && e.relation != filter.relation)
      return false;
  }
  return true;
}

// The same on a decoded engram.
bool matches_record(const query_filter& filter, const engram_record& e) {
  packed::version_summary summary;
  summary.type = e.type;
  summary.kind = e.scope.kind();
  summary.archived = e.archived;
  summary.tombstone = e.tombstone;
  summary.updated = e.updated;
  if (auto* b = std::get_if<belief>(&e.body)) {
    summary.is_belief = true;
    summary.subject = b->subject;
    summary.relation = b->relation;
  }
  return matches_summary(filter, summary);
}

} // namespace

bool matches(const query_filter& filter, const memory_view& view) {
  if (filter.contested_only && !view.contested)
    return false;
  return matches_record(filter, view.value);
}

void select(const replica& source, const query_filter& filter,
            std::vector<memory_view>& out) {
  // Candidates: engrams with a matching version (found without decoding:
  // only candidates are read), with their newest matching write.
  std::vector<std::pair<hlc_timestamp, engram_id>> candidates;
  source.scan(
      [&](const engram_id& id, const std::vector<packed::version_summary>& vs) {
        std::optional<hlc_timestamp> newest;
        for (auto& v : vs)
          if (matches_summary(filter, v) && (!newest || *newest < v.updated))
            newest = v.updated;
        if (newest)
          candidates.emplace_back(*newest, id);
      });
  // Newest first (ties by id: the table's order is not deterministic), so
  // that a limit stops the reading early.
  std::sort(candidates.begin(), candidates.end(),
            [](const auto& x, const auto& y) {
              if (x.first != y.first)
                return y.first < x.first;
              return x.second < y.second;
            });
  for (auto& candidate : candidates) {
    auto newest = candidate.first;
    if (filter.limit != 0) {
      // Every later view is at most this new: done when `limit` views are
      // strictly newer.
      auto newer
          = std::count_if(out.begin(), out.end(), [&](const memory_view& v) {
              return newest < v.value.updated;
            });
      if (static_cast<size_t>(newer) >= filter.limit)
        break;
    }
    for (auto& view : source.read(candidate.second))
      if (matches(filter, view))
        out.push_back(std::move(view));
  }
}

void finish(const query_filter& filter, std::vector<memory_view>& views) {
  std::sort(views.begin(), views.end(),
            [](const memory_view& x, const memory_view& y) {
              if (x.value.updated != y.value.updated)
                return y.value.updated < x.value.updated;
              if (x.value.id != y.value.id)
                return x.value.id < y.value.id;
              return x.tag < y.tag;
            });
  if (filter.limit != 0 && views.size() > filter.limit)
    views.resize(filter.limit);
}

} // namespace engram
