#include "positional.hpp"

#include <cmath>

namespace attnlab {

Matrix sinusoidal_encoding(int n_positions, int d) {
  Matrix pe(n_positions, d);
  for (int i = 0; 2 * i < d; ++i) {
    const double inv_freq = std::pow(10000.0, -2.0 * i / d);
    for (int p = 0; p < n_positions; ++p) {
      const double angle = p * inv_freq;
      pe(p, 2 * i) = static_cast<float>(std::sin(angle));
      if (2 * i + 1 < d) pe(p, 2 * i + 1) = static_cast<float>(std::cos(angle));
    }
  }
  return pe;
}

}  // namespace attnlab
