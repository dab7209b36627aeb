// Positional encodings: absolute ones added to the embeddings, RoPE applied to q and k, and
// relative biases (ALiBi, T5) added to the logits. docs/variants.md has the formulas.
#pragma once

#include <cstdint>
#include <vector>

#include "session/session.hpp"
#include "core/tensor.hpp"

namespace attnlab {

// Vaswani et al. 2017, section 3.5: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same).
// (n_positions, d); for odd d the last column is a sine.
Matrix sinusoidal_encoding(int n_positions, int d);

// Learned absolute positions (as GPT-2's wpe), here a seeded table: row p is d draws of
// N(0, 1) from stream "positional.learned.p<p>". (n_positions, d)
Matrix learned_encoding(std::uint64_t seed, int n_positions, int d);

// RoPE (Su et al. 2021, eq. 34): the first d_rot = 2 floor(fraction d_head / 2) dimensions of
// row p turn by p theta_m in pairs, theta_m = base^(-2m / d_rot), m = 0 .. d_rot/2 - 1.
// rotate_half pairs (x_m, x_{m + d_rot/2}) (GPT-NeoX, Llama); interleaved pairs (x_2m, x_2m+1)
// (RoFormer). x: (n, d_head), rotated in place; row p is position p.
int rope_dims(int d_head, double fraction);
void rope_rotate(Matrix& x, double base, double fraction, RopeConvention convention);

// RoPE scaling for contexts past the one a model was trained on, as Hugging Face's configs name it
// (`rope_scaling.rope_type`): each changes the frequencies theta_m, yarn also scales q and k.
//  linear (Chen et al. 2023, position interpolation): theta_m / factor.
//  dynamic (NTK-aware, as transformers' _compute_dynamic_ntk_parameters): for a text of n >
//    original tokens, base' = base (factor n / original - (factor - 1))^(d / (d - 2)).
//  llama3 (Llama 3.1): wavelengths 2 pi / theta above original / low_freq_factor are divided by
//    factor, those below original / high_freq_factor kept, in between blended linearly in
//    original / wavelength.
//  yarn (Peng et al. 2023): per frequency a ramp between interpolation (theta / factor) and
//    extrapolation (theta) over the dimensions whose rotations in `original` positions lie
//    between beta_slow and beta_fast; cos and sin times attention_factor (default
//    0.1 ln(factor) + 1). Given original_max_position_embeddings, factor is the config's
//    max_position_embeddings / original (transformers' reading; the Llama family sets it).
struct RopeScaling {
  enum class Kind { none, linear, dynamic, llama3, yarn } kind = Kind::none;
  double factor = 1, original = 0;  // original: the trained context (original_max_position_embeddings)
  double low_freq_factor = 1, high_freq_factor = 4;  // llama3
  double beta_fast = 32, beta_slow = 1, attention_factor = 0;  // yarn (0: the default)
  bool operator==(const RopeScaling&) const = default;
};
// theta_m for m = 0 .. d_rot/2 - 1 under `scaling`, for a text of n tokens.
std::vector<double> rope_frequencies(int d_rot, double base, const RopeScaling& scaling, int n);
// What cos and sin are multiplied by (yarn's attention factor; 1 otherwise).
double rope_attention_factor(const RopeScaling& scaling);
// rotate_half RoPE of the first 2 theta.size() dimensions with these frequencies, cos and sin
// times `mscale`; row p is position first_position + p.
void rope_rotate(Matrix& x, const std::vector<double>& theta, double mscale = 1.0, int first_position = 0);

// ALiBi (Press et al. 2022, sec. 3): head k (1-based) of h has slope 2^(-8k/h) when h is a power
// of two; otherwise the slopes of the largest power of two n < h, then every other slope of 2n.
std::vector<double> alibi_slopes(int n_heads);

// T5 relative position bucket (Raffel et al. 2020, sec. 2.1; the reference implementation's
// _relative_position_bucket), relative_position = key - query.
int t5_bucket(int relative_position, bool bidirectional, int num_buckets, int max_distance);
// The seeded per-head bias table, (num_buckets, n_heads), N(0, 1) from stream "positional.t5".
Matrix t5_bias_table(std::uint64_t seed, int num_buckets, int n_heads);

// The bias a relative encoding adds to head h's logits, as a function of j - i: entry
// (j - i) + (n_q - 1) of the returned vector (length n_q + n_k - 1). Empty for kinds without a bias.
std::vector<float> relative_bias(const Session::Positional& p, std::uint64_t seed, int head, int n_heads, int n_q,
                                 int n_k);

}  // namespace attnlab
