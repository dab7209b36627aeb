#include "attention/block.hpp"

#include <cmath>
#include <string>

#include "attention/embed.hpp"
#include "core/gemm.hpp"

namespace attnlab {

Matrix layer_norm(const Matrix& x) {
  Matrix y(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const double mean = x.row(i).cast<double>().mean();
    const double var = (x.row(i).cast<double>().array() - mean).square().mean();
    y.row(i) = ((x.row(i).cast<double>().array() - mean) / std::sqrt(var + 1e-5)).cast<float>().matrix();
  }
  return y;
}

float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x / std::sqrt(2.0f))); }

FfnWeights ffn_weights(std::uint64_t seed, int layer, int d_model, int ffn_mult) {
  const std::string p = "layer" + std::to_string(layer) + ".";
  return {glorot_normal(seed, p + "W_ff1", d_model, ffn_mult * d_model),
          glorot_normal(seed, p + "W_ff2", ffn_mult * d_model, d_model)};
}

Matrix ffn(const Matrix& x, const FfnWeights& w) {
  Matrix h, out;
  matmul(x, w.w1, h);
  h = h.unaryExpr([](float v) { return gelu(v); });
  matmul(h, w.w2, out);
  return out;
}

std::vector<Matrix> attention_rollout(const std::vector<Matrix>& mean_weights, bool residual) {
  std::vector<Matrix> out;
  Matrix acc;
  for (const Matrix& a : mean_weights) {
    // Effective weights of Linformer and Nystromformer can be negative, and rows of sigmoid
    // attention need not sum to 1; rollout reads each row as a distribution, so negative
    // weights count as 0 (as the metrics do) before the rows are renormalised.
    Matrix m = a.cwiseMax(0.0f);
    if (residual) m = 0.5f * (m + Matrix::Identity(m.rows(), m.cols()));
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      if (const float sum = m.row(i).sum(); sum > 0) m.row(i) /= sum;
    if (acc.size()) {
      Matrix next;
      matmul(m, acc, next);  // OpenBLAS: n^3 per layer (an Eigen product was 6 % of GPT-2's forward at 1024)
      acc = std::move(next);
    } else {
      acc = m;
    }
    out.push_back(acc);
  }
  return out;
}

}  // namespace attnlab
