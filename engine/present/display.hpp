// How values become colours, shared by the window and the exported figures: the value range
// (global, per head, per row), an optional log scale, and a colormap.
#pragma once

#include <string>

#include "core/tensor.hpp"

namespace attnlab {

enum class RangeMode { global, per_head, per_row };
const char* name(RangeMode m);
bool parse_range_mode(const std::string& s, RangeMode& out);

inline constexpr float kLogFloor = 1e-4f;  // log scale: weights below 10^-4 share the darkest colour

struct ValueRange {
  float lo = 0, hi = 1;
};

// What the colormap is applied to: log10(max(v, kLogFloor)) with `log`, else v.
float display_value(float v, bool log);

// The range of the finite shown cells of `m` (all cells when `shown` is null), after
// display_value. from_zero (weights without log) starts the range at 0. An empty or flat
// range is widened to (lo, lo + 1).
ValueRange value_range(const Matrix& m, const MaskMatrix* shown, bool log, bool from_zero);
ValueRange merge(ValueRange a, ValueRange b);

// Per-row mode: each row's shown cells mapped to [0, 1] between the row's own min (0 when
// from_zero) and max; other cells are left as they are.
void normalise_rows(Matrix& display, const MaskMatrix* shown, bool from_zero);

}  // namespace attnlab
