#include "crypto/pkcs11.hpp"

#include <dlfcn.h>
#include <openssl/crypto.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <vector>

#include "crypto/internal/hex.hpp"

namespace engram::crypto {

namespace {

/// What the master key is derived from, in the token.
constexpr std::string_view derivation_label = "engram master key v1";

std::string rv_name(CK_RV rv) {
  switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_PIN_EXPIRED: return "CKR_PIN_EXPIRED";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_KEY_TYPE_INCONSISTENT: return "CKR_KEY_TYPE_INCONSISTENT";
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
      return "CKR_KEY_FUNCTION_NOT_PERMITTED";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "CKR 0x%lx",
                    static_cast<unsigned long>(rv));
      return buf;
    }
  }
}

expected<std::string> pct_decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || internal::hex_digit(in[i + 1]) < 0
        || internal::hex_digit(in[i + 2]) < 0)
      return make_error(errc::parse_error, "a PKCS#11 URI has a bad %-escape");
    out.push_back(static_cast<char>(internal::hex_digit(in[i + 1]) * 16
                                    + internal::hex_digit(in[i + 2])));
    i += 2;
  }
  return out;
}

// Reads the PIN (a file of its owner's only, or a variable), trailing
// newline dropped.
expected<std::string> read_pin(const std::string& source) {
  if (source.rfind("env:", 0) == 0) {
    auto* v = std::getenv(source.substr(4).c_str());
    if (v == nullptr || *v == '\0')
      return make_error(errc::invalid_argument,
                        "the PIN variable " + source.substr(4) + " is not set");
    return std::string{v};
  }
  if (source.rfind("file:", 0) == 0) {
    auto path = source.substr(5);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      return make_error(errc::invalid_argument,
                        "the PIN file '" + path + "' is not a readable file");
    if ((st.st_mode & 077) != 0)
      return make_error(errc::invalid_argument,
                        "the PIN file '" + path
                            + "' may be read by others (chmod 600 it)");
    std::ifstream in{path};
    std::string pin{std::istreambuf_iterator<char>{in}, {}};
    while (!pin.empty() && (pin.back() == '\n' || pin.back() == '\r'))
      pin.pop_back();
    if (pin.empty())
      return make_error(errc::invalid_argument,
                        "the PIN file '" + path + "' is empty");
    return pin;
  }
  return make_error(errc::invalid_argument,
                    "pin-source is file:PATH or env:NAME");
}

// A session with the token, logged in; closes, logs out and finalizes the
// module when it goes.
class session {
public:
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  ~session() {
    if (fns_ != nullptr) {
      if (logged_in_)
        fns_->C_Logout(handle_);
      if (open_)
        fns_->C_CloseSession(handle_);
      if (initialized_)
        fns_->C_Finalize(nullptr);
    }
    if (lib_ != nullptr)
      ::dlclose(lib_);
  }

  static expected<std::unique_ptr<session>> open(const pkcs11_source& src,
                                                 bool read_write) {
    std::unique_ptr<session> s{new session};
    auto where
        = "PKCS#11 token '" + src.token + "' (module '" + src.module + "')";
    auto fail = [&](const std::string& what, CK_RV rv) {
      return make_error(rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED
                            ? errc::unauthenticated
                            : errc::invalid_argument,
                        where + ": " + what + " failed: " + rv_name(rv));
    };
    s->lib_ = ::dlopen(src.module.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (s->lib_ == nullptr)
      return make_error(errc::invalid_argument,
                        where + ": the module cannot be loaded ("
                            + std::string{::dlerror()} + ")");
    auto get = reinterpret_cast<CK_C_GetFunctionList>(
        ::dlsym(s->lib_, "C_GetFunctionList"));
    if (get == nullptr)
      return make_error(errc::invalid_argument,
                        where + ": the module is not a PKCS#11 module");
    if (auto rv = get(&s->fns_); rv != CKR_OK || s->fns_ == nullptr)
      return fail("C_GetFunctionList", rv);
    auto rv = s->fns_->C_Initialize(nullptr);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
      return fail("C_Initialize", rv);
    s->initialized_ = rv == CKR_OK;
    CK_ULONG count = 0;
    if (rv = s->fns_->C_GetSlotList(CK_TRUE, nullptr, &count); rv != CKR_OK)
      return fail("C_GetSlotList", rv);
    std::vector<CK_SLOT_ID> slots(count);
    if (count > 0)
      if (rv = s->fns_->C_GetSlotList(CK_TRUE, slots.data(), &count);
          rv != CKR_OK)
        return fail("C_GetSlotList", rv);
    slots.resize(count);
    bool found = false;
    CK_SLOT_ID slot = 0;
    for (auto id : slots) {
      CK_TOKEN_INFO info{};
      if (s->fns_->C_GetTokenInfo(id, &info) != CKR_OK)
        continue;
      std::string label(reinterpret_cast<const char*>(info.label),
                        sizeof(info.label));
      while (!label.empty() && (label.back() == ' ' || label.back() == '\0'))
        label.pop_back();
      if (label == src.token) {
        found = true;
        slot = id;
        break;
      }
    }
    if (!found)
      return make_error(errc::invalid_argument, where + ": no such token ("
                                                    + std::to_string(count)
                                                    + " tokens present)");
    CK_FLAGS flags = CKF_SERIAL_SESSION | (read_write ? CKF_RW_SESSION : 0);
    if (rv = s->fns_->C_OpenSession(slot, flags, nullptr, nullptr, &s->handle_);
        rv != CKR_OK)
      return fail("C_OpenSession", rv);
    s->open_ = true;
    auto pin = read_pin(src.pin_source);
    if (!pin)
      return make_error(errc::invalid_argument,
                        where + ": " + pin.error_value().message);
    rv = s->fns_->C_Login(s->handle_, CKU_USER,
                          reinterpret_cast<CK_UTF8CHAR_PTR>(pin->data()),
                          static_cast<CK_ULONG>(pin->size()));
    OPENSSL_cleanse(pin->data(), pin->size());
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
      return fail("C_Login", rv);
    s->logged_in_ = rv == CKR_OK;
    s->where_ = where;
    return s;
  }

  /// The secret keys labelled `label` (at most two: more is ambiguous).
  expected<std::vector<CK_OBJECT_HANDLE>> find(const std::string& label) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[]
        = {{CKA_CLASS, &cls, sizeof(cls)},
           {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    if (auto rv = fns_->C_FindObjectsInit(handle_, tmpl, 2); rv != CKR_OK)
      return make_error(errc::invalid_argument,
                        where_ + ": C_FindObjectsInit failed: " + rv_name(rv));
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    auto rv = fns_->C_FindObjects(handle_, found, 2, &n);
    fns_->C_FindObjectsFinal(handle_);
    if (rv != CKR_OK)
      return make_error(errc::invalid_argument,
                        where_ + ": C_FindObjects failed: " + rv_name(rv));
    return std::vector<CK_OBJECT_HANDLE>(found, found + n);
  }

  CK_FUNCTION_LIST_PTR fns() const { return fns_; }
  CK_SESSION_HANDLE handle() const { return handle_; }
  const std::string& where() const { return where_; }

private:
  session() = default;
  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR fns_ = nullptr;
  CK_SESSION_HANDLE handle_ = 0;
  bool initialized_ = false;
  bool open_ = false;
  bool logged_in_ = false;
  std::string where_;
};

} // namespace

expected<pkcs11_source> parse_pkcs11_uri(const std::string& uri) {
  if (uri.rfind("pkcs11:", 0) != 0)
    return make_error(errc::invalid_argument, "not a pkcs11: URI");
  pkcs11_source src;
  auto rest = std::string_view{uri}.substr(7);
  auto q = rest.find('?');
  auto path = rest.substr(0, q);
  auto query
      = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
  auto each = [](std::string_view text, char sep, auto f) -> expected<void> {
    while (!text.empty()) {
      auto end = text.find(sep);
      auto part = text.substr(0, end);
      auto eq = part.find('=');
      if (eq == std::string_view::npos)
        return make_error(errc::parse_error,
                          "a PKCS#11 URI attribute without '='");
      auto value = pct_decode(part.substr(eq + 1));
      if (!value)
        return value.error_value();
      if (auto ok = f(part.substr(0, eq), *value); !ok)
        return ok;
      if (end == std::string_view::npos)
        break;
      text.remove_prefix(end + 1);
    }
    return {};
  };
  auto ok = each(
      path, ';',
      [&](std::string_view name, const std::string& value) -> expected<void> {
        if (name == "token")
          src.token = value;
        else if (name == "object")
          src.object = value;
        else if (name != "type" && name != "id")
          return make_error(errc::invalid_argument,
                            "a PKCS#11 URI attribute this build "
                            "does not use: "
                                + std::string{name});
        return {};
      });
  if (!ok)
    return ok.error_value();
  ok = each(
      query, '&',
      [&](std::string_view name, const std::string& value) -> expected<void> {
        if (name == "module-path")
          src.module = value;
        else if (name == "pin-source")
          src.pin_source = value;
        else if (name == "pin-value")
          return make_error(errc::invalid_argument,
                            "pin-value puts the PIN in the URI: use "
                            "pin-source=file:PATH or env:NAME");
        else
          return make_error(errc::invalid_argument,
                            "a PKCS#11 URI query attribute this build "
                            "does not use: "
                                + std::string{name});
        return {};
      });
  if (!ok)
    return ok.error_value();
  if (src.module.empty() || src.token.empty() || src.object.empty()
      || src.pin_source.empty())
    return make_error(errc::invalid_argument,
                      "a PKCS#11 key source names token=, object=, "
                      "module-path= and pin-source=");
  return src;
}

expected<key256> load_pkcs11_key(const pkcs11_source& src) {
  auto s = session::open(src, false);
  if (!s)
    return s.error_value();
  auto keys = (*s)->find(src.object);
  if (!keys)
    return keys.error_value();
  if (keys->size() != 1)
    return make_error(errc::invalid_argument,
                      (*s)->where() + ": "
                          + (keys->empty() ? "holds no secret key labelled '"
                                           : "holds two secret keys labelled '")
                          + src.object + "'");
  CK_MECHANISM mech{CKM_SHA256_HMAC, nullptr, 0};
  auto* fns = (*s)->fns();
  if (auto rv = fns->C_SignInit((*s)->handle(), &mech, keys->front());
      rv != CKR_OK)
    return make_error(errc::invalid_argument,
                      (*s)->where() + ": HMAC-SHA256 with key '" + src.object
                          + "' failed: " + rv_name(rv));
  unsigned char out[32];
  CK_ULONG len = sizeof(out);
  auto rv = fns->C_Sign(
      (*s)->handle(),
      reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(derivation_label.data())),
      static_cast<CK_ULONG>(derivation_label.size()), out, &len);
  if (rv != CKR_OK || len != sizeof(out))
    return make_error(errc::invalid_argument,
                      (*s)->where() + ": HMAC-SHA256 with key '" + src.object
                          + "' failed: " + rv_name(rv));
  auto key = key256::from_bytes(
      std::string_view{reinterpret_cast<const char*>(out), sizeof(out)});
  OPENSSL_cleanse(out, sizeof(out));
  return key;
}

expected<bool> generate_pkcs11_key(const pkcs11_source& src) {
  auto s = session::open(src, true);
  if (!s)
    return s.error_value();
  auto keys = (*s)->find(src.object);
  if (!keys)
    return keys.error_value();
  if (!keys->empty())
    return false;
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_GENERIC_SECRET;
  CK_ULONG len = 32;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  CK_ATTRIBUTE tmpl[]
      = {{CKA_CLASS, &cls, sizeof(cls)},
         {CKA_KEY_TYPE, &type, sizeof(type)},
         {CKA_VALUE_LEN, &len, sizeof(len)},
         {CKA_TOKEN, &yes, sizeof(yes)},
         {CKA_PRIVATE, &yes, sizeof(yes)},
         {CKA_SENSITIVE, &yes, sizeof(yes)},
         {CKA_EXTRACTABLE, &no, sizeof(no)},
         {CKA_SIGN, &yes, sizeof(yes)},
         {CKA_VERIFY, &yes, sizeof(yes)},
         {CKA_LABEL, const_cast<char*>(src.object.data()), src.object.size()}};
  CK_MECHANISM mech{CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE key = 0;
  auto rv = (*s)->fns()->C_GenerateKey((*s)->handle(), &mech, tmpl,
                                       sizeof(tmpl) / sizeof(tmpl[0]), &key);
  if (rv != CKR_OK)
    return make_error(errc::invalid_argument,
                      (*s)->where() + ": generating key '" + src.object
                          + "' failed: " + rv_name(rv));
  return true;
}

} // namespace engram::crypto
