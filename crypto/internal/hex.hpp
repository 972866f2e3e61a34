#pragma once

// The value of a hex digit, for the key texts and URIs crypto/ parses.
// Not installed.

namespace engram::crypto::internal {

/// 0-15, or -1 for a character that is not a hex digit (either case).
inline int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace engram::crypto::internal
