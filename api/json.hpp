#pragma once

// Memories, federations, shares and conflicts as JSON — what the client API
// answers and the CLI prints — and the API's request bodies and query
// parameters read back into the C++ types, every field checked (a bad one
// is an invalid_argument error naming it). Ids, keys and names are UTF-8
// (refused otherwise); values and texts are bytes: JSON holds text, so
// bytes that are not UTF-8 show U+FFFD in their place, and a fact's value
// also as "value_base64".

#include "core/engram.hpp"
#include "core/error.hpp"
#include "core/query.hpp"
#include "core/replica.hpp"
#include "federation/membership.hpp"
#include "federation/share.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace engram::api {

using json = nlohmann::json;

/// Standard base64 with padding (RFC 4648 §4).
std::string base64(const std::string& bytes);

json to_json(const engram_record& e);
json to_json(const memory_view& v);
json to_json(const federation::federation_state& st);
json to_json(const pending_question& q);
json to_json(const federation::share& s);

/// `j` as text that never throws on bytes that are not UTF-8.
std::string dump(const json& j, int indent = -1);

/// "uniform:T", "reputation[:INITIAL]" or "per-agent:A=T,B=T[,*=DEFAULT]".
expected<federation::trust_model> parse_trust(const std::string& text);

/// "instant", "episodic", "semantic" or "procedural".
expected<memory_type> parse_memory_type(const std::string& text);

/// A query filter from query parameters: type, subject, relation, limit,
/// contested ("true"/"false"), archived, forgotten. Unknown parameters
/// listed in `ignore` are skipped; any other is refused.
expected<query_filter>
filter_of(const std::map<std::string, std::string>& params,
          const std::vector<std::string>& ignore = {});

/// What a learn request's body describes: a fact {"key", "value"} (bytes
/// that are not UTF-8: "value_base64" instead) or a belief {"subject",
/// "relation", "object"}, with optional "confidence" (default 0.9) and
/// "type" (default semantic).
expected<engram_record> record_of(const json& body);

} // namespace engram::api
