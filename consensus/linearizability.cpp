#include "consensus/linearizability.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

namespace engram::consensus {

namespace {

/// An event of the history as a doubly linked list (calls and returns in
/// time order); a call is "lifted" out of the list with its return when the
/// search linearizes it, and put back when it backtracks.
struct event {
  bool call = true;
  size_t op = 0;
  event* match = nullptr; // call ↔ return
  event* prev = nullptr;
  event* next = nullptr;
};

void lift(event* call) {
  call->prev->next = call->next;
  if (call->next)
    call->next->prev = call->prev;
  auto* ret = call->match;
  ret->prev->next = ret->next;
  if (ret->next)
    ret->next->prev = ret->prev;
}

void unlift(event* call) {
  auto* ret = call->match;
  ret->prev->next = ret;
  if (ret->next)
    ret->next->prev = ret;
  call->prev->next = call;
  if (call->next)
    call->next->prev = call;
}

struct key_check {
  bool ok = true;
  bool gave_up = false;
  uint64_t explored = 0;
};

key_check check_key(const std::vector<const register_op*>& ops,
                    uint64_t budget) {
  key_check out;
  // Calls and returns; an operation that never returned returns after
  // everything else.
  constexpr auto never = std::numeric_limits<uint64_t>::max();
  std::vector<event> events(ops.size() * 2);
  std::vector<std::pair<std::pair<uint64_t, int>, event*>> order;
  for (size_t i = 0; i < ops.size(); ++i) {
    auto& call = events[2 * i];
    auto& ret = events[2 * i + 1];
    call.call = true;
    call.op = i;
    call.match = &ret;
    ret.call = false;
    ret.op = i;
    ret.match = &call;
    // At equal times calls come first: the operations overlap.
    order.push_back({{ops[i]->invoked, 0}, &call});
    order.push_back({{ops[i]->returned.value_or(never), 1}, &ret});
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& x, const auto& y) {
                     return x.first < y.first;
                   });
  event head;
  head.call = false;
  event* last = &head;
  for (auto& [time, e] : order) {
    last->next = e;
    e->prev = last;
    last = e;
  }
  last->next = nullptr;
  // The search: linearize the first call whose effect fits the state; a
  // return reached before its call was linearized means backtracking.
  std::string state;
  std::vector<bool> linearized(ops.size());
  std::unordered_set<std::string> seen;
  std::vector<std::pair<event*, std::string>> stack;
  auto cache_key = [&](const std::string& s) {
    std::string k;
    k.reserve(linearized.size() / 8 + 1 + s.size());
    uint8_t byte = 0;
    for (size_t i = 0; i < linearized.size(); ++i) {
      byte = static_cast<uint8_t>(byte | (linearized[i] ? 1u << (i % 8) : 0u));
      if (i % 8 == 7 || i + 1 == linearized.size()) {
        k.push_back(static_cast<char>(byte));
        byte = 0;
      }
    }
    k.push_back('\0');
    k += s;
    return k;
  };
  event* entry = head.next;
  while (head.next != nullptr) {
    if (++out.explored > budget) {
      out.gave_up = true;
      return out;
    }
    if (entry == nullptr) {
      // Only unanswered operations are left: they may never take effect.
      break;
    }
    if (entry->call) {
      auto& op = *ops[entry->op];
      bool fits = op.kind == register_op::put || op.value == state;
      if (fits) {
        auto next_state = op.kind == register_op::put ? op.value : state;
        linearized[entry->op] = true;
        auto k = cache_key(next_state);
        if (seen.insert(k).second) {
          stack.emplace_back(entry, state);
          state = std::move(next_state);
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[entry->op] = false;
      }
      entry = entry->next;
      continue;
    }
    // A return: its operation must already have taken effect.
    if (!ops[entry->op]->returned) {
      // Unanswered operations never constrain: skip their "return".
      entry = entry->next;
      continue;
    }
    if (stack.empty()) {
      out.ok = false;
      return out;
    }
    auto [call, before] = std::move(stack.back());
    stack.pop_back();
    linearized[call->op] = false;
    state = std::move(before);
    unlift(call);
    entry = call->next;
  }
  return out;
}

} // namespace

linearizability_result
check_linearizable(const std::vector<register_op>& history, uint64_t budget) {
  linearizability_result out;
  // A write whose client never heard back and whose value no read returned
  // may as well never have happened: leaving it out changes no verdict and
  // spares the search a choice per such write.
  std::map<std::string, std::set<std::string>> read_values;
  for (auto& op : history)
    if (op.kind == register_op::get && op.returned)
      read_values[op.key].insert(op.value);
  std::map<std::string, std::vector<const register_op*>> by_key;
  for (auto& op : history) {
    // A read that never returned says nothing.
    if (op.kind == register_op::get && !op.returned)
      continue;
    if (op.kind == register_op::put && !op.returned) {
      auto seen = read_values.find(op.key);
      if (seen == read_values.end() || seen->second.count(op.value) == 0)
        continue;
    }
    by_key[op.key].push_back(&op);
  }
  for (auto& [key, ops] : by_key) {
    auto r = check_key(ops, budget);
    out.explored += r.explored;
    out.gave_up = out.gave_up || r.gave_up;
    if (!r.ok) {
      out.ok = false;
      out.key = key;
      return out;
    }
  }
  return out;
}

} // namespace engram::consensus
