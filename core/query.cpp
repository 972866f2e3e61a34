#include "core/query.hpp"

#include <algorithm>

namespace engram {

bool matches(const query_filter& filter, const memory_view& view) {
  auto& e = view.value;
  if (e.tombstone && !filter.include_forgotten)
    return false;
  if (e.archived && !filter.include_archived)
    return false;
  if (filter.type && e.type != *filter.type)
    return false;
  if (filter.kind && e.scope.kind() != *filter.kind)
    return false;
  if (filter.since && e.updated < *filter.since)
    return false;
  if (filter.until && *filter.until < e.updated)
    return false;
  if (filter.contested_only && !view.contested)
    return false;
  if (!filter.subject.empty()) {
    auto* b = std::get_if<belief>(&e.body);
    if (b == nullptr || b->subject != filter.subject)
      return false;
    if (!filter.relation.empty() && b->relation != filter.relation)
      return false;
  }
  return true;
}

void select(const replica& source, const query_filter& filter,
            std::vector<memory_view>& out) {
  source.for_each([&](const engram_id& id, const std::vector<version>&) {
    for (auto& view : source.read(id))
      if (matches(filter, view))
        out.push_back(std::move(view));
  });
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
