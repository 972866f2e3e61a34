// An agent's inbox: messages told to it are reserved facts of its memory
// ("_msg.<id>"), replicated like any write; reading the inbox marks each
// read (forgets its fact, replicated too) before returning it.

#include "actors/internal/agent_state.hpp"
#include "core/query.hpp"

#include <algorithm>

#include "engram/v1/sync.pb.h"

namespace engram::actors {

namespace {

/// The key prefix of the reserved facts holding an agent's messages.
constexpr const char* message_prefix = "_msg.";

std::string message_key(uint64_t id) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string key = message_prefix;
  for (int shift = 60; shift >= 0; shift -= 4)
    key += digits[(id >> shift) & 0xf];
  return key;
}

} // namespace

bool is_message(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  return f != nullptr && f->key.rfind(message_prefix, 0) == 0;
}

namespace {

/// A message of the inbox, decoded from its fact.
struct inbox_message {
  engram_id engram;
  uint64_t id = 0;
  std::string from;
  std::string text;
  uint64_t sent_us = 0;
};

std::optional<inbox_message> decode_message(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  if (f == nullptr || e.tombstone)
    return std::nullopt;
  v1::InboxMessage m;
  if (!m.ParseFromString(f->value))
    return std::nullopt;
  return inbox_message{e.id, m.id(), m.from(), m.text(), m.sent_us()};
}

} // namespace

engram_record message_record(const std::string& agent, uint64_t id,
                             const std::string& from, const std::string& text,
                             uint64_t sent_us) {
  v1::InboxMessage m;
  m.set_id(id);
  m.set_from(from);
  m.set_text(text);
  m.set_sent_us(sent_us);
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = memory_scope::agent(agent);
  e.body = fact{message_key(id), m.SerializeAsString()};
  e.confidence = 1.0;
  e.origin.origin_agent = is_utf8(from) ? from : std::string{};
  return e;
}

namespace {

// Keeps `unread` up to date with what the replica now holds for `id`.
void note_message(agent_state& st, const engram_id& id) {
  if (!st.unread)
    return;
  auto now = st.mem->get(id);
  if (now && !now->tombstone && is_message(*now))
    st.unread->insert(id);
  else
    st.unread->erase(id);
}

} // namespace

void note_messages(agent_state& st, const replica_delta& delta) {
  if (!st.unread)
    return;
  for (auto& entry : delta.entries) {
    bool message = st.unread->count(entry.id) > 0; // e.g. forgotten (read)
    for (auto& v : entry.versions)
      message = message || is_message(v.value);
    if (message)
      note_message(st, entry.id);
  }
}

namespace {

// The messages this replica holds unread (a scan the first time).
const std::set<engram_id>& unread_messages(agent_state& st) {
  if (!st.unread) {
    st.unread.emplace();
    query_filter facts;
    facts.type = memory_type::semantic;
    facts.kind = scope_kind::agent;
    std::vector<memory_view> views;
    select(*st.mem, facts, views);
    for (auto& v : views)
      if (is_message(v.value))
        st.unread->insert(v.value.id);
  }
  return *st.unread;
}

// The views of the messages `ids` this replica holds, read (forgotten)
// ones included: a reader merging several replicas' answers must see that
// one of them already marked a message read.
std::vector<memory_view> message_views(agent_state& st,
                                       const std::vector<engram_id>& ids) {
  std::vector<memory_view> out;
  for (auto& id : ids)
    for (auto& v : st.mem->read(id))
      if (is_message(v.value))
        out.push_back(std::move(v));
  return out;
}

// The unread messages this replica holds, as views.
std::vector<memory_view> message_views(agent_state& st) {
  std::vector<memory_view> out;
  for (auto& id : unread_messages(st))
    for (auto& v : st.mem->read(id))
      if (!v.value.tombstone && is_message(v.value))
        out.push_back(std::move(v));
  return out;
}

// Marks each message read (forgets its fact: the mark replicates like any
// write, at the configured level) and answers with those marked, oldest
// first, as alternating sender and text. A message whose mark failed stays
// unread for the next read; none marked: the first error.
void mark_read(agent_ptr self, std::vector<memory_view> views,
               caf::typed_response_promise<std::vector<std::string>> rp) {
  std::vector<inbox_message> msgs;
  for (auto& v : views)
    if (auto m = decode_message(v.value))
      msgs.push_back(std::move(*m));
  std::sort(msgs.begin(), msgs.end(), [](const auto& x, const auto& y) {
    return std::tie(x.sent_us, x.id) < std::tie(y.sent_us, y.id);
  });
  msgs.erase(std::unique(msgs.begin(), msgs.end(),
                         [](const auto& x, const auto& y) {
                           return x.engram == y.engram;
                         }),
             msgs.end());
  // What another read is marking, or what is read here already, is not
  // this read's to return.
  auto& st = self->state;
  msgs.erase(std::remove_if(msgs.begin(), msgs.end(),
                            [&](const inbox_message& m) {
                              auto now = st.mem->get(m.engram);
                              return st.claimed.count(m.engram) > 0
                                     || (now && now->tombstone);
                            }),
             msgs.end());
  for (auto& m : msgs)
    st.claimed.insert(m.engram);
  if (msgs.empty()) {
    rp.deliver(std::vector<std::string>{});
    return;
  }
  struct tally {
    std::vector<inbox_message> msgs;
    std::vector<bool> marked;
    size_t waiting = 0;
    std::optional<error> failure;
  };
  auto t = std::make_shared<tally>();
  t->marked.resize(msgs.size());
  t->waiting = msgs.size();
  t->msgs = std::move(msgs);
  auto done = [t, rp]() mutable {
    if (--t->waiting > 0)
      return;
    std::vector<std::string> out;
    for (size_t i = 0; i < t->msgs.size(); ++i)
      if (t->marked[i]) {
        out.push_back(t->msgs[i].from);
        out.push_back(t->msgs[i].text);
      }
    if (out.empty() && t->failure)
      rp.deliver(to_caf(*t->failure));
    else
      rp.deliver(std::move(out));
  };
  auto& cfg = st.ctx->config;
  auto timeout = 2 * cfg.replication.write_timeout + std::chrono::seconds{5};
  auto me = caf::actor_cast<agent_actor>(self);
  for (size_t i = 0; i < t->msgs.size(); ++i)
    self->request(me, timeout, forget_atom::value, t->msgs[i].engram,
                  std::string{"read"})
        .then(
            [=](engram_id&) mutable {
              self->state.claimed.erase(t->msgs[i].engram);
              t->marked[i] = true;
              done();
            },
            [=](caf::error& err) mutable {
              self->state.claimed.erase(t->msgs[i].engram);
              auto e = from_caf(err);
              // Stored here and syncing, or of unknown outcome (the mark
              // may be written): returned, never lost — at worst a message
              // whose mark failed comes back with a later read.
              t->marked[i] = e.code == errc::not_confirmed
                             || e.code == errc::timeout
                             || !is_engram_error(err);
              if (!t->marked[i] && !t->failure)
                t->failure = e;
              done();
            });
}

// The agent's unread messages from the replicas the configured level reads
// (this one alone at One): first each replica's unread messages, then, for
// all of them, each replica's view (a read mark included), merged per
// message: the newest answer (a read mark after the message) wins.
template<class F>
void gather_messages(agent_ptr self, F done) {
  auto& st = self->state;
  auto level = st.ctx->config.replication.consistency;
  if (level == consistency_level::local)
    level = consistency_level::one;
  auto nodes = placing(self).read_set(level, self_node(self), liveness(self));
  if (!nodes || nodes->size() <= 1) {
    done(message_views(st));
    return;
  }
  struct gather {
    std::vector<std::string> nodes;
    std::set<engram_id> candidates;
    std::vector<std::vector<memory_view>> answers;
    size_t waiting = 0;
  };
  auto g = std::make_shared<gather>();
  g->nodes.assign(nodes->begin() + 1, nodes->end());
  // Asks every other node, then runs `then` once all answered (or failed).
  auto ask_all = [self, g](std::vector<engram_id> ids, auto then) mutable {
    g->waiting = g->nodes.size();
    for (auto& node : g->nodes)
      with_remote(
          self, node,
          [=](const agent_actor& hdl) mutable {
            self->request(hdl, std::chrono::seconds{5}, inbox_atom::value, ids)
                .then(
                    [=](std::vector<memory_view>& views) mutable {
                      g->answers.push_back(std::move(views));
                      if (--g->waiting == 0)
                        then();
                    },
                    [=](caf::error&) mutable {
                      if (--g->waiting == 0)
                        then();
                    });
          },
          [=](caf::error&) mutable {
            if (--g->waiting == 0)
              then();
          });
  };
  for (auto& v : message_views(st))
    g->candidates.insert(v.value.id);
  ask_all({}, [self, g, ask_all, done]() mutable {
    for (auto& views : g->answers)
      for (auto& v : views)
        g->candidates.insert(v.value.id);
    g->answers.clear();
    std::vector<engram_id> ids{g->candidates.begin(), g->candidates.end()};
    g->answers.push_back(message_views(self->state, ids));
    ask_all(ids, [self, g, done]() mutable {
      auto merged = merge_reads(query_filter{}, g->answers);
      merged.erase(std::remove_if(merged.begin(), merged.end(),
                                  [](const memory_view& v) {
                                    return v.value.tombstone;
                                  }),
                   merged.end());
      done(std::move(merged));
    });
  });
}

} // namespace

// A replica that has not caught up with its peers syncs first (bounded),
// then the unread messages are gathered and marked read.
caf::result<std::vector<std::string>> read_inbox(agent_ptr self) {
  auto& st = self->state;
  auto rp = self->make_response_promise<std::vector<std::string>>();
  auto collect = [self, rp]() mutable {
    gather_messages(self, [self, rp](std::vector<memory_view> views) mutable {
      mark_read(self, std::move(views), rp);
    });
  };
  bool peers_hold_it = false;
  for (auto& n : st.ctx->dir->hosts(st.cfg.agent_id))
    peers_hold_it = peers_hold_it || st.ctx->cluster->live(n);
  if (st.caught_up || !peers_hold_it || st.sessions.empty()) {
    collect();
    return rp;
  }
  sync_config cfg;
  cfg.timeout = std::chrono::seconds{2};
  self->request(caf::actor_cast<agent_actor>(self), cfg.timeout * 2,
                sync_atom::value, cfg)
      .then(
          [=](sync_result&) mutable {
            collect();
          },
          [=](caf::error&) mutable {
            collect();
          });
  return rp;
}

// The last 10 000 ids are remembered.
void remember_message(agent_ptr self, uint64_t id) {
  auto& s = self->state;
  constexpr size_t remembered = 10'000;
  s.recent.insert(id);
  s.recent_ids.push_back(id);
  if (s.recent_ids.size() > remembered) {
    s.recent.erase(s.recent_ids.front());
    s.recent_ids.pop_front();
  }
}

caf::result<bool> take_message(agent_ptr self, const std::string& from,
                               const std::string& text, uint64_t id) {
  auto& s = self->state;
  // A retry of a message this replica holds (read or not): done.
  auto e
      = message_record(s.cfg.agent_id, id, from, text, s.clock->now().wall_us);
  auto engram = derive_id(e.scope, e.body);
  if (s.recent.count(id) > 0 || s.mem->contains(engram))
    return true;
  if (unread_messages(s).size() >= s.cfg.inbox_capacity)
    return to_caf(make_error(
        errc::limit_exceeded,
        "the inbox of agent " + s.cfg.agent_id + " is full ("
            + std::to_string(s.cfg.inbox_capacity) + " unread messages)"));
  // Written as any memory of the agent (its level's durability, then
  // replicated to every node holding it) before it is acknowledged.
  auto rp = self->make_response_promise<bool>();
  self->request(caf::actor_cast<agent_actor>(self), caf::infinite,
                learn_atom::value, std::move(e))
      .then(
          [=](engram_id&) mutable {
            remember_message(self, id);
            rp.deliver(true);
          },
          [=](caf::error& err) mutable {
            rp.deliver(std::move(err));
          });
  return rp;
}

std::vector<memory_view> inbox_views(agent_ptr self,
                                     const std::vector<engram_id>& ids) {
  if (ids.empty())
    return message_views(self->state);
  return message_views(self->state, ids);
}

bool adopt_legacy_messages(agent_ptr self) {
  auto& st = self->state;
  auto& ctx = st.ctx;
  auto& agent_id = st.cfg.agent_id;
  // Messages told before a restart and not read yet.
  std::vector<persistence::corrupt_record> corrupt;
  auto kept = st.db->messages(&corrupt);
  if (!kept) {
    self->quit(to_caf(kept.error_value()));
    return false;
  }
  if (auto& handler = ctx->config.on_event)
    for (auto& c : corrupt)
      handler("corrupt_record", {{"node", ctx->config.node_id},
                                 {"agent", agent_id},
                                 {"column_family", c.column_family},
                                 {"key", c.key},
                                 {"reason", c.reason}});
  if (kept->empty())
    return true;
  // Messages an earlier build kept beside the replica (unread): moved
  // into the replicated memory, then dropped from the old place.
  auto now_us = st.clock->now().wall_us;
  for (auto& m : *kept) {
    auto e = message_record(agent_id, m.id, m.from, m.text, now_us);
    auto delta = st.mem->put(std::move(e));
    if (!delta) { // not a valid memory (e.g. a bad sender name): said so
      if (auto& handler = ctx->config.on_event)
        handler("corrupt_record",
                {{"node", ctx->config.node_id},
                 {"agent", agent_id},
                 {"column_family", "meta"},
                 {"key", "inbox/" + std::to_string(m.id)},
                 {"reason", delta.error_value().to_string()}});
      continue;
    }
    record(self, *delta);
    remember_message(self, m.id);
  }
  if (auto cleared = st.db->clear_messages(); !cleared) {
    self->quit(to_caf(cleared.error_value()));
    return false;
  }
  return true;
}

} // namespace engram::actors
