#include "actors/memory.hpp"

#include "actors/internal/context.hpp"
#include "federation/codec.hpp"
#include "federation/sealed.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

namespace engram::actors {

namespace {

/// How often a call is retried while the supervisor respawns the actor.
constexpr int respawn_attempts = 50;
constexpr auto respawn_pause = std::chrono::milliseconds{10};

} // namespace

memory::memory(caf::actor_system& sys, std::shared_ptr<directory> dir,
               std::string agent_id, std::string instance_id,
               milliseconds timeout)
    : sys_(&sys), dir_(std::move(dir)), agent_id_(std::move(agent_id)),
      instance_id_(std::move(instance_id)),
      key_(directory::instance_key(agent_id_, instance_id_)), timeout_(timeout),
      self_(std::make_unique<caf::scoped_actor>(sys)) {
  // nop
}

memory::memory(memory&&) noexcept = default;
memory& memory::operator=(memory&&) noexcept = default;
memory::~memory() = default;

expected<instance_actor> memory::actor() const {
  if (auto hdl = dir_->instance(key_))
    return *hdl;
  return make_error(errc::unknown_agent, "no instance " + instance_id_
                                             + " of agent " + agent_id_
                                             + " runs on this node");
}

template<class Result, class... Ts>
expected<Result> memory::blocking(Ts&&... xs) {
  return blocking_for<Result>(timeout_, std::forward<Ts>(xs)...);
}

template<class Result, class... Ts>
expected<Result> memory::blocking_for(milliseconds timeout, Ts&&... xs) {
  for (int attempt = 0;; ++attempt) {
    auto inst = actor();
    if (!inst)
      return inst.error_value();
    expected<Result> result = make_error(errc::timeout, "no answer");
    (*self_)
        ->request(*inst, timeout, xs...)
        .receive(
            [&](Result& r) {
              result = std::move(r);
            },
            [&](caf::error& e) {
              result = from_caf(e);
            });
    // The instance (or its agent) failed and is being respawned: the same
    // handle retries against the new actor.
    if (!result && result.error_value().code == errc::unavailable
        && attempt < respawn_attempts) {
      std::this_thread::sleep_for(respawn_pause);
      continue;
    }
    return result;
  }
}

expected<engram_id> memory::learn(engram_record value) {
  return blocking<engram_id>(learn_atom::value, std::move(value), false);
}

expected<engram_id> memory::learn_scoped(engram_record value,
                                         memory_scope scope) {
  value.scope = std::move(scope);
  return blocking<engram_id>(learn_atom::value, std::move(value), true);
}

expected<engram_id> memory::learn_with_consensus(engram_record value,
                                                 memory_scope scope,
                                                 quorum_config quorum) {
  value.scope = std::move(scope);
  // Within 1 ms and an hour (the group's bound).
  quorum.timeout
      = std::clamp(quorum.timeout, milliseconds{1}, milliseconds{3'600'000});
  // The group answers `timeout` at quorum.timeout; the handle waits a
  // little longer so that answer, not its own, arrives.
  return blocking_for<engram_id>(
      quorum.timeout + milliseconds{1000}, learn_atom::value, std::move(value),
      quorum.min_nodes, static_cast<uint64_t>(quorum.timeout.count()));
}

expected<std::vector<memory_view>> memory::query(const query_filter& filter) {
  return blocking<std::vector<memory_view>>(query_atom::value, filter);
}

namespace {

expected<federation::share> make_share(const std::string& from,
                                       const std::string& to,
                                       const std::vector<memory_view>& memories,
                                       bool read_only,
                                       const federation::memory_transform* t) {
  std::vector<engram_record> records;
  for (auto& v : memories)
    records.push_back(v.value);
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return federation::make_share(from, to, std::move(records), read_only, t,
                                static_cast<uint64_t>(now));
}

} // namespace

expected<void> memory::tell(const std::string& recipient,
                            const std::string& text) {
  auto r = blocking<bool>(tell_atom::value, recipient, text);
  if (!r)
    return r.error_value();
  return {};
}

namespace {

uint64_t wall_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

} // namespace

expected<e2e::key_binding> memory::publish_key(const std::string& public_key) {
  auto bytes = blocking<std::string>(key_atom::value, public_key);
  if (!bytes)
    return bytes.error_value();
  return e2e::decode_binding(*bytes);
}

expected<e2e::key_binding>
memory::publish_key(const e2e::key_binding& signed_key) {
  auto bytes = blocking<std::string>(key_atom::value, e2e::encode(signed_key));
  if (!bytes)
    return bytes.error_value();
  return e2e::decode_binding(*bytes);
}

expected<e2e::key_binding> memory::agent_key(const std::string& agent) {
  auto bytes = blocking<std::string>(keyof_atom::value, agent);
  if (!bytes)
    return bytes.error_value();
  return e2e::decode_binding(*bytes);
}

expected<std::pair<e2e::key_binding, e2e::key_binding>>
memory::checked_keys(const std::string& to, const e2e::trust& trust,
                     uint64_t now_us) {
  auto mine = agent_key(agent_id_);
  if (!mine)
    return mine.error_value();
  auto theirs = agent_key(to);
  if (!theirs)
    return theirs.error_value();
  auto now_s = static_cast<int64_t>(now_us / 1'000'000);
  // Both checked: the binding the node hands back as this agent's must be
  // this agent's (the box names its agent as the sender).
  if (auto ok = e2e::verify(*mine, agent_id_, trust, now_s); !ok)
    return ok.error_value();
  if (auto ok = e2e::verify(*theirs, to, trust, now_s); !ok)
    return ok.error_value();
  return std::make_pair(std::move(*mine), std::move(*theirs));
}

expected<void> memory::tell_sealed(const std::string& recipient,
                                   const std::string& text,
                                   const e2e::key_pair& keys,
                                   const e2e::trust& trust) {
  auto now = wall_us();
  auto pair = checked_keys(recipient, trust, now);
  if (!pair)
    return pair.error_value();
  auto sealed = e2e::seal(text, keys, pair->first, pair->second, now);
  if (!sealed)
    return sealed.error_value();
  return tell(recipient, *sealed);
}

expected<std::vector<memory::opened_message>>
memory::inbox_opened(const e2e::key_pair& keys, const e2e::trust& trust) {
  auto messages = inbox();
  if (!messages)
    return messages.error_value();
  auto now_s = static_cast<int64_t>(wall_us() / 1'000'000);
  std::vector<opened_message> out;
  for (auto& [from, text] : *messages) {
    if (!e2e::is_sealed(text)) {
      out.push_back({from, false, std::move(text), {}, 0});
      continue;
    }
    auto o = e2e::open(text, from, agent_id_, keys, trust, now_s);
    if (o)
      out.push_back({from, true, std::move(o->text), {}, o->sealed_us});
    else
      out.push_back({from, true, o.error_value(), std::move(text), 0});
  }
  return out;
}

expected<std::string> memory::ask(const std::string& recipient,
                                  const std::string& question,
                                  milliseconds timeout) {
  // The instance answers (or times out) within `timeout`; the margin lets
  // its clear timeout error arrive before this call's own deadline.
  return blocking_for<std::string>(timeout + milliseconds{1000},
                                   ask_atom::value, recipient, question,
                                   static_cast<uint64_t>(timeout.count()));
}

expected<size_t> memory::broadcast(const std::string& fed_id,
                                   const std::string& text) {
  auto n = blocking<uint64_t>(broadcast_atom::value, fed_id, text);
  if (!n)
    return n.error_value();
  return static_cast<size_t>(*n);
}

expected<std::vector<std::pair<std::string, std::string>>> memory::inbox() {
  auto raw = blocking<std::vector<std::string>>(inbox_atom::value);
  if (!raw)
    return raw.error_value();
  std::vector<std::pair<std::string, std::string>> result;
  for (size_t i = 0; i + 1 < raw->size(); i += 2)
    result.emplace_back((*raw)[i], (*raw)[i + 1]);
  return result;
}

expected<std::string> memory::share(const std::vector<memory_view>& memories,
                                    const std::string& with, bool read_only) {
  auto s = make_share(agent_id_, with, memories, read_only, nullptr);
  if (!s)
    return s.error_value();
  return blocking<std::string>(share_atom::value, with, std::move(*s));
}

expected<std::string> memory::share_transformed(
    const std::vector<memory_view>& memories, const std::string& with,
    const federation::memory_transform& transform, bool read_only) {
  auto s = make_share(agent_id_, with, memories, read_only, &transform);
  if (!s)
    return s.error_value();
  return blocking<std::string>(share_atom::value, with, std::move(*s));
}

expected<std::string>
memory::share_sealed(const std::vector<memory_view>& memories,
                     const std::string& with, const e2e::key_pair& keys,
                     const e2e::trust& trust, bool read_only) {
  auto inner = make_share(agent_id_, with, memories, read_only, nullptr);
  if (!inner)
    return inner.error_value();
  auto now = wall_us();
  auto pair = checked_keys(with, trust, now);
  if (!pair)
    return pair.error_value();
  auto sealed
      = federation::seal_share(*inner, keys, pair->first, pair->second, now);
  if (!sealed)
    return sealed.error_value();
  return blocking<std::string>(share_atom::value, with, std::move(*sealed));
}

expected<size_t> memory::accept_sealed(const std::string& from,
                                       const std::string& share_id,
                                       double trust_level,
                                       const e2e::key_pair& keys,
                                       const e2e::trust& trust) {
  auto pending = pending_shares();
  if (!pending)
    return pending.error_value();
  auto it = std::find_if(pending->begin(), pending->end(),
                         [&](const federation::share& s) {
                           return s.share_id == share_id;
                         });
  if (it == pending->end())
    return make_error(errc::unknown_engram, "no pending share " + share_id
                                                + " for agent " + agent_id_);
  auto opened = federation::open_share(
      *it, agent_id_, keys, trust, static_cast<int64_t>(wall_us() / 1'000'000));
  if (!opened)
    return opened.error_value();
  auto n = blocking<uint64_t>(accept_atom::value, from, share_id, trust_level,
                              std::move(*opened));
  if (!n)
    return n.error_value();
  return static_cast<size_t>(*n);
}

expected<std::vector<federation::share>> memory::pending_shares() {
  return blocking<std::vector<federation::share>>(shares_atom::value);
}

expected<size_t> memory::accept_share(const std::string& from,
                                      const std::string& share_id,
                                      double trust_level) {
  auto n = blocking<uint64_t>(accept_atom::value, from, share_id, trust_level);
  if (!n)
    return n.error_value();
  return static_cast<size_t>(*n);
}

expected<void> memory::decline_share(const std::string& share_id) {
  auto r = blocking<std::string>(decline_atom::value, share_id);
  if (!r)
    return r.error_value();
  return {};
}

expected<federation::federation_state>
memory::federation_call(const std::string& fed_id,
                        federation::command_kind what) {
  return blocking<federation::federation_state>(
      federation_atom::value, fed_id,
      federation::federation_command{agent_id_, std::move(what)});
}

expected<federation::federation_state>
memory::create_federation(federation::federation_config cfg) {
  auto& ms = cfg.initial_members;
  ms.erase(std::remove(ms.begin(), ms.end(), agent_id_), ms.end());
  ms.insert(ms.begin(), agent_id_);
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto state
      = federation::federation_state::create(cfg, static_cast<uint64_t>(now));
  if (!state)
    return state.error_value();
  auto id = state->id(); // read before the state moves into the command
  return federation_call(id, federation::cmd::create{std::move(*state)});
}

expected<federation::federation_state> memory::invite_to_federation(
    const std::string& fed_id, const std::string& agent,
    federation::agent_role role, std::chrono::seconds ttl) {
  if (ttl.count() < 0 || ttl > std::chrono::hours{24 * 366})
    return make_error(errc::invalid_argument,
                      "an invitation lapses after 0 (never) to 366 days");
  uint64_t expires = 0;
  if (ttl.count() > 0)
    expires = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::system_clock::now().time_since_epoch() + ttl)
            .count());
  return federation_call(fed_id, federation::cmd::invite{agent, role, expires});
}

expected<federation::federation_state>
memory::revoke_invitation(const std::string& fed_id, const std::string& agent) {
  return federation_call(fed_id, federation::cmd::uninvite{agent});
}

expected<federation::federation_state>
memory::join_federation(const std::string& fed_id,
                        federation::agent_role role) {
  return federation_call(fed_id, federation::cmd::join{role});
}

expected<federation::federation_state>
memory::leave_federation(const std::string& fed_id) {
  return federation_call(fed_id, federation::cmd::leave{});
}

expected<federation::federation_state>
memory::federation_state(const std::string& fed_id) {
  return federation_call(fed_id, federation::cmd::read_state{});
}

expected<federation::federation_state>
memory::set_role(const std::string& fed_id, const std::string& agent,
                 federation::agent_role role) {
  return federation_call(fed_id, federation::cmd::set_role{agent, role});
}

expected<federation::federation_state>
memory::remove_member(const std::string& fed_id, const std::string& agent) {
  return federation_call(fed_id, federation::cmd::remove{agent});
}

expected<federation::federation_state>
memory::set_trust(const std::string& fed_id, federation::trust_model model) {
  return federation_call(fed_id, federation::cmd::set_trust{std::move(model)});
}

expected<federation::federation_state>
memory::verify_member(const std::string& fed_id, const std::string& agent) {
  return federation_call(fed_id, federation::cmd::verify{agent});
}

expected<federation::federation_state>
memory::contradict_member(const std::string& fed_id, const std::string& agent) {
  return federation_call(fed_id, federation::cmd::contradict{agent});
}

expected<engram_id> memory::learn_collective(const std::string& fed_id,
                                             engram_record value) {
  return learn_scoped(std::move(value),
                      memory_scope::collective(fed_id, {agent_id_}));
}

expected<std::map<uint64_t, std::string>>
memory::group_keys_of(const federation::federation_state& fed,
                      const e2e::key_pair& keys, const e2e::trust& trust) {
  if (!fed.e2e())
    return make_error(errc::invalid_argument,
                      "federation " + fed.name() + " is not sealed end to end");
  return federation::open_group_keys(
      fed.id(), fed.keys(), agent_id_, keys, trust,
      static_cast<int64_t>(wall_us() / 1'000'000));
}

expected<uint64_t> memory::rotate_federation_key(const std::string& fed_id,
                                                 const e2e::key_pair& keys,
                                                 const e2e::trust& trust) {
  auto fed = federation_state(fed_id);
  if (!fed)
    return fed.error_value();
  if (!fed->e2e())
    return make_error(errc::invalid_argument,
                      "federation " + fed->name()
                          + " is not sealed end to end");
  std::map<uint64_t, std::string> older;
  if (fed->keys().epoch > 0) {
    auto held = group_keys_of(*fed, keys, trust);
    if (!held)
      return held.error_value();
    older = std::move(*held);
  }
  auto now = wall_us();
  std::map<std::string, e2e::key_binding> members;
  e2e::key_binding mine;
  for (auto& m : fed->members()) {
    auto pair = checked_keys(m.agent_id, trust, now);
    if (!pair)
      return pair.error_value();
    mine = std::move(pair->first);
    members.emplace(m.agent_id, std::move(pair->second));
  }
  auto next = federation::next_group_keys(
      fed->id(), fed->keys().epoch, agent_id_, keys, mine, members, older, now);
  if (!next)
    return next.error_value();
  auto epoch = next->epoch;
  auto done
      = federation_call(fed_id, federation::cmd::rotate_keys{std::move(*next)});
  if (!done)
    return done.error_value();
  return epoch;
}

expected<engram_id> memory::learn_collective_sealed(const std::string& fed_id,
                                                    const std::string& key,
                                                    const std::string& value,
                                                    const e2e::key_pair& keys,
                                                    const e2e::trust& trust) {
  auto fed = federation_state(fed_id);
  if (!fed)
    return fed.error_value();
  if (auto why = fed->keys_stale(); !why.empty())
    return make_error(errc::invalid_argument, why);
  auto held = group_keys_of(*fed, keys, trust);
  if (!held)
    return held.error_value();
  auto epoch = fed->keys().epoch;
  auto sealed = e2e::seal_value(held->at(epoch), epoch, key, value);
  if (!sealed)
    return sealed.error_value();
  engram_record record;
  record.type = memory_type::semantic;
  record.body = fact{key, std::move(*sealed)};
  return learn_collective(fed_id, std::move(record));
}

expected<std::vector<memory::opened_fact>>
memory::query_federation_opened(const std::string& fed_id,
                                const e2e::key_pair& keys,
                                const e2e::trust& trust) {
  auto fed = federation_state(fed_id);
  if (!fed)
    return fed.error_value();
  auto held = group_keys_of(*fed, keys, trust);
  if (!held)
    return held.error_value();
  auto views = query_federation(fed_id, query_filter{});
  if (!views)
    return views.error_value();
  std::vector<opened_fact> out;
  for (auto& v : *views) {
    auto* f = std::get_if<fact>(&v.value.body);
    if (f == nullptr)
      continue;
    auto value
        = federation::open_fact_value(*held, agent_id_, f->key, f->value);
    out.push_back(opened_fact{f->key, std::move(value), v});
  }
  return out;
}

expected<std::vector<memory_view>>
memory::query_federation(const std::string& fed_id,
                         const query_filter& filter) {
  return blocking<std::vector<memory_view>>(query_atom::value, fed_id, filter);
}

expected<std::vector<memory_view>> memory::query(const query_filter& filter,
                                                 consistency_level level) {
  return blocking<std::vector<memory_view>>(query_atom::value, filter,
                                            code_of(level));
}

expected<engram_id> memory::forget(const engram_id& id, std::string reason) {
  return blocking<engram_id>(forget_atom::value, id, std::move(reason));
}

expected<engram_id> memory::archive(const engram_id& id) {
  return blocking<engram_id>(archive_atom::value, id);
}

expected<sync_result> memory::sync(const sync_config& cfg) {
  return blocking<sync_result>(sync_atom::value, cfg);
}

expected<std::vector<pending_question>> memory::pending() {
  return blocking<std::vector<pending_question>>(pending_atom::value);
}

expected<engram_id> memory::answer(uint64_t conflict_id,
                                   const std::string& option) {
  return blocking<engram_id>(answer_atom::value, conflict_id, option);
}

expected<std::vector<pending_question>>
memory::pending(const std::string& fed_id) {
  return blocking<std::vector<pending_question>>(pending_atom::value, fed_id);
}

expected<engram_id> memory::answer(const std::string& fed_id,
                                   uint64_t conflict_id,
                                   const std::string& option) {
  return blocking<engram_id>(answer_atom::value, fed_id, conflict_id, option);
}

expected<federation::federation_state>
memory::set_belief_conflicts(const std::string& fed_id,
                             federation::belief_policy policy) {
  return federation_call(fed_id, federation::cmd::set_belief_policy{policy});
}

} // namespace engram::actors
