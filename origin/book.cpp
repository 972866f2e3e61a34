#include "origin/book.hpp"

#include "messages/envelope.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "crypto/sign.hpp"

namespace engram::origin {

struct book::kept {
  std::string id;
  // As received, with `leaf_hashes` filled.
  v1::OriginProof proof;
};

struct book::key_entry {
  trusted_key trusted;
  v1::OriginKey binding;
};

namespace {

// Limits on what one frame may carry (beyond the frame's own bounds).
constexpr int max_keys = 64;
constexpr uint32_t max_incarnation = uint32_t{1} << 16;
// Dropped dots that would leave more loose dots than this in the frame's
// context (they sit deep inside contiguous counters) make the whole frame
// refused instead.
constexpr uint64_t max_loose_dots = uint64_t{1} << 16;
// Proofs one frame may carry (an honest frame has one per replica of its
// own, one per kept proof it relays: at most one per version).
constexpr int max_proofs = 4096;

std::string key_id(std::string_view node, std::string_view key) {
  std::string out{node};
  out += '\0';
  out += key;
  return out;
}

std::string record_id(const std::string& bytes) {
  auto h = fingerprint(bytes);
  return std::string{proof_prefix}
         + hex({reinterpret_cast<const char*>(h.data()), h.size()});
}

std::vector<digest> hashes_of(const std::string& bytes) {
  std::vector<digest> out(bytes.size() / sizeof(digest));
  for (size_t i = 0; i < out.size(); ++i)
    std::memcpy(out[i].data(), bytes.data() + i * sizeof(digest),
                sizeof(digest));
  return out;
}

// The context `c` without the dots `dropped` (sorted).
expected<causal_context> without(const causal_context& c,
                                 const std::set<dot>& dropped) {
  auto clock = c.clock();
  std::vector<dot> cloud;
  cloud.reserve(c.cloud().size());
  for (auto& d : c.cloud())
    if (dropped.count(d) == 0)
      cloud.push_back(d);
  uint64_t loose = 0;
  for (auto i = dropped.begin(); i != dropped.end();) {
    auto r = i->replica;
    auto high = clock.get(r);
    if (i->counter <= high) {
      // The lowest dropped dot of r inside the contiguous part: the part
      // ends below it, the rest of it becomes loose dots.
      loose += high - i->counter;
      if (loose > max_loose_dots)
        return make_error(errc::malformed_delta,
                          "unproven versions deep inside the frame's "
                          "context");
      clock.set(r, i->counter - 1);
      for (auto n = i->counter + 1; n <= high; ++n)
        if (dropped.count(dot{r, n}) == 0)
          cloud.push_back(dot{r, n});
    }
    while (i != dropped.end() && i->replica == r)
      ++i;
  }
  return causal_context::from_parts(std::move(clock), std::move(cloud));
}

// Drops the versions `dropped` from `delta`: from its entries, from the
// context of the engram that carried each (lowered below it) and from the
// delta's context.
expected<void> drop(replica_delta& delta, const std::set<dot>& dropped) {
  auto context = without(delta.context, dropped);
  if (!context)
    return context.error_value();
  delta.context = std::move(*context);
  // An engram whose every version was dropped goes whole: what its
  // context claims came with versions that are not taken.
  auto& entries = delta.entries;
  entries.erase(std::remove_if(
                    entries.begin(), entries.end(),
                    [&](delta_entry& entry) {
                      auto& vs = entry.versions;
                      auto gone = std::remove_if(
                          vs.begin(), vs.end(), [&](const version& v) {
                            return dropped.count(v.tag) > 0;
                          });
                      if (gone == vs.end())
                        return false;
                      if (gone == vs.begin())
                        return true;
                      for (auto i = gone; i != vs.end(); ++i)
                        if (entry.context.get(i->tag.replica) >= i->tag.counter)
                          entry.context.set(i->tag.replica, i->tag.counter - 1);
                      vs.erase(gone, vs.end());
                      return false;
                    }),
                entries.end());
  return {};
}

} // namespace

size_t book::dot_hash::operator()(const dot& d) const noexcept {
  static const uint64_t seed = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }();
  // splitmix64's finalizer over both halves.
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return static_cast<size_t>(mix(d.replica ^ seed) ^ mix(d.counter + seed));
}

book::book(config cfg) : cfg_(std::move(cfg)) {
  // nop
}

int book::own_incarnation(replica_id r) const noexcept {
  for (size_t i = 0; i < cfg_.own.size(); ++i)
    if (cfg_.own[i] == r)
      return static_cast<int>(i);
  return -1;
}

size_t book::prove(const replica_delta& delta, v1::DeltaBatch& batch) const {
  std::map<int, std::vector<const version*>> own;
  std::map<const kept*,
           std::pair<std::shared_ptr<const kept>, std::vector<uint64_t>>>
      relayed;
  size_t unproven = 0;
  std::map<std::string, v1::OriginKey> keys;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& entry : delta.entries)
      for (auto& v : entry.versions) {
        if (auto inc = own_incarnation(v.tag.replica); inc >= 0) {
          own[inc].push_back(&v);
        } else if (auto i = held_.find(v.tag); i != held_.end()) {
          auto& slot = relayed[i->second];
          if (!slot.first)
            slot.first = records_.at(i->second->id);
          slot.second.push_back(v.tag.counter);
        } else {
          ++unproven;
        }
      }
    for (auto& [ptr, slot] : relayed) {
      auto& p = ptr->proof;
      auto id = key_id(p.node(), p.key());
      if (keys.count(id) == 0)
        if (auto k = keys_.find(id); k != keys_.end())
          keys.emplace(id, k->second->binding);
    }
  }
  for (auto& [inc, versions] : own) {
    std::sort(versions.begin(), versions.end(),
              [](const version* x, const version* y) {
                return x->tag.counter < y->tag.counter;
              });
    std::vector<digest> leaves;
    leaves.reserve(versions.size());
    for (auto* v : versions)
      leaves.push_back(leaf(*v));
    auto n = static_cast<uint32_t>(leaves.size());
    std::vector<uint32_t> all(n);
    for (uint32_t i = 0; i < n; ++i)
      all[i] = i;
    auto root = tree::root_of(n, all, leaves, {});
    auto replica = cfg_.own[static_cast<size_t>(inc)];
    auto sig = root ? cfg_.key->sign(
                   signed_message(cfg_.agent, cfg_.node, replica,
                                  static_cast<uint32_t>(inc), n, *root))
                    : expected<std::string>{root.error_value()};
    if (!sig) {
      unproven += versions.size();
      continue;
    }
    auto& p = *batch.add_origins();
    p.set_node(cfg_.node);
    p.set_key(cfg_.key->public_key());
    p.set_replica(replica);
    p.set_incarnation(static_cast<uint32_t>(inc));
    p.set_leaves(n);
    for (uint32_t i = 0; i < n; ++i) {
      p.add_positions(i);
      p.add_counters(versions[i]->tag.counter);
    }
    p.set_signature(std::move(*sig));
    keys.emplace(key_id(cfg_.node, cfg_.key->public_key()), cfg_.binding);
  }
  for (auto& [ptr, slot] : relayed) {
    auto& kept_proof = ptr->proof;
    auto& counters = slot.second;
    // The kept leaves by counter, then the positions carried, ascending.
    std::unordered_map<uint64_t, uint32_t> position_of;
    for (int i = 0; i < kept_proof.counters_size(); ++i)
      position_of.emplace(kept_proof.counters(i), kept_proof.positions(i));
    std::vector<std::pair<uint32_t, uint64_t>> carried;
    for (auto c : counters)
      carried.emplace_back(position_of.at(c), c);
    std::sort(carried.begin(), carried.end());
    std::vector<uint32_t> known_positions(kept_proof.positions().begin(),
                                          kept_proof.positions().end());
    auto t = tree::partial(kept_proof.leaves(), known_positions,
                           hashes_of(kept_proof.leaf_hashes()),
                           kept_proof.siblings());
    std::vector<uint32_t> positions;
    for (auto& [pos, c] : carried)
      positions.push_back(pos);
    auto siblings
        = t ? t->siblings(positions) : expected<std::string>{t.error_value()};
    if (!siblings) {
      unproven += counters.size();
      continue;
    }
    auto& p = *batch.add_origins();
    p.set_node(kept_proof.node());
    p.set_key(kept_proof.key());
    p.set_replica(kept_proof.replica());
    p.set_incarnation(kept_proof.incarnation());
    p.set_leaves(kept_proof.leaves());
    for (auto& [pos, c] : carried) {
      p.add_positions(pos);
      p.add_counters(c);
    }
    p.set_siblings(std::move(*siblings));
    p.set_signature(kept_proof.signature());
  }
  for (auto& [id, binding] : keys)
    *batch.add_origin_keys() = binding;
  return unproven;
}

expected<book::refusal> book::check(const v1::DeltaBatch& batch,
                                    replica_delta& delta) {
  refusal out;
  auto note = [&out](std::string why) {
    if (out.reasons.size() < 4)
      out.reasons.push_back(std::move(why));
  };
  // The keys the frame names, checked (once per key: then cached).
  std::unordered_map<std::string, std::shared_ptr<const key_entry>> keys;
  std::vector<std::shared_ptr<const key_entry>> fresh_keys;
  if (batch.origin_keys_size() > max_keys)
    note("a frame naming " + std::to_string(batch.origin_keys_size())
         + " origin keys: the first " + std::to_string(max_keys)
         + " are checked");
  {
    int keys_seen = 0;
    for (auto& b : batch.origin_keys()) {
      if (++keys_seen > max_keys)
        break;
      auto id = key_id(b.node(), b.key());
      if (keys.count(id) > 0)
        continue;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (auto i = keys_.find(id); i != keys_.end()) {
          keys.emplace(id, i->second);
          continue;
        }
      }
      auto trusted = check_key(b, cfg_.trust);
      if (!trusted) {
        note(trusted.error_value().message);
        continue;
      }
      auto entry = std::make_shared<const key_entry>(
          key_entry{std::move(*trusted), b});
      keys.emplace(id, entry);
      fresh_keys.push_back(std::move(entry));
    }
  }
  // The versions carried, by dot: whether a proof holds each, its hash
  // (computed once), the last proof that named it. A dot carried twice
  // (two versions claiming one write) is never taken.
  // One sorted vector (no allocation per version).
  struct carried_version {
    dot tag;
    const version* v;
    bool proven = false;
    bool twice = false;
    int named_by = -1;
    std::optional<digest> hash{};
  };
  std::vector<carried_version> where;
  where.reserve(delta.version_count());
  for (auto& entry : delta.entries)
    for (auto& v : entry.versions)
      where.push_back(carried_version{v.tag, &v});
  std::sort(where.begin(), where.end(),
            [](const carried_version& x, const carried_version& y) {
              return x.tag < y.tag;
            });
  for (size_t i = 1; i < where.size(); ++i)
    if (where[i].tag == where[i - 1].tag)
      where[i].twice = where[i - 1].twice = true;
  auto find_carried = [&where](const dot& d) -> carried_version* {
    auto i = std::lower_bound(where.begin(), where.end(), d,
                              [](const carried_version& x, const dot& y) {
                                return x.tag < y;
                              });
    return i != where.end() && i->tag == d ? &*i : nullptr;
  };
  std::vector<std::shared_ptr<kept>> fresh;
  auto partition = agent_partition(cfg_.agent);
  if (batch.origins_size() > max_proofs)
    note("a frame with " + std::to_string(batch.origins_size())
         + " proofs of origin: the first " + std::to_string(max_proofs)
         + " are checked");
  // At most one proof per version carried is looked at.
  auto proofs_allowed = static_cast<int>(
      std::min<size_t>(max_proofs, std::max<size_t>(1, where.size())));
  int proofs_seen = 0;
  for (auto& p : batch.origins()) {
    if (++proofs_seen > proofs_allowed)
      break;
    auto refuse = [&](const std::string& why) {
      note("a proof of origin by '" + p.node() + "' is refused: " + why);
    };
    if (p.positions_size() == 0 || p.positions_size() != p.counters_size()
        || p.positions_size() > static_cast<int>(where.size())) {
      refuse("its positions and counters do not match what is carried");
      continue;
    }
    std::vector<uint32_t> positions(p.positions().begin(), p.positions().end());
    if (auto ok = check_positions(p.leaves(), positions); !ok) {
      refuse(ok.error_value().message); // its shape, before any hashing
      continue;
    }
    auto k = keys.find(key_id(p.node(), p.key()));
    if (k == keys.end()) {
      refuse("it is signed by a key the frame does not bind to that node");
      continue;
    }
    if (p.incarnation() >= max_incarnation
        || incarnation_of(replica_of(p.node(), partition), p.incarnation())
               != p.replica()) {
      refuse("replica " + std::to_string(p.replica()) + " is not one of "
             + p.node() + "'s");
      continue;
    }
    auto& valid = k->second->trusted;
    std::vector<digest> hashes;
    hashes.reserve(static_cast<size_t>(p.counters_size()));
    std::vector<carried_version*> dots;
    dots.reserve(static_cast<size_t>(p.counters_size()));
    std::string problem;
    for (auto c : p.counters()) {
      dot d{p.replica(), c};
      auto* v = find_carried(d);
      if (v == nullptr) {
        problem = "it names a version the frame does not carry";
        break;
      }
      if (v->twice) {
        problem
            = "the frame carries two versions with dot " + std::to_string(c);
        break;
      }
      if (v->named_by == proofs_seen) {
        problem = "it names a version twice";
        break;
      }
      v->named_by = proofs_seen;
      auto written = v->v->value.updated.wall_us;
      // A node proves its older versions with the key of its current
      // certificate; none written after the certificate expired.
      if (written > valid.not_after_us) {
        problem = "a version written after its certificate's validity";
        break;
      }
      if (!v->hash)
        v->hash = leaf(*v->v);
      hashes.push_back(*v->hash);
      dots.push_back(v);
    }
    if (!problem.empty()) {
      refuse(problem);
      continue;
    }
    auto root = tree::root_of(p.leaves(), positions, hashes, p.siblings());
    if (!root) {
      refuse(root.error_value().message);
      continue;
    }
    if (!crypto::verify_ed25519(p.key(),
                                signed_message(cfg_.agent, p.node(),
                                               p.replica(), p.incarnation(),
                                               p.leaves(), *root),
                                p.signature())) {
      refuse("its signature does not verify");
      continue;
    }
    for (auto* x : dots)
      x->proven = true;
    if (own_incarnation(p.replica()) >= 0)
      continue; // this node proves its own versions afresh
    auto record = std::make_shared<kept>();
    record->proof = p;
    record->proof.DiscardUnknownFields(); // kept: only what it proves
    std::string leaf_bytes;
    leaf_bytes.reserve(hashes.size() * sizeof(digest));
    for (auto& h : hashes)
      leaf_bytes.append(reinterpret_cast<const char*>(h.data()), h.size());
    record->proof.set_leaf_hashes(std::move(leaf_bytes));
    fresh.push_back(std::move(record));
  }
  // What no proof holds is dropped.
  std::set<dot> dropped;
  for (auto& x : where)
    if (!x.proven)
      dropped.insert(x.tag);
  if (!dropped.empty()) {
    if (out.reasons.empty())
      note("versions came without a proof of origin");
    auto before = delta.version_count();
    if (auto ok = drop(delta, dropped); !ok)
      return ok.error_value();
    out.dropped = before - delta.version_count();
  }
  // The proofs of what was kept are kept, with their keys.
  std::lock_guard<std::mutex> guard{mtx_};
  // Keys are few (nodes × runs); a flood of fresh ones is checked, not kept.
  constexpr size_t max_cached_keys = 4096;
  for (auto& entry : fresh_keys)
    if (keys_.size() < max_cached_keys)
      keys_.emplace(key_id(entry->binding.node(), entry->binding.key()), entry);
  for (auto& record : fresh) {
    auto bytes = messages::serialize(record->proof);
    record->id = record_id(bytes);
    if (records_.count(record->id) > 0)
      continue; // the same proof, kept before
    bool used = false;
    for (auto c : record->proof.counters())
      used |= held_.emplace(dot{record->proof.replica(), c}, record.get())
                  .second;
    if (!used)
      continue; // every version it proves has a proof here already
    records_.emplace(record->id, record);
    unsaved_.emplace_back(record->id, std::move(bytes));
    auto id = key_id(record->proof.node(), record->proof.key());
    auto store_key = std::string{key_prefix} + hex(id);
    if (kept_keys_.insert(store_key).second)
      unsaved_.emplace_back(store_key,
                            messages::serialize(keys.at(id)->binding));
  }
  return out;
}

std::vector<stored> book::take_unsaved() {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<stored> out;
  out.swap(unsaved_);
  return out;
}

std::vector<std::string> book::restore(const std::vector<stored>& records) {
  std::vector<std::string> bad;
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& [store_key, bytes] : records) {
    if (store_key.rfind(key_prefix, 0) == 0) {
      v1::OriginKey binding;
      if (!binding.ParseFromString(bytes)) {
        bad.push_back(store_key);
        continue;
      }
      auto trusted = check_key(binding, cfg_.trust);
      if (!trusted) { // revoked since, or of another CA
        bad.push_back(store_key);
        continue;
      }
      keys_.emplace(key_id(binding.node(), binding.key()),
                    std::make_shared<const key_entry>(
                        key_entry{std::move(*trusted), binding}));
      kept_keys_.insert(store_key);
    } else if (store_key.rfind(proof_prefix, 0) == 0) {
      auto record = std::make_shared<kept>();
      if (!record->proof.ParseFromString(bytes)
          || record->proof.positions_size() != record->proof.counters_size()
          || record->proof.leaf_hashes().size()
                 != sizeof(digest)
                        * static_cast<size_t>(record->proof.positions_size())) {
        bad.push_back(store_key);
        continue;
      }
      record->id = store_key;
      for (auto c : record->proof.counters())
        held_.emplace(dot{record->proof.replica(), c}, record.get());
      records_.emplace(store_key, std::move(record));
    } else {
      bad.push_back(store_key);
    }
  }
  return bad;
}

std::vector<std::string> book::prune(
    const std::function<void(const std::function<void(const dot&)>&)>& live,
    const causal_context& seen) {
  std::unordered_set<dot, dot_hash> alive;
  live([&alive](const dot& d) {
    alive.insert(d);
  });
  std::vector<std::string> gone;
  std::lock_guard<std::mutex> guard{mtx_};
  std::unordered_set<std::string> referenced;
  for (auto i = held_.begin(); i != held_.end();) {
    if (alive.count(i->first) == 0 && seen.contains(i->first)) {
      i = held_.erase(i);
    } else {
      referenced.insert(i->second->id);
      ++i;
    }
  }
  for (auto i = records_.begin(); i != records_.end();) {
    if (referenced.count(i->first) == 0) {
      gone.push_back(i->first);
      i = records_.erase(i);
    } else {
      ++i;
    }
  }
  // What was not stored yet need not be.
  unsaved_.erase(std::remove_if(unsaved_.begin(), unsaved_.end(),
                                [&](const stored& s) {
                                  return s.first.rfind(proof_prefix, 0) == 0
                                         && records_.count(s.first) == 0;
                                }),
                 unsaved_.end());
  return gone;
}

size_t book::held() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return held_.size();
}

bool book::prune_due(size_t live_versions) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return held_.size() > 2 * live_versions + 4096;
}

} // namespace engram::origin
