#include "present/display.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnlab {

const char* name(RangeMode m) {
  switch (m) {
    case RangeMode::global: return "global";
    case RangeMode::per_head: return "per_head";
    case RangeMode::per_row: return "per_row";
  }
  return "global";
}

bool parse_range_mode(const std::string& s, RangeMode& out) {
  for (RangeMode m : {RangeMode::global, RangeMode::per_head, RangeMode::per_row})
    if (s == name(m)) {
      out = m;
      return true;
    }
  return false;
}

float display_value(float v, bool log) { return log ? std::log10(std::max(v, kLogFloor)) : v; }

ValueRange value_range(const Matrix& m, const MaskMatrix* shown, bool log, bool from_zero) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      if (shown && !(*shown)(i, j)) continue;
      const float v = m(i, j);
      if (!std::isfinite(v)) continue;
      const float d = display_value(v, log);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
  if (!std::isfinite(lo)) return {0, 1};
  if (from_zero && !log) lo = std::min(lo, 0.0f);
  if (!(hi > lo)) hi = lo + 1;
  return {lo, hi};
}

ValueRange merge(ValueRange a, ValueRange b) { return {std::min(a.lo, b.lo), std::max(a.hi, b.hi)}; }

void normalise_rows(Matrix& d, const MaskMatrix* shown, bool from_zero) {
  for (Eigen::Index i = 0; i < d.rows(); ++i) {
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (Eigen::Index j = 0; j < d.cols(); ++j)
      if ((!shown || (*shown)(i, j)) && std::isfinite(d(i, j))) lo = std::min(lo, d(i, j)), hi = std::max(hi, d(i, j));
    if (!std::isfinite(lo)) continue;
    if (from_zero) lo = std::min(lo, 0.0f);
    const float span = hi > lo ? hi - lo : 1.0f;
    for (Eigen::Index j = 0; j < d.cols(); ++j)
      if ((!shown || (*shown)(i, j)) && std::isfinite(d(i, j))) d(i, j) = hi > lo ? (d(i, j) - lo) / span : 1.0f;
  }
}

}  // namespace attnlab
