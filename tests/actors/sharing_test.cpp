// Explicit sharing between agents on two nodes: transformed (PII redacted)
// at the sender, pending at the receiver, accepted with a trust level or
// declined; ReadOnly enforced. The redacted text never reaches the
// receiver's store (checked in its RocksDB files).

#include "federation/redact.hpp"
#include "persistence/store.hpp"

#include "fixture.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

const std::string email = "alice.private@example.com";
const std::string phone = "555-123-4567";

} // namespace

BOOST_AUTO_TEST_SUITE(sharing)

BOOST_FIXTURE_TEST_CASE(shared_memories_are_redacted_trusted_and_read_only,
                        runtime_fixture) {
  auto n1 = start("n1");
  auto n2 = start("n2");
  actors::connect(*n1, *n2);
  auto alice = ok(n1->open("alice", "main"));
  auto bob = ok(n2->open("bob", "main"));
  auto contact = fact_of("contact", "mail " + email + " or call " + phone);
  contact.confidence = 1.0;
  ok(alice.learn(contact));
  ok(alice.learn(fact_of("stack", "C++17 and CAF")));
  auto mine = ok(alice.query());
  BOOST_REQUIRE_EQUAL(mine.size(), 2u);
  // bob's node must be known to n1 (the directory) before sharing.
  std::string share_id;
  BOOST_REQUIRE(eventually([&] {
    auto id = alice.share_transformed(mine, "bob", federation::pii_redactor());
    if (id)
      share_id = *id;
    return id.has_value();
  }));
  auto pending = ok(bob.pending_shares());
  BOOST_REQUIRE_EQUAL(pending.size(), 1u);
  BOOST_CHECK_EQUAL(pending[0].from, "alice");
  BOOST_CHECK_EQUAL(pending[0].transform, "redact_pii");
  BOOST_CHECK_EQUAL(pending[0].memories.size(), 2u);
  // Not in bob's memory until accepted.
  BOOST_CHECK(ok(bob.query()).empty());
  BOOST_CHECK_EQUAL(ok(bob.accept_share("alice", share_id, 0.7)), 2u);
  BOOST_CHECK(ok(bob.pending_shares()).empty());
  auto got = ok(bob.query());
  BOOST_REQUIRE_EQUAL(got.size(), 2u);
  engram_id contact_id;
  for (auto& v : got) {
    auto& e = v.value;
    BOOST_CHECK(e.scope == memory_scope::agent("bob"));
    BOOST_CHECK(e.epistemic == epistemic_status::reported("alice", 0.7));
    BOOST_CHECK_EQUAL(e.origin.origin_agent, "alice");
    BOOST_REQUIRE_EQUAL(e.origin.hops.size(), 1u);
    BOOST_CHECK(e.origin.hops[0].read_only);
    BOOST_CHECK_EQUAL(e.origin.hops[0].transform, "redact_pii");
    auto& f = std::get<fact>(e.body);
    if (f.key == "contact") {
      contact_id = e.id;
      BOOST_CHECK_EQUAL(f.value, "mail [email] or call [phone]");
      BOOST_CHECK_CLOSE(e.confidence, 0.7, 1e-9);
    }
  }
  // ReadOnly: bob cannot modify, forget or pass it on.
  auto modify = bob.learn(fact_of("contact", "changed"));
  BOOST_REQUIRE(!modify);
  BOOST_CHECK(modify.error_value().code == errc::permission_denied);
  auto forget = bob.forget(contact_id, "mine now");
  BOOST_REQUIRE(!forget);
  BOOST_CHECK(forget.error_value().code == errc::permission_denied);
  auto onward = bob.share(got, "alice");
  BOOST_REQUIRE(!onward);
  BOOST_CHECK(onward.error_value().code == errc::permission_denied);
  // A declined share is dropped, nothing learned (the plain fact only:
  // untransformed, the contact would put the e-mail in bob's store).
  std::vector<memory_view> plain;
  for (auto& v : mine)
    if (std::get<fact>(v.value.body).key == "stack")
      plain.push_back(v);
  auto second = ok(alice.share(plain, "bob"));
  BOOST_CHECK_EQUAL(ok(bob.pending_shares()).size(), 1u);
  BOOST_CHECK(bob.decline_share(second));
  BOOST_CHECK(ok(bob.pending_shares()).empty());
  BOOST_CHECK_EQUAL(ok(bob.query()).size(), 2u);
  auto unknown = bob.accept_share("alice", "sh-0000000000000000", 1.0);
  BOOST_REQUIRE(!unknown);
  // The redacted text never reached n2's store: not in its replica, not in
  // any of its RocksDB files (write-ahead log included); it is in n1's.
  n2->stop();
  n1->stop();
  BOOST_CHECK(!any_file_contains(dir.sub("n2"), email));
  BOOST_CHECK(!any_file_contains(dir.sub("n2"), phone));
  BOOST_CHECK(any_file_contains(dir.sub("n1"), email)); // the check works
}

BOOST_AUTO_TEST_SUITE_END()
