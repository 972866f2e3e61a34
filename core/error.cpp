#include "core/error.hpp"

namespace engram {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_confidence: return "invalid_confidence";
    case errc::empty_id: return "empty_id";
    case errc::empty_collective: return "empty_collective";
    case errc::invalid_scope: return "invalid_scope";
    case errc::invalid_content: return "invalid_content";
    case errc::unknown_engram: return "unknown_engram";
    case errc::unknown_conflict: return "unknown_conflict";
    case errc::unknown_option: return "unknown_option";
    case errc::invalid_resolution: return "invalid_resolution";
    case errc::parse_error: return "parse_error";
    case errc::malformed_delta: return "malformed_delta";
    case errc::frame_too_large: return "frame_too_large";
    case errc::decode_failed: return "decode_failed";
    case errc::unsupported_version: return "unsupported_version";
    case errc::unknown_message_type: return "unknown_message_type";
    case errc::limit_exceeded: return "limit_exceeded";
    case errc::invalid_field: return "invalid_field";
    case errc::storage_failed: return "storage_failed";
    case errc::schema_mismatch: return "schema_mismatch";
    case errc::corrupt_record: return "corrupt_record";
    case errc::invalid_argument: return "invalid_argument";
    case errc::unknown_agent: return "unknown_agent";
    case errc::timeout: return "timeout";
    case errc::unavailable: return "unavailable";
    case errc::permission_denied: return "permission_denied";
    case errc::not_confirmed: return "not_confirmed";
    case errc::clock_offset: return "clock_offset";
    case errc::damaged_store: return "damaged_store";
    case errc::unauthenticated: return "unauthenticated";
  }
  return "unknown_error";
}

std::string error::to_string() const {
  std::string result = ::engram::to_string(code);
  if (!message.empty()) {
    result += ": ";
    result += message;
  }
  return result;
}

} // namespace engram
