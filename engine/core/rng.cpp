#include "core/rng.hpp"

#include <cmath>
#include <numbers>

namespace attnlab {

namespace {
constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;
}  // namespace

double uniform(std::uint64_t key, std::uint64_t i) {
  const std::uint64_t bits = splitmix64_mix(key + (i + 1) * kGolden);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t stream_key(std::uint64_t seed, std::string_view label) {
  return fnv1a64(label) ^ (seed * kGolden);
}

void fill_normal(std::uint64_t key, float stddev, std::span<float> out) {
  const std::size_t n = out.size();
  for (std::size_t p = 0; 2 * p < n; ++p) {
    const double u1 = 1.0 - uniform(key, 2 * p);
    const double u2 = uniform(key, 2 * p + 1);
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 2.0 * std::numbers::pi * u2;
    out[2 * p] = static_cast<float>(r * std::cos(a) * stddev);
    if (2 * p + 1 < n) out[2 * p + 1] = static_cast<float>(r * std::sin(a) * stddev);
  }
}

}  // namespace attnlab
