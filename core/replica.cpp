#include "core/replica.hpp"

#include "core/hash.hpp"
#include "core/overload.hpp"

#include <algorithm>
#include <cassert>

namespace engram {

const char* to_string(crdt_strategy s) noexcept {
  switch (s) {
    case crdt_strategy::lww: return "lww";
    case crdt_strategy::mvr: return "mvr";
    case crdt_strategy::aw_set: return "aw_set";
    case crdt_strategy::custom: return "custom";
  }
  return "invalid";
}

namespace {

uint64_t version_hash(const engram_id& id, const dot& d) noexcept {
  return mix64(id.hi ^ mix64(id.lo ^ mix64(d.replica ^ mix64(d.counter))));
}

bool has_tag(const std::vector<version>& xs, const dot& d) noexcept {
  for (auto& x : xs)
    if (x.tag == d)
      return true;
  return false;
}

bool tag_less(const version& x, const version& y) noexcept {
  return x.tag < y.tag;
}

const version& newest(const std::vector<version>& xs) {
  assert(!xs.empty());
  return *std::max_element(xs.begin(), xs.end(), older_than);
}

std::vector<dot> tags_of(const std::vector<version>& xs) {
  std::vector<dot> result;
  result.reserve(xs.size());
  for (auto& x : xs)
    result.push_back(x.tag);
  return result;
}

} // namespace

size_t replica_delta::version_count() const noexcept {
  size_t result = 0;
  for (auto& e : entries)
    result += e.versions.size();
  return result;
}

namespace {

// Joins the versions of one engram (a dotted-version-vector set join): keeps
// what both hold and what one holds that the other has not seen.
std::vector<version> join_versions(const std::vector<version>& ours,
                                   const vector_clock& our_context,
                                   const std::vector<version>& theirs,
                                   const vector_clock& their_context) {
  std::vector<version> result;
  for (auto& v : ours)
    if (has_tag(theirs, v.tag) || !their_context.covers(v.tag))
      result.push_back(v);
  for (auto& v : theirs)
    if (!has_tag(ours, v.tag) && !our_context.covers(v.tag))
      result.push_back(v);
  std::sort(result.begin(), result.end(), tag_less);
  return result;
}

} // namespace

void join_deltas(replica_delta& into, const replica_delta& other) {
  auto join_entry = [](delta_entry& ours, const delta_entry& theirs) {
    ours.versions = join_versions(ours.versions, ours.context, theirs.versions,
                                  theirs.context);
    ours.context.merge(theirs.context);
  };
  if (other.entries.size() * into.entries.size() <= 4096) {
    // Small groups (batching one mutation at a time): scan from the most
    // recent entry instead of building an index on every call.
    for (auto& theirs : other.entries) {
      auto i = std::find_if(into.entries.rbegin(), into.entries.rend(),
                            [&](const delta_entry& e) {
                              return e.id == theirs.id;
                            });
      if (i == into.entries.rend())
        into.entries.push_back(theirs);
      else
        join_entry(*i, theirs);
    }
  } else {
    std::unordered_map<engram_id, size_t> index;
    index.reserve(into.entries.size());
    for (size_t i = 0; i < into.entries.size(); ++i)
      index.emplace(into.entries[i].id, i);
    for (auto& theirs : other.entries) {
      auto i = index.find(theirs.id);
      if (i == index.end()) {
        index.emplace(theirs.id, into.entries.size());
        into.entries.push_back(theirs);
      } else {
        join_entry(into.entries[i->second], theirs);
      }
    }
  }
  into.context.join(other.context);
}

replica_delta join_deltas(std::vector<replica_delta>&& parts) {
  replica_delta result;
  std::unordered_map<engram_id, size_t> index;
  for (auto& part : parts) {
    for (auto& theirs : part.entries) {
      auto i = index.find(theirs.id);
      if (i == index.end()) {
        index.emplace(theirs.id, result.entries.size());
        result.entries.push_back(std::move(theirs));
        continue;
      }
      auto& ours = result.entries[i->second];
      ours.versions = join_versions(ours.versions, ours.context,
                                    theirs.versions, theirs.context);
      ours.context.merge(theirs.context);
    }
    result.context.join(part.context);
  }
  parts.clear();
  return result;
}

causal_context own_dots(const replica_delta& delta) {
  std::vector<dot> dots;
  dots.reserve(delta.version_count());
  for (auto& entry : delta.entries)
    for (auto& v : entry.versions)
      dots.push_back(v.tag);
  return causal_context{std::move(dots)};
}

std::vector<replica_delta> split_delta(replica_delta&& delta,
                                       size_t max_versions) {
  std::vector<replica_delta> parts;
  if (max_versions == 0 || delta.version_count() <= max_versions) {
    parts.push_back(std::move(delta));
    return parts;
  }
  // The entries in the order of their oldest dot.
  struct ref {
    dot oldest;
    size_t index;
  };
  std::vector<ref> order;
  order.reserve(delta.entries.size());
  for (size_t i = 0; i < delta.entries.size(); ++i) {
    auto& versions = delta.entries[i].versions;
    dot oldest{~replica_id{0}, ~uint64_t{0}};
    for (auto& v : versions)
      oldest = std::min(oldest, v.tag);
    order.push_back({oldest, i});
  }
  std::sort(order.begin(), order.end(), [](const ref& x, const ref& y) {
    return x.oldest < y.oldest || (!(y.oldest < x.oldest) && x.index < y.index);
  });
  replica_delta current;
  size_t count = 0;
  auto close = [&] {
    std::sort(current.entries.begin(), current.entries.end(),
              [](const delta_entry& x, const delta_entry& y) {
                return x.id < y.id;
              });
    current.context = own_dots(current);
    parts.push_back(std::move(current));
    current = replica_delta{};
    count = 0;
  };
  for (auto& r : order) {
    auto& entry = delta.entries[r.index];
    if (count > 0 && count + entry.versions.size() > max_versions)
      close();
    count += entry.versions.size();
    current.entries.push_back(std::move(entry));
  }
  if (count > 0)
    close();
  return parts;
}

// -- construction ------------------------------------------------------------

replica::replica(replica_id self, hybrid_logical_clock& clock)
    : replica(self, clock, replica_config{}) {
  // nop
}

replica::replica(replica_id self, hybrid_logical_clock& clock,
                 replica_config config)
    : self_(self), clock_(&clock), config_(std::move(config)) {
  assert(self_ != 0);
}

// -- mutations ---------------------------------------------------------------

std::optional<replica::key_state> replica::load(const engram_id& id) const {
  auto* blob = entries_.find(id);
  if (blob == nullptr)
    return std::nullopt;
  packed::blob_view view;
  packed::parse(blob, dict_, view);
  return key_state{std::move(view.context), packed::decode_all(view, dict_)};
}

void replica::store(const engram_id& id, const vector_clock& context,
                    const version_list& versions) {
  writer_.begin(id, context, versions.size(), dict_);
  for (auto& v : versions)
    writer_.add(v, dict_);
  entries_.assign(id, writer_.bytes());
}

expected<replica_delta> replica::write(engram_record value, uint64_t resolves) {
  auto id = value.id;
  vector_clock context;
  if (auto* blob = entries_.find(id)) {
    packed::parse(blob, dict_, view_);
    for (auto& v : view_.versions) {
      digest_ ^= version_hash(id, v.tag);
      --version_count_;
    }
    context = view_.context;
  }
  value.updated = clock_->now();
  if (value.created == hlc_timestamp{})
    value.created = value.updated;
  // The write supersedes every version held. Receivers learn that from the
  // engram's version vector; the delta's context names only the new dot
  // (a receiver that never saw a superseded version gets its dot from the
  // next anti-entropy exchange, which carries the full context).
  auto d = context_.next_dot(self_);
  context.set(self_, d.counter);
  replica_delta delta;
  delta.context.insert(d);
  delta.entries.push_back(
      delta_entry{id, context, {version{d, resolves, std::move(value)}}});
  auto& entry = delta.entries.back();
  store(id, entry.context, entry.versions);
  digest_ ^= version_hash(id, d);
  ++version_count_;
  if (!questions_.empty())
    drop_stale_questions(id, {d});
  return delta;
}

expected<replica_delta> replica::put(engram_record value) {
  if (value.id.empty())
    value.id = derive_id(value.scope, value.body);
  if (auto ok = validate(value); !ok)
    return ok.error_value();
  if (value.created == hlc_timestamp{})
    if (auto key = load(value.id))
      for (auto& v : key->versions)
        if (value.created == hlc_timestamp{} || v.value.created < value.created)
          value.created = v.value.created;
  return write(std::move(value), 0);
}

expected<replica_delta> replica::forget(const engram_id& id,
                                        std::string reason) {
  auto current = get(id);
  if (!current)
    return make_error(errc::unknown_engram,
                      "no engram with id " + id.to_string());
  current->tombstone = true;
  current->archived = false;
  current->body = cleared_content(current->body);
  current->forget_reason = std::move(reason);
  return write(std::move(*current), 0);
}

expected<replica_delta> replica::archive(const engram_id& id) {
  auto current = get(id);
  if (!current)
    return make_error(errc::unknown_engram,
                      "no engram with id " + id.to_string());
  if (current->tombstone)
    return make_error(errc::unknown_engram,
                      "engram " + id.to_string() + " has been forgotten");
  current->archived = true;
  return write(std::move(*current), 0);
}

std::vector<pending_question>::iterator
replica::find_question(uint64_t conflict_id) {
  return std::find_if(questions_.begin(), questions_.end(),
                      [&](const pending_question& q) {
                        return q.subject.id == conflict_id;
                      });
}

expected<replica_delta> replica::answer(uint64_t conflict_id,
                                        const resolution& r) {
  auto i = find_question(conflict_id);
  if (i == questions_.end())
    return make_error(errc::unknown_conflict,
                      "no pending question for conflict "
                          + std::to_string(conflict_id));
  if (std::holds_alternative<ask_user>(r))
    return make_error(errc::invalid_resolution,
                      "an answer cannot ask another question");
  auto c = i->subject;
  questions_.erase(i);
  const conflict_handler* handler = nullptr;
  if (auto esc = std::get_if<escalate>(&config_.resolution.for_kind(c.kind)))
    handler = &esc->handler;
  replica_delta result;
  if (auto f = std::get_if<fork_versions>(&r)) {
    fork_marks_[c.key] = f->mark_contested;
  } else {
    auto type = newest(c.versions()).value.type;
    auto chosen = choose(c, r, config_.merge[static_cast<size_t>(type)]);
    if (!chosen)
      return chosen.error_value();
    auto delta = write(std::move(*chosen), c.id);
    if (!delta)
      return delta.error_value();
    result = std::move(*delta);
  }
  if (handler && handler->on_resolved)
    handler->on_resolved(c, r);
  return result;
}

expected<replica_delta> replica::answer(uint64_t conflict_id,
                                        const std::string& option) {
  auto i = find_question(conflict_id);
  if (i == questions_.end())
    return make_error(errc::unknown_conflict,
                      "no pending question for conflict "
                          + std::to_string(conflict_id));
  auto r = resolution_for_option(i->question, option);
  if (!r)
    return r.error_value();
  return answer(conflict_id, *r);
}

// -- merging -----------------------------------------------------------------

expected<void> replica::check(const replica_delta& delta) const {
  std::vector<engram_id> ids;
  ids.reserve(delta.entries.size());
  for (auto& entry : delta.entries) {
    if (entry.id.empty())
      return make_error(errc::malformed_delta, "delta entry without an id");
    ids.push_back(entry.id);
    for (auto& v : entry.versions) {
      if (v.tag.replica == 0 || v.tag.counter == 0)
        return make_error(errc::malformed_delta, "version of "
                                                     + entry.id.to_string()
                                                     + " has an invalid dot");
      if (!delta.context.contains(v.tag) || !entry.context.covers(v.tag))
        return make_error(errc::malformed_delta,
                          "version of " + entry.id.to_string()
                              + " lies outside the delta's causal context");
      if (v.value.id != entry.id)
        return make_error(errc::malformed_delta,
                          "version of " + entry.id.to_string()
                              + " carries engram " + v.value.id.to_string());
      if (auto ok = validate(v.value); !ok)
        return make_error(errc::malformed_delta,
                          "version of " + entry.id.to_string()
                              + " is invalid: " + ok.error_value().to_string());
    }
    for (size_t i = 0; i < entry.versions.size(); ++i)
      for (size_t j = i + 1; j < entry.versions.size(); ++j)
        if (entry.versions[i].tag == entry.versions[j].tag)
          return make_error(errc::malformed_delta, "two versions of "
                                                       + entry.id.to_string()
                                                       + " share a dot");
  }
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end())
    return make_error(errc::malformed_delta,
                      "delta lists the same engram twice");
  return {};
}

expected<join_report> replica::join(const replica_delta& delta) {
  return join_impl(delta, true);
}

expected<join_report> replica::join(replica_delta&& delta) {
  // The versions are copied into the packed form either way.
  return join(static_cast<const replica_delta&>(delta));
}

expected<void> replica::restore(replica_delta&& state) {
  auto report = join_impl(state, false);
  if (!report)
    return report.error_value();
  return {};
}

expected<join_report> replica::join_impl(const replica_delta& delta,
                                         bool resolve_conflicts) {
  if (auto ok = check(delta); !ok)
    return ok.error_value();
  join_report report;
  hlc_timestamp latest;
  // Keys that gained versions: (id, number of local versions kept).
  std::vector<std::pair<engram_id, size_t>> touched;
  // Memory-level parallelism: prefetch the table slots of every engram,
  // then the blobs they point to, then merge. A batch's lookups miss the
  // cache independently, so overlapping them beats chasing them one by one.
  // (A blob found stays as it is until its own engram is assigned.)
  for (auto& entry : delta.entries)
    entries_.prefetch(entry.id);
  for (auto& entry : delta.entries)
    entries_.prefetch_blob(entry.id);
  std::vector<const uint8_t*> blobs;
  blobs.reserve(delta.entries.size());
  for (auto& entry : delta.entries)
    blobs.push_back(entries_.find(entry.id));
  std::vector<const packed::version_ref*> kept;
  std::vector<const version*> added;
  std::vector<dot> held;
  vector_clock merged;
  for (size_t k = 0; k < delta.entries.size(); ++k) {
    auto& entry = delta.entries[k];
    auto* blob = blobs[k];
    if (blob == nullptr) {
      // A new engram.
      for (auto& v : entry.versions) {
        digest_ ^= version_hash(entry.id, v.tag);
        ++version_count_;
        if (latest < v.value.updated)
          latest = v.value.updated;
      }
      report.applied += entry.versions.size();
      store(entry.id, entry.context, entry.versions);
      if (resolve_conflicts && entry.versions.size() > 1)
        touched.emplace_back(entry.id, 0);
      continue;
    }
    packed::parse(blob, dict_, view_);
    // Keep the local versions the sender has not seen superseded.
    kept.clear();
    for (auto& v : view_.versions) {
      if (entry.context.covers(v.tag) && !has_tag(entry.versions, v.tag)) {
        digest_ ^= version_hash(entry.id, v.tag);
        --version_count_;
        ++report.superseded;
      } else {
        kept.push_back(&v);
      }
    }
    // Add the versions we have not seen (held already, or superseded by a
    // write we have seen, otherwise).
    added.clear();
    for (auto& v : entry.versions) {
      if (view_.context.covers(v.tag))
        continue;
      if (latest < v.value.updated)
        latest = v.value.updated;
      digest_ ^= version_hash(entry.id, v.tag);
      ++version_count_;
      ++report.applied;
      added.push_back(&v);
    }
    merged = view_.context;
    merged.merge(entry.context);
    if (kept.size() == view_.versions.size() && added.empty()
        && merged == view_.context)
      continue; // nothing new
    writer_.begin(entry.id, merged, kept.size() + added.size(), dict_);
    held.clear();
    for (auto* ref : kept) {
      writer_.copy(*ref, dict_);
      held.push_back(ref->tag);
    }
    for (auto* v : added) {
      writer_.add(*v, dict_);
      held.push_back(v->tag);
    }
    entries_.assign(entry.id, writer_.bytes());
    if (!questions_.empty())
      drop_stale_questions(entry.id, held);
    if (resolve_conflicts && !added.empty() && held.size() > 1)
      touched.emplace_back(entry.id, kept.size());
  }
  context_.join(delta.context);
  if (latest != hlc_timestamp{})
    clock_->update(latest);
  // Resolve after the clock has seen the remote writes, so that resolving
  // writes are newer than the versions they resolve.
  for (auto& [id, local_count] : touched)
    after_join(id, local_count, report);
  return report;
}

bool replica::collapsed(const version_list& versions) const {
  if (versions.size() < 2)
    return true;
  auto resolves = versions.front().resolves;
  bool same_resolution = resolves != 0;
  for (auto& v : versions)
    if (v.resolves != resolves)
      same_resolution = false;
  if (same_resolution)
    return true;
  auto h = content_hash(versions.front().value);
  for (size_t i = 1; i < versions.size(); ++i)
    if (content_hash(versions[i].value) != h)
      return false;
  return true;
}

void replica::after_join(const engram_id& id, size_t local_count,
                         join_report& report) {
  auto key = load(id);
  assert(key);
  auto& versions = key->versions;
  auto type = newest(versions).value.type;
  auto strategy = config_.strategy[static_cast<size_t>(type)];
  if (strategy == crdt_strategy::lww) {
    // Keep only the newest; the others' dots are in our context already.
    auto winner = newest(versions);
    for (auto& v : versions)
      if (v.tag != winner.tag) {
        digest_ ^= version_hash(id, v.tag);
        --version_count_;
      }
    versions.assign(1, std::move(winner));
    store(id, key->context, versions);
    return;
  }
  if (strategy == crdt_strategy::aw_set)
    return;
  auto kind = classify(versions);
  auto& configured = config_.resolution.for_kind(kind);
  // TakeHighestConfidence still resolves by writing: pruning by confidence
  // diverged in the convergence property tests (not yet understood).
  // Only facts: whether to prune must not depend on which versions a
  // replica saw together, and a fact engram's conflicts are always value
  // conflicts (a belief's kind changes with a tombstone among them).
  bool prune
      = strategy != crdt_strategy::custom
        && std::holds_alternative<take_newest>(configured)
        && std::all_of(versions.begin(), versions.end(), [](const version& v) {
             return std::holds_alternative<fact>(v.value.body);
           });
  bool is_conflict = !collapsed(versions);
  if (!is_conflict && !prune)
    return;
  conflict c;
  c.key = id;
  c.kind = kind;
  c.local.assign(versions.begin(),
                 versions.begin() + static_cast<ptrdiff_t>(local_count));
  c.remote.assign(versions.begin() + static_cast<ptrdiff_t>(local_count),
                  versions.end());
  std::sort(c.local.begin(), c.local.end(), tag_less);
  std::sort(c.remote.begin(), c.remote.end(), tag_less);
  c.id = conflict_id_of(tags_of(versions));
  // A new conflict on this engram replaces any question still open on it.
  questions_.erase(std::remove_if(questions_.begin(), questions_.end(),
                                  [&](const pending_question& q) {
                                    return q.subject.key == id;
                                  }),
                   questions_.end());
  if (prune) {
    // A winner every replica picks alike needs no write: the losers are
    // dropped and their dots stay in the engram's version vector, so they
    // stay superseded everywhere (as with LWW). Writing the winner instead
    // makes every replica's resolution a new concurrent version under load:
    // a cascade. Equal contents are pruned too (silently), so that every
    // replica keeps the same single version whatever it saw together.
    auto better = [](const version& x, const version& y) {
      if (x.value.updated != y.value.updated)
        return x.value.updated < y.value.updated;
      return x.tag < y.tag;
    };
    auto winner = *std::max_element(versions.begin(), versions.end(), better);
    for (auto& v : versions)
      if (v.tag != winner.tag) {
        digest_ ^= version_hash(id, v.tag);
        --version_count_;
      }
    versions.assign(1, std::move(winner));
    store(id, key->context, versions);
    if (is_conflict) {
      report.conflicts.push_back(c);
      report.resolved.push_back(resolved_conflict{c, take_newest{}});
    }
    return;
  }
  report.conflicts.push_back(c);
  if (strategy == crdt_strategy::custom)
    apply(c, merge{}, nullptr, report);
  else
    resolve(c, configured, report);
}

void replica::resolve(const conflict& c, const conflict_resolution& strategy,
                      join_report& report) {
  std::visit(overload{
                 [&](const escalate& x) {
                   if (x.handler.on_conflict)
                     apply(c, x.handler.on_conflict(c), &x.handler, report);
                   else
                     apply(c,
                           ask_user{"Conflict detected: " + c.to_string()
                                        + ". Which version?",
                                    {"Local", "Remote", "Both"}},
                           &x.handler, report);
                 },
                 [&](const custom& x) {
                   apply(c,
                         x.resolver ? x.resolver(c)
                                    : resolution{fork_versions{true}},
                         nullptr, report);
                 },
                 [&](const auto& x) {
                   apply(c, resolution{x}, nullptr, report);
                 },
             },
             strategy);
}

void replica::apply(const conflict& c, const resolution& r,
                    const conflict_handler* handler, join_report& report) {
  if (auto f = std::get_if<fork_versions>(&r)) {
    fork_marks_[c.key] = f->mark_contested;
    report.forked.push_back(c);
    if (handler && handler->on_resolved)
      handler->on_resolved(c, r);
    return;
  }
  if (auto q = std::get_if<ask_user>(&r)) {
    pending_question pq{c, *q};
    questions_.push_back(pq);
    report.pending.push_back(std::move(pq));
    return;
  }
  auto type = newest(c.versions()).value.type;
  auto chosen = choose(c, r, config_.merge[static_cast<size_t>(type)]);
  if (!chosen) {
    // A resolver gave an unusable answer: keep the alternatives rather than
    // guess; the conflict stays visible.
    fork_marks_[c.key] = true;
    report.forked.push_back(c);
    return;
  }
  auto delta = write(std::move(*chosen), c.id);
  if (!delta) {
    fork_marks_[c.key] = true;
    report.forked.push_back(c);
    return;
  }
  join_deltas(report.resolutions, *delta);
  report.resolved.push_back(resolved_conflict{c, r});
  if (handler && handler->on_resolved)
    handler->on_resolved(c, r);
}

void replica::drop_stale_questions(const engram_id& id,
                                   const std::vector<dot>& held) {
  questions_.erase(
      std::remove_if(questions_.begin(), questions_.end(),
                     [&](const pending_question& q) {
                       if (q.subject.key != id)
                         return false;
                       for (auto& v : q.subject.versions())
                         if (std::find(held.begin(), held.end(), v.tag)
                             == held.end())
                           return true;
                       return false;
                     }),
      questions_.end());
}

// -- reads -------------------------------------------------------------------

std::optional<std::vector<version>>
replica::versions(const engram_id& id) const {
  auto key = load(id);
  if (!key)
    return std::nullopt;
  return std::move(key->versions);
}

std::optional<delta_entry> replica::entry_of(const engram_id& id) const {
  auto key = load(id);
  if (!key)
    return std::nullopt;
  return delta_entry{id, std::move(key->context), std::move(key->versions)};
}

std::vector<memory_view> replica::read(const engram_id& id) const {
  std::vector<memory_view> result;
  auto key = load(id);
  if (!key || key->versions.empty())
    return result;
  auto sorted = key->versions;
  std::sort(sorted.begin(), sorted.end(), tag_less);
  if (collapsed(sorted)) {
    auto& v = newest(sorted);
    result.push_back(memory_view{v.value, v.tag, false});
    return result;
  }
  auto type = newest(sorted).value.type;
  auto strategy = config_.strategy[static_cast<size_t>(type)];
  if (strategy == crdt_strategy::aw_set) {
    auto& body = sorted.front().value.body;
    if (std::holds_alternative<episode>(body)
        || std::holds_alternative<skill>(body)) {
      engram_record acc = sorted.front().value;
      for (size_t k = 1; k < sorted.size(); ++k)
        acc = builtin_merge(acc, sorted[k].value);
      result.push_back(memory_view{std::move(acc), newest(sorted).tag, false});
      return result;
    }
  }
  bool contested = strategy != crdt_strategy::aw_set;
  if (auto m = fork_marks_.find(id); m != fork_marks_.end())
    contested = m->second;
  for (auto& q : questions_)
    if (q.subject.key == id)
      contested = true;
  std::vector<uint64_t> seen;
  for (auto& v : sorted) {
    auto h = content_hash(v.value);
    if (std::find(seen.begin(), seen.end(), h) != seen.end())
      continue;
    seen.push_back(h);
    result.push_back(memory_view{v.value, v.tag, contested});
  }
  return result;
}

std::optional<engram_record> replica::get(const engram_id& id) const {
  auto views = read(id);
  if (views.empty())
    return std::nullopt;
  auto best = std::max_element(views.begin(), views.end(),
                               [](const memory_view& x, const memory_view& y) {
                                 if (x.value.updated != y.value.updated)
                                   return x.value.updated < y.value.updated;
                                 return x.tag < y.tag;
                               });
  return best->value;
}

uint64_t replica::digest_of(
    const std::function<bool(const std::vector<version>&)>& keep) const {
  uint64_t result = 0;
  packed::blob_view view;
  entries_.for_each([&](const uint8_t* blob) {
    packed::parse(blob, dict_, view);
    if (!keep(packed::decode_all(view, dict_)))
      return;
    for (auto& v : view.versions)
      result ^= version_hash(view.id, v.tag);
  });
  return result;
}

replica_delta
filter_delta(const replica_delta& delta,
             const std::function<bool(const std::vector<version>&)>& keep) {
  replica_delta result;
  for (auto& entry : delta.entries)
    if (keep(entry.versions))
      result.entries.push_back(entry);
  result.context = own_dots(result);
  return result;
}

void replica::for_each(
    const std::function<void(const engram_id&, const std::vector<version>&)>& f)
    const {
  std::vector<engram_id> ids;
  ids.reserve(entries_.size());
  entries_.for_each([&](const uint8_t* blob) {
    ids.push_back(packed::blob_id(blob));
  });
  std::sort(ids.begin(), ids.end());
  // Looked up one by one: `f` may write to this replica.
  for (auto& id : ids)
    if (auto key = load(id))
      f(id, key->versions);
}

void replica::scan(
    const std::function<void(const engram_id&,
                             const std::vector<packed::version_summary>&)>& f)
    const {
  packed::blob_view view;
  std::vector<packed::version_summary> summaries;
  entries_.for_each([&](const uint8_t* blob) {
    packed::parse(blob, dict_, view);
    summaries.clear();
    for (auto& ref : view.versions)
      summaries.push_back(packed::summarize(ref, dict_));
    f(view.id, summaries);
  });
}

std::vector<pending_question> replica::pending_questions() const {
  auto result = questions_;
  std::sort(result.begin(), result.end(),
            [](const pending_question& x, const pending_question& y) {
              return x.subject.id < y.subject.id;
            });
  return result;
}

replica_delta replica::delta_since(const causal_context& peer) const {
  replica_delta result;
  // Sorted by id with the id beside the blob: comparing ids read from the
  // blobs would miss the cache twice per comparison.
  struct missing {
    engram_id id;
    const uint8_t* blob;
  };
  std::vector<missing> blobs;
  packed::blob_view view;
  entries_.for_each([&](const uint8_t* blob) {
    packed::parse(blob, dict_, view);
    for (auto& v : view.versions)
      if (!peer.contains(v.tag)) {
        blobs.push_back({view.id, blob});
        break;
      }
  });
  std::sort(blobs.begin(), blobs.end(), [](const missing& x, const missing& y) {
    return x.id < y.id;
  });
  result.entries.reserve(blobs.size());
  for (auto& m : blobs) {
    packed::parse(m.blob, dict_, view);
    delta_entry entry{view.id, view.context, packed::decode_all(view, dict_)};
    std::sort(entry.versions.begin(), entry.versions.end(), tag_less);
    result.entries.push_back(std::move(entry));
  }
  result.context = context_;
  return result;
}

std::vector<engram_id>
replica::missing_since(const causal_context& peer) const {
  struct missing {
    dot oldest;
    engram_id id;
  };
  std::vector<missing> found;
  packed::blob_view view;
  entries_.for_each([&](const uint8_t* blob) {
    packed::parse(blob, dict_, view);
    bool needed = false;
    dot oldest{~replica_id{0}, ~uint64_t{0}};
    for (auto& v : view.versions) {
      needed = needed || !peer.contains(v.tag);
      oldest = std::min(oldest, v.tag);
    }
    if (needed)
      found.push_back({oldest, view.id});
  });
  // A dot belongs to one version of one engram: no two oldest dots tie.
  std::sort(found.begin(), found.end(), [](const missing& x, const missing& y) {
    return x.oldest < y.oldest;
  });
  std::vector<engram_id> result;
  result.reserve(found.size());
  for (auto& m : found)
    result.push_back(m.id);
  return result;
}

replica_delta replica::delta_of(const std::vector<engram_id>& ids) const {
  replica_delta result;
  result.entries.reserve(ids.size());
  packed::blob_view view;
  for (auto& id : ids) {
    auto* blob = entries_.find(id);
    if (blob == nullptr)
      continue;
    packed::parse(blob, dict_, view);
    delta_entry entry{view.id, view.context, packed::decode_all(view, dict_)};
    std::sort(entry.versions.begin(), entry.versions.end(), tag_less);
    result.entries.push_back(std::move(entry));
  }
  result.context = own_dots(result);
  return result;
}

bool replica::same_state(const replica& other) const {
  if (entries_.size() != other.entries_.size()
      || version_count_ != other.version_count_ || context_ != other.context_
      || digest_ != other.digest_)
    return false;
  bool same = true;
  entries_.for_each([&](const uint8_t* blob) {
    if (!same)
      return;
    auto id = packed::blob_id(blob);
    auto ours = load(id);
    auto theirs = other.load(id);
    if (!theirs || theirs->context != ours->context
        || theirs->versions.size() != ours->versions.size()) {
      same = false;
      return;
    }
    auto& xs = ours->versions;
    auto& ys = theirs->versions;
    std::sort(xs.begin(), xs.end(), tag_less);
    std::sort(ys.begin(), ys.end(), tag_less);
    same = xs == ys;
  });
  return same;
}

} // namespace engram
