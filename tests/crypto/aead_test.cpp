// Seals: a value opens only with its key, under the record key it was
// sealed for, byte for byte; the keyring's master key wraps the data keys,
// rotates without touching a value, and a retired data key still opens
// what it sealed.

#include <boost/test/unit_test.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <optional>
#include <thread>
#include <vector>

#include "crypto/aead.hpp"
#include "crypto/keyring.hpp"

using namespace engram;
using namespace engram::crypto;

namespace {

key256 must_key() {
  auto k = key256::random();
  BOOST_REQUIRE(k);
  return *k;
}

bool corrupt(const expected<std::string>& r) {
  return !r && r.error_value().code == errc::corrupt_record;
}

// Opens a sealed value with OpenSSL's EVP directly, as the format says:
// version | key id | nonce | ciphertext | tag, the header and `aad`
// authenticated as one stream. Whichever implementation sealed it (libsodium
// where the CPU has AES-NI, EVP elsewhere), any AES-256-GCM opens it.
std::optional<std::string> evp_open(const key256& key, const std::string& v,
                                    const std::string& aad) {
  if (v.size() < seal_overhead)
    return std::nullopt;
  auto* p = reinterpret_cast<const unsigned char*>(v.data());
  auto body = v.size() - seal_overhead;
  std::string out(body, '\0');
  std::string tag = v.substr(v.size() - 16);
  auto* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok
      = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), p + 5)
            == 1
        && EVP_DecryptUpdate(ctx, nullptr, &len, p, 5) == 1
        && EVP_DecryptUpdate(ctx, nullptr, &len,
                             reinterpret_cast<const unsigned char*>(aad.data()),
                             static_cast<int>(aad.size()))
               == 1
        && EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()),
                             &len, p + 17, static_cast<int>(body))
               == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1
        && EVP_DecryptFinal_ex(ctx, nullptr, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok)
    return std::nullopt;
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(seals)

BOOST_AUTO_TEST_CASE(a_sealed_value_is_standard_aes_256_gcm) {
  auto key = must_key();
  for (bool evp : {false, true})
    for (std::string secret : {std::string{}, std::string{"x"},
                               std::string(350, 'r'), std::string(4097, 'z')}) {
      // Sealed by one implementation, opened by the other and by EVP.
      use_evp_only(evp);
      auto sealed = seal(key, 3, secret, "engram/key");
      use_evp_only(!evp);
      BOOST_REQUIRE(sealed);
      auto opened = open(key, *sealed, "engram/key");
      BOOST_REQUIRE(opened);
      BOOST_CHECK(*opened == secret);
      BOOST_CHECK(corrupt(open(key, *sealed, "engram/kez")));
      auto flipped = *sealed;
      flipped.back() = static_cast<char>(flipped.back() ^ 1);
      BOOST_CHECK(corrupt(open(key, flipped, "engram/key")));
      auto direct = evp_open(key, *sealed, "engram/key");
      BOOST_REQUIRE(direct);
      BOOST_CHECK(*direct == secret);
      BOOST_CHECK(!evp_open(key, *sealed, "engram/kez"));
    }
  use_evp_only(false);
}

BOOST_AUTO_TEST_CASE(a_value_opens_with_its_key_and_record_key_only) {
  auto key = must_key();
  std::string secret = "the launch code is 0000";
  auto sealed = seal(key, 7, secret, "engram/abc");
  BOOST_REQUIRE(sealed);
  BOOST_CHECK_EQUAL(sealed->size(), secret.size() + seal_overhead);
  BOOST_CHECK(sealed->find("launch") == std::string::npos);
  BOOST_CHECK_EQUAL(*sealed_key_id(*sealed), 7u);
  auto opened = open(key, *sealed, "engram/abc");
  BOOST_REQUIRE(opened);
  BOOST_CHECK_EQUAL(*opened, secret);
  // Two seals of the same value differ (random nonces).
  BOOST_CHECK(*seal(key, 7, secret, "engram/abc") != *sealed);
  // Another record's key (a swapped value), another key: refused.
  BOOST_CHECK(corrupt(open(key, *sealed, "engram/abd")));
  BOOST_CHECK(corrupt(open(must_key(), *sealed, "engram/abc")));
  // Every single flipped bit, header included, is detected.
  for (size_t i = 0; i < sealed->size(); ++i)
    for (int bit = 0; bit < 8; bit += 3) {
      auto bad = *sealed;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      BOOST_CHECK_MESSAGE(!open(key, bad, "engram/abc"), "byte " << i);
    }
  // Truncated, empty, another format.
  BOOST_CHECK(
      corrupt(open(key, sealed->substr(0, sealed->size() - 1), "engram/abc")));
  BOOST_CHECK(corrupt(open(key, "", "engram/abc")));
  auto v2 = *sealed;
  v2[0] = 2;
  auto r = open(key, v2, "engram/abc");
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error_value().message.find("format 2") != std::string::npos);
  // Empty values and empty associated data seal too.
  BOOST_CHECK_EQUAL(*open(key, *seal(key, 1, "", ""), ""), "");
}

// A thread keeps the expanded key of the last key it sealed or opened
// with: interleaving keys, values, failures and threads must never let one
// key's state serve another.
BOOST_AUTO_TEST_CASE(interleaved_keys_failures_and_threads_stay_apart) {
  std::vector<key256> keys{must_key(), must_key(), must_key()};
  auto run = [&](uint32_t salt) {
    for (uint32_t i = 0; i < 600; ++i) {
      auto& k = keys[(i * 7 + salt) % keys.size()];
      auto& other = keys[(i * 7 + salt + 1) % keys.size()];
      auto value = std::string(i % 97, static_cast<char>('a' + i % 26))
                   + std::to_string(i);
      auto aad = "r/" + std::to_string(i);
      auto sealed = seal(k, 1, value, aad);
      if (!sealed)
        return false;
      // A failure (another key, a flipped tag) in between.
      if (i % 5 == 0 && open(other, *sealed, aad))
        return false;
      if (i % 3 == 0) {
        auto bad = *sealed;
        bad.back() = static_cast<char>(bad.back() ^ 1);
        if (open(k, bad, aad))
          return false;
      }
      auto opened = open(k, *sealed, aad);
      if (!opened || *opened != value)
        return false;
      // The same key right after another one was used.
      auto again = open(other, *seal(other, 2, "x", "y"), "y");
      if (!again || *again != "x")
        return false;
    }
    return true;
  };
  BOOST_CHECK(run(0));
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (uint32_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      ok[t] = run(t) ? 1 : 0;
    });
  for (auto& t : threads)
    t.join();
  BOOST_CHECK((ok == std::vector<int>{1, 1, 1, 1}));
}

// The keyed hash is HMAC-SHA256 (checked against OpenSSL's one-shot HMAC),
// whatever key the thread used before.
BOOST_AUTO_TEST_CASE(the_keyed_hash_is_hmac_sha256_under_each_key) {
  std::vector<key256> keys{must_key(), must_key()};
  // (Repeated data too: the thread remembers its last few answers.)
  for (int i = 0; i < 50; ++i) {
    auto& k = keys[static_cast<size_t>(i % 3 == 0 ? 1 : 0)];
    auto data = "subject " + std::to_string(i % 7);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    BOOST_REQUIRE(HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()),
                       reinterpret_cast<const unsigned char*>(data.data()),
                       data.size(), mac, &len)
                  != nullptr);
    BOOST_CHECK(keyed_hash(k, data)
                == std::string(reinterpret_cast<const char*>(mac), len));
  }
  BOOST_CHECK(keyed_hash(keys[0], "x") != keyed_hash(keys[1], "x"));
}

BOOST_AUTO_TEST_CASE(the_keyring_rotates_without_touching_a_value) {
  auto master = must_key();
  auto ring = keyring::create();
  BOOST_REQUIRE(ring);
  BOOST_CHECK_EQUAL(ring->active(), 1u);
  auto old = ring->seal("under key one", "k1");
  BOOST_REQUIRE(old);
  // A new data key: new values use it, old ones still open.
  BOOST_CHECK_EQUAL(*ring->add_key(), 2u);
  auto fresh = ring->seal("under key two", "k2");
  BOOST_CHECK_EQUAL(*sealed_key_id(*fresh), 2u);
  BOOST_CHECK_EQUAL(*ring->open(*old, "k1"), "under key one");
  // Saved under the master key: no key in the clear.
  auto saved = ring->save(master);
  BOOST_REQUIRE(saved);
  auto back = keyring::load(*saved, master);
  BOOST_REQUIRE(back);
  BOOST_CHECK_EQUAL(back->active(), 2u);
  BOOST_CHECK_EQUAL(back->size(), 2u);
  BOOST_CHECK_EQUAL(*back->open(*old, "k1"), "under key one");
  BOOST_CHECK_EQUAL(*back->open(*fresh, "k2"), "under key two");
  BOOST_CHECK_EQUAL(back->index_hash("user.name"),
                    ring->index_hash("user.name"));
  BOOST_CHECK(back->index_hash("user.name") != back->index_hash("user.age"));
  // Rotating the master key re-wraps: the old master opens nothing more.
  auto next_master = must_key();
  auto rotated = back->save(next_master);
  BOOST_REQUIRE(rotated);
  auto after = keyring::load(*rotated, next_master);
  BOOST_REQUIRE(after);
  BOOST_CHECK_EQUAL(*after->open(*old, "k1"), "under key one");
  auto wrong = keyring::load(*rotated, master);
  BOOST_REQUIRE(!wrong);
  BOOST_CHECK(wrong.error_value().code == errc::unauthenticated);
  BOOST_CHECK(wrong.error_value().message.find("wrong master key")
              != std::string::npos);
  // A value of a key the ring does not hold; damaged keyrings.
  auto foreign = seal(must_key(), 9, "x", "k");
  auto r = after->open(*foreign, "k");
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error_value().message.find("data key 9") != std::string::npos);
  for (auto cut : {size_t{0}, size_t{3}, size_t{9}, rotated->size() - 1})
    BOOST_CHECK(!keyring::load(rotated->substr(0, cut), next_master));
  auto flipped = *rotated;
  flipped[flipped.size() / 2] ^= 1;
  BOOST_CHECK(!keyring::load(flipped, next_master));
  BOOST_CHECK(!keyring::load(*rotated + "x", next_master));
  // Wrapped keys moved to other ids do not open (each is bound to its id):
  // such a keyring is refused, not misread.
  struct entry {
    uint32_t id;
    std::string wrapped;
  };
  auto read32 = [](const std::string& b, size_t at) {
    uint32_t x = 0;
    for (size_t i = 0; i < 4; ++i)
      x = (x << 8) | static_cast<unsigned char>(b[at + i]);
    return x;
  };
  auto put32 = [](std::string& b, uint32_t x) {
    for (int i = 0; i < 4; ++i)
      b.push_back(static_cast<char>((x >> (24 - 8 * i)) & 0xFF));
  };
  std::vector<entry> entries;
  size_t at = 13; // "EGKR", version, active, count
  while (at < rotated->size()) {
    auto id = read32(*rotated, at);
    auto len = read32(*rotated, at + 4);
    entries.push_back({id, rotated->substr(at + 8, len)});
    at += 8 + len;
  }
  BOOST_REQUIRE_EQUAL(entries.size(), 3u); // the index key, keys 1 and 2
  std::swap(entries[1].id, entries[2].id);
  auto moved = rotated->substr(0, 13);
  for (auto& e : entries) {
    put32(moved, e.id);
    put32(moved, static_cast<uint32_t>(e.wrapped.size()));
    moved += e.wrapped;
  }
  BOOST_CHECK(!keyring::load(moved, next_master));
  // The header is bound too: new values pointed back at the retired key,
  // or a key left out (with the count to match), do not load.
  auto retired = *rotated;
  retired[8] = 1; // the active id's last byte: 2 -> 1
  BOOST_CHECK(!keyring::load(retired, next_master));
  std::swap(entries[1].id, entries[2].id); // as saved again
  auto fewer = rotated->substr(0, 13);
  fewer[12] = 2; // the count's last byte: 3 -> 2; key 1 left out
  for (size_t i : {size_t{0}, size_t{2}}) {
    put32(fewer, entries[i].id);
    put32(fewer, static_cast<uint32_t>(entries[i].wrapped.size()));
    fewer += entries[i].wrapped;
  }
  BOOST_CHECK(!keyring::load(fewer, next_master));
}

BOOST_AUTO_TEST_SUITE_END()
