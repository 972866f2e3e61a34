#include "core/placement.hpp"

#include "core/hash.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace engram {

namespace {

std::string lower(std::string_view text) {
  std::string result{text};
  for (auto& c : result)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return result;
}

// One name per enumerator, in enumerator order.
template<class Enum, size_t N>
expected<Enum> parse_name(std::string_view text, const char* const (&names)[N],
                          const char* what) {
  auto key = lower(text);
  for (size_t i = 0; i < N; ++i)
    if (key == names[i])
      return static_cast<Enum>(i);
  std::string known;
  for (size_t i = 0; i < N; ++i)
    known += (i == 0 ? "" : ", ") + std::string{names[i]};
  return make_error(errc::invalid_argument, "unknown " + std::string{what}
                                                + " '" + std::string{text}
                                                + "' (known: " + known + ")");
}

const char* const level_names[] = {"one", "quorum", "all", "local"};
const char* const strategy_names[]
    = {"symmetric", "primary_secondary", "sharded"};
const char* const partition_names[]
    = {"hash", "scope", "type", "time", "custom"};

uint64_t id_hash(const engram_id& id) noexcept {
  return hash_combine(mix64(id.hi), id.lo);
}

} // namespace

const char* to_string(consistency_level level) noexcept {
  return level_names[static_cast<size_t>(level)];
}

expected<consistency_level> parse_consistency(std::string_view text) {
  return parse_name<consistency_level>(text, level_names, "consistency level");
}

const char* to_string(replication_strategy strategy) noexcept {
  return strategy_names[static_cast<size_t>(strategy)];
}

expected<replication_strategy>
parse_replication_strategy(std::string_view text) {
  return parse_name<replication_strategy>(text, strategy_names,
                                          "replication strategy");
}

const char* to_string(partition_strategy strategy) noexcept {
  return partition_names[static_cast<size_t>(strategy)];
}

expected<partition_strategy> parse_partition_strategy(std::string_view text) {
  return parse_name<partition_strategy>(text, partition_names,
                                        "partition strategy");
}

expected<shard_key_fn> make_shard_key(std::string_view name) {
  auto key = lower(name);
  if (key == "hash")
    return shard_key_fn{[](const engram_record& e) {
      return static_cast<uint32_t>(id_hash(e.id));
    }};
  if (key == "scope")
    return shard_key_fn{[](const engram_record& e) {
      return static_cast<uint32_t>(hash_string(e.scope.to_string()));
    }};
  if (key == "type")
    return shard_key_fn{[](const engram_record& e) {
      return static_cast<uint32_t>(e.type);
    }};
  if (key == "subject")
    return shard_key_fn{[](const engram_record& e) {
      if (auto* b = std::get_if<belief>(&e.body))
        return static_cast<uint32_t>(hash_string(b->subject));
      if (auto* f = std::get_if<fact>(&e.body))
        return static_cast<uint32_t>(hash_string(f->key));
      return static_cast<uint32_t>(id_hash(e.id));
    }};
  return make_error(errc::invalid_argument,
                    "unknown shard key '" + std::string{name}
                        + "' (known: hash, scope, type, subject)");
}

size_t required_replicas(consistency_level level, size_t replicas) noexcept {
  switch (level) {
    case consistency_level::quorum: return replicas / 2 + 1;
    case consistency_level::all: return replicas;
    case consistency_level::one:
    case consistency_level::local:
    default: return replicas == 0 ? 0 : 1;
  }
}

expected<placement> placement::make(const replication_config& replication,
                                    const partition_config& partitioning,
                                    std::vector<std::string> members,
                                    std::string_view salt) {
  placement result;
  result.repl_ = replication;
  result.part_ = partitioning;
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  result.members_ = members;
  if (replication.strategy == replication_strategy::sharded) {
    if (replication.shards.empty())
      return make_error(errc::invalid_argument,
                        "replication: Sharded needs at least one shard");
    if (!replication.shard_key)
      return make_error(errc::invalid_argument,
                        "replication: Sharded needs a shard key");
    std::set<uint32_t> ids;
    for (auto& shard : replication.shards) {
      if (shard.nodes.empty())
        return make_error(errc::invalid_argument, "replication: shard "
                                                      + std::to_string(shard.id)
                                                      + " lists no nodes");
      if (!ids.insert(shard.id).second)
        return make_error(errc::invalid_argument, "replication: shard "
                                                      + std::to_string(shard.id)
                                                      + " is configured twice");
      result.shard_index_.emplace_back(
          shard.id, static_cast<uint32_t>(result.lists_.size()));
      result.lists_.push_back(shard.nodes);
    }
    std::sort(result.shard_index_.begin(), result.shard_index_.end());
    result.everywhere_ = false;
    return result;
  }
  if (partitioning.partition_count == 0)
    return make_error(errc::invalid_argument,
                      "partitioning: partition_count must be at least 1");
  if (partitioning.strategy == partition_strategy::custom
      && !partitioning.partitioner)
    return make_error(errc::invalid_argument,
                      "partitioning: Custom needs a partitioner function");
  if (partitioning.strategy == partition_strategy::time
      && partitioning.bucket_size.count() <= 0)
    return make_error(errc::invalid_argument,
                      "partitioning: Time needs a positive bucket_size");
  bool all = replication.factor == 0 || replication.factor >= members.size();
  if (replication.factor > 0 && members.empty())
    return make_error(errc::invalid_argument,
                      "replication: a factor needs the cluster's members");
  result.everywhere_
      = all && replication.strategy == replication_strategy::symmetric;
  if (result.everywhere_)
    return result;
  if (members.empty())
    return make_error(errc::invalid_argument,
                      "replication: PrimarySecondary needs the cluster's "
                      "members");
  auto n = all ? members.size() : replication.factor;
  auto salt_hash = hash_string(salt);
  for (uint32_t p = 0; p < partitioning.partition_count; ++p) {
    // Rendezvous (highest random weight) hashing.
    std::vector<std::pair<uint64_t, const std::string*>> ranked;
    for (auto& m : members)
      ranked.emplace_back(hasher{salt_hash}.add(p).add(m).value(), &m);
    std::sort(ranked.begin(), ranked.end(), [](auto& x, auto& y) {
      return x.first != y.first ? x.first > y.first : *x.second < *y.second;
    });
    std::vector<std::string> list;
    for (size_t i = 0; i < n; ++i)
      list.push_back(*ranked[i].second);
    result.lists_.push_back(std::move(list));
  }
  return result;
}

uint32_t placement::partition_of(const engram_record& e) const {
  if (everywhere_ || lists_.empty())
    return 0;
  auto count = static_cast<uint32_t>(lists_.size());
  if (repl_.strategy == replication_strategy::sharded) {
    auto shard = repl_.shard_key(e);
    auto i = std::lower_bound(shard_index_.begin(), shard_index_.end(),
                              std::make_pair(shard, uint32_t{0}));
    if (i != shard_index_.end() && i->first == shard)
      return i->second;
    return shard % count;
  }
  switch (part_.strategy) {
    case partition_strategy::hash:
      return static_cast<uint32_t>(id_hash(e.id) % count);
    case partition_strategy::scope:
      return static_cast<uint32_t>(hash_string(e.scope.to_string()) % count);
    case partition_strategy::type: return static_cast<uint32_t>(e.type) % count;
    case partition_strategy::time: {
      auto bucket_us = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(
              part_.bucket_size)
              .count());
      return static_cast<uint32_t>((e.created.wall_us / bucket_us) % count);
    }
    case partition_strategy::custom:
    default: return part_.partitioner(e) % count;
  }
}

const std::vector<std::string>& placement::replicas(uint32_t p) const {
  static const std::vector<std::string> none;
  if (everywhere_ || p >= lists_.size())
    return none;
  return lists_[p];
}

bool placement::holds(const std::string& node, uint32_t p) const {
  if (everywhere_)
    return true;
  auto& list = replicas(p);
  return std::find(list.begin(), list.end(), node) != list.end();
}

std::optional<std::string> placement::coordinator(uint32_t p,
                                                  const std::string& self,
                                                  const live_fn& live) const {
  if (everywhere_)
    return self;
  auto& list = replicas(p);
  if (repl_.strategy != replication_strategy::primary_secondary
      && std::find(list.begin(), list.end(), self) != list.end())
    return self;
  for (auto& node : list)
    if (node == self || live(node))
      return node;
  return std::nullopt;
}

expected<std::vector<std::string>>
placement::read_set(consistency_level level, const std::string& self,
                    const live_fn& live) const {
  std::vector<std::string> result{self};
  if (level == consistency_level::local)
    return result;
  auto add = [&](const std::string& node) {
    if (std::find(result.begin(), result.end(), node) == result.end())
      result.push_back(node);
  };
  if (everywhere_) {
    // Every member is a replica of everything.
    auto n = members_.empty() ? 1 : members_.size();
    auto need = required_replicas(level, n);
    size_t have = 1;
    for (auto& m : members_)
      if (have < need && m != self && live(m)) {
        add(m);
        ++have;
      }
    if (have < need)
      return make_error(errc::unavailable,
                        std::string{"read at "} + to_string(level) + " needs "
                            + std::to_string(need) + " replicas, "
                            + std::to_string(have) + " reachable");
    return result;
  }
  for (uint32_t p = 0; p < lists_.size(); ++p) {
    auto& list = lists_[p];
    auto need = required_replicas(level, list.size());
    // Consulted already (self included when it holds p), then live ones.
    size_t have = 0;
    for (auto& node : list)
      if (std::find(result.begin(), result.end(), node) != result.end()
          && (node == self || live(node)))
        ++have;
    for (auto& node : list) {
      if (have >= need)
        break;
      if (node == self
          || std::find(result.begin(), result.end(), node) != result.end()
          || !live(node))
        continue;
      add(node);
      ++have;
    }
    if (have < need)
      return make_error(errc::unavailable,
                        std::string{"read at "} + to_string(level)
                            + ": partition " + std::to_string(p) + " needs "
                            + std::to_string(need) + " of its "
                            + std::to_string(list.size()) + " replicas, "
                            + std::to_string(have) + " reachable");
  }
  return result;
}

} // namespace engram
