// Deterministic, counter-based random numbers that a numpy script can reproduce exactly.
//
// Every random quantity in a session is drawn from a named stream:
//   key        = fnv1a64(label) XOR (seed * 0x9E3779B97F4A7C15)          (mod 2^64)
//   bits_i     = splitmix64_mix(key + (i + 1) * 0x9E3779B97F4A7C15)       (i = 0, 1, ...)
//   uniform_i  = (bits_i >> 11) * 2^-53                                   in [0, 1)
//   normal pair p (Box-Muller, in double): u1 = 1 - uniform_{2p}, u2 = uniform_{2p+1},
//     r = sqrt(-2 ln u1), z_{2p} = r cos(2 pi u2), z_{2p+1} = r sin(2 pi u2)
// This is SplitMix64 (Steele, Lea, Flood 2014) read as a counter, so draws can be made in any
// order or in parallel. tests/reference/make_golden.py (fnv1a64, stream_key, mix, uniforms,
// normals) is the independent implementation; tests/golden/rng.json holds its draws.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace attnlab {

std::uint64_t fnv1a64(std::string_view bytes);
std::uint64_t splitmix64_mix(std::uint64_t z);
std::uint64_t stream_key(std::uint64_t seed, std::string_view label);

// uniform_i of stream `key`, in [0, 1).
double uniform(std::uint64_t key, std::uint64_t i);

// Fills out with normals of the given standard deviation from stream `key`, draws 0..size-1.
void fill_normal(std::uint64_t key, float stddev, std::span<float> out);

}  // namespace attnlab
