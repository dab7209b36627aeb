// What the window draws of a long sequence's head, at any zoom: blocks of its weights pooled
// exactly from the field (attention/field.hpp) - the tile pyramid's tiles - and a single cell.
#pragma once

#include "attention/field.hpp"
#include "core/tensor.hpp"

namespace attnlab {

// Cells [r0, r1) x [c0, c1) pooled `factor` x `factor` into ceil(rows / factor) x ceil(cols / factor)
// texels: the max of each block's weights, or their mean (masked cells count as 0), exactly as the
// field's overview pools; shown: the block has an allowed cell. Blocks the mask leaves empty cost
// nothing (no scores are computed for row strips whose spans miss the columns).
struct PooledTile {
  int rows = 0, cols = 0;     // texels
  std::vector<float> value;   // rows * cols, row-major
  std::vector<char> shown;
};
PooledTile pool_field_tile(const HeadField& f, const FieldHeadSpec& spec, int r0, int r1, int c0, int c1, int factor,
                           bool mean);

// One cell, exactly: its logit (-inf when masked) and weight (0 when masked).
struct FieldCell {
  bool allowed = false;
  float logit = 0, weight = 0;
};
FieldCell field_cell(const HeadField& f, const FieldHeadSpec& spec, int i, int j);

}  // namespace attnlab
