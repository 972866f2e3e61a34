// A federation's broadcasts: told to every other member wherever it runs;
// a member whose node is not reachable gets it when it is back (queued,
// bounded, retried on the federation's tick).

#include "actors/internal/agent_state.hpp"
#include "actors/node.hpp"

#include <memory>

namespace engram::actors {

// Whether `agent` runs on this node or on a reachable peer.
bool agent_live(agent_ptr self, const std::string& agent) {
  auto& st = self->state;
  if (st.ctx->dir->agent(agent))
    return true;
  for (auto& n : st.ctx->dir->hosts(agent))
    if (st.ctx->cluster->live(n))
      return true;
  return false;
}

namespace {

/// Broadcasts queued per member beyond this are dropped (counted).
constexpr size_t max_undelivered = 1000;

/// Each step of reaching a member (finding it, telling it): both together
/// stay under the callers' usual 5 s timeout.
constexpr auto member_timeout = std::chrono::milliseconds{1500};

// Tells `member` (running on this node or a reachable peer) `text` from
// `from`; `done(true)` once it is in the member's inbox.
void tell_member(agent_ptr self, const std::string& member,
                 const std::string& from, const std::string& text, uint64_t id,
                 std::function<void(bool)> done) {
  auto& st = self->state;
  auto send = [=](const agent_actor& hdl) {
    self->request(hdl, member_timeout, tell_atom::value, from, text, id)
        .then(
            [=](bool) {
              done(true);
            },
            [=](caf::error&) {
              done(false);
            });
  };
  if (auto local = st.ctx->dir->agent(member)) {
    send(*local);
    return;
  }
  for (auto& n : st.ctx->dir->hosts(member)) {
    auto peer = st.ctx->cluster->peer(n);
    if (!peer)
      continue;
    self->request(caf::actor_cast<node_actor>(*peer), member_timeout,
                  agent_atom::value, member)
        .then(
            [=](agent_actor& hdl) {
              send(hdl);
            },
            [=](caf::error&) {
              done(false);
            });
    return;
  }
  done(false);
}

void queue_undelivered(agent_ptr self, const std::string& member,
                       const std::string& from, const std::string& text,
                       uint64_t id) {
  auto& q = self->state.undelivered[member];
  if (q.size() >= max_undelivered) {
    q.pop_front();
    ++self->state.undelivered_dropped;
  }
  q.emplace_back(from, text, id);
}

} // namespace

void retry_undelivered(agent_ptr self) {
  auto& st = self->state;
  for (auto i = st.undelivered.begin(); i != st.undelivered.end();) {
    // Members removed (or gone) meanwhile get nothing more.
    if (i->second.empty() || !st.fed || st.fed->find(i->first) == nullptr)
      i = st.undelivered.erase(i);
    else
      ++i;
  }
  for (auto& [member, queue] : st.undelivered) {
    if (!agent_live(self, member))
      continue;
    auto batch = std::move(queue);
    queue.clear();
    for (auto& [from, text, id] : batch) {
      auto m = member;
      auto f = from;
      auto t = text;
      auto i = id;
      tell_member(self, m, f, t, i, [self, m, f, t, i](bool ok) {
        if (!ok)
          queue_undelivered(self, m, f, t, i);
      });
    }
  }
}

caf::result<uint64_t> broadcast(agent_ptr self, const std::string& from,
                                const std::string& text) {
  auto& st = self->state;
  if (!st.fed)
    return to_caf(
        make_error(errc::unavailable,
                   "federation " + st.cfg.agent_id + " is not known here yet"));
  if (auto ok = st.fed->check(from, federation::operation::write); !ok)
    return to_caf(ok.error_value());
  std::vector<std::string> members;
  for (auto& m : st.fed->members())
    if (m.agent_id != from)
      members.push_back(m.agent_id);
  if (members.empty())
    return uint64_t{0};
  auto rp = self->make_response_promise<uint64_t>();
  // One id for every copy (and retry) of this broadcast.
  auto id = message_id(st.cfg.agent_id + '\n' + from + '\n' + text,
                       st.clock->now());
  auto delivered = std::make_shared<uint64_t>(0);
  auto waiting = std::make_shared<size_t>(members.size());
  for (auto& m : members) {
    tell_member(self, m, from, text, id, [=](bool ok) mutable {
      if (ok)
        ++*delivered;
      else
        queue_undelivered(self, m, from, text, id); // retried when back
      if (--*waiting == 0)
        rp.deliver(*delivered);
    });
  }
  return rp;
}

} // namespace engram::actors
