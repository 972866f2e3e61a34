#pragma once

// `overload{f, g, ...}`: one callable made of several lambdas, for
// `std::visit` over a variant (each alternative picks its lambda).

namespace engram {

template<class... Fs>
struct overload : Fs... {
  using Fs::operator()...;
};

template<class... Fs>
overload(Fs...) -> overload<Fs...>;

} // namespace engram
