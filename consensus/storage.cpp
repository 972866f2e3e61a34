#include "consensus/storage.hpp"

#include "consensus/internal/check.hpp"

namespace engram::consensus {

const char* to_string(storage_error e) {
  switch (e) {
    case storage_error::none: return "none";
    case storage_error::compacted: return "compacted";
    case storage_error::unavailable: return "unavailable";
    case storage_error::snapshot_unavailable: return "snapshot_unavailable";
    case storage_error::out_of_date: return "out_of_date";
  }
  return "?";
}

storage::~storage() = default;

void limit_size(std::vector<entry>& entries, uint64_t max_bytes) {
  if (entries.empty())
    return;
  uint64_t size = payload_size(entries[0]);
  size_t keep = 1;
  for (; keep < entries.size(); ++keep) {
    size += payload_size(entries[keep]);
    if (size > max_bytes)
      break;
  }
  entries.resize(keep);
}

memory_storage::memory_storage() { entries_.emplace_back(); }

std::pair<hard_state, conf_state> memory_storage::initial_state() const {
  return {hard_, snapshot_.meta.conf};
}

storage_error memory_storage::entries(index_t lo, index_t hi,
                                      uint64_t max_bytes,
                                      std::vector<entry>& out) const {
  auto offset = entries_[0].index;
  if (lo <= offset)
    return storage_error::compacted;
  if (hi > last_index() + 1 || lo > hi)
    return storage_error::unavailable;
  if (entries_.size() == 1)
    return storage_error::unavailable;
  out.assign(entries_.begin() + static_cast<ptrdiff_t>(lo - offset),
             entries_.begin() + static_cast<ptrdiff_t>(hi - offset));
  limit_size(out, max_bytes);
  return storage_error::none;
}

storage_error memory_storage::term(index_t i, term_t& out) const {
  auto offset = entries_[0].index;
  if (i < offset)
    return storage_error::compacted;
  if (i - offset >= entries_.size())
    return storage_error::unavailable;
  out = entries_[i - offset].term;
  return storage_error::none;
}

index_t memory_storage::first_index() const { return entries_[0].index + 1; }

index_t memory_storage::last_index() const {
  return entries_[0].index + entries_.size() - 1;
}

storage_error memory_storage::get_snapshot(snapshot& out) const {
  out = snapshot_;
  return storage_error::none;
}

storage_error memory_storage::apply_snapshot(snapshot s) {
  if (snapshot_.meta.index >= s.meta.index)
    return storage_error::out_of_date;
  entries_.clear();
  entry dummy;
  dummy.index = s.meta.index;
  dummy.term = s.meta.term;
  entries_.push_back(std::move(dummy));
  snapshot_ = std::move(s);
  return storage_error::none;
}

storage_error memory_storage::create_snapshot(index_t i, const conf_state& cs,
                                              std::string data) {
  if (i <= snapshot_.meta.index)
    return storage_error::out_of_date;
  if (i > last_index())
    return storage_error::unavailable;
  auto offset = entries_[0].index;
  if (i < offset)
    return storage_error::compacted;
  snapshot_.meta.index = i;
  snapshot_.meta.term = entries_[i - offset].term;
  snapshot_.meta.conf = cs;
  snapshot_.data = std::move(data);
  return storage_error::none;
}

storage_error memory_storage::compact(index_t compact_index) {
  auto offset = entries_[0].index;
  if (compact_index <= offset)
    return storage_error::compacted;
  if (compact_index > last_index())
    return storage_error::unavailable;
  auto i = static_cast<ptrdiff_t>(compact_index - offset);
  entry dummy;
  dummy.index = entries_[i].index;
  dummy.term = entries_[i].term;
  entries_.erase(entries_.begin(), entries_.begin() + i);
  entries_[0] = std::move(dummy);
  return storage_error::none;
}

bool memory_storage::append(std::vector<entry> entries) {
  if (entries.empty())
    return true;
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].index != entries[i - 1].index + 1)
      return false;
  auto first = first_index();
  auto last = entries.back().index;
  // Everything already compacted: nothing to keep.
  if (last < first)
    return true;
  if (first > entries.front().index)
    entries.erase(entries.begin(),
                  entries.begin()
                      + static_cast<ptrdiff_t>(first - entries.front().index));
  auto offset = entries.front().index - entries_[0].index;
  if (offset > entries_.size())
    return false; // a gap after the stored log
  entries_.resize(offset);
  for (auto& e : entries)
    entries_.push_back(std::move(e));
  return true;
}

void memory_storage::truncate_after(index_t last) {
  auto offset = entries_[0].index;
  if (last < offset)
    return;
  if (last - offset + 1 < entries_.size())
    entries_.resize(last - offset + 1);
}

} // namespace engram::consensus
