#include "analysis/blocks.hpp"

#include <algorithm>

namespace attnlab {

namespace {

BlockMap shape(int n_q, int n_k, int bq, int bk) {
  BlockMap m;
  m.n_q = n_q, m.n_k = n_k;
  m.bq = std::max(1, bq), m.bk = std::max(1, bk);
  m.rows = (n_q + m.bq - 1) / m.bq, m.cols = (n_k + m.bk - 1) / m.bk;
  m.kind.assign(std::size_t(m.rows) * m.cols, BlockState::empty);
  return m;
}

// one block row: its blocks' allowed counts -> kinds and totals
void classify_row(BlockMap& m, int r, const std::vector<long long>& count) {
  const int h = std::min(m.bq, m.n_q - r * m.bq);
  for (int c = 0; c < m.cols; ++c) {
    const int w = std::min(m.bk, m.n_k - c * m.bk);
    const long long area = (long long)h * w;
    BlockState& k = m.kind[std::size_t(r) * m.cols + c];
    k = count[c] == 0 ? BlockState::empty : count[c] == area ? BlockState::full : BlockState::partial;
    m.allowed += count[c];
    if (k == BlockState::empty) ++m.empty;
    else (k == BlockState::full ? m.full : m.partial) += 1, m.computed += area;
  }
}

}  // namespace

BlockMap block_map(const MaskRule& rule, int bq, int bk) {
  BlockMap m = shape(rule.n_q(), rule.n_k(), bq, bk);
  std::vector<long long> count(m.cols), whole(m.cols + 1);
  std::vector<std::pair<int, int>> spans;
  for (int r = 0; r < m.rows; ++r) {
    std::fill(count.begin(), count.end(), 0);
    std::fill(whole.begin(), whole.end(), 0);
    for (int i = r * m.bq; i < std::min(m.n_q, (r + 1) * m.bq); ++i) {
      rule.spans(i, spans);
      for (const auto& [a, b] : spans) {
        // the blocks a span covers whole get one row each (a difference array), its two ends
        // their cells
        const int ca = a / m.bk, cb = (b - 1) / m.bk;
        if (ca == cb) {
          count[ca] += b - a;
          continue;
        }
        count[ca] += (ca + 1) * m.bk - a;
        count[cb] += b - cb * m.bk;
        if (cb > ca + 1) whole[ca + 1] += 1, whole[cb] -= 1;
      }
    }
    long long run = 0;
    for (int c = 0; c < m.cols; ++c) {
      run += whole[c];
      count[c] += run * std::min(m.bk, m.n_k - c * m.bk);
    }
    classify_row(m, r, count);
  }
  return m;
}

BlockMap block_map(const MaskMatrix& allowed, int bq, int bk) {
  BlockMap m = shape(static_cast<int>(allowed.rows()), static_cast<int>(allowed.cols()), bq, bk);
  std::vector<long long> count(m.cols);
  for (int r = 0; r < m.rows; ++r) {
    std::fill(count.begin(), count.end(), 0);
    for (int i = r * m.bq; i < std::min(m.n_q, (r + 1) * m.bq); ++i)
      for (int j = 0; j < m.n_k; ++j) count[j / m.bk] += allowed(i, j) != 0;
    classify_row(m, r, count);
  }
  return m;
}

}  // namespace attnlab
