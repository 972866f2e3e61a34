#include "origin/origin.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <variant>
#include <vector>

#include "crypto/sign.hpp"
#include "pki/pki.hpp"

namespace engram::origin {

namespace {

// -- canonical bytes
// -----------------------------------------------------------

// Writes fixed-width integers (big-endian), length-prefixed strings and
// doubles as their IEEE 754 bits: one encoding per value.
class canonical {
public:
  void u8(uint8_t x) {
    auto* p = room(1);
    *p = static_cast<char>(x);
  }

  void u32(uint32_t x) {
    auto* p = room(4);
    for (int i = 0; i < 4; ++i)
      p[i] = static_cast<char>((x >> (24 - 8 * i)) & 0xff);
  }

  void u64(uint64_t x) {
    auto* p = room(8);
    for (int i = 0; i < 8; ++i)
      p[i] = static_cast<char>((x >> (56 - 8 * i)) & 0xff);
  }

  void f64(double x) {
    uint64_t bits = 0;
    static_assert(sizeof(bits) == sizeof(x));
    std::memcpy(&bits, &x, sizeof(bits));
    u64(bits);
  }

  // Lengths and counts fit 32 bits (frames are bounded far below).
  void str(std::string_view x) {
    u32(static_cast<uint32_t>(x.size()));
    if (!x.empty())
      std::memcpy(room(x.size()), x.data(), x.size());
  }

  void time(const hlc_timestamp& t) {
    u64(t.wall_us);
    u32(t.logical);
  }

  void count(size_t n) { u32(static_cast<uint32_t>(n)); }

  std::string_view bytes() const noexcept { return {buf_.data(), size_}; }

  /// Starts again, keeping the buffer.
  void clear() noexcept { size_ = 0; }

private:
  // `n` bytes at the end, the buffer grown (never shrunk) when needed.
  char* room(size_t n) {
    if (size_ + n > buf_.size())
      buf_.resize(std::max(buf_.size() * 2, size_ + n + 256));
    auto* p = buf_.data() + size_;
    size_ += n;
    return p;
  }

  std::vector<char> buf_ = std::vector<char>(1024);
  size_t size_ = 0;
};

void write(canonical& w, const content& body) {
  w.u8(static_cast<uint8_t>(body.index()));
  std::visit(
      [&](const auto& x) {
        using type = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<type, fact>) {
          w.str(x.key);
          w.str(x.value);
        } else if constexpr (std::is_same_v<type, belief>) {
          w.str(x.subject);
          w.str(x.relation);
          w.str(x.object);
        } else if constexpr (std::is_same_v<type, episode>) {
          w.str(x.episode_id);
          w.count(x.events.size());
          for (auto& e : x.events) {
            w.time(e.at);
            w.str(e.description);
          }
        } else {
          static_assert(std::is_same_v<type, skill>);
          w.str(x.skill_id);
          w.count(x.refinements.size());
          for (auto& r : x.refinements) {
            w.u32(r.version);
            w.str(r.description);
          }
        }
      },
      body);
}

// SHA-256 (OpenSSL EVP; SHA extensions where the CPU has them), one
// context per thread, truncated to 16 bytes.
digest sha256(unsigned char domain, std::string_view a, std::string_view b) {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct ctx_deleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local std::unique_ptr<EVP_MD_CTX, ctx_deleter> ctx{EVP_MD_CTX_new()};
  unsigned char full[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (md == nullptr || !ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1
      || EVP_DigestUpdate(ctx.get(), &domain, 1) != 1
      || EVP_DigestUpdate(ctx.get(), a.data(), a.size()) != 1
      || EVP_DigestUpdate(ctx.get(), b.data(), b.size()) != 1
      || EVP_DigestFinal_ex(ctx.get(), full, &len) != 1)
    throw std::runtime_error("OpenSSL's SHA-256 failed");
  digest out;
  std::memcpy(out.data(), full, out.size());
  return out;
}

std::string_view view(const digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

digest inner(const digest& left, const digest& right) {
  return sha256(1, view(left), view(right));
}

error bad(const std::string& what) {
  return error{errc::invalid_argument, "origin proof: " + what};
}

// Climbs a tree of `n` leaves from the known nodes of level 0 (sorted by
// index) to the root, level by level: a node whose sibling is not known
// takes it from `need(level, index)` (the order of those calls is the
// proof order). With `record`, every node known or computed is kept, per
// level, sorted.
template<class Need>
expected<digest> climb(uint32_t n, tree_level nodes, Need&& need,
                       std::vector<tree_level>* record) {
  uint32_t width = n;
  size_t height = 0;
  while (width > 1) {
    tree_level next;
    next.reserve(nodes.size() / 2 + 1);
    tree_level needed;
    for (size_t j = 0; j < nodes.size(); ++j) {
      auto [i, hash] = nodes[j];
      digest parent;
      if (i % 2 == 0) {
        if (i + 1 >= width) {
          parent = hash; // the odd node at the end moves up
        } else if (j + 1 < nodes.size() && nodes[j + 1].first == i + 1) {
          parent = inner(hash, nodes[j + 1].second);
          ++j;
        } else {
          auto right = need(height, i + 1);
          if (!right)
            return right.error_value();
          parent = inner(hash, *right);
          if (record != nullptr)
            needed.emplace_back(i + 1, *right);
        }
      } else {
        auto left = need(height, i - 1);
        if (!left)
          return left.error_value();
        parent = inner(*left, hash);
        if (record != nullptr)
          needed.emplace_back(i - 1, *left);
      }
      next.emplace_back(i / 2, parent);
    }
    if (record != nullptr) {
      tree_level all;
      all.reserve(nodes.size() + needed.size());
      std::merge(nodes.begin(), nodes.end(), needed.begin(), needed.end(),
                 std::back_inserter(all), [](const auto& x, const auto& y) {
                   return x.first < y.first;
                 });
      record->push_back(std::move(all));
    }
    nodes = std::move(next);
    width = (width + 1) / 2;
    ++height;
  }
  if (record != nullptr)
    record->push_back(nodes);
  return nodes.front().second;
}

} // namespace

expected<void> check_positions(uint32_t n,
                               const std::vector<uint32_t>& positions) {
  if (n == 0 || n > max_leaves)
    return bad("a tree of " + std::to_string(n) + " leaves");
  if (positions.empty())
    return bad("no leaf");
  for (size_t i = 0; i < positions.size(); ++i) {
    if (positions[i] >= n)
      return bad("leaf " + std::to_string(positions[i]) + " of a tree of "
                 + std::to_string(n));
    if (i > 0 && positions[i] <= positions[i - 1])
      return bad("leaves not in ascending order");
  }
  return {};
}

digest leaf(const version& v) {
  // One buffer per thread, reused: hashing allocates nothing.
  thread_local canonical w;
  w.clear();
  w.u64(v.tag.replica);
  w.u64(v.tag.counter);
  w.u64(v.resolves);
  auto& e = v.value;
  w.u64(e.id.hi);
  w.u64(e.id.lo);
  w.u8(static_cast<uint8_t>(e.type));
  w.u8(static_cast<uint8_t>(e.scope.kind()));
  w.str(e.scope.id());
  w.count(e.scope.members().size());
  for (auto& m : e.scope.members())
    w.str(m);
  write(w, e.body);
  w.f64(e.confidence);
  w.u8(static_cast<uint8_t>(e.epistemic.kind));
  w.str(e.epistemic.source);
  w.f64(e.epistemic.trust);
  w.str(e.origin.origin_agent);
  w.str(e.origin.origin_instance);
  w.count(e.origin.hops.size());
  for (auto& h : e.origin.hops) {
    w.str(h.agent);
    w.f64(h.trust);
    w.str(h.transform);
    w.u8(h.read_only ? 1 : 0);
  }
  w.time(e.created);
  w.time(e.updated);
  w.u8(e.archived ? 1 : 0);
  w.u8(e.tombstone ? 1 : 0);
  w.str(e.forget_reason);
  return sha256(0, w.bytes(), {});
}

// -- tree
// -------------------------------------------------------------------------

digest fingerprint(std::string_view bytes) { return sha256(2, bytes, {}); }

tree tree::of(const std::vector<digest>& leaves) {
  std::vector<uint32_t> all(leaves.size());
  for (uint32_t i = 0; i < all.size(); ++i)
    all[i] = i;
  auto t = partial(static_cast<uint32_t>(leaves.size()), all, leaves, {});
  if (!t)
    throw std::invalid_argument(t.error_value().message);
  return std::move(*t);
}

namespace {

tree_level level_zero(const std::vector<uint32_t>& positions,
                      const std::vector<digest>& known) {
  tree_level out;
  out.reserve(positions.size());
  for (size_t i = 0; i < positions.size(); ++i)
    out.emplace_back(positions[i], known[i]);
  return out;
}

// Takes the proof's sibling hashes in order.
struct sibling_reader {
  std::string_view bytes;
  size_t taken = 0;

  expected<digest> operator()(size_t, uint32_t) {
    constexpr auto width = std::tuple_size<digest>::value;
    if ((taken + 1) * width > bytes.size())
      return make_error(errc::invalid_argument,
                        "origin proof: too few sibling hashes");
    digest d;
    std::memcpy(d.data(), bytes.data() + taken * width, width);
    ++taken;
    return d;
  }

  bool all_taken() const noexcept {
    return taken * std::tuple_size<digest>::value == bytes.size();
  }
};

expected<void> check_proof(uint32_t n, const std::vector<uint32_t>& positions,
                           const std::vector<digest>& known,
                           std::string_view siblings) {
  if (auto ok = check_positions(n, positions); !ok)
    return ok.error_value();
  if (known.size() != positions.size())
    return bad("leaf hashes and positions differ in number");
  if (siblings.size() % std::tuple_size<digest>::value != 0)
    return bad("siblings of " + std::to_string(siblings.size()) + " bytes");
  return {};
}

} // namespace

expected<digest> tree::root_of(uint32_t n,
                               const std::vector<uint32_t>& positions,
                               const std::vector<digest>& known,
                               std::string_view siblings) {
  if (auto ok = check_proof(n, positions, known, siblings); !ok)
    return ok.error_value();
  sibling_reader read{siblings};
  auto root = climb(n, level_zero(positions, known), read, nullptr);
  if (root && !read.all_taken())
    return bad("more sibling hashes than the leaves need");
  return root;
}

expected<tree> tree::partial(uint32_t n, const std::vector<uint32_t>& positions,
                             const std::vector<digest>& known,
                             std::string_view siblings) {
  if (auto ok = check_proof(n, positions, known, siblings); !ok)
    return ok.error_value();
  tree t;
  t.n_ = n;
  sibling_reader read{siblings};
  auto root = climb(n, level_zero(positions, known), read, &t.levels_);
  if (!root)
    return root.error_value();
  if (!read.all_taken())
    return bad("more sibling hashes than the leaves need");
  t.root_ = *root;
  return t;
}

const digest* tree::find(size_t height, uint32_t index) const {
  if (height >= levels_.size())
    return nullptr;
  auto& nodes = levels_[height];
  auto i = std::lower_bound(nodes.begin(), nodes.end(), index,
                            [](const auto& x, uint32_t v) {
                              return x.first < v;
                            });
  return i != nodes.end() && i->first == index ? &i->second : nullptr;
}

expected<std::string>
tree::siblings(const std::vector<uint32_t>& positions) const {
  if (auto ok = check_positions(n_, positions); !ok)
    return ok.error_value();
  tree_level start;
  start.reserve(positions.size());
  for (auto p : positions) {
    auto* d = find(0, p);
    if (d == nullptr)
      return bad("leaf " + std::to_string(p) + " is not known here");
    start.emplace_back(p, *d);
  }
  std::string out;
  auto need = [&](size_t height, uint32_t i) -> expected<digest> {
    auto* d = find(height, i);
    if (d == nullptr)
      return make_error(errc::invalid_argument,
                        "origin proof: a node this tree does not know");
    out.append(view(*d));
    return *d;
  };
  if (auto root = climb(n_, std::move(start), need, nullptr); !root)
    return root.error_value();
  return out;
}

// -- signatures and keys ----------------------------------------------------

std::string signed_message(std::string_view agent, std::string_view node,
                           replica_id replica, uint32_t incarnation, uint32_t n,
                           const digest& root) {
  canonical w;
  w.str("engram/v1 origin");
  w.str(agent);
  w.str(node);
  w.u64(replica);
  w.u32(incarnation);
  w.u32(n);
  std::string out{w.bytes()};
  out.append(view(root));
  return out;
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char ch : bytes) {
    out += digits[ch >> 4];
    out += digits[ch & 0xf];
  }
  return out;
}

std::string key_message(std::string_view node, std::string_view key) {
  std::string out = "engram/v1 origin-key\n";
  out += node;
  out += '\n';
  out += hex(key);
  return out;
}

expected<v1::OriginKey> bind(const std::string& node,
                             const std::string& cert_pem,
                             const pki::private_key& cert_key,
                             const std::string& key) {
  auto sig = cert_key.sign(key_message(node, key));
  if (!sig)
    return sig.error_value();
  v1::OriginKey out;
  out.set_node(node);
  out.set_key(key);
  out.set_certificate(cert_pem);
  out.set_signature(std::move(*sig));
  return out;
}

expected<trusted_key> check_key(const v1::OriginKey& binding, const trust& t) {
  auto refused = [&](const std::string& why) {
    return make_error(errc::unauthenticated, "the origin key of '"
                                                 + binding.node()
                                                 + "' is refused: " + why);
  };
  if (t.ca == nullptr)
    return refused("no CA to check it against");
  if (binding.key().size() != crypto::ed25519_public_bytes)
    return refused("a key of " + std::to_string(binding.key().size())
                   + " bytes");
  auto cert = pki::certificate::from_pem(binding.certificate(),
                                         "an origin key's certificate");
  if (!cert)
    return refused(cert.error_value().message);
  // Checked as of its first valid second: expiry ends what it may prove
  // (the versions' times), revocation ends all of it.
  if (auto ok = pki::verify(*cert, *t.ca, t.crl, cert->not_before(),
                            pki::role::node, binding.node());
      !ok)
    return refused(ok.error_value().message);
  if (!pki::verify_signature(*cert, key_message(binding.node(), binding.key()),
                             binding.signature()))
    return refused("its certificate's key did not sign it");
  auto to_us = [](int64_t s) {
    return s <= 0 ? uint64_t{0} : static_cast<uint64_t>(s) * 1'000'000;
  };
  return trusted_key{binding.node(), to_us(cert->not_after())};
}

} // namespace engram::origin
