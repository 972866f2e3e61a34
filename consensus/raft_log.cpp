#include "consensus/raft_log.hpp"

#include <algorithm>

#include "consensus/internal/check.hpp"

namespace engram::consensus {

// -- unstable -----------------------------------------------------------------

std::optional<index_t> unstable::maybe_first_index() const {
  if (snap)
    return snap->meta.index + 1;
  return std::nullopt;
}

std::optional<index_t> unstable::maybe_last_index() const {
  if (!entries.empty())
    return offset + entries.size() - 1;
  if (snap)
    return snap->meta.index;
  return std::nullopt;
}

std::optional<term_t> unstable::maybe_term(index_t i) const {
  if (i < offset) {
    if (snap && snap->meta.index == i)
      return snap->meta.term;
    return std::nullopt;
  }
  auto last = maybe_last_index();
  if (!last || i > *last)
    return std::nullopt;
  if (entries.empty())
    return std::nullopt;
  return entries[i - offset].term;
}

void unstable::stable_to(index_t i, term_t t) {
  auto have = maybe_term(i);
  if (!have)
    return;
  // Persisted entries may have been replaced meanwhile by a new leader's:
  // only a matching term at a position still unstable counts.
  if (*have == t && i >= offset) {
    entries.erase(entries.begin(),
                  entries.begin() + static_cast<ptrdiff_t>(i + 1 - offset));
    offset = i + 1;
  }
}

void unstable::stable_snap_to(index_t i) {
  if (snap && snap->meta.index == i)
    snap.reset();
}

void unstable::restore(snapshot s) {
  offset = s.meta.index + 1;
  entries.clear();
  snap = std::move(s);
}

void unstable::truncate_and_append(const std::vector<entry>& ents) {
  auto after = ents.front().index;
  if (after == offset + entries.size()) {
    entries.insert(entries.end(), ents.begin(), ents.end());
  } else if (after <= offset) {
    // Replaces everything unstable (and the driver will overwrite the
    // persisted suffix from `after` on).
    offset = after;
    entries = ents;
  } else {
    entries.resize(after - offset);
    entries.insert(entries.end(), ents.begin(), ents.end());
  }
}

// -- raft_log -----------------------------------------------------------------

raft_log::raft_log(const storage& store, uint64_t max_committed_bytes)
    : store_(store), max_committed_bytes_(max_committed_bytes) {
  auto first = store.first_index();
  auto last = store.last_index();
  unstable_.offset = last + 1;
  committed = first - 1;
  applied = first - 1;
}

index_t raft_log::first_index() const {
  if (auto i = unstable_.maybe_first_index())
    return *i;
  return store_.first_index();
}

index_t raft_log::last_index() const {
  if (auto i = unstable_.maybe_last_index())
    return *i;
  return store_.last_index();
}

term_t raft_log::last_term() const {
  term_t t = 0;
  auto err = term(last_index(), t);
  ENGRAM_CONSENSUS_CHECK(err == storage_error::none,
                         "the last entry's term is unreadable");
  return t;
}

storage_error raft_log::term(index_t i, term_t& out) const {
  // Valid terms: from the entry before the first (the snapshot's) to the last.
  auto dummy = first_index() - 1;
  if (i < dummy)
    return storage_error::compacted;
  if (i > last_index())
    return storage_error::unavailable;
  if (auto t = unstable_.maybe_term(i)) {
    out = *t;
    return storage_error::none;
  }
  return store_.term(i, out);
}

std::optional<index_t> raft_log::maybe_append(index_t index, term_t log_term,
                                              index_t commit,
                                              const std::vector<entry>& ents,
                                              bool& refused) {
  refused = false;
  if (!match_term(index, log_term))
    return std::nullopt;
  auto last_new = index + ents.size();
  auto conflict = find_conflict(ents);
  if (conflict != 0) {
    if (conflict <= committed) {
      refused = true;
      return std::nullopt;
    }
    auto from = static_cast<ptrdiff_t>(conflict - (index + 1));
    append(std::vector<entry>(ents.begin() + from, ents.end()));
  }
  commit_to(std::min(commit, last_new));
  return last_new;
}

index_t raft_log::append(const std::vector<entry>& ents) {
  if (ents.empty())
    return last_index();
  ENGRAM_CONSENSUS_CHECK(ents.front().index - 1 >= committed,
                         "an append overwrites committed entries");
  unstable_.truncate_and_append(ents);
  return last_index();
}

index_t raft_log::find_conflict(const std::vector<entry>& ents) const {
  for (auto& e : ents)
    if (!match_term(e.index, e.term))
      return e.index;
  return 0;
}

index_t raft_log::find_conflict_by_term(index_t index, term_t t) const {
  for (;;) {
    term_t have = 0;
    if (term(index, have) != storage_error::none || have <= t)
      return index;
    --index;
  }
}

storage_error raft_log::entries(index_t i, uint64_t max_bytes,
                                std::vector<entry>& out) const {
  out.clear();
  if (i > last_index())
    return storage_error::none;
  return slice(i, last_index() + 1, max_bytes, out);
}

storage_error raft_log::slice(index_t lo, index_t hi, uint64_t max_bytes,
                              std::vector<entry>& out) const {
  out.clear();
  if (lo > hi || hi > last_index() + 1)
    return storage_error::unavailable;
  if (lo < first_index())
    return storage_error::compacted;
  if (lo == hi)
    return storage_error::none;
  if (lo < unstable_.offset) {
    auto stored_hi = std::min(hi, unstable_.offset);
    auto err = store_.entries(lo, stored_hi, max_bytes, out);
    if (err != storage_error::none)
      return err;
    // The storage stopped at the size limit: done.
    if (out.size() < stored_hi - lo)
      return storage_error::none;
  }
  if (hi > unstable_.offset) {
    auto from = std::max(lo, unstable_.offset);
    auto& u = unstable_.entries;
    out.insert(out.end(),
               u.begin() + static_cast<ptrdiff_t>(from - unstable_.offset),
               u.begin() + static_cast<ptrdiff_t>(hi - unstable_.offset));
  }
  limit_size(out, max_bytes);
  return storage_error::none;
}

std::vector<entry> raft_log::next_committed() const {
  std::vector<entry> out;
  auto off = std::max(applied + 1, first_index());
  if (committed + 1 > off) {
    auto err = slice(off, committed + 1, max_committed_bytes_, out);
    ENGRAM_CONSENSUS_CHECK(err == storage_error::none,
                           "committed entries are unreadable");
  }
  return out;
}

bool raft_log::has_next_committed() const {
  return committed + 1 > std::max(applied + 1, first_index());
}

storage_error raft_log::get_snapshot(snapshot& out) const {
  if (unstable_.snap) {
    out = *unstable_.snap;
    return storage_error::none;
  }
  return store_.get_snapshot(out);
}

void raft_log::commit_to(index_t i) {
  if (committed < i) {
    ENGRAM_CONSENSUS_CHECK(i <= last_index(), "commit beyond the last entry");
    committed = i;
  }
}

void raft_log::applied_to(index_t i) {
  if (i == 0)
    return;
  ENGRAM_CONSENSUS_CHECK(i <= committed && i >= applied,
                         "applied outside (applied, committed]");
  applied = i;
}

bool raft_log::maybe_commit(index_t max_index, term_t t) {
  if (max_index > committed && term_or_zero(max_index) == t) {
    commit_to(max_index);
    return true;
  }
  return false;
}

void raft_log::restore(snapshot s) {
  committed = s.meta.index;
  unstable_.restore(std::move(s));
}

} // namespace engram::consensus
