// Transformer blocks around attention: LayerNorm, the GELU feed-forward network, rollout.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.hpp"

namespace attnlab {

// Ba et al. 2016: each row to zero mean and unit variance (eps 1e-5; gain 1, bias 0).
Matrix layer_norm(const Matrix& x);

// Hendrycks & Gimpel 2016: GELU(x) = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 (exact form).
float gelu(float x);

struct FfnWeights {
  Matrix w1;  // (d_model, ffn_mult d_model), Glorot normal from "layer<l>.W_ff1"
  Matrix w2;  // (ffn_mult d_model, d_model), from "layer<l>.W_ff2"; biases are 0
};
FfnWeights ffn_weights(std::uint64_t seed, int layer, int d_model, int ffn_mult);
Matrix ffn(const Matrix& x, const FfnWeights& w);  // GELU(x W1) W2

// Attention rollout (Abnar & Zuidema 2020, sec. 3): per layer A = mean over heads of the
// weights, negative effective weights (Linformer, Nystromformer) taken as 0; with the residual
// term A <- (A + I) / 2; rows renormalised to sum 1 (rows with no weight stay 0);
// rollout_l = A_l ... A_0.
// Returns rollout_l for every l (each (n, n)).
std::vector<Matrix> attention_rollout(const std::vector<Matrix>& head_mean_weights, bool residual);

}  // namespace attnlab
