// The reads of an agent's memory: this replica's, or the replicas a
// consistency level needs, merged (the newest write of each engram wins);
// and the answers an agent gives from its memory.

#include "actors/internal/agent_state.hpp"
#include "core/query.hpp"
#include "federation/share.hpp"

#include <algorithm>

namespace engram::actors {

bool reserved(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  return f != nullptr && !f->key.empty() && f->key[0] == '_'
         && (f->key == federation::state_key()
             || f->key.rfind(federation::share_key_prefix(), 0) == 0
             || is_message(e) || is_key(e));
}

const char* runtime_prefix(const engram_record& e) {
  auto* f = std::get_if<fact>(&e.body);
  if (f == nullptr)
    return nullptr;
  for (auto* prefix : {"_msg.", "_share.", "_federation.", "_e2e."})
    if (f->key.rfind(prefix, 0) == 0)
      return prefix;
  return nullptr;
}

bool runtime_key(const engram_record& e) {
  return runtime_prefix(e) != nullptr;
}

std::vector<memory_view> local_query(agent_ptr self,
                                     const query_filter& filter) {
  std::vector<memory_view> result;
  select(*self->state.mem, filter, result);
  result.erase(std::remove_if(result.begin(), result.end(),
                              [](const memory_view& v) {
                                return reserved(v.value);
                              }),
               result.end());
  finish(filter, result);
  return result;
}

std::vector<memory_view>
merge_reads(const query_filter& filter,
            std::vector<std::vector<memory_view>>& answers) {
  struct best {
    hlc_timestamp newest;
    size_t source = 0;
  };
  std::map<engram_id, best> winners;
  for (size_t i = 0; i < answers.size(); ++i)
    for (auto& v : answers[i]) {
      auto [it, fresh] = winners.emplace(v.value.id, best{v.value.updated, i});
      if (!fresh && it->second.newest < v.value.updated)
        it->second = best{v.value.updated, i};
    }
  std::vector<memory_view> result;
  for (size_t i = 0; i < answers.size(); ++i)
    for (auto& v : answers[i])
      if (winners[v.value.id].source == i)
        result.push_back(std::move(v));
  finish(filter, result);
  return result;
}

caf::result<std::vector<memory_view>>
read(agent_ptr self, const query_filter& filter, level_code code) {
  auto& st = self->state;
  auto level = code == configured_level ? st.ctx->config.replication.consistency
                                        : static_cast<consistency_level>(code);
  if (code != configured_level && code > code_of(consistency_level::local))
    return to_caf(
        make_error(errc::invalid_argument,
                   "unknown consistency level " + std::to_string(code)));
  if (level == consistency_level::local)
    return local_query(self, filter);
  auto nodes = placing(self).read_set(level, self_node(self), liveness(self));
  if (!nodes)
    return to_caf(nodes.error_value());
  if (nodes->size() == 1 && !st.caught_up && st.mem->size() == 0
      && (*nodes)[0] == self_node(self)) {
    // Empty and not caught up yet: a live node hosting the agent answers
    // too (its memories may just not have arrived).
    for (auto& n : st.ctx->dir->hosts(st.cfg.agent_id))
      if (n != self_node(self) && st.ctx->cluster->live(n)) {
        nodes->push_back(n);
        break;
      }
  }
  if (nodes->size() == 1)
    return local_query(self, filter);
  auto rp = self->make_response_promise<std::vector<memory_view>>();
  struct gather {
    std::vector<std::vector<memory_view>> answers;
    size_t waiting = 0;
    bool failed = false;
  };
  auto g = std::make_shared<gather>();
  // Every node asked must answer: unlimited, so the merge sees everything.
  auto unlimited = filter;
  unlimited.limit = 0;
  g->answers.push_back(local_query(self, unlimited));
  g->waiting = nodes->size() - 1;
  auto fail = [=](const std::string& node, const caf::error& err) mutable {
    if (g->failed)
      return;
    g->failed = true;
    self->state.remote.erase(node);
    rp.deliver(to_caf(
        make_error(errc::unavailable,
                   std::string{"read at "} + to_string(level) + ": node " + node
                       + " did not answer: " + from_caf(err).message)));
  };
  for (size_t i = 1; i < nodes->size(); ++i) {
    auto node = (*nodes)[i];
    with_remote(
        self, node,
        [=](const agent_actor& hdl) mutable {
          self->request(hdl, std::chrono::seconds{5}, query_atom::value,
                        unlimited, code_of(consistency_level::local))
              .then(
                  [=](std::vector<memory_view>& views) mutable {
                    if (g->failed)
                      return;
                    g->answers.push_back(std::move(views));
                    if (--g->waiting == 0)
                      rp.deliver(merge_reads(filter, g->answers));
                  },
                  [=](caf::error& err) mutable {
                    fail(node, err);
                  });
        },
        [=](caf::error& err) mutable {
          fail(node, err);
        });
  }
  return rp;
}

// What the agent's memory says about `question`: the value of the fact with
// that key, else its beliefs about that subject ("relation object", the
// most confident first); an error when it knows nothing about it.
caf::result<std::string> answer_from_memory(agent_ptr self,
                                            const std::string& question) {
  auto& st = self->state;
  if (auto rec = st.mem->get(derive_id(st.hosted, fact{question, {}})))
    if (!rec->tombstone && !rec->archived && !reserved(*rec))
      if (auto* f = std::get_if<fact>(&rec->body))
        return f->value;
  query_filter filter;
  filter.subject = question;
  auto views = local_query(self, filter);
  std::stable_sort(views.begin(), views.end(),
                   [](const memory_view& x, const memory_view& y) {
                     return x.value.confidence > y.value.confidence;
                   });
  std::string answer;
  for (auto& v : views)
    if (auto* b = std::get_if<belief>(&v.value.body))
      answer += (answer.empty() ? "" : "; ") + b->relation + " " + b->object;
  if (answer.empty())
    return to_caf(make_error(errc::unknown_engram,
                             "agent " + st.cfg.agent_id
                                 + " knows nothing about '" + question + "'"));
  return answer;
}

} // namespace engram::actors
