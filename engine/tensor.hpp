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

}  // namespace attnlab
