#include "analysis/metrics.hpp"

#include <algorithm>
#include <cmath>

namespace attnlab {

namespace {
using Array = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows of w as distributions (w_i / sum_j w_ij); rows with no weight stay zero and are flagged.
// Effective weights below zero (Linformer, Nystromformer) count as zero.
template <class M>
Array distributions(const M& w, std::vector<char>& has_weight) {
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
    m.sink_mass += p.row(i).head(std::min<Eigen::Index>(kSinkTokens, n_k)).sum();
    const long allowed = a.row(i).cast<long>().sum();
    if (allowed >= 2) m.entropy_normalized += ent(i) / std::log(double(allowed)), ++norm_rows;
  }
  if (rows) m.entropy /= rows, m.mean_distance /= rows, m.max_weight /= rows, m.first_token /= rows, m.sink_mass /= rows;
  if (norm_rows) m.entropy_normalized /= norm_rows;
  return m;
}

Matrix head_similarity(const std::vector<HeadResult>& heads) {
  const int n = static_cast<int>(heads.size());
  Matrix js = Matrix::Zero(n, n);
  if (n == 0) return js;
  const int n_q = static_cast<int>(heads[0].weights.rows());
  // Row blocks, so that only a block of every head's distributions is alive at once (all of them
  // at n = 4096 and 12 heads were 1.6 GB); per pair, the sum of its rows' divergences and the
  // count of rows where both heads attend, added up over the blocks.
  constexpr int kRows = 32;
  const int n_blocks = (n_q + kRows - 1) / kRows;
  // per block, then added in block order: the same sums whatever thread did which block
  std::vector<double> block_total(std::size_t(n_blocks) * n * n, 0.0);
  std::vector<long> block_rows(std::size_t(n_blocks) * n * n, 0);
#pragma omp parallel
  {
    std::vector<Array> p(n), plp(n);
    std::vector<std::vector<char>> has(n);
#pragma omp for schedule(dynamic, 1)
    for (int b = 0; b < n_blocks; ++b) {
      const int r0 = b * kRows, r1 = std::min(n_q, r0 + kRows);
      double* total = &block_total[std::size_t(b) * n * n];
      long* rows = &block_rows[std::size_t(b) * n * n];
      for (int h = 0; h < n; ++h) {
        p[h] = distributions(heads[h].weights.middleRows(r0, r1 - r0), has[h]);
        plp[h] = plogp(p[h]);
      }
      for (int x = 0; x < n; ++x)
        for (int y = x + 1; y < n; ++y) {
          // JS(p, q) = (sum p ln p + sum q ln q) / 2 - sum m ln m, m = (p + q) / 2, per row
          const Array mix = 0.5f * (p[x] + p[y]);
          const Array row_js = 0.5f * (plp[x] + plp[y]).rowwise().sum() - plogp(mix).rowwise().sum();
          for (Eigen::Index i = 0; i < row_js.rows(); ++i)
            if (has[x][i] && has[y][i]) total[x * n + y] += std::max(0.0f, row_js(i)), ++rows[x * n + y];
        }
    }
  }
  std::vector<double> total(n * n, 0.0);
  std::vector<long> rows(n * n, 0);
  for (int b = 0; b < n_blocks; ++b)
    for (int k = 0; k < n * n; ++k) total[k] += block_total[std::size_t(b) * n * n + k], rows[k] += block_rows[std::size_t(b) * n * n + k];
  for (int x = 0; x < n; ++x)
    for (int y = x + 1; y < n; ++y)
      js(x, y) = js(y, x) = rows[x * n + y] ? static_cast<float>(total[x * n + y] / rows[x * n + y]) : 0.0f;
  return js;
}

}  // namespace attnlab
