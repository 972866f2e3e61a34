#pragma once

// Where a master key comes from (`encryption.at_rest.key_source`):
//   file:PATH      a regular file of the process's user that nobody else may
//                  read (mode 0600 or 0400): 32 raw bytes, or the key in hex
//                  (64 digits) or base64, with an optional trailing newline;
//   env:NAME       the variable's value, in hex or base64;
//   pkcs11:URI     a key derived in a PKCS#11 token (crypto/pkcs11.hpp);
//   command:PROG [ARG]...  a program run without a shell, as credential
//                  helpers are, that prints the key in hex or base64 and
//                  exits 0 within the timeout.
// Errors name the source and what is wrong with it — never the key.

#include <chrono>
#include <string>

#include "crypto/aead.hpp"

namespace engram::crypto {

/// Reads the master key `spec` names.
expected<key256> load_master_key(const std::string& spec,
                                 std::chrono::milliseconds timeout
                                 = std::chrono::seconds{10});

/// A key written as text: hex (64 digits) or base64 (of 32 bytes), spaces
/// and a trailing newline ignored.
expected<key256> parse_key_text(std::string text);

} // namespace engram::crypto
