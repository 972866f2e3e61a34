#pragma once

// Transforms applied to memories before they are shared
// (`share_transformed`), and the built-in PII redactor.

#include "core/engram.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace engram::federation {

/// What the redactor found and replaced, per kind.
struct redaction_report {
  size_t emails = 0;
  size_t phones = 0;
  size_t ip_addresses = 0;
  size_t cards = 0;
  size_t secrets = 0;

  size_t total() const noexcept {
    return emails + phones + ip_addresses + cards + secrets;
  }
};

/// Replaces personal data in `text`: e-mail addresses → "[email]", phone
/// numbers → "[phone]", IPv4 and IPv6 addresses → "[ip]", payment card
/// numbers (13–19 digits, spaces or dashes allowed, Luhn check passing) →
/// "[card]", API keys and tokens (sk-…, AKIA…, ghp_…, xox?-…, JWTs, Bearer
/// tokens, and the value of `api_key=`, `token:`, `secret=`, `password=`)
/// → "[secret]". Digit runs that fail the Luhn check are not cards.
std::string redact_pii(std::string_view text, redaction_report* report = {});

/// True when `digits` (digits only) passes the Luhn check.
bool luhn_valid(std::string_view digits) noexcept;

/// A transform of a memory before it is shared: returns false to withhold
/// the memory entirely. Its name is recorded in the receiver's provenance.
struct memory_transform {
  std::string name;
  std::function<bool(engram_record&)> apply;
};

/// The built-in transform "redact_pii": every text of the content (fact
/// keys and values, belief subjects, relations and objects, event
/// descriptions, refinements) redacted.
memory_transform pii_redactor();

} // namespace engram::federation
