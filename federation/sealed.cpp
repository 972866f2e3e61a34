#include "federation/sealed.hpp"

namespace engram::federation {

namespace {

// What a member's sealed copy of a key holds: the federation, the epoch
// and the key (a copy moved to another federation or epoch does not pass).
std::string key_text(const std::string& fed_id, uint64_t epoch,
                     const std::string& key) {
  return "fedkey\n" + fed_id + "\n" + std::to_string(epoch) + "\n" + key;
}

constexpr size_t key_bytes = 32;

} // namespace

expected<std::map<uint64_t, std::string>>
open_group_keys(const std::string& fed_id, const group_keys& k,
                const std::string& me, const e2e::key_pair& keys,
                const e2e::trust& t, int64_t now_s) {
  auto mine = k.sealed.find(me);
  if (k.epoch == 0 || mine == k.sealed.end())
    return make_error(errc::permission_denied,
                      "no key of federation " + fed_id + " is sealed to " + me);
  auto opened
      = e2e::open(mine->second, k.sealed_by, me, keys, t, now_s, "fedkey");
  if (!opened)
    return opened.error_value();
  auto head = key_text(fed_id, k.epoch, {});
  auto& text = opened->text;
  if (text.size() != head.size() + key_bytes
      || text.compare(0, head.size(), head) != 0)
    return make_error(errc::unauthenticated,
                      "the key sealed to " + me + " is not federation " + fed_id
                          + "'s key of epoch " + std::to_string(k.epoch));
  auto current = text.substr(head.size());
  auto all = e2e::open_chain(current, k.chain);
  if (!all)
    return all.error_value();
  // Every earlier epoch, none missing (a node dropping the chain would
  // leave earlier values unreadable without a word).
  if (all->size() != k.epoch - 1
      || (!all->empty() && all->rbegin()->first != k.epoch - 1))
    return make_error(errc::unauthenticated,
                      "federation " + fed_id
                          + "'s chain of earlier keys is "
                            "incomplete");
  (*all)[k.epoch] = std::move(current);
  return all;
}

expected<group_keys>
next_group_keys(const std::string& fed_id, uint64_t epoch,
                const std::string& me, const e2e::key_pair& keys,
                const e2e::key_binding& mine,
                const std::map<std::string, e2e::key_binding>& members,
                const std::map<uint64_t, std::string>& older, uint64_t now_us) {
  group_keys next;
  next.epoch = epoch + 1;
  next.sealed_by = me;
  auto key = e2e::new_group_key();
  auto chain = e2e::seal_chain(key, older);
  if (!chain)
    return chain.error_value();
  next.chain = std::move(*chain);
  for (auto& [member, binding] : members) {
    auto sealed = e2e::seal(key_text(fed_id, next.epoch, key), keys, mine,
                            binding, now_us, "fedkey");
    if (!sealed)
      return sealed.error_value();
    next.sealed.emplace(member, std::move(*sealed));
  }
  return next;
}

expected<std::string>
open_fact_value(const std::map<uint64_t, std::string>& held,
                const std::string& me, const std::string& key,
                std::string_view value) {
  auto epoch = e2e::value_epoch(value);
  if (!epoch)
    return epoch.error_value();
  auto k = held.find(*epoch);
  if (k == held.end())
    return make_error(errc::permission_denied,
                      "the value of " + key + " is sealed with key epoch "
                          + std::to_string(*epoch) + ", never sealed to " + me);
  return e2e::open_value(k->second, value, key);
}

} // namespace engram::federation
