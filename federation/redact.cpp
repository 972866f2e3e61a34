#include "federation/redact.hpp"

#include <regex>
#include <vector>

namespace engram::federation {

namespace {

// Replaces every match of `re` in `text` for which `accept` holds by
// `with`; returns how many were replaced.
template<class Accept>
size_t replace_all(std::string& text, const std::regex& re,
                   const std::string& with, Accept accept) {
  std::string out;
  size_t count = 0;
  size_t last = 0;
  for (auto i = std::sregex_iterator(text.begin(), text.end(), re);
       i != std::sregex_iterator(); ++i) {
    auto& m = *i;
    // A capture group 1, when the pattern has one, is what gets replaced
    // (e.g. the value after "password=").
    bool grouped = m.size() > 1 && m[1].matched;
    auto pos = static_cast<size_t>(grouped ? m.position(1) : m.position(0));
    auto len = static_cast<size_t>(grouped ? m.length(1) : m.length(0));
    if (pos < last || !accept(text.substr(pos, len)))
      continue;
    out.append(text, last, pos - last);
    out += with;
    last = pos + len;
    ++count;
  }
  if (count > 0) {
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }
  return count;
}

auto always = [](const std::string&) {
  return true;
};

std::string digits_of(const std::string& s) {
  std::string d;
  for (char c : s)
    if (c >= '0' && c <= '9')
      d += c;
  return d;
}

const std::regex& secret_re() {
  static const std::regex re{
      R"(\b(?:sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,})"
      R"(|xox[abprs]-[A-Za-z0-9-]{10,}|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,})"
      R"(\.[A-Za-z0-9_-]{5,}))"};
  return re;
}

const std::regex& bearer_re() {
  static const std::regex re{R"(\bBearer\s+([A-Za-z0-9._~+/-]{8,}=*))",
                             std::regex::icase};
  return re;
}

const std::regex& assignment_re() {
  static const std::regex re{
      R"(\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|passwd)\s*[:=]\s*["']?([^\s"',;]{4,}))",
      std::regex::icase};
  return re;
}

const std::regex& email_re() {
  static const std::regex re{
      R"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"};
  return re;
}

const std::regex& card_re() {
  static const std::regex re{R"(\b\d(?:[ -]?\d){12,18}\b)"};
  return re;
}

const std::regex& ipv4_re() {
  static const std::regex re{
      R"(\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b)"};
  return re;
}

const std::regex& ipv6_re() {
  // Full form (eight groups), or a compressed form with "::".
  static const std::regex re{
      R"((?:\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b)|(?:(?:\b[0-9A-Fa-f]{1,4}:){1,6}|::)(?::[0-9A-Fa-f]{1,4}){1,6}\b|\b(?:[0-9A-Fa-f]{1,4}:){1,7}:(?=\s|$))"};
  return re;
}

const std::regex& phone_re() {
  static const std::regex re{
      R"((?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,5}){1,3}\b)"};
  return re;
}

} // namespace

bool luhn_valid(std::string_view digits) noexcept {
  if (digits.size() < 13 || digits.size() > 19)
    return false;
  int sum = 0;
  bool twice = false;
  for (auto i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (d < 0 || d > 9)
      return false;
    if (twice) {
      d *= 2;
      if (d > 9)
        d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

std::string redact_pii(std::string_view input, redaction_report* report) {
  std::string text{input};
  redaction_report r;
  // Most specific first: secrets (tokens may contain digits and dots), then
  // e-mail addresses, cards (before phones: both are digit runs), IPs,
  // phones.
  r.secrets += replace_all(text, secret_re(), "[secret]", always);
  r.secrets += replace_all(text, bearer_re(), "[secret]", always);
  r.secrets += replace_all(text, assignment_re(), "[secret]",
                           [](const std::string& v) {
                             return v != "[secret]";
                           });
  r.emails += replace_all(text, email_re(), "[email]", always);
  r.cards += replace_all(text, card_re(), "[card]", [](const std::string& m) {
    return luhn_valid(digits_of(m));
  });
  r.ip_addresses += replace_all(text, ipv6_re(), "[ip]", always);
  r.ip_addresses += replace_all(text, ipv4_re(), "[ip]", always);
  static const std::regex date{
      R"(\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})"};
  r.phones
      += replace_all(text, phone_re(), "[phone]", [](const std::string& m) {
           auto n = digits_of(m).size();
           return n >= 7 && n <= 15 && !std::regex_match(m, date);
         });
  if (report != nullptr) {
    report->emails += r.emails;
    report->phones += r.phones;
    report->ip_addresses += r.ip_addresses;
    report->cards += r.cards;
    report->secrets += r.secrets;
  }
  return text;
}

memory_transform pii_redactor() {
  return {"redact_pii", [](engram_record& e) {
            std::visit(
                [](auto& body) {
                  using T = std::decay_t<decltype(body)>;
                  if constexpr (std::is_same_v<T, fact>) {
                    body.key = redact_pii(body.key);
                    body.value = redact_pii(body.value);
                  } else if constexpr (std::is_same_v<T, belief>) {
                    body.subject = redact_pii(body.subject);
                    body.relation = redact_pii(body.relation);
                    body.object = redact_pii(body.object);
                  } else if constexpr (std::is_same_v<T, episode>) {
                    for (auto& ev : body.events)
                      ev.description = redact_pii(ev.description);
                  } else {
                    for (auto& r : body.refinements)
                      r.description = redact_pii(r.description);
                  }
                },
                e.body);
            return true;
          }};
}

} // namespace engram::federation
