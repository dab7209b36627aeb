// Eigen aliases shared by the whole engine. Row-major so that a row is a token.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace attnlab {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::Matrix<float, Eigen::Dynamic, 1>;
using RowVector = Eigen::Matrix<float, 1, Eigen::Dynamic>;
// allowed[i][j] = 1 when query i may attend to key j.
using MaskMatrix = Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Eigen aligns dynamic buffers to EIGEN_MAX_ALIGN_BYTES, which depends on the instruction set
// the translation unit was compiled for. Code built with other flags than the engine library
// would allocate and free its matrices differently (a "double free" abort), so every file that
// includes this header references a symbol named after its alignment; the library defines only
// its own (core/abi.cpp), and a mismatch is a link error instead of a crash.
#define ATTNLAB_ABI_CAT2(a, b) a##b
#define ATTNLAB_ABI_CAT(a, b) ATTNLAB_ABI_CAT2(a, b)
#define ATTNLAB_EIGEN_ALIGN_SYMBOL ATTNLAB_ABI_CAT(attnlab_built_with_eigen_align_, EIGEN_MAX_ALIGN_BYTES)
extern "C" const int ATTNLAB_EIGEN_ALIGN_SYMBOL;
[[gnu::used]] static const int* const kEigenAlignCheck = &ATTNLAB_EIGEN_ALIGN_SYMBOL;

}  // namespace attnlab
