#include "attention/embed.hpp"

#include <cmath>
#include <string>

#include "core/rng.hpp"

namespace attnlab {

void embed_token(std::uint64_t seed, std::string_view text, float* out, int d_model) {
  std::string label = "token:";
  label += text;
  fill_normal(stream_key(seed, label), 1.0f, {out, static_cast<std::size_t>(d_model)});
}

Matrix glorot_normal(std::uint64_t seed, std::string_view label, int fan_in, int fan_out) {
  Matrix w(fan_in, fan_out);
  const float stddev = static_cast<float>(std::sqrt(2.0 / (fan_in + fan_out)));
  fill_normal(stream_key(seed, label), stddev, {w.data(), static_cast<std::size_t>(w.size())});
  return w;
}

void LayerWeights::fuse() {
  w_qkv.resize(w_q.rows(), w_q.cols() + w_k.cols() + w_v.cols());
  w_qkv << w_q, w_k, w_v;
}

LayerWeights layer_weights(std::uint64_t seed, int layer, int d_model, int kv_dim) {
  if (kv_dim < 0) kv_dim = d_model;
  const std::string p = "layer" + std::to_string(layer) + ".";
  LayerWeights w{glorot_normal(seed, p + "W_Q", d_model, d_model), glorot_normal(seed, p + "W_O", d_model, d_model),
                 glorot_normal(seed, p + "W_K", d_model, kv_dim), glorot_normal(seed, p + "W_V", d_model, kv_dim), {}};
  w.fuse();
  return w;
}

}  // namespace attnlab
