#pragma once

// The proofs of origin of one memory on one node (origin/origin.hpp says
// what they are). Its sessions prove what they send (`prove`) and check
// what they receive (`check`); its agent stores the proofs kept
// (`take_unsaved`) in the batch that stores the versions, restores them on
// start (`restore`) and drops those of superseded versions (`prune`).
// Thread-safe: an agent and its sessions run on different threads.

#include "core/causal_context.hpp"
#include "core/error.hpp"
#include "core/replica.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engram/v1/sync.pb.h"
#include "origin/origin.hpp"

namespace engram::crypto {
class signing_key;
} // namespace engram::crypto

namespace engram::origin {

/// A proof or key as stored: its key in the store and its bytes.
using stored = std::pair<std::string, std::string>;

class book {
public:
  /// Who proves here, and against what proofs are checked.
  struct config {
    /// This node, and the memory (agent or federation) the book is for.
    std::string node;
    std::string agent;
    /// What this node signs with, and the OriginKey binding it.
    std::shared_ptr<const crypto::signing_key> key;
    v1::OriginKey binding;
    /// This node's replica ids of the memory, by incarnation.
    std::vector<replica_id> own;
    /// The CA and revocation list OriginKeys are checked against; `anchor`
    /// keeps them alive.
    origin::trust trust;
    std::shared_ptr<const void> anchor;
  };

  explicit book(config cfg);

  /// Adds to `batch` the proofs of `delta`'s versions: a tree signed now
  /// for this node's own versions, the kept proofs (narrowed to what is
  /// carried) for the others, and the keys they name. Returns how many
  /// versions it has no proof for (sent without: a receiver drops them).
  size_t prove(const replica_delta& delta, v1::DeltaBatch& batch) const;

  /// What `check` refused.
  struct refusal {
    /// Versions dropped from the delta.
    size_t dropped = 0;
    /// Why (the first few reasons).
    std::vector<std::string> reasons;
  };

  /// Checks every version of `delta` (decoded from `batch`) against the
  /// proofs and keys `batch` carries: a version is kept only when a valid
  /// key of the node its dot names signed a tree holding it, and it was
  /// written while that key's certificate was valid. The others are
  /// dropped from `delta` (and their dots from its contexts, so they are
  /// taken when a proof comes with them). The proofs of what is kept are
  /// kept for relaying. Error: the delta cannot be narrowed (a dropped dot
  /// deep inside a long contiguous context): refuse the whole frame.
  expected<refusal> check(const v1::DeltaBatch& batch, replica_delta& delta);

  /// The proofs and keys kept since the last call, to store.
  std::vector<stored> take_unsaved();

  /// Restores what was stored (records that do not decode are skipped and
  /// returned as keys to delete).
  std::vector<std::string> restore(const std::vector<stored>& records);

  /// Drops the proofs of versions the replica saw (`seen`, its context)
  /// and no longer holds (`live` calls its argument with every dot it
  /// holds); the proofs of versions checked but not merged yet stay.
  /// Returns the store keys of the proofs no longer needed.
  std::vector<std::string>
  prune(const std::function<void(const std::function<void(const dot&)>&)>& live,
        const causal_context& seen);

  /// Versions held with a kept proof.
  size_t held() const;

  /// Whether `prune` is due (the proofs kept outgrew `live_versions`).
  bool prune_due(size_t live_versions) const;

private:
  struct kept;
  struct key_entry;
  // Keyed with a seed of this process's: a peer cannot choose dots that
  // all land in one bucket.
  struct dot_hash {
    size_t operator()(const dot& d) const noexcept;
  };

  int own_incarnation(replica_id r) const noexcept;

  config cfg_;
  mutable std::mutex mtx_;
  // The proof of each version held (owned by `records_`).
  std::unordered_map<dot, const kept*, dot_hash> held_;
  // The proofs held, by store key.
  std::unordered_map<std::string, std::shared_ptr<const kept>> records_;
  // Checked keys by node and key bytes.
  std::unordered_map<std::string, std::shared_ptr<const key_entry>> keys_;
  // The store keys of the keys kept (saved or waiting in `unsaved_`).
  std::unordered_set<std::string> kept_keys_;
  std::vector<stored> unsaved_;
};

/// Store keys of the records a book keeps.
inline constexpr std::string_view proof_prefix = "p/";
inline constexpr std::string_view key_prefix = "k/";

} // namespace engram::origin
