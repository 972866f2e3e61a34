#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace engram {

/// Error codes of the core. Every failure of a core API is one of these,
/// carried as a value (never an exception, never undefined behaviour).
enum class errc : uint8_t {
  /// A confidence or trust value lies outside [0, 1] or is not a number.
  invalid_confidence = 1,
  /// A required identifier (agent, instance, collective, key, ...) is empty.
  empty_id,
  /// A Collective scope lists no members.
  empty_collective,
  /// A scope does not fit the operation (e.g. the wrong kind of scope).
  invalid_scope,
  /// The engram content is malformed (e.g. an episode without an id).
  invalid_content,
  /// No engram with the given id exists in the replica.
  unknown_engram,
  /// No open conflict with the given id exists.
  unknown_conflict,
  /// An answer names an option the question did not offer.
  unknown_option,
  /// A resolution cannot be applied to this conflict.
  invalid_resolution,
  /// A text could not be parsed (ids, clocks, ...).
  parse_error,
  /// A delta violates the protocol (e.g. a version outside its context).
  malformed_delta,
  /// A frame exceeds the configured size limit.
  frame_too_large,
  /// Bytes are truncated or not a valid encoding.
  decode_failed,
  /// A message names a protocol major version this build does not speak.
  unsupported_version,
  /// A message names a message type this build does not know.
  unknown_message_type,
  /// A repeated field or string exceeds the configured limit.
  limit_exceeded,
  /// A field holds a value outside its domain (e.g. a 15-byte id).
  invalid_field,
  /// The storage engine failed (I/O error, unreadable directory, ...).
  storage_failed,
  /// A store was written by a newer schema or belongs to another replica.
  schema_mismatch,
  /// A stored record cannot be decoded.
  corrupt_record,
  /// An argument is malformed (e.g. a partition name with a NUL byte).
  invalid_argument,
  /// No agent (or instance) with the given id is known where it was asked.
  unknown_agent,
  /// A request got no answer within its timeout.
  timeout,
  /// The actor or node that should answer is gone or failed.
  unavailable,
  /// The caller's role does not allow the operation (e.g. an Observer
  /// writing a federation's memory).
  permission_denied,
  /// A write was stored durably on the node that coordinated it, but not
  /// confirmed by as many replicas as its consistency level needs in time.
  /// It stays stored and syncs when they return: retrying it writes a new
  /// version. (`unavailable` on a write means it was refused and nothing
  /// was stored; `timeout` means its outcome is unknown.)
  not_confirmed,
  /// Clocks disagree by more than the configured bound (`max_clock_offset`):
  /// a node refuses to sync with such a peer, and refuses writes while its
  /// own clock is off from most of its peers'.
  clock_offset,
  /// A store on disk is damaged (a file is truncated, corrupt or missing):
  /// it is refused rather than opened with part of its data.
  damaged_store,
  /// A party did not prove who it is: no certificate, one of another
  /// authority, expired or revoked, a name that is not the one claimed, or
  /// a signature that does not verify.
  unauthenticated,
};

/// Returns the name of an error code, e.g. "invalid_confidence".
const char* to_string(errc code) noexcept;

/// An error code plus a human-readable message naming what was wrong.
struct error {
  errc code;
  std::string message;
  /// What the error is about when it names one thing, e.g. the id (hex) of
  /// the engram a `not_confirmed` write stored, or that an `unavailable`
  /// write would have written. Empty otherwise.
  std::string subject = {};

  /// Returns "<code>: <message>".
  std::string to_string() const;
};

/// Creates an error value.
inline error make_error(errc code, std::string message) {
  return error{code, std::move(message)};
}

/// Either a value of type T or an `error`. Results of fallible core
/// operations; must be checked.
template<class T>
class [[nodiscard]] expected {
public:
  expected(T value) : data_(std::move(value)) {
    // nop
  }

  expected(error err) : data_(std::move(err)) {
    // nop
  }

  /// True when this holds a value.
  bool has_value() const noexcept { return data_.index() == 0; }

  explicit operator bool() const noexcept { return has_value(); }

  /// The value; precondition: `has_value()`.
  T& value() & { return std::get<0>(data_); }

  const T& value() const& { return std::get<0>(data_); }

  T&& value() && { return std::get<0>(std::move(data_)); }

  T& operator*() & { return value(); }

  const T& operator*() const& { return value(); }

  T* operator->() { return &value(); }

  const T* operator->() const { return &value(); }

  /// The error; precondition: `!has_value()`.
  const error& error_value() const { return std::get<1>(data_); }

private:
  std::variant<T, error> data_;
};

/// Success or an `error`, for operations without a result value.
template<>
class [[nodiscard]] expected<void> {
public:
  expected() = default;

  expected(error err) : err_(std::move(err)), ok_(false) {
    // nop
  }

  bool has_value() const noexcept { return ok_; }

  explicit operator bool() const noexcept { return ok_; }

  const error& error_value() const { return err_; }

private:
  error err_{errc::invalid_content, {}};
  bool ok_ = true;
};

} // namespace engram
