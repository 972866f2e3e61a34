#include "e2e/e2e.hpp"

#include "core/scope.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "engram/v1/e2e.pb.h"
#include "pki/pki.hpp"

namespace engram::e2e {

namespace {

static_assert(crypto_box_PUBLICKEYBYTES == 32);
static_assert(crypto_box_SECRETKEYBYTES == 32);

void init_sodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0)
      std::abort(); // no usable randomness: nothing may be sealed
  });
}

/// What a sealed text starts with: a zero byte (no text a person types),
/// "e2e", and the format's version (2: the box names sender and kind).
constexpr std::string_view magic{"\0e2e\x02", 5};

/// The first line of a key file.
constexpr std::string_view key_file_header = "engram-e2e-secret-key-v1\n";

// libsodium's (constant time: it also writes secret keys).
std::string hex(std::string_view bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(),
                 reinterpret_cast<const unsigned char*>(bytes.data()),
                 bytes.size());
  out.pop_back();
  return out;
}

error unauthenticated(std::string what) {
  return make_error(errc::unauthenticated, std::move(what));
}

void to_proto(const key_binding& b, v1::AgentKey& m) {
  m.set_agent(b.agent);
  m.set_public_key(b.public_key);
  m.set_node(b.node);
  m.set_certificate(b.certificate);
  m.set_issued_us(b.issued_us);
  m.set_signature(b.signature);
}

key_binding from_proto(const v1::AgentKey& m) {
  return {m.agent(),       m.public_key(), m.node(),
          m.certificate(), m.issued_us(),  m.signature()};
}

expected<void> check_fields(const std::string& agent,
                            const std::string& public_key) {
  if (auto ok = validate_name(agent, "agent id"); !ok)
    return ok;
  if (public_key.size() != crypto_box_PUBLICKEYBYTES)
    return make_error(errc::invalid_argument,
                      "an X25519 public key has 32 bytes, not "
                          + std::to_string(public_key.size()));
  return {};
}

} // namespace

// -- key pairs ----------------------------------------------------------------

key_pair key_pair::generate() {
  init_sodium();
  key_pair k;
  crypto_box_keypair(k.pk_.data(), k.sk_.data());
  return k;
}

expected<key_pair> key_pair::from_secret(std::string_view secret) {
  init_sodium();
  if (secret.size() != crypto_box_SECRETKEYBYTES)
    return make_error(errc::invalid_argument,
                      "an X25519 secret key has 32 bytes, not "
                          + std::to_string(secret.size()));
  key_pair k;
  std::memcpy(k.sk_.data(), secret.data(), k.sk_.size());
  if (crypto_scalarmult_base(k.pk_.data(), k.sk_.data()) != 0)
    return make_error(errc::invalid_argument, "not an X25519 secret key");
  return k;
}

key_pair::key_pair(const key_pair&) = default;

key_pair& key_pair::operator=(const key_pair&) = default;

key_pair::~key_pair() { sodium_memzero(sk_.data(), sk_.size()); }

std::string key_pair::public_key() const {
  return {reinterpret_cast<const char*>(pk_.data()), pk_.size()};
}

std::string key_pair::secret_key() const {
  return {reinterpret_cast<const char*>(sk_.data()), sk_.size()};
}

expected<void> save_key(const std::string& path, const key_pair& keys,
                        bool overwrite) {
  auto secret = keys.secret_key();
  auto digits = hex(secret);
  std::string text;
  text.reserve(key_file_header.size() + digits.size() + 1);
  text.append(key_file_header).append(digits).append(1, '\n');
  auto ok = pki::write_file(path, text, 0600, overwrite);
  sodium_memzero(secret.data(), secret.size());
  sodium_memzero(digits.data(), digits.size());
  sodium_memzero(text.data(), text.size());
  return ok;
}

expected<key_pair> load_key(const std::string& path) {
  auto fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return make_error(errc::invalid_argument, "cannot read the agent key "
                                                  + path + ": "
                                                  + std::strerror(errno));
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) == 0
      && st.st_size <= 4096) {
    text.resize(static_cast<size_t>(st.st_size));
    auto n = ::read(fd, text.data(), text.size());
    text.resize(n < 0 ? 0 : static_cast<size_t>(n));
  }
  ::close(fd);
  if (!S_ISREG(st.st_mode) || st.st_size > 4096)
    return make_error(errc::invalid_argument,
                      "the agent key " + path + " is not a key file");
  if ((st.st_mode & 077) != 0)
    return make_error(errc::permission_denied,
                      "the agent key " + path + " may be read by others (mode "
                          + std::to_string((st.st_mode >> 6) & 7)
                          + std::to_string((st.st_mode >> 3) & 7)
                          + std::to_string(st.st_mode & 7) + "): chmod 600 it");
  std::string secret;
  bool ok = text.size() == key_file_header.size() + 64 + 1
            && text.compare(0, key_file_header.size(), key_file_header) == 0
            && text.back() == '\n';
  if (ok) {
    secret.resize(32);
    size_t len = 0;
    ok = sodium_hex2bin(reinterpret_cast<unsigned char*>(secret.data()),
                        secret.size(), text.data() + key_file_header.size(), 64,
                        nullptr, &len, nullptr)
             == 0
         && len == 32;
  }
  sodium_memzero(text.data(), text.size());
  if (!ok)
    return make_error(errc::invalid_argument,
                      "the agent key " + path
                          + " is not a key file (engram key new writes one)");
  auto keys = key_pair::from_secret(secret);
  sodium_memzero(secret.data(), secret.size());
  return keys;
}

// -- bindings -----------------------------------------------------------------

std::string binding_message(const key_binding& b) {
  return "engram-agent-key/v1\n" + b.agent + '\n' + hex(b.public_key) + '\n'
         + b.node + '\n' + std::to_string(b.issued_us);
}

expected<key_binding> vouch(const std::string& agent,
                            const std::string& public_key,
                            const std::string& node,
                            const pki::certificate& cert,
                            const pki::private_key& key, uint64_t now_us) {
  if (auto ok = check_fields(agent, public_key); !ok)
    return ok.error_value();
  key_binding b{agent, public_key, node, cert.to_pem(), now_us, {}};
  auto sig = key.sign(binding_message(b));
  if (!sig)
    return sig.error_value();
  b.signature = std::move(*sig);
  return b;
}

expected<key_binding> self_signed(const std::string& agent,
                                  const std::string& public_key,
                                  const pki::certificate& cert,
                                  const pki::private_key& key,
                                  uint64_t now_us) {
  if (auto ok = check_fields(agent, public_key); !ok)
    return ok.error_value();
  if (cert.role() != pki::role::client || cert.id() != agent)
    return make_error(errc::invalid_argument,
                      "a certificate for client agent " + agent
                          + " signs its key (this one names '" + cert.id()
                          + "')");
  key_binding b{agent, public_key, {}, cert.to_pem(), now_us, {}};
  auto sig = key.sign(binding_message(b));
  if (!sig)
    return sig.error_value();
  b.signature = std::move(*sig);
  return b;
}

expected<key_binding> unvouched(const std::string& agent,
                                const std::string& public_key,
                                const std::string& node, uint64_t now_us) {
  if (auto ok = check_fields(agent, public_key); !ok)
    return ok.error_value();
  return key_binding{agent, public_key, node, {}, now_us, {}};
}

expected<void> verify(const key_binding& b, const std::string& agent,
                      const trust& t, int64_t now_s) {
  if (b.agent != agent)
    return unauthenticated("the key is agent " + b.agent + "'s, not " + agent
                           + "'s");
  if (auto ok = check_fields(b.agent, b.public_key); !ok)
    return unauthenticated("the key of agent " + agent
                           + " is malformed: " + ok.error_value().message);
  if (!b.vouched()) {
    if (t.accept_unvouched && !t.agent_signed_only)
      return {};
    return unauthenticated("the key of agent " + agent
                           + " is vouched by no node (published through a "
                             "node run without TLS)");
  }
  if (t.ca == nullptr)
    return unauthenticated("no CA to check the key of agent " + agent
                           + " against");
  auto cert = pki::certificate::from_pem(b.certificate,
                                         "the certificate of node " + b.node);
  // Only the canonical form (as vouch wrote it): no byte of a binding may
  // change unnoticed, not even one PEM parsing would skip.
  if (!cert || cert->to_pem() != b.certificate)
    return unauthenticated("the certificate of node " + b.node
                           + " vouching for the key of agent " + agent
                           + " is malformed");
  // Signed by the agent (its client certificate names it), or vouched by
  // a node (its node certificate names that node: never empty).
  auto by_agent = b.node.empty();
  if (!by_agent && t.agent_signed_only)
    return unauthenticated("the key of agent " + agent + " is vouched by node "
                           + b.node
                           + ", not signed by the agent's certificate");
  auto signer = by_agent ? "agent " + agent : "node " + b.node;
  if (auto ok
      = by_agent
            ? pki::verify(*cert, *t.ca, t.crl, now_s, pki::role::client, agent)
            : pki::verify(*cert, *t.ca, t.crl, now_s, pki::role::node, b.node);
      !ok)
    return unauthenticated("the certificate of " + signer
                           + " signing the key of agent " + agent
                           + " is not trusted: " + ok.error_value().message);
  if (!pki::verify_signature(*cert, binding_message(b), b.signature))
    return unauthenticated("the signature of " + signer
                           + " on the key of agent " + agent
                           + " does not verify");
  return {};
}

std::string encode(const key_binding& b) {
  v1::AgentKey m;
  to_proto(b, m);
  return m.SerializeAsString();
}

expected<key_binding> decode_binding(std::string_view bytes) {
  v1::AgentKey m;
  if (bytes.size() > (1u << 16)
      || !m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error(errc::decode_failed, "not an agent key binding");
  return from_proto(m);
}

// -- sealing ------------------------------------------------------------------

bool is_sealed(std::string_view text) noexcept {
  return text.size() > magic.size() && text.substr(0, magic.size()) == magic;
}

bool well_formed(std::string_view text) {
  v1::SealedMessage m;
  return is_sealed(text)
         && m.ParseFromArray(text.data() + magic.size(),
                             static_cast<int>(text.size() - magic.size()))
         && m.has_sender()
         && m.sender().public_key().size() == crypto_box_PUBLICKEYBYTES
         && m.recipient_key().size() == crypto_box_PUBLICKEYBYTES
         && m.nonce().size() == crypto_box_NONCEBYTES
         && m.box().size() >= crypto_box_MACBYTES;
}

expected<std::string> sealed_sender(std::string_view text) {
  v1::SealedMessage m;
  if (!well_formed(text)
      || !m.ParseFromArray(text.data() + magic.size(),
                           static_cast<int>(text.size() - magic.size())))
    return make_error(errc::invalid_argument, "not a sealed text");
  return m.sender().agent();
}

expected<std::string> seal(std::string_view text, const key_pair& sender,
                           const key_binding& sender_key,
                           const key_binding& recipient, uint64_t now_us,
                           std::string_view kind) {
  init_sodium();
  if (sender_key.public_key != sender.public_key())
    return make_error(errc::invalid_argument,
                      "the sender's binding is for another key than the one "
                      "sealing");
  if (recipient.public_key.size() != crypto_box_PUBLICKEYBYTES)
    return make_error(errc::invalid_argument,
                      "the recipient's key is not an X25519 public key");
  v1::SealedBody body;
  body.set_to(recipient.agent);
  body.set_sealed_us(now_us);
  body.set_text(text.data(), text.size());
  body.set_from(sender_key.agent);
  body.set_kind(kind.data(), kind.size());
  auto plain = body.SerializeAsString();
  std::string nonce(crypto_box_NONCEBYTES, '\0');
  randombytes_buf(nonce.data(), nonce.size());
  std::string box(plain.size() + crypto_box_MACBYTES, '\0');
  auto rc = crypto_box_easy(
      reinterpret_cast<unsigned char*>(box.data()),
      reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
      reinterpret_cast<const unsigned char*>(nonce.data()),
      reinterpret_cast<const unsigned char*>(recipient.public_key.data()),
      sender.secret_data());
  sodium_memzero(plain.data(), plain.size());
  if (rc != 0)
    return make_error(errc::invalid_argument,
                      "the recipient's key is not usable (a low-order "
                      "point)");
  v1::SealedMessage m;
  to_proto(sender_key, *m.mutable_sender());
  m.set_recipient_key(recipient.public_key);
  m.set_nonce(std::move(nonce));
  m.set_box(std::move(box));
  return std::string{magic} + m.SerializeAsString();
}

expected<opened> open(std::string_view sealed, const std::string& from,
                      const std::string& me, const key_pair& keys,
                      const trust& t, int64_t now_s, std::string_view kind) {
  init_sodium();
  v1::SealedMessage m;
  if (!is_sealed(sealed)
      || !m.ParseFromArray(sealed.data() + magic.size(),
                           static_cast<int>(sealed.size() - magic.size())))
    return make_error(errc::invalid_argument, "not a sealed text");
  auto sender = from_proto(m.sender());
  if (auto ok = verify(sender, from, t, now_s); !ok)
    return unauthenticated("the sender of a sealed text: "
                           + ok.error_value().message);
  if (m.recipient_key() != keys.public_key())
    return unauthenticated("the text is sealed to another key than agent " + me
                           + "'s (a key it replaced?)");
  if (m.nonce().size() != crypto_box_NONCEBYTES
      || m.box().size() < crypto_box_MACBYTES)
    return unauthenticated("the sealed text is truncated");
  std::string plain(m.box().size() - crypto_box_MACBYTES, '\0');
  if (crypto_box_open_easy(
          reinterpret_cast<unsigned char*>(plain.data()),
          reinterpret_cast<const unsigned char*>(m.box().data()),
          m.box().size(),
          reinterpret_cast<const unsigned char*>(m.nonce().data()),
          reinterpret_cast<const unsigned char*>(sender.public_key.data()),
          keys.secret_data())
      != 0)
    return unauthenticated("the sealed text from " + from
                           + " does not open: changed on the way, or not "
                             "sealed by the holder of "
                           + from + "'s key");
  v1::SealedBody body;
  bool parsed = body.ParseFromString(plain);
  sodium_memzero(plain.data(), plain.size());
  if (!parsed)
    return unauthenticated("the sealed text from " + from
                           + " holds no message");
  if (body.to() != me)
    return unauthenticated("the sealed text from " + from
                           + " is addressed to agent " + body.to() + ", not "
                           + me);
  // The box's own word on who sealed it: a binding of another agent's
  // public key does not pass that agent's text off as its holder's.
  if (body.from() != from)
    return unauthenticated("the sealed text from " + from
                           + " was sealed by agent " + body.from());
  if (body.kind() != kind)
    return unauthenticated("the sealed text from " + from + " is a "
                           + body.kind() + ", not a " + std::string{kind});
  return opened{body.text(), std::move(sender), body.sealed_us()};
}

} // namespace engram::e2e

// -- a federation's key -------------------------------------------------------

namespace engram::e2e {

namespace {

constexpr std::string_view value_prefix = "e2e1:";

std::string to_base64(std::string_view bytes) {
  auto variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(),
                    reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), variant);
  out.pop_back(); // the terminating zero
  return out;
}

expected<std::string> from_base64(std::string_view text) {
  std::string out(text.size(), '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()),
                        out.size(), text.data(), text.size(), nullptr, &len,
                        nullptr, sodium_base64_VARIANT_ORIGINAL)
      != 0)
    return make_error(errc::invalid_argument, "a sealed value is not base64");
  out.resize(len);
  return out;
}

// secretbox(nonce || box) of `plain` under `key`.
expected<std::string> secretbox(std::string_view key, std::string_view plain) {
  init_sodium();
  if (key.size() != crypto_secretbox_KEYBYTES)
    return make_error(errc::invalid_argument, "a group key is 32 bytes");
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES
                      + plain.size(),
                  '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES,
                        reinterpret_cast<const unsigned char*>(plain.data()),
                        plain.size(), nonce,
                        reinterpret_cast<const unsigned char*>(key.data()));
  return out;
}

expected<std::string> secretbox_open(std::string_view key,
                                     std::string_view boxed) {
  init_sodium();
  if (key.size() != crypto_secretbox_KEYBYTES)
    return make_error(errc::invalid_argument, "a group key is 32 bytes");
  if (boxed.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
    return make_error(errc::invalid_argument, "a sealed value is too short");
  auto* nonce = reinterpret_cast<const unsigned char*>(boxed.data());
  auto body = boxed.substr(crypto_secretbox_NONCEBYTES);
  std::string out(body.size() - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(
          reinterpret_cast<unsigned char*>(out.data()),
          reinterpret_cast<const unsigned char*>(body.data()), body.size(),
          nonce, reinterpret_cast<const unsigned char*>(key.data()))
      != 0)
    return make_error(errc::unauthenticated,
                      "the sealed value does not open with this key");
  return out;
}

// "e2e1:<epoch>:" and where the base64 starts.
expected<std::pair<uint64_t, size_t>> parse_value(std::string_view value) {
  auto bad = [] {
    return make_error(errc::invalid_argument,
                      "not a sealed value (e2e1:<epoch>:<base64>)");
  };
  if (value.substr(0, value_prefix.size()) != value_prefix)
    return bad();
  auto colon = value.find(':', value_prefix.size());
  if (colon == std::string_view::npos || colon == value_prefix.size()
      || colon - value_prefix.size() > 19)
    return bad();
  uint64_t epoch = 0;
  for (auto i = value_prefix.size(); i < colon; ++i) {
    if (value[i] < '0' || value[i] > '9')
      return bad();
    epoch = epoch * 10 + static_cast<uint64_t>(value[i] - '0');
  }
  if (epoch == 0)
    return bad();
  return std::make_pair(epoch, colon + 1);
}

} // namespace

std::string new_group_key() {
  init_sodium();
  std::string key(crypto_secretbox_KEYBYTES, '\0');
  randombytes_buf(key.data(), key.size());
  return key;
}

expected<std::string> seal_value(std::string_view group_key, uint64_t epoch,
                                 std::string_view key, std::string_view value) {
  if (epoch == 0)
    return make_error(errc::invalid_argument, "key epochs start at 1");
  std::string plain{key};
  plain += '\0';
  plain += value;
  auto boxed = secretbox(group_key, plain);
  sodium_memzero(plain.data(), plain.size());
  if (!boxed)
    return boxed.error_value();
  return std::string{value_prefix} + std::to_string(epoch) + ":"
         + to_base64(*boxed);
}

bool is_sealed_value(std::string_view value) noexcept {
  auto parsed = parse_value(value);
  if (!parsed)
    return false;
  auto body = value.substr(parsed->second);
  // The base64 of at least a nonce and a tag.
  return body.size() >= 4
                            * ((crypto_secretbox_NONCEBYTES
                                + crypto_secretbox_MACBYTES + 2)
                               / 3)
         && from_base64(body).has_value();
}

expected<uint64_t> value_epoch(std::string_view value) {
  auto parsed = parse_value(value);
  if (!parsed)
    return parsed.error_value();
  return parsed->first;
}

expected<std::string> open_value(std::string_view group_key,
                                 std::string_view value, std::string_view key) {
  auto parsed = parse_value(value);
  if (!parsed)
    return parsed.error_value();
  auto boxed = from_base64(value.substr(parsed->second));
  if (!boxed)
    return boxed.error_value();
  auto plain = secretbox_open(group_key, *boxed);
  if (!plain)
    return plain.error_value();
  auto zero = plain->find('\0');
  if (zero == std::string::npos
      || std::string_view{*plain}.substr(0, zero) != key)
    return make_error(errc::unauthenticated,
                      "the sealed value belongs to another fact");
  return plain->substr(zero + 1);
}

expected<std::string> seal_chain(std::string_view group_key,
                                 const std::map<uint64_t, std::string>& older) {
  std::string plain;
  for (auto& [epoch, key] : older) {
    if (key.size() != crypto_secretbox_KEYBYTES)
      return make_error(errc::invalid_argument, "a group key is 32 bytes");
    for (int shift = 56; shift >= 0; shift -= 8)
      plain += static_cast<char>((epoch >> shift) & 0xff);
    plain += key;
  }
  auto boxed = secretbox(group_key, plain);
  sodium_memzero(plain.data(), plain.size());
  return boxed;
}

expected<std::map<uint64_t, std::string>> open_chain(std::string_view group_key,
                                                     std::string_view chain) {
  std::map<uint64_t, std::string> out;
  if (chain.empty())
    return out;
  auto plain = secretbox_open(group_key, chain);
  if (!plain)
    return plain.error_value();
  constexpr size_t entry = 8 + crypto_secretbox_KEYBYTES;
  if (plain->size() % entry != 0)
    return make_error(errc::invalid_argument, "a damaged chain of keys");
  for (size_t i = 0; i < plain->size(); i += entry) {
    uint64_t epoch = 0;
    for (size_t j = 0; j < 8; ++j)
      epoch = (epoch << 8) | static_cast<unsigned char>((*plain)[i + j]);
    out[epoch] = plain->substr(i + 8, crypto_secretbox_KEYBYTES);
  }
  sodium_memzero(plain->data(), plain->size());
  return out;
}

} // namespace engram::e2e
