// The block map of a mask: what a block-sparse kernel (FlashAttention's block skipping,
// FlexAttention's BlockMask, xFormers' block-sparse) would compute. The (n_q x n_k) mask is cut
// into blocks of bq x bk cells; a block is empty (no allowed cell: skipped), full (every cell
// allowed: computed without a mask) or partial (computed, then masked). Counted from the
// rule's spans, O(n + spans + blocks): no n x n bitmap, at any length.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/field.hpp"
#include "core/tensor.hpp"

namespace attnlab {

enum class BlockState : std::uint8_t { empty = 0, partial = 1, full = 2 };

struct BlockMap {
  int n_q = 0, n_k = 0, bq = 1, bk = 1, rows = 0, cols = 0;  // rows x cols blocks (the last ones may be smaller)
  std::vector<BlockState> kind;                                // row-major, rows * cols
  long long full = 0, partial = 0, empty = 0;
  long long allowed = 0;      // allowed cells
  long long computed = 0;     // cells of the full and partial blocks: what a block-sparse kernel computes
  BlockState at(int r, int c) const { return kind[std::size_t(r) * cols + c]; }
  double dense() const { return double(n_q) * n_k; }
  // the fraction of a dense kernel's score FLOPs a block-sparse kernel saves
  double saving() const { return dense() > 0 ? 1.0 - double(computed) / dense() : 0.0; }
};

BlockMap block_map(const MaskRule& rule, int bq, int bk);
BlockMap block_map(const MaskMatrix& allowed, int bq, int bk);

}  // namespace attnlab
