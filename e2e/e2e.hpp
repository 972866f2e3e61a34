#pragma once

// End-to-end encryption between agents (the spec's E2EEncryption:
// X25519 key exchange, X25519-XSalsa20-Poly1305 boxes — libsodium's
// crypto_box). No CAF, no network.
//
// Each agent holds an X25519 key pair; the client keeps the secret half
// (a file of mode 0600), nodes never see it. The public half travels as a
// key binding: the statement "this key is agent A's", signed either by the
// agent itself with the key of its client certificate (the CA issued it
// for A: no node can make one), or by the node the agent published it
// through with the key of that node's certificate (which every client
// checking it then trusts to vouch honestly for any agent). Anyone holding
// the cluster's CA checks a binding, and a node that relays or stores one
// cannot change it. A sealed text carries its sender's binding: its
// recipient checks the sender without asking a node, then opens the box
// with its own secret key.

#include "core/error.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace engram::pki {
class certificate;
class private_key;
class revocation_list;
} // namespace engram::pki

namespace engram::e2e {

/// An agent's X25519 key pair. The secret half is wiped when destroyed.
class key_pair {
public:
  /// A fresh key pair (libsodium's CSPRNG).
  static key_pair generate();

  /// The key pair of a 32-byte secret key. Error: not 32 bytes.
  static expected<key_pair> from_secret(std::string_view secret);

  key_pair(const key_pair&);
  key_pair& operator=(const key_pair&);
  ~key_pair();

  /// The public half, 32 bytes.
  std::string public_key() const;

  /// The secret half, 32 bytes (to save it; never log it).
  std::string secret_key() const;

  const unsigned char* secret_data() const noexcept { return sk_.data(); }
  const unsigned char* public_data() const noexcept { return pk_.data(); }

private:
  key_pair() = default;

  std::array<unsigned char, 32> pk_{};
  std::array<unsigned char, 32> sk_{};
};

/// Writes the secret key to `path`, mode 0600: refused when the file
/// exists and `overwrite` is false.
expected<void> save_key(const std::string& path, const key_pair& keys,
                        bool overwrite = false);

/// Reads a key file `save_key` wrote: refused when group or others may
/// read it, or when it is not a key file (the error names the path, never
/// the key).
expected<key_pair> load_key(const std::string& path);

/// A node's statement that `public_key` is agent `agent`'s.
struct key_binding {
  std::string agent;
  /// X25519, 32 bytes.
  std::string public_key;
  /// The node that vouches, and its certificate (PEM); for a binding the
  /// agent signed itself, no node and the agent's client certificate;
  /// both empty for an unvouched binding (a node run without TLS).
  std::string node;
  std::string certificate;
  /// When the node vouched (microseconds since the epoch).
  uint64_t issued_us = 0;
  /// ECDSA-SHA256 over `binding_message`, by the certificate's key.
  std::string signature;

  bool vouched() const noexcept { return !certificate.empty(); }

  /// Signed by the agent itself (its client certificate), not a node.
  bool agent_signed() const noexcept { return vouched() && node.empty(); }
};

/// What a node signs to vouch for a binding (every field but the
/// signature and the certificate, which names the node).
std::string binding_message(const key_binding& b);

/// Node `node` vouches that `public_key` is `agent`'s, signing with the key
/// of its certificate `cert`. Error: a bad agent name or key length, or
/// the signature failed.
expected<key_binding> vouch(const std::string& agent,
                            const std::string& public_key,
                            const std::string& node,
                            const pki::certificate& cert,
                            const pki::private_key& key, uint64_t now_us);

/// Agent `agent` signs that `public_key` is its own, with the key of its
/// client certificate `cert` (issued by the cluster's CA for `agent`).
expected<key_binding> self_signed(const std::string& agent,
                                  const std::string& public_key,
                                  const pki::certificate& cert,
                                  const pki::private_key& key, uint64_t now_us);

/// An unvouched binding (a node without TLS has nothing to sign with):
/// accepted only where `trust::accept_unvouched` says so.
expected<key_binding> unvouched(const std::string& agent,
                                const std::string& public_key,
                                const std::string& node, uint64_t now_us);

/// What a binding is checked against.
struct trust {
  /// The cluster's CA (null: only unvouched bindings could pass, and only
  /// with accept_unvouched).
  const pki::certificate* ca = nullptr;
  const pki::revocation_list* crl = nullptr;
  /// Insecure: accept bindings no node signed (a cluster without TLS).
  bool accept_unvouched = false;
  /// Only bindings the agent signed itself: no node is trusted to vouch.
  bool agent_signed_only = false;
};

/// Checks that `b` is agent `agent`'s key, signed by the agent's client
/// certificate or vouched by a node's (unless `agent_signed_only`), which
/// the CA issued, valid at `now_s` and not revoked, and that the signature
/// is that certificate's. Error (`unauthenticated`) says which check
/// failed.
expected<void> verify(const key_binding& b, const std::string& agent,
                      const trust& t, int64_t now_s);

std::string encode(const key_binding& b);
expected<key_binding> decode_binding(std::string_view bytes);

/// True when `text` is a sealed text (by its prefix; `open` checks the
/// rest).
bool is_sealed(std::string_view text) noexcept;

/// True when `text` has the whole shape of a sealed text: the prefix, a
/// sender's binding, a 32-byte recipient key, a 24-byte nonce and a box
/// with its 16-byte tag. What a node that cannot open it checks before
/// passing it on (a sender bent on leaking its own text could still put
/// it in that shape: this guards against mistakes, not the sender).
bool well_formed(std::string_view text);

/// The agent a well-formed sealed text names as its sender (its binding,
/// unchecked: `open` checks it). Error: not a well-formed sealed text.
expected<std::string> sealed_sender(std::string_view text);

/// `text` sealed by the holder of `sender` (whose binding is `sender_key`)
/// for the agent of `recipient` (its binding, checked by the caller):
/// nobody but the two can read it. Error: the sender's binding is not for
/// these keys.
/// `kind` says what the text is ("tell", "share"): `open` takes it only as
/// that.
expected<std::string> seal(std::string_view text, const key_pair& sender,
                           const key_binding& sender_key,
                           const key_binding& recipient, uint64_t now_us,
                           std::string_view kind = "tell");

/// What `open` finds in a sealed text.
struct opened {
  std::string text;
  /// The sender's binding (checked) and when it sealed the text.
  key_binding sender;
  uint64_t sealed_us = 0;
};

/// Opens a sealed text told to agent `me` (holding `keys`) by agent `from`
/// (as the node delivering it names the sender): the sender's binding must
/// pass `verify` for `from`, the box must be for `keys` and open with them
/// (nobody changed a byte), and the text must be addressed to `me`, sealed
/// by `from` itself and be of `kind`. Error
/// (`unauthenticated`, or `invalid_argument` for bytes that are no sealed
/// text) says which check failed.
expected<opened> open(std::string_view sealed, const std::string& from,
                      const std::string& me, const key_pair& keys,
                      const trust& t, int64_t now_s,
                      std::string_view kind = "tell");

// -- a federation's key -------------------------------------------------------

/// A new group key: 32 random bytes for crypto_secretbox
/// (XSalsa20-Poly1305), the key of a federation sealed end to end.
std::string new_group_key();

/// The value of fact `key` sealed under `group_key` of epoch `epoch`:
/// "e2e1:<epoch>:<base64 of nonce and box>", the box holding the fact's
/// key and value (a sealed value moved to another key does not open).
expected<std::string> seal_value(std::string_view group_key, uint64_t epoch,
                                 std::string_view key, std::string_view value);

/// True when `value` has the shape `seal_value` makes.
bool is_sealed_value(std::string_view value) noexcept;

/// The epoch a sealed value names. Error (invalid_argument): not a sealed
/// value.
expected<uint64_t> value_epoch(std::string_view value);

/// Opens a sealed value of fact `key`. Errors: not a sealed value
/// (invalid_argument); another key, another fact, a changed byte
/// (unauthenticated).
expected<std::string> open_value(std::string_view group_key,
                                 std::string_view value, std::string_view key);

/// The earlier keys (epoch → key) sealed under the newest one, and back:
/// a member holding the newest key reads every older value.
expected<std::string> seal_chain(std::string_view group_key,
                                 const std::map<uint64_t, std::string>& older);
expected<std::map<uint64_t, std::string>> open_chain(std::string_view group_key,
                                                     std::string_view chain);

} // namespace engram::e2e
