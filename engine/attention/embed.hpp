// Token embeddings and projection weights, drawn from named streams of rng.hpp.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/tensor.hpp"

namespace attnlab {

// A token's embedding: d_model draws of N(0, 1) from stream "token:" + text. The same text gets
// the same vector wherever it stands, so reordering tokens permutes rows of the embedding matrix.
void embed_token(std::uint64_t seed, std::string_view text, float* out, int d_model);

// Glorot (Xavier) normal initialisation (Glorot & Bengio 2010): N(0, 2 / (fan_in + fan_out)),
// a (fan_in, fan_out) matrix filled row-major from stream `label`.
Matrix glorot_normal(std::uint64_t seed, std::string_view label, int fan_in, int fan_out);

// Projections of one attention layer; x (n, d_model) times W gives (n, d_model).
struct LayerWeights {
  Matrix w_q, w_o;            // (d_model, d_model)
  Matrix w_k, w_v;            // (d_model, kv_dim), kv_dim = n_kv_heads d_head (= d_model for mha)
  Matrix w_qkv;               // (d_model, d_model + 2 kv_dim) = [w_q | w_k | w_v]: one GEMM for all three
  void fuse();                // fills w_qkv from w_q, w_k, w_v
};
// Streams "layer<l>.W_Q", "layer<l>.W_K", "layer<l>.W_V", "layer<l>.W_O".
LayerWeights layer_weights(std::uint64_t seed, int layer, int d_model, int kv_dim = -1);

}  // namespace attnlab
