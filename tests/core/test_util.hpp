#pragma once

#include "core/engram.hpp"
#include "core/hlc.hpp"
#include "core/replica.hpp"

#include <memory>
#include <random>
#include <stdexcept>
#include <string>

namespace engram::test {

/// A fact engram in the given scope.
inline engram_record make_fact(const std::string& key, const std::string& value,
                               memory_scope scope
                               = memory_scope::agent("alpha"),
                               double confidence = 0.8) {
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = std::move(scope);
  e.body = fact{key, value};
  e.confidence = confidence;
  return e;
}

inline engram_record
make_belief(const std::string& subject, const std::string& relation,
            const std::string& object, double confidence = 0.7,
            memory_scope scope = memory_scope::agent("alpha")) {
  engram_record e;
  e.type = memory_type::semantic;
  e.scope = std::move(scope);
  e.body = belief{subject, relation, object};
  e.confidence = confidence;
  return e;
}

inline engram_record
make_episode(const std::string& id, std::vector<event> events,
             memory_scope scope = memory_scope::agent("alpha")) {
  engram_record e;
  e.type = memory_type::episodic;
  e.scope = std::move(scope);
  e.body = episode{id, std::move(events)};
  return e;
}

inline engram_record
make_skill(const std::string& id, std::vector<refinement> refs,
           double confidence = 0.5,
           memory_scope scope = memory_scope::agent("alpha")) {
  engram_record e;
  e.type = memory_type::procedural;
  e.scope = std::move(scope);
  e.body = skill{id, std::move(refs)};
  e.confidence = confidence;
  return e;
}

/// A replica with its own manual clock.
struct node {
  manual_clock wall;
  hybrid_logical_clock hlc;
  replica mem;

  node(replica_id id, replica_config cfg = {}, uint64_t start_us = 1'000'000)
      : wall(start_us), hlc(wall), mem(id, hlc, std::move(cfg)) {
    // nop
  }
};

/// Joins a delta and requires success.
inline join_report must_join(replica& r, const replica_delta& d) {
  auto res = r.join(d);
  if (!res)
    throw std::runtime_error("join failed: " + res.error_value().to_string());
  return std::move(*res);
}

/// Requires success of a mutation.
inline replica_delta must(expected<replica_delta> d) {
  if (!d)
    throw std::runtime_error("mutation failed: " + d.error_value().to_string());
  return std::move(*d);
}

} // namespace engram::test
