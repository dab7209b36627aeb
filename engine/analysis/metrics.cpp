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

HeadMetrics head_metrics(const HeadResult& h, int sink_tokens) {
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
    m.sink_mass += p.row(i).head(std::clamp<Eigen::Index>(sink_tokens, 0, n_k)).sum();
    const long allowed = a.row(i).cast<long>().sum();
    if (allowed >= 2) m.entropy_normalized += ent(i) / std::log(double(allowed)), ++norm_rows;
  }
  if (rows) m.entropy /= rows, m.mean_distance /= rows, m.max_weight /= rows, m.first_token /= rows, m.sink_mass /= rows;
  if (norm_rows) m.entropy_normalized /= norm_rows;
  return m;
}

Matrix head_similarity(const std::vector<HeadResult>& heads) {
  const int n = static_cast<int>(heads.size());
  if (n == 0) return Matrix::Zero(0, 0);
  const int n_q = static_cast<int>(heads[0].weights.rows());
  // Row blocks, so that only a block of every head's distributions is alive at once (all of them
  // at n = 4096 and 12 heads were 1.6 GB)
  constexpr int kRows = 32;
  return head_similarity_blocks(n, (n_q + kRows - 1) / kRows, [&](int b, int h, Matrix& w) {
    const int r0 = b * kRows, r1 = std::min(n_q, r0 + kRows);
    w = heads[h].weights.middleRows(r0, r1 - r0);
  });
}

Matrix head_similarity_blocks(int n, int n_blocks, const std::function<void(int, int, Matrix&)>& block_weights,
                              const CancelFlag* cancel, long* rows_read) {
  Matrix js = Matrix::Zero(n, n);
  if (rows_read) *rows_read = 0;
  if (n == 0 || n_blocks <= 0) return js;
  // per pair, the sum of its rows' divergences and the count of rows where both heads attend,
  // per block, then added in block order: the same sums whatever thread did which block
  std::vector<double> block_total(std::size_t(n_blocks) * n * n, 0.0);
  std::vector<long> block_rows(std::size_t(n_blocks) * n * n, 0), block_n(n_blocks, 0);
#pragma omp parallel
  {
    std::vector<Array> p(n);
    std::vector<Eigen::ArrayXf> plp(n);  // per head, sum_j p ln p of each row
    std::vector<std::vector<char>> has(n);
    Matrix w;
#pragma omp for schedule(dynamic, 1)
    for (int b = 0; b < n_blocks; ++b) {
      if (cancel_requested(cancel)) continue;
      double* total = &block_total[std::size_t(b) * n * n];
      long* rows = &block_rows[std::size_t(b) * n * n];
      for (int h = 0; h < n; ++h) {
        block_weights(b, h, w);
        p[h] = distributions(w, has[h]);
        plp[h] = plogp(p[h]).rowwise().sum();
      }
      block_n[b] = static_cast<long>(w.rows());
      for (int x = 0; x < n; ++x)
        for (int y = x + 1; y < n; ++y)
          for (Eigen::Index i = 0; i < p[x].rows(); ++i) {
            if (!has[x][i] || !has[y][i]) continue;
            // JS(p, q) = (sum p ln p + sum q ln q) / 2 - sum m ln m, m = (p + q) / 2, per row; one
            // pass over the row (Eigen fuses the expression, the log vectorised)
            const auto m = 0.5f * (p[x].row(i) + p[y].row(i));
            const float mlm = (m * m.max(1e-30f).log()).sum();
            total[x * n + y] += std::max(0.0f, 0.5f * (plp[x](i) + plp[y](i)) - mlm), ++rows[x * n + y];
          }
    }
  }
  if (cancel_requested(cancel)) return Matrix(0, 0);
  std::vector<double> total(n * n, 0.0);
  std::vector<long> rows(n * n, 0);
  for (int b = 0; b < n_blocks; ++b) {
    for (int k = 0; k < n * n; ++k) total[k] += block_total[std::size_t(b) * n * n + k], rows[k] += block_rows[std::size_t(b) * n * n + k];
    if (rows_read) *rows_read += block_n[b];
  }
  for (int x = 0; x < n; ++x)
    for (int y = x + 1; y < n; ++y)
      js(x, y) = js(y, x) = rows[x * n + y] ? static_cast<float>(total[x * n + y] / rows[x * n + y]) : 0.0f;
  return js;
}

Matrix field_head_similarity(const FieldLayer& f, long long max_cells, long* rows_read, const CancelFlag* cancel) {
  const int n = static_cast<int>(f.heads.size());
  if (n == 0 || !f.rule) return Matrix::Zero(0, 0);
  const int n_q = f.rule->n_q(), n_k = f.rule->n_k();
  constexpr int kRows = 32;
  const int all = (n_q + kRows - 1) / kRows;
  // each block's columns: from its rows' first allowed key to their last; its cells are what
  // the budget counts (a sliding window's blocks are narrow)
  std::vector<std::pair<int, int>> all_cols(all);
  std::vector<std::pair<int, int>> spans;
  double cells = 0;
  for (int b = 0; b < all; ++b) {
    int c0 = n_k, c1 = 0;
    const int r0 = b * kRows, r1 = std::min(n_q, r0 + kRows);
    for (int r = r0; r < r1; ++r) {
      f.rule->spans(r, spans);
      if (!spans.empty()) c0 = std::min(c0, spans.front().first), c1 = std::max(c1, spans.back().second);
    }
    all_cols[b] = c0 < c1 ? std::make_pair(c0, c1) : std::make_pair(0, 0);
    cells += double(r1 - r0) * (all_cols[b].second - all_cols[b].first);
  }
  std::vector<int> blocks;
  if (cells <= double(max_cells)) {
    for (int b = 0; b < all; ++b) blocks.push_back(b);
  } else {
    const int k = std::clamp(static_cast<int>(double(all) * double(max_cells) / cells), 1, all);
    for (int i = 0; i < k; ++i) {
      const int b = k == 1 ? 0 : static_cast<int>((long long)i * (all - 1) / (k - 1));
      if (blocks.empty() || blocks.back() != b) blocks.push_back(b);
    }
  }
  std::vector<std::pair<int, int>> cols;
  for (int b : blocks) cols.push_back(all_cols[b]);
  return head_similarity_blocks(n, static_cast<int>(blocks.size()), [&](int i, int h, Matrix& w) {
    const int r0 = blocks[i] * kRows, r1 = std::min(n_q, r0 + kRows);
    w = field_tile(f.heads[h], f.specs[h], r0, r1, cols[i].first, cols[i].second, false);
  }, cancel, rows_read);
}

}  // namespace attnlab
