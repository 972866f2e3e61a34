#include "federation/redact.hpp"

#include <boost/test/unit_test.hpp>

using namespace engram;
using namespace engram::federation;

BOOST_AUTO_TEST_SUITE(pii_redaction)

BOOST_AUTO_TEST_CASE(each_kind_is_replaced_and_counted) {
  redaction_report r;
  auto out = redact_pii(
      "Mail bob.smith+work@example.co.uk or call +1 (415) 555-0132; "
      "server 10.20.30.40 and fe80::1ff:fe23:4567:890a; card "
      "4111 1111 1111 1111; key sk-abcdefghijklmnopqrstuvwx and "
      "password=hunter2!",
      &r);
  BOOST_TEST_MESSAGE(out);
  BOOST_CHECK_EQUAL(r.emails, 1u);
  BOOST_CHECK_EQUAL(r.phones, 1u);
  BOOST_CHECK_EQUAL(r.ip_addresses, 2u);
  BOOST_CHECK_EQUAL(r.cards, 1u);
  BOOST_CHECK_EQUAL(r.secrets, 2u);
  for (auto leaked : {"bob.smith", "example.co.uk", "555-0132", "10.20.30.40",
                      "fe80", "4111", "sk-abc", "hunter2"})
    BOOST_CHECK_MESSAGE(out.find(leaked) == std::string::npos,
                        leaked << " leaked: " << out);
  for (auto kept : {"Mail", "or call", "server", "card", "key", "[email]",
                    "[phone]", "[ip]", "[card]", "[secret]"})
    BOOST_CHECK_MESSAGE(out.find(kept) != std::string::npos,
                        kept << " missing: " << out);
}

BOOST_AUTO_TEST_CASE(digit_runs_failing_luhn_are_not_cards) {
  BOOST_CHECK(luhn_valid("4111111111111111"));
  BOOST_CHECK(luhn_valid("5500005555555559"));
  BOOST_CHECK(!luhn_valid("4111111111111112"));
  BOOST_CHECK(!luhn_valid("1234"));
  redaction_report r;
  auto out = redact_pii("order 4111-1111-1111-1112 shipped", &r);
  BOOST_CHECK_EQUAL(r.cards, 0u);
  BOOST_CHECK(out.find("[card]") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(tokens_of_known_services) {
  redaction_report r;
  auto out = redact_pii(
      "AKIAIOSFODNN7EXAMPLE ghp_abcdefghijklmnopqrstuvwxyz0123456789 "
      "xoxb-123456789012-abcdefghij Authorization: Bearer abc.def-ghi_jkl "
      "eyJhbGciOi.eyJzdWIiOiIx.SflKxwRJSM api_key: 'q1w2e3r4t5'",
      &r);
  BOOST_CHECK_EQUAL(r.secrets, 6u);
  for (auto leaked : {"AKIA", "ghp_", "xoxb", "abc.def", "eyJ", "q1w2"})
    BOOST_CHECK_MESSAGE(out.find(leaked) == std::string::npos,
                        leaked << " leaked: " << out);
}

BOOST_AUTO_TEST_CASE(plain_text_is_left_alone) {
  redaction_report r;
  std::string text = "Meeting at 12:30 about version 1.2.3, room 42, "
                     "the deploy on 2024-05-06 went fine";
  BOOST_CHECK_EQUAL(redact_pii(text, &r), text);
  BOOST_CHECK_EQUAL(r.total(), 0u);
}

BOOST_AUTO_TEST_CASE(the_transform_redacts_every_text_of_a_memory) {
  auto t = pii_redactor();
  BOOST_CHECK_EQUAL(t.name, "redact_pii");
  engram_record f;
  f.body = fact{"contact", "alice@example.com"};
  BOOST_CHECK(t.apply(f));
  BOOST_CHECK_EQUAL(std::get<fact>(f.body).value, "[email]");
  engram_record b;
  b.body = belief{"10.0.0.1", "is", "down"};
  t.apply(b);
  BOOST_CHECK_EQUAL(std::get<belief>(b.body).subject, "[ip]");
  engram_record ep;
  ep.body = episode{"e", {event{{}, "called 555-123-4567"}}};
  t.apply(ep);
  BOOST_CHECK_EQUAL(std::get<episode>(ep.body).events[0].description,
                    "called [phone]");
}

BOOST_AUTO_TEST_SUITE_END()
