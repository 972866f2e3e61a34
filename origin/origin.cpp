#include "origin/origin.hpp"

#include <sodium.h>

#include <cstring>
#include <limits>
#include <type_traits>
#include <variant>

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
  void u8(uint8_t x) { out_ += static_cast<char>(x); }

  void u32(uint32_t x) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out_ += static_cast<char>((x >> shift) & 0xff);
  }

  void u64(uint64_t x) {
    for (int shift = 56; shift >= 0; shift -= 8)
      out_ += static_cast<char>((x >> shift) & 0xff);
  }

  void f64(double x) {
    uint64_t bits = 0;
    static_assert(sizeof(bits) == sizeof(x));
    std::memcpy(&bits, &x, sizeof(bits));
    u64(bits);
  }

  void str(std::string_view x) {
    u64(x.size());
    out_.append(x.data(), x.size());
  }

  void time(const hlc_timestamp& t) {
    u64(t.wall_us);
    u32(t.logical);
  }

  void count(size_t n) { u64(n); }

  const std::string& bytes() const noexcept { return out_; }

  void reserve(size_t n) { out_.reserve(n); }

private:
  std::string out_;
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

digest blake2b(unsigned char domain, std::string_view a, std::string_view b) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, std::tuple_size<digest>::value);
  crypto_generichash_update(&st, &domain, 1);
  crypto_generichash_update(
      &st, reinterpret_cast<const unsigned char*>(a.data()), a.size());
  crypto_generichash_update(
      &st, reinterpret_cast<const unsigned char*>(b.data()), b.size());
  digest out;
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

std::string_view view(const digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

digest inner(const digest& left, const digest& right) {
  return blake2b(1, view(left), view(right));
}

error bad(const std::string& what) {
  return error{errc::invalid_argument, "origin proof: " + what};
}

// Walks a tree of `n` leaves level by level from the known `positions`,
// as the verifier does: a node whose sibling is not known takes it from
// `need(level, index)`; `known` gives the hash of a known node and
// `learn` records a computed one. The order of `need` calls is the proof
// order.
template<class Known, class Need, class Learn>
expected<digest> walk(uint32_t n, std::vector<uint32_t> positions,
                      Known&& known, Need&& need, Learn&& learn) {
  uint32_t width = n;
  size_t level = 0;
  while (width > 1) {
    std::vector<uint32_t> next;
    next.reserve(positions.size() / 2 + 1);
    for (size_t j = 0; j < positions.size(); ++j) {
      auto i = positions[j];
      digest parent;
      if (i % 2 == 0) {
        if (i + 1 >= width) {
          parent = known(level, i); // the odd node at the end moves up
        } else if (j + 1 < positions.size() && positions[j + 1] == i + 1) {
          parent = inner(known(level, i), known(level, i + 1));
          ++j;
        } else {
          auto right = need(level, i + 1);
          if (!right)
            return right.error_value();
          parent = inner(known(level, i), *right);
        }
      } else {
        auto left = need(level, i - 1);
        if (!left)
          return left.error_value();
        parent = inner(*left, known(level, i));
      }
      learn(level + 1, i / 2, parent);
      next.push_back(i / 2);
    }
    positions = std::move(next);
    width = (width + 1) / 2;
    ++level;
  }
  return known(level, 0);
}

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

} // namespace

digest leaf(const version& v) {
  canonical w;
  w.reserve(256);
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
  return blake2b(0, w.bytes(), {});
}

// -- tree
// -------------------------------------------------------------------------

tree tree::of(const std::vector<digest>& leaves) {
  tree t;
  t.n_ = static_cast<uint32_t>(leaves.size());
  t.levels_.emplace_back();
  std::vector<uint32_t> all(leaves.size());
  for (uint32_t i = 0; i < t.n_; ++i) {
    all[i] = i;
    t.levels_[0].emplace(i, leaves[i]);
  }
  auto known = [&t](size_t level, uint32_t i) {
    return t.levels_[level].at(i);
  };
  auto need = [](size_t, uint32_t) -> expected<digest> {
    return make_error(errc::invalid_argument, "a full tree needs nothing");
  };
  auto learn = [&t](size_t level, uint32_t i, const digest& d) {
    if (t.levels_.size() <= level)
      t.levels_.resize(level + 1);
    t.levels_[level][i] = d;
  };
  if (!all.empty())
    t.root_ = *walk(t.n_, all, known, need, learn);
  return t;
}

expected<tree> tree::partial(uint32_t n, const std::vector<uint32_t>& positions,
                             const std::vector<digest>& known_leaves,
                             std::string_view siblings) {
  if (auto ok = check_positions(n, positions); !ok)
    return ok.error_value();
  if (known_leaves.size() != positions.size())
    return bad("leaf hashes and positions differ in number");
  if (siblings.size() % std::tuple_size<digest>::value != 0)
    return bad("siblings of " + std::to_string(siblings.size()) + " bytes");
  tree t;
  t.n_ = n;
  t.levels_.emplace_back();
  for (size_t i = 0; i < positions.size(); ++i)
    t.levels_[0].emplace(positions[i], known_leaves[i]);
  size_t taken = 0;
  auto known = [&t](size_t level, uint32_t i) {
    return t.levels_[level].at(i);
  };
  auto need = [&](size_t level, uint32_t i) -> expected<digest> {
    constexpr auto width = std::tuple_size<digest>::value;
    if ((taken + 1) * width > siblings.size())
      return make_error(errc::invalid_argument,
                        "origin proof: too few sibling hashes");
    digest d;
    std::memcpy(d.data(), siblings.data() + taken * width, width);
    ++taken;
    t.levels_[level][i] = d;
    return d;
  };
  auto learn = [&t](size_t level, uint32_t i, const digest& d) {
    if (t.levels_.size() <= level)
      t.levels_.resize(level + 1);
    t.levels_[level][i] = d;
  };
  auto root = walk(n, positions, known, need, learn);
  if (!root)
    return root.error_value();
  if (taken * std::tuple_size<digest>::value != siblings.size())
    return bad("more sibling hashes than the leaves need");
  t.root_ = *root;
  return t;
}

expected<std::string>
tree::siblings(const std::vector<uint32_t>& positions) const {
  if (auto ok = check_positions(n_, positions); !ok)
    return ok.error_value();
  for (auto p : positions)
    if (levels_[0].count(p) == 0)
      return bad("leaf " + std::to_string(p) + " is not known here");
  std::string out;
  std::vector<std::unordered_map<uint32_t, digest>> computed(levels_.size());
  auto at = [&](size_t level, uint32_t i) -> const digest* {
    if (level < computed.size())
      if (auto it = computed[level].find(i); it != computed[level].end())
        return &it->second;
    if (level < levels_.size())
      if (auto it = levels_[level].find(i); it != levels_[level].end())
        return &it->second;
    return nullptr;
  };
  auto known = [&](size_t level, uint32_t i) {
    return *at(level, i);
  };
  auto need = [&](size_t level, uint32_t i) -> expected<digest> {
    auto* d = at(level, i);
    if (d == nullptr)
      return make_error(errc::invalid_argument,
                        "origin proof: a node this tree does not know");
    out.append(view(*d));
    return *d;
  };
  auto learn = [&](size_t level, uint32_t i, const digest& d) {
    if (computed.size() <= level)
      computed.resize(level + 1);
    computed[level][i] = d;
  };
  auto root = walk(n_, positions, known, need, learn);
  if (!root)
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
  auto out = w.bytes();
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
  return trusted_key{binding.node(), to_us(cert->not_before()),
                     to_us(cert->not_after())};
}

} // namespace engram::origin
