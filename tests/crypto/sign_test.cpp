// Ed25519 signatures of envelopes and the replay window of a sender.

#include <boost/test/unit_test.hpp>

#include <random>
#include <set>

#include "crypto/sign.hpp"

using namespace engram;
using namespace engram::crypto;

BOOST_AUTO_TEST_SUITE(signatures)

BOOST_AUTO_TEST_CASE(a_signature_verifies_with_its_key_and_bytes_only) {
  auto key = signing_key::generate();
  BOOST_REQUIRE(key);
  auto other = signing_key::generate();
  BOOST_REQUIRE(other);
  BOOST_CHECK_EQUAL(key->public_key().size(), ed25519_public_bytes);
  BOOST_CHECK(key->public_key() != other->public_key());
  std::string data = "an envelope's exact bytes";
  auto sig = key->sign(data);
  BOOST_REQUIRE(sig);
  BOOST_CHECK_EQUAL(sig->size(), ed25519_signature_bytes);
  BOOST_CHECK(verify_ed25519(key->public_key(), data, *sig));
  BOOST_CHECK(!verify_ed25519(other->public_key(), data, *sig));
  for (size_t i = 0; i < data.size(); ++i) {
    auto bad = data;
    bad[i] = static_cast<char>(bad[i] ^ 1);
    BOOST_CHECK(!verify_ed25519(key->public_key(), bad, *sig));
  }
  for (size_t i = 0; i < sig->size(); i += 7) {
    auto bad = *sig;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    BOOST_CHECK(!verify_ed25519(key->public_key(), data, bad));
  }
  BOOST_CHECK(!verify_ed25519(key->public_key(), data, sig->substr(1)));
  BOOST_CHECK(!verify_ed25519("short", data, *sig));
  BOOST_CHECK(!verify_ed25519(std::string(32, '\0'), data, *sig));
  BOOST_CHECK(verify_ed25519(key->public_key(), "", *key->sign("")));
}

BOOST_AUTO_TEST_CASE(a_sequence_number_is_accepted_once) {
  replay_window w;
  BOOST_CHECK(!w.accept(0));
  BOOST_CHECK(w.accept(1));
  BOOST_CHECK(!w.accept(1));
  BOOST_CHECK(w.accept(5));
  BOOST_CHECK(w.accept(3)); // late, inside the window
  BOOST_CHECK(!w.accept(3));
  BOOST_CHECK(w.accept(2));
  BOOST_CHECK(w.accept(4));
  BOOST_CHECK(!w.accept(5));
  BOOST_CHECK_EQUAL(w.high(), 5u);
  // A jump beyond the window: everything below it is refused.
  BOOST_CHECK(w.accept(5 + replay_window::width + 10));
  BOOST_CHECK(!w.accept(6));
  BOOST_CHECK(w.accept(5 + replay_window::width + 9));
  // Restored after a restart: nothing up to the floor, the rest once.
  replay_window restored{100};
  BOOST_CHECK(!restored.accept(100));
  BOOST_CHECK(!restored.accept(42));
  BOOST_CHECK(restored.accept(101));
  BOOST_CHECK(!restored.accept(101));
  // The largest numbers: no wrap, no endless slide.
  const auto top = ~uint64_t{0};
  replay_window near{top - 10};
  BOOST_CHECK(near.accept(top - 1));
  BOOST_CHECK(near.accept(top));
  BOOST_CHECK(!near.accept(top));
  BOOST_CHECK(near.accept(top - 2));
  BOOST_CHECK_EQUAL(near.high(), top);
}

// Against a set of everything accepted: a random order of arrivals with
// duplicates accepts each number at most once, and every number within
// the window of the highest when it arrived exactly once.
BOOST_AUTO_TEST_CASE(random_arrivals_are_accepted_at_most_once) {
  std::mt19937_64 rng{20261207};
  replay_window w;
  std::set<uint64_t> accepted;
  uint64_t next = 1;
  for (int i = 0; i < 200'000; ++i) {
    uint64_t seq;
    auto r = rng() % 10;
    if (r < 6)
      seq = next++;
    else if (r < 9)
      seq = next > 80'000 ? next - 1 - rng() % 80'000 : 1 + rng() % next;
    else
      seq = next + rng() % 5'000;
    auto high_before = w.high();
    bool fresh = accepted.count(seq) == 0;
    bool in_window
        = seq > high_before || high_before - seq < replay_window::width;
    auto ok = w.accept(seq);
    BOOST_REQUIRE_EQUAL(ok, fresh && in_window && seq != 0);
    if (ok)
      accepted.insert(seq);
    next = std::max(next, w.high() + 1);
  }
}

BOOST_AUTO_TEST_SUITE_END()
