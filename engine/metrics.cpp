#include "metrics.hpp"

#include <cmath>

namespace attnlab {

namespace {
// Row i of w as a distribution; false when the row has no weight.
bool row_distribution(const Matrix& w, Eigen::Index i, RowVector& p) {
  const double sum = w.row(i).cast<double>().sum();
  if (!(sum > 0)) return false;
  p = w.row(i) / static_cast<float>(sum);
  return true;
}
}  // namespace

HeadMetrics head_metrics(const HeadResult& h) {
  HeadMetrics m;
  const Eigen::Index n_q = h.weights.rows(), n_k = h.weights.cols();
  const MaskMatrix& a = *h.allowed;
  m.density = n_q > 0 && n_k > 0 ? double(a.cast<long>().sum()) / double(n_q * n_k) : 0;
  RowVector p;
  int rows = 0, norm_rows = 0;
  for (Eigen::Index i = 0; i < n_q; ++i) {
    if (!row_distribution(h.weights, i, p)) continue;
    ++rows;
    double entropy = 0, distance = 0;
    for (Eigen::Index j = 0; j < n_k; ++j) {
      const double pj = p(j);
      if (pj > 0) entropy -= pj * std::log(pj);
      distance += pj * std::abs(double(i - j));
    }
    m.entropy += entropy;
    m.mean_distance += distance;
    m.max_weight += p.maxCoeff();
    m.first_token += p(0);
    const long allowed = a.row(i).cast<long>().sum();
    if (allowed >= 2) {
      m.entropy_normalized += entropy / std::log(double(allowed));
      ++norm_rows;
    }
  }
  if (rows) m.entropy /= rows, m.mean_distance /= rows, m.max_weight /= rows, m.first_token /= rows;
  if (norm_rows) m.entropy_normalized /= norm_rows;
  return m;
}

Matrix head_similarity(const std::vector<HeadResult>& heads) {
  const int n = static_cast<int>(heads.size());
  Matrix js = Matrix::Zero(n, n);
  if (n == 0) return js;
  const Eigen::Index n_q = heads[0].weights.rows();
  for (int a = 0; a < n; ++a) {
    for (int b = a + 1; b < n; ++b) {
      double total = 0;
      int rows = 0;
      RowVector p, q;
      for (Eigen::Index i = 0; i < n_q; ++i) {
        if (!row_distribution(heads[a].weights, i, p) || !row_distribution(heads[b].weights, i, q)) continue;
        // JS(p, q) = (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2
        double d = 0;
        for (Eigen::Index j = 0; j < p.size(); ++j) {
          const double m = 0.5 * (double(p(j)) + q(j));
          if (p(j) > 0) d += 0.5 * p(j) * std::log(p(j) / m);
          if (q(j) > 0) d += 0.5 * q(j) * std::log(q(j) / m);
        }
        total += d;
        ++rows;
      }
      js(a, b) = js(b, a) = rows ? static_cast<float>(total / rows) : 0.0f;
    }
  }
  return js;
}

}  // namespace attnlab
