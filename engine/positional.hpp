// Positional encodings added to the token embeddings.
#pragma once

#include "tensor.hpp"

namespace attnlab {

// Vaswani et al. 2017, section 3.5: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same).
// (n_positions, d); for odd d the last column is a sine.
Matrix sinusoidal_encoding(int n_positions, int d);

}  // namespace attnlab
