#pragma once

#include "core/blob_map.hpp"
#include "core/causal_context.hpp"
#include "core/conflict.hpp"
#include "core/engram.hpp"
#include "core/error.hpp"
#include "core/hlc.hpp"
#include "core/packed.hpp"
#include "core/resolution.hpp"
#include "core/version.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

namespace engram {

// -- configuration ----------------------------------------------------------

/// The spec's CRDT strategies, chosen per memory type.
enum class crdt_strategy : uint8_t {
  /// Last writer wins: concurrent versions collapse to the one with the
  /// greatest (HLC, dot); no conflict is reported.
  lww,
  /// Multi-value register: concurrent versions are kept and reported as a
  /// conflict, then resolved per `conflict_resolution_config`.
  mvr,
  /// Add-wins: concurrent versions are all kept without conflict; reads unite
  /// them (events and refinements merged, facts and beliefs listed).
  aw_set,
  /// Concurrent versions are merged by the memory type's merge function; the
  /// merge is recorded as a resolving write.
  custom,
};

/// Returns "lww", "mvr", "aw_set" or "custom".
const char* to_string(crdt_strategy s) noexcept;

/// How a replica merges and resolves.
struct replica_config {
  /// CRDT strategy per memory type (indexed by `memory_type`).
  std::array<crdt_strategy, memory_type_count> strategy{
      crdt_strategy::mvr, crdt_strategy::mvr, crdt_strategy::mvr,
      crdt_strategy::mvr};
  /// Merge function per memory type (may be empty): used by the `custom`
  /// strategy and by the `merge` resolution.
  std::array<merge_function, memory_type_count> merge;
  /// Resolution strategy per conflict kind.
  conflict_resolution_config resolution;
};

// -- deltas -----------------------------------------------------------------

/// The versions of one engram carried by a delta, with the engram's context:
/// a version vector of the writes to this engram its sender had seen (a
/// dotted version vector). Versions whose dots the context covers but that
/// are not listed have been superseded.
struct delta_entry {
  engram_id id;
  vector_clock context;
  std::vector<version> versions;
};

/// A delta of a replica: per-engram entries, plus a causal context the
/// receiver adds to the set of events it has seen. A write's delta names just
/// its new dot (what it supersedes travels in the engram's version vector);
/// a full state or `delta_since` carries the sender's whole context. Deltas
/// are states too: joining deltas into each other gives delta groups.
struct replica_delta {
  std::vector<delta_entry> entries;
  causal_context context;

  bool empty() const noexcept { return entries.empty() && context.empty(); }

  /// The number of versions carried.
  size_t version_count() const noexcept;
};

/// The entries of `delta` that `keep` selects, with a context naming just
/// their versions' dots (what a receiver holding only that share may mark
/// as seen).
replica_delta
filter_delta(const replica_delta& delta,
             const std::function<bool(const std::vector<version>&)>& keep);

/// The dots of the versions `delta` carries: the context of a delta that
/// claims no more than it carries (a part, a piece, a filtered share).
causal_context own_dots(const replica_delta& delta);

/// Joins delta `other` into delta `into` (delta groups for batching).
void join_deltas(replica_delta& into, const replica_delta& other);

/// Joins many deltas into one (linear in their total size).
replica_delta join_deltas(std::vector<replica_delta>&& parts);

/// Splits a delta into parts of at most `max_versions` versions (an engram's
/// versions stay together; a delta that fits is returned whole). Each part
/// carries as context only the dots of its own versions, so a receiver that
/// got some parts never believes it saw an event it did not receive; what
/// the versions supersede travels in their engrams' version vectors. (The
/// delta's other context — superseded writes of engrams not carried — is
/// not needed to converge, only to keep contexts compact.)
///
/// Engrams go into parts in the order of their oldest dot (entries within a
/// part by id): part after part covers consecutive events, so a receiver
/// merging them in order keeps a compact context (a version vector) rather
/// than a cloud of one dot per engram received so far. (In id order, a
/// receiver halfway through a pull of a million engrams held half a million
/// scattered dots, and sent them back in every request.)
std::vector<replica_delta> split_delta(replica_delta&& delta,
                                       size_t max_versions);

// -- results ----------------------------------------------------------------

/// A conflict resolved during a join or by an answer.
struct resolved_conflict {
  conflict subject;
  resolution applied;
};

/// A conflict waiting for a human answer (AskUser).
struct pending_question {
  conflict subject;
  ask_user question;
};

/// What a join did.
struct join_report {
  /// Versions added to the replica.
  size_t applied = 0;
  /// Local versions superseded by the delta.
  size_t superseded = 0;
  /// Conflicts detected by this join.
  std::vector<conflict> conflicts;
  /// Conflicts this replica resolved automatically.
  std::vector<resolved_conflict> resolved;
  /// Conflicts kept as alternatives (Fork).
  std::vector<conflict> forked;
  /// Conflicts now waiting for an answer.
  std::vector<pending_question> pending;
  /// The writes this replica made to resolve conflicts: ship them to peers.
  replica_delta resolutions;
};

/// One visible alternative of an engram.
/// The guarantee a memory has.
enum class guarantee : uint8_t {
  /// Replicated as a CRDT: every replica converges to the same value; a
  /// read may not see the latest write made elsewhere.
  crdt,
  /// Decided by consensus (Raft): written once a quorum stored it, read
  /// linearizably.
  consensus,
};

struct memory_view {
  engram_record value;
  /// The write it comes from.
  dot tag;
  /// True when concurrent alternatives exist and the conflict is marked
  /// contested (Fork{mark_contested}) or awaits an answer.
  bool contested = false;
  /// Whether it is a CRDT's or decided by consensus.
  guarantee consistency = guarantee::crdt;
};

// -- the replica ------------------------------------------------------------

/// A replica of memory: a keyed map of engrams (an observed-remove map of
/// multi-value registers, delta-state). Every mutation returns the delta to
/// ship; `join` is commutative, associative and idempotent, so replicas that
/// received the same deltas, in any order and any number of times, hold the
/// same state. Conflicts are detected on join and resolved per config; a
/// resolution is a write that supersedes exactly the versions it resolves,
/// and concurrent resolutions of the same conflict collapse deterministically,
/// so replicas converge whatever strategy is configured.
///
/// Not thread-safe: one owner (an actor) per replica.
class replica {
public:
  /// A replica with the default configuration (the spec's defaults).
  replica(replica_id self, hybrid_logical_clock& clock);

  replica(replica_id self, hybrid_logical_clock& clock, replica_config config);

  replica(const replica&) = delete;
  replica& operator=(const replica&) = delete;

  // -- mutations ------------------------------------------------------------

  /// Writes an engram (create or update). An empty id is derived from the
  /// scope and the content's key. The write supersedes every version of the
  /// id this replica holds. Sets `updated` (and `created` for a new engram).
  expected<replica_delta> put(engram_record value);

  /// Forgets an engram: writes a tombstone that keeps the key, clears the
  /// content and records `reason`.
  expected<replica_delta> forget(const engram_id& id, std::string reason);

  /// Archives an engram: it is kept but hidden from default queries.
  expected<replica_delta> archive(const engram_id& id);

  /// Answers a pending question with a resolution.
  expected<replica_delta> answer(uint64_t conflict_id, const resolution& r);

  /// Answers a pending question with one of its offered options.
  expected<replica_delta> answer(uint64_t conflict_id,
                                 const std::string& option);

  // -- merging --------------------------------------------------------------

  /// Joins a delta (or a full state) from a peer, detects and resolves
  /// conflicts. A malformed delta is refused as a whole (`malformed_delta`)
  /// and leaves the replica unchanged.
  expected<join_report> join(const replica_delta& delta);

  /// As above (the versions are copied into the packed form either way;
  /// kept for callers that hand their delta over).
  expected<join_report> join(replica_delta&& delta);

  /// Installs a state read back from durable storage: a join that detects
  /// and resolves nothing, so the replica is restored exactly as stored.
  expected<void> restore(replica_delta&& state);

  // -- reads ----------------------------------------------------------------

  /// The visible alternatives of an engram: one normally; several when
  /// concurrent versions are forked, pending or kept by an add-wins
  /// strategy. Empty when the id is unknown.
  std::vector<memory_view> read(const engram_id& id) const;

  /// The winning view of an engram: the single alternative, or the newest of
  /// several. Nullopt when unknown.
  std::optional<engram_record> get(const engram_id& id) const;

  /// The raw versions held for an id (nullopt when unknown).
  std::optional<std::vector<version>> versions(const engram_id& id) const;

  /// True when the replica holds the id (live, archived or forgotten).
  bool contains(const engram_id& id) const noexcept {
    return entries_.find(id) != nullptr;
  }

  /// An engram's version vector (the writes to it seen) and versions, read
  /// in one go (nullopt when unknown); the versions in the order held.
  std::optional<delta_entry> entry_of(const engram_id& id) const;

  /// Calls `f(id, versions)` for every engram held when the call began, in
  /// ascending id order (the versions are decoded for the call).
  void for_each(
      const std::function<void(const engram_id&, const std::vector<version>&)>&
          f) const;

  /// Calls `f(id, summaries)` for every engram, in no particular order,
  /// with what queries filter on for each version (nothing decoded). `f`
  /// must not write to this replica.
  void scan(
      const std::function<void(const engram_id&,
                               const std::vector<packed::version_summary>&)>& f)
      const;

  /// Questions waiting for an answer, ordered by conflict id.
  std::vector<pending_question> pending_questions() const;

  /// The versions needed by a peer that has seen the events `peer`: every
  /// engram with a version outside `peer`, with all its current versions and
  /// its context, plus this replica's full context. With an empty context:
  /// the full state.
  replica_delta delta_since(const causal_context& peer) const;

  /// The full state as a delta.
  replica_delta full_state() const { return delta_since({}); }

  /// The engrams `delta_since(peer)` would carry, without decoding them: in
  /// the order of their oldest version's dot, the order `split_delta` sends
  /// them in. A large delta is then read in pieces (`delta_of`), so its
  /// first frames leave before the rest is decoded.
  std::vector<engram_id> missing_since(const causal_context& peer) const;

  /// The engrams `ids` with all their current versions and contexts, in the
  /// order given (ids not held are skipped); the context names just those
  /// versions' dots (a piece of a larger delta: see `split_delta`).
  replica_delta delta_of(const std::vector<engram_id>& ids) const;

  /// The events this replica has seen (written, received, or known to be
  /// superseded).
  const causal_context& context() const noexcept { return context_; }

  /// An order-insensitive digest of the live versions, maintained
  /// incrementally (O(1)): equal states have equal digests.
  uint64_t digest() const noexcept { return digest_; }

  /// The digest of the engrams `keep` selects (O(n)): two replicas whose
  /// selections hold the same versions have equal digests. For replicas
  /// that hold different shares of the data (partitioning).
  uint64_t
  digest_of(const std::function<bool(const std::vector<version>&)>& keep) const;

  /// Number of engrams (ids) held.
  size_t size() const noexcept { return entries_.size(); }

  /// Bytes of the packed engrams: the table, the blobs and the free blocks
  /// their replacements left for reuse.
  size_t memory_bytes() const noexcept {
    return entries_.table_bytes() + entries_.used_bytes();
  }

  /// Bytes of the live blobs alone.
  size_t live_bytes() const noexcept { return entries_.live_bytes(); }

  /// Number of versions held (≥ size()).
  size_t version_count() const noexcept { return version_count_; }

  /// True when both replicas hold exactly the same versions and context.
  bool same_state(const replica& other) const;

  replica_id self() const noexcept { return self_; }

  const replica_config& config() const noexcept { return config_; }

  /// Changes how conflicts detected from now on are resolved (e.g. a
  /// federation's rules changed). Conflicts already pending or forked stay
  /// as they are until answered or superseded.
  void set_resolution(conflict_resolution_config resolution) {
    config_.resolution = std::move(resolution);
  }

  hybrid_logical_clock& clock_source() noexcept { return *clock_; }

private:
  using version_list = std::vector<version>;

  /// An engram decoded: the version vector of the writes seen (it covers
  /// every version held) and the versions not yet superseded.
  struct key_state {
    vector_clock context;
    version_list versions;
  };

  std::optional<key_state> load(const engram_id& id) const;

  /// Replaces the stored form of `id`.
  void store(const engram_id& id, const vector_clock& context,
             const version_list& versions);

  /// Writes a new version of `value.id` superseding every version held.
  expected<replica_delta> write(engram_record value, uint64_t resolves);

  expected<join_report> join_impl(const replica_delta& delta,
                                  bool resolve_conflicts);

  expected<void> check(const replica_delta& delta) const;

  void after_join(const engram_id& id, size_t local_count, join_report& report);

  void resolve(const conflict& c, const conflict_resolution& strategy,
               join_report& report);

  void apply(const conflict& c, const resolution& r,
             const conflict_handler* handler, join_report& report);

  std::vector<pending_question>::iterator find_question(uint64_t conflict_id);

  void drop_stale_questions(const engram_id& id, const std::vector<dot>& held);

  bool collapsed(const version_list& versions) const;

  replica_id self_;
  hybrid_logical_clock* clock_;
  replica_config config_;
  /// The engrams, packed (core/packed.hpp): ~60 bytes per engram beyond
  /// its strings, against ~600 as decoded structs.
  blob_map entries_;
  packed::dictionary dict_;
  packed::writer writer_;
  /// Scratch of merges (kept to reuse its storage).
  packed::blob_view view_;
  causal_context context_;
  uint64_t digest_ = 0;
  size_t version_count_ = 0;
  std::vector<pending_question> questions_;
  /// Local presentation only (not replicated): whether forked alternatives
  /// of an engram are marked contested.
  std::unordered_map<engram_id, bool> fork_marks_;
};

} // namespace engram
