#include "present/field_view.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnlab {

PooledTile pool_field_tile(const HeadField& f, const FieldHeadSpec& spec, int r0, int r1, int c0, int c1, int factor,
                           bool mean) {
  PooledTile t;
  factor = std::max(1, factor);
  const int nr = std::max(0, r1 - r0), nc = std::max(0, c1 - c0);
  t.rows = (nr + factor - 1) / factor;
  t.cols = (nc + factor - 1) / factor;
  t.value.assign(std::size_t(t.rows) * t.cols, 0.0f);
  t.shown.assign(std::size_t(t.rows) * t.cols, 0);
  if (!nr || !nc) return t;
  std::vector<std::pair<int, int>> spans;
  for (int a = 0; a < t.rows; ++a) {
    const int i0 = r0 + a * factor, i1 = std::min(r1, i0 + factor);
    // the strip's allowed columns inside [c0, c1): nothing to compute when there are none
    int lo = c1, hi = c0;
    for (int i = i0; i < i1; ++i) {
      spec.rule->spans(i, spans);
      for (const auto& [x, y] : spans)
        if (y > c0 && x < c1) lo = std::min(lo, std::max(x, c0)), hi = std::max(hi, std::min(y, c1));
    }
    if (lo >= hi) continue;
    const Matrix l = field_tile(f, spec, i0, i1, lo, hi, true);  // logits, -inf where masked
    for (int i = 0; i < l.rows(); ++i) {
      for (int j = 0; j < l.cols(); ++j) {
        const float x = l(i, j);
        if (x == -std::numeric_limits<float>::infinity()) continue;
        const float w = field_weight(f, i0 + i, x * spec.inv_t);
        const std::size_t o = std::size_t(a) * t.cols + (lo + j - c0) / factor;
        t.shown[o] = 1;
        t.value[o] = mean ? t.value[o] + w : std::max(t.value[o], w);
      }
    }
    if (mean)
      for (int b = 0; b < t.cols; ++b) {
        const int cc = std::min(c1, c0 + (b + 1) * factor) - (c0 + b * factor);
        t.value[std::size_t(a) * t.cols + b] /= float(i1 - i0) * float(cc);
      }
  }
  return t;
}

FieldCell field_cell(const HeadField& f, const FieldHeadSpec& spec, int i, int j) {
  FieldCell c;
  const Matrix l = field_tile(f, spec, i, i + 1, j, j + 1, true);
  c.logit = l(0, 0);
  c.allowed = c.logit != -std::numeric_limits<float>::infinity();
  c.weight = c.allowed ? field_weight(f, i, c.logit * spec.inv_t) : 0.0f;
  return c;
}

}  // namespace attnlab
