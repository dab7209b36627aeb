#include "attention/kernels.hpp"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/rng.hpp"

namespace attnlab {

ApproxError approx_error(const Matrix& w, const Matrix& out, const Matrix& w_exact, const Matrix& out_exact) {
  ApproxError e;
  e.max_weight_error = (w - w_exact).cwiseAbs().maxCoeff();
  const double norm = out_exact.cast<double>().norm();
  e.output_error = norm > 0 ? (out - out_exact).cast<double>().norm() / norm : 0.0;
  return e;
}

void flash_attention(int n_q, int n_k, const Matrix& v, int block_rows, int block_cols, const ScoreTile& score_tile,
                     Matrix& weights, Matrix& output, std::vector<FlashTile>* trace, const float* sink,
                     std::vector<float>* sink_weight) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int d = static_cast<int>(v.cols());
  output.setZero(n_q, d);
  weights.setZero(n_q, n_k);
  if (sink_weight) sink_weight->assign(sink ? n_q : 0, 1.0f);
  Matrix s;
  for (int r0 = 0; r0 < n_q; r0 += block_rows) {
    const int rows = std::min(block_rows, n_q - r0);
    // the sink as the state before the first tile: max = its logit, sum = exp(0) = 1, no value
    std::vector<float> m(rows, sink ? *sink : neg_inf), l(rows, sink ? 1.0f : 0.0f);
    Matrix o = Matrix::Zero(rows, d);
    for (int c0 = 0; c0 < n_k; c0 += block_cols) {
      const int cols = std::min(block_cols, n_k - c0);
      score_tile(r0, rows, c0, cols, s);  // (rows, cols)
      for (int i = 0; i < rows; ++i) {
        const float m_new = std::max(m[i], s.row(i).maxCoeff());
        if (m_new == neg_inf) continue;  // nothing allowed yet in this row
        // rescale what was accumulated under the old max, then add this tile
        const float rescale = m[i] == neg_inf ? 0.0f : std::exp(m[i] - m_new);
        RowVector p(cols);
        for (int j = 0; j < cols; ++j) p(j) = s(i, j) == neg_inf ? 0.0f : std::exp(s(i, j) - m_new);
        l[i] = rescale * l[i] + p.sum();
        o.row(i) = rescale * o.row(i) + p * v.middleRows(c0, cols);
        m[i] = m_new;
      }
      if (trace) trace->push_back({r0, r0 + rows, c0, c0 + cols, m, l});
    }
    for (int i = 0; i < rows; ++i) {
      if (l[i] > 0) output.row(r0 + i) = o.row(i) / l[i];
      if (sink && sink_weight) (*sink_weight)[r0 + i] = std::exp(*sink - m[i]) / l[i];
    }
    // the weights, recomputed from the final statistics (as the backward pass does)
    for (int c0 = 0; c0 < n_k; c0 += block_cols) {
      const int cols = std::min(block_cols, n_k - c0);
      score_tile(r0, rows, c0, cols, s);
      for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j)
          weights(r0 + i, c0 + j) = (l[i] > 0 && s(i, j) != neg_inf) ? std::exp(s(i, j) - m[i]) / l[i] : 0.0f;
    }
  }
}

namespace {

// Weights and output of a positive feature map: w_ij = phi_q_i . phi_k_j / sum_j' (j' <= i when
// causal); the output goes the linear way, phi_q (phi_k^T V) / phi_q (phi_k^T 1), or by prefix sums.
void feature_attention(const Matrix& fq, const Matrix& fk, const Matrix& v, bool causal, Matrix& weights,
                       Matrix& output) {
  const Eigen::Index n_q = fq.rows(), n_k = fk.rows(), d = v.cols();
  weights = fq * fk.transpose();  // (n_q, n_k), for display
  if (causal)
    for (Eigen::Index i = 0; i < n_q; ++i)
      for (Eigen::Index j = i + 1; j < n_k; ++j) weights(i, j) = 0.0f;
  for (Eigen::Index i = 0; i < n_q; ++i)
    if (const float sum = weights.row(i).sum(); sum > 0) weights.row(i) /= sum;
  output.resize(n_q, d);
  if (!causal) {
    const Matrix kv = fk.transpose() * v;              // (features, d)
    const Vector z = fk.colwise().sum().transpose();   // (features)
    for (Eigen::Index i = 0; i < n_q; ++i) output.row(i) = (fq.row(i) * kv) / fq.row(i).dot(z);
  } else {
    Matrix s = Matrix::Zero(fk.cols(), d);  // running sum of phi(k_j) v_j^T
    RowVector z = RowVector::Zero(fk.cols());
    for (Eigen::Index i = 0; i < n_q; ++i) {
      if (i < n_k) s += fk.row(i).transpose() * v.row(i), z += fk.row(i);
      output.row(i) = (fq.row(i) * s) / fq.row(i).dot(z);
    }
  }
}

// Row-wise softmax of a dense matrix.
Matrix softmax_rows(const Matrix& x) {
  Matrix y(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    y.row(i) = (x.row(i).array() - x.row(i).maxCoeff()).exp().matrix();
    y.row(i) /= y.row(i).sum();
  }
  return y;
}

// Means of m row segments [floor(s n / m), floor((s + 1) n / m)).
Matrix segment_means(const Matrix& x, int m) {
  const int n = static_cast<int>(x.rows());
  Matrix out(m, x.cols());
  for (int s = 0; s < m; ++s) {
    const int a = s * n / m, b = (s + 1) * n / m;
    out.row(s) = x.middleRows(a, b - a).colwise().mean();
  }
  return out;
}

}  // namespace

void linear_attention(const Matrix& q, const Matrix& k, const Matrix& v, bool causal, Matrix& weights, Matrix& output) {
  auto phi = [](const Matrix& x) {  // elu(x) + 1
    return Matrix(x.unaryExpr([](float t) { return t > 0 ? t + 1.0f : std::exp(t); }));
  };
  feature_attention(phi(q), phi(k), v, causal, weights, output);
}

Matrix performer_features(std::uint64_t key, int m, int d, bool orthogonal) {
  const int blocks = orthogonal ? (m + d - 1) / d : 1;
  const int rows = orthogonal ? blocks * d : m;
  Matrix g(rows, d), chi(rows, d);
  fill_normal(key, 1.0f, {g.data(), static_cast<std::size_t>(g.size())});
  if (!orthogonal) return g;
  fill_normal(key ^ 0x5DEECE66Dull, 1.0f, {chi.data(), static_cast<std::size_t>(chi.size())});
  Eigen::MatrixXd w(rows, d);
  for (int b = 0; b < blocks; ++b) {
    // modified Gram-Schmidt over the block's d rows, in order, then each row scaled to a chi(d) norm
    for (int r = b * d; r < (b + 1) * d; ++r) {
      Eigen::RowVectorXd x = g.row(r).cast<double>();
      for (int p = b * d; p < r; ++p) x -= x.dot(w.row(p)) * w.row(p);
      w.row(r) = x / x.norm();
    }
    for (int r = b * d; r < (b + 1) * d; ++r) w.row(r) *= chi.row(r).cast<double>().norm();
  }
  return w.topRows(m).cast<float>();
}

void performer_attention(const Matrix& q, const Matrix& k, const Matrix& v, const Matrix& omega, bool causal,
                         Matrix& weights, Matrix& output) {
  const double d = static_cast<double>(q.cols());
  const float s = static_cast<float>(std::pow(d, -0.25));
  const float inv_sqrt_m = static_cast<float>(1.0 / std::sqrt(static_cast<double>(omega.rows())));
  auto phi = [&](const Matrix& x) {  // positive random features of x / d^(1/4)
    const Matrix xs = x * s;
    Matrix f = xs * omega.transpose();  // (n, m)
    for (Eigen::Index i = 0; i < f.rows(); ++i) {
      const float half_norm = 0.5f * xs.row(i).squaredNorm();
      f.row(i) = ((f.row(i).array() - half_norm).exp() * inv_sqrt_m).matrix();
    }
    return f;
  };
  feature_attention(phi(q), phi(k), v, causal, weights, output);
}

void linformer_attention(const Matrix& q, const Matrix& k, const Matrix& v, int projected, std::uint64_t key_e,
                         std::uint64_t key_f, Matrix& weights, Matrix& output) {
  const int n_k = static_cast<int>(k.rows());
  const float stddev = static_cast<float>(1.0 / std::sqrt(static_cast<double>(projected)));
  Matrix e(projected, n_k), f(projected, n_k);
  fill_normal(key_e, stddev, {e.data(), static_cast<std::size_t>(e.size())});
  fill_normal(key_f, stddev, {f.data(), static_cast<std::size_t>(f.size())});
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(q.cols())));
  const Matrix p = softmax_rows(q * (e * k).transpose() * scale);  // (n_q, k)
  output = p * (f * v);
  weights = p * f;  // what multiplies V: rows need not sum to 1, and weights may be negative
}

void nystrom_attention(const Matrix& q, const Matrix& k, const Matrix& v, int landmarks, Matrix& weights,
                       Matrix& output) {
  const int m = std::min({landmarks, static_cast<int>(q.rows()), static_cast<int>(k.rows())});
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(q.cols())));
  const Matrix q_l = segment_means(q, m), k_l = segment_means(k, m);
  const Matrix f = softmax_rows(q * k_l.transpose() * scale);    // (n_q, m)
  const Matrix a = softmax_rows(q_l * k_l.transpose() * scale);  // (m, m)
  const Matrix b = softmax_rows(q_l * k.transpose() * scale);    // (m, n_k)
  // Moore-Penrose pseudo-inverse of A by SVD, in double
  // divide and conquer (as LAPACK gesdd, what numpy uses): ~40x faster than Jacobi at m = 1024
  Eigen::BDCSVD<Eigen::MatrixXd> svd(a.cast<double>(), Eigen::ComputeFullU | Eigen::ComputeFullV);
  const auto& sv = svd.singularValues();
  Eigen::VectorXd inv(sv.size());
  for (Eigen::Index i = 0; i < sv.size(); ++i) inv(i) = sv(i) > 1e-6 * sv(0) ? 1.0 / sv(i) : 0.0;
  const Matrix a_pinv = (svd.matrixV() * inv.asDiagonal() * svd.matrixU().transpose()).cast<float>();
  weights = f * a_pinv * b;
  output = f * (a_pinv * (b * v));
}

}  // namespace attnlab
