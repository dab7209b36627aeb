#include "metrics.hpp"

#include <cmath>

namespace attnlab {

namespace {
using Array = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows of w as distributions (w_i / sum_j w_ij); rows with no weight stay zero and are flagged.
// Effective weights below zero (Linformer, Nystromformer) count as zero.
Array distributions(const Matrix& w, std::vector<char>& has_weight) {
  Array p = w.array().max(0.0f);
  has_weight.assign(w.rows(), 0);
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    const float sum = p.row(i).sum();
    if (sum > 0) p.row(i) /= sum, has_weight[i] = 1;
  }
  return p;
}

// p ln p with 0 ln 0 = 0: p ln max(p, 1e-30) is exactly 0 where p = 0 (p >= 0 here). A select()
// would be clearer but keeps Eigen from vectorising the log (5x slower, measured).
Array plogp(const Array& p) { return p * p.max(1e-30f).log(); }
}  // namespace

HeadMetrics head_metrics(const HeadResult& h) {
  HeadMetrics m;
  const Eigen::Index n_q = h.weights.rows(), n_k = h.weights.cols();
  const MaskMatrix& a = *h.allowed;
  m.density = n_q > 0 && n_k > 0 ? double(a.cast<long>().sum()) / double(n_q * n_k) : 0;
  std::vector<char> has;
  const Array p = distributions(h.weights, has);
  const Array ent = -plogp(p).rowwise().sum();  // (n_q, 1) entropy per row
  Eigen::Array<float, 1, Eigen::Dynamic> key_index(n_k);
  for (Eigen::Index j = 0; j < n_k; ++j) key_index(j) = static_cast<float>(j);
  int rows = 0, norm_rows = 0;
  for (Eigen::Index i = 0; i < n_q; ++i) {
    if (!has[i]) continue;
    ++rows;
    m.entropy += ent(i);
    m.mean_distance += (p.row(i) * (key_index - float(i)).abs()).sum();
    m.max_weight += p.row(i).maxCoeff();
    m.first_token += p(i, 0);
    const long allowed = a.row(i).cast<long>().sum();
    if (allowed >= 2) m.entropy_normalized += ent(i) / std::log(double(allowed)), ++norm_rows;
  }
  if (rows) m.entropy /= rows, m.mean_distance /= rows, m.max_weight /= rows, m.first_token /= rows;
  if (norm_rows) m.entropy_normalized /= norm_rows;
  return m;
}

Matrix head_similarity(const std::vector<HeadResult>& heads) {
  const int n = static_cast<int>(heads.size());
  Matrix js = Matrix::Zero(n, n);
  if (n == 0) return js;
  std::vector<Array> p(n), plp(n);
  std::vector<std::vector<char>> has(n);
#pragma omp parallel for
  for (int h = 0; h < n; ++h) {
    p[h] = distributions(heads[h].weights, has[h]);
    plp[h] = plogp(p[h]);
  }
  std::vector<std::pair<int, int>> pairs;
  for (int a = 0; a < n; ++a)
    for (int b = a + 1; b < n; ++b) pairs.emplace_back(a, b);
#pragma omp parallel for schedule(dynamic, 1)
  for (int k = 0; k < static_cast<int>(pairs.size()); ++k) {
    const auto [a, b] = pairs[k];
    // JS(p, q) = (sum p ln p + sum q ln q) / 2 - sum m ln m, m = (p + q) / 2, per row
    const Array mix = 0.5f * (p[a] + p[b]);
    const Array row_js = 0.5f * (plp[a] + plp[b]).rowwise().sum() - plogp(mix).rowwise().sum();
    double total = 0;
    int rows = 0;
    for (Eigen::Index i = 0; i < row_js.rows(); ++i)
      if (has[a][i] && has[b][i]) total += std::max(0.0f, row_js(i)), ++rows;
    js(a, b) = js(b, a) = rows ? static_cast<float>(total / rows) : 0.0f;
  }
  return js;
}

}  // namespace attnlab
