// The master key's sources: a file only its owner reads, an environment
// variable, a program that prints it; each refused with a reason naming
// the source (never the key) when it is not usable.

#include <boost/test/unit_test.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "crypto/key_source.hpp"
#include "crypto/pkcs11.hpp"
#include "temp_dir.hpp"

using namespace engram;
using namespace engram::crypto;
using engram::test::temp_dir;
using namespace std::chrono_literals;

namespace {

const std::string hex
    = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

std::string write(const std::string& path, const std::string& text,
                  mode_t mode) {
  {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out << text;
  }
  ::chmod(path.c_str(), mode);
  return path;
}

bool refused_saying(const expected<key256>& k, const std::string& words) {
  return !k && k.error_value().message.find(words) != std::string::npos
         && k.error_value().message.find(hex) == std::string::npos;
}

std::string bytes_0_to_31() {
  std::string raw;
  for (int i = 0; i < 32; ++i)
    raw.push_back(static_cast<char>(i));
  return raw;
}

} // namespace

BOOST_AUTO_TEST_SUITE(key_sources)

BOOST_AUTO_TEST_CASE(keys_are_read_as_hex_base64_or_raw) {
  auto want = bytes_0_to_31();
  BOOST_CHECK(parse_key_text(hex)->view() == want);
  BOOST_CHECK(parse_key_text(" " + hex + "\n")->view() == want);
  BOOST_CHECK(parse_key_text(b64)->view() == want);
  BOOST_CHECK(parse_key_text(b64.substr(0, 43))->view() == want);
  for (auto bad :
       {std::string{}, hex.substr(1), hex + "00", "zz" + hex.substr(2),
        b64.substr(1), "!" + b64.substr(1), std::string(44, '=')})
    BOOST_CHECK_MESSAGE(!parse_key_text(bad), bad);
  temp_dir dir;
  auto raw = write(dir.sub("raw.key"), want, 0600);
  BOOST_CHECK(load_master_key("file:" + raw)->view() == want);
  auto text = write(dir.sub("hex.key"), hex + "\n", 0400);
  BOOST_CHECK(load_master_key("file:" + text)->view() == want);
}

BOOST_AUTO_TEST_CASE(a_key_file_others_may_read_is_refused) {
  temp_dir dir;
  auto open = write(dir.sub("open.key"), hex, 0644);
  BOOST_CHECK(refused_saying(load_master_key("file:" + open),
                             "may be read by others (mode 0644)"));
  auto group = write(dir.sub("group.key"), hex, 0640);
  BOOST_CHECK(refused_saying(load_master_key("file:" + group), "mode 0640"));
  BOOST_CHECK(refused_saying(load_master_key("file:" + dir.sub("none")),
                             "cannot be opened"));
  BOOST_CHECK(refused_saying(load_master_key("file:" + dir.path()),
                             "not a regular file"));
  auto link = dir.sub("link.key");
  BOOST_REQUIRE(::symlink(dir.sub("hex.key").c_str(), link.c_str()) == 0);
  write(dir.sub("hex.key"), hex, 0600);
  BOOST_CHECK(!load_master_key("file:" + link)); // not followed
  auto junk = write(dir.sub("junk.key"), "password123\n", 0600);
  BOOST_CHECK(
      refused_saying(load_master_key("file:" + junk), "not a 256-bit key"));
}

BOOST_AUTO_TEST_CASE(environment_variables_and_commands) {
  ::setenv("ENGRAM_TEST_MASTER_KEY", b64.c_str(), 1);
  BOOST_CHECK(load_master_key("env:ENGRAM_TEST_MASTER_KEY")->view()
              == bytes_0_to_31());
  ::unsetenv("ENGRAM_TEST_MASTER_KEY");
  BOOST_CHECK(refused_saying(load_master_key("env:ENGRAM_TEST_MASTER_KEY"),
                             "is not set"));
  // A program that prints the key (no shell: the words are its argv).
  BOOST_CHECK(load_master_key("command:printf %s " + hex)->view()
              == bytes_0_to_31());
  BOOST_CHECK(
      refused_saying(load_master_key("command:false"), "exited with status 1"));
  BOOST_CHECK(refused_saying(load_master_key("command:/no/such/program"),
                             "cannot be run"));
  BOOST_CHECK(refused_saying(load_master_key("command:echo nope"),
                             "not a 256-bit key"));
  auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK(refused_saying(load_master_key("command:sleep 30", 300ms),
                             "printed no key within 300 ms"));
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  BOOST_CHECK(
      refused_saying(load_master_key("command:yes"), "more than 4 KiB"));
  // A helper that closes its output and lingers is not waited for.
  temp_dir dir;
  auto lingers
      = write(dir.sub("lingers.sh"), "#!/bin/sh\nexec 1>&-\nsleep 30\n", 0700);
  t0 = std::chrono::steady_clock::now();
  BOOST_CHECK(!load_master_key("command:" + lingers, 300ms));
  BOOST_CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  // Not a source at all; a key pasted in place of one is not repeated.
  for (auto bad : {"", "file:", "vault", "keychain:x", "env:"})
    BOOST_CHECK(refused_saying(load_master_key(bad), "none of file:PATH"));
  auto pasted = load_master_key(hex);
  BOOST_REQUIRE(!pasted);
  BOOST_CHECK(pasted.error_value().message.find(hex.substr(0, 16))
              == std::string::npos);
  // A FIFO is refused, not waited on.
  auto fifo = dir.sub("key.fifo");
  BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  BOOST_CHECK(
      refused_saying(load_master_key("file:" + fifo), "not a regular file"));
}

// A real token: SoftHSM's, in a directory of the test's own. The key is
// made in the token (never extractable) and the master key derived there:
// the same every time, another for another token key, and every mistake
// (PIN, token, key, module, URI) named — never the PIN.
BOOST_AUTO_TEST_CASE(a_pkcs11_token_derives_the_master_key) {
  const std::string module = "/usr/lib/softhsm/libsofthsm2.so";
  BOOST_REQUIRE_MESSAGE(::access(module.c_str(), R_OK) == 0,
                        "SoftHSM is not installed (scripts/setup.sh)");
  temp_dir dir;
  std::filesystem::create_directories(dir.sub("tokens"));
  write(dir.sub("softhsm2.conf"),
        "directories.tokendir = " + dir.sub("tokens")
            + "\nobjectstore.backend = file\nlog.level = ERROR\n",
        0600);
  ::setenv("SOFTHSM2_CONF", dir.sub("softhsm2.conf").c_str(), 1);
  for (auto* label : {"engram", "other"}) {
    auto cmd = "softhsm2-util --init-token --free --label " + std::string{label}
               + " --pin 246810 --so-pin 13579 > " + dir.sub("init.log")
               + " 2>&1";
    BOOST_REQUIRE_EQUAL(std::system(cmd.c_str()), 0);
  }
  write(dir.sub("pin"), "246810\n", 0600);
  auto uri = [&](const std::string& token, const std::string& object,
                 const std::string& pin) {
    return "pkcs11:token=" + token + ";object=" + object
           + "?module-path=" + module + "&pin-source=" + pin;
  };
  auto good = uri("engram", "engram-master", "file:" + dir.sub("pin"));
  auto src = parse_pkcs11_uri(good);
  BOOST_REQUIRE(src);
  BOOST_CHECK(refused_saying(load_master_key(good), "no secret key labelled"));
  BOOST_CHECK_EQUAL(*generate_pkcs11_key(*src), true);
  BOOST_CHECK_EQUAL(*generate_pkcs11_key(*src), false); // made once
  auto key = load_master_key(good);
  BOOST_REQUIRE(key);
  auto again = load_master_key(good);
  BOOST_REQUIRE(again);
  BOOST_CHECK(key->view() == again->view());
  // Another token's key of the same label derives another master key.
  auto other = uri("other", "engram-master", "file:" + dir.sub("pin"));
  BOOST_REQUIRE(generate_pkcs11_key(*parse_pkcs11_uri(other)));
  BOOST_CHECK(load_master_key(other)->view() != key->view());
  // The PIN from a variable works the same.
  ::setenv("ENGRAM_TEST_PIN", "246810", 1);
  BOOST_CHECK(
      load_master_key(uri("engram", "engram-master", "env:ENGRAM_TEST_PIN"))
          ->view()
      == key->view());
  // Mistakes, each named.
  write(dir.sub("bad-pin"), "999999\n", 0600);
  auto wrong = load_master_key(
      uri("engram", "engram-master", "file:" + dir.sub("bad-pin")));
  BOOST_CHECK(refused_saying(wrong, "CKR_PIN_INCORRECT"));
  BOOST_CHECK(wrong.error_value().message.find("999999") == std::string::npos);
  BOOST_CHECK(wrong.error_value().code == errc::unauthenticated);
  write(dir.sub("open-pin"), "246810\n", 0644);
  BOOST_CHECK(
      refused_saying(load_master_key(uri("engram", "engram-master",
                                         "file:" + dir.sub("open-pin"))),
                     "may be read by others"));
  BOOST_CHECK(refused_saying(
      load_master_key(uri("nosuch", "engram-master", "file:" + dir.sub("pin"))),
      "token 'nosuch'"));
  BOOST_CHECK(refused_saying(
      load_master_key("pkcs11:token=engram;object=k?module-path="
                      + dir.sub("none.so") + "&pin-source=env:X"),
      "cannot be loaded"));
  BOOST_CHECK(
      refused_saying(load_master_key("pkcs11:token=engram;object=k?module-path="
                                     + module + "&pin-value=1234"),
                     "pin-value puts the PIN in the URI"));
  BOOST_CHECK(refused_saying(load_master_key("pkcs11:token=engram"),
                             "names token=, object=, module-path="));
  BOOST_CHECK(
      refused_saying(load_master_key("pkcs11:token=eng%2"), "bad %-escape"));
  // Percent-encoded values decode.
  BOOST_CHECK(load_master_key("pkcs11:token=engr%61m;object=engram-master"
                              "?module-path="
                              + module + "&pin-source=file:" + dir.sub("pin"))
                  ->view()
              == key->view());
  ::unsetenv("SOFTHSM2_CONF");
}

BOOST_AUTO_TEST_SUITE_END()
