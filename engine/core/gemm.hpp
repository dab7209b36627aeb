// C = A B for the large, dense projection GEMMs. Uses OpenBLAS (its OpenMP build, sharing our
// threads) when the build found it: on these 2-core Zen 4 machines it reaches ~195 GFLOP/s on
// (1024 x 768) x (768 x 2304) against Eigen's ~140. Falls back to Eigen otherwise.
#pragma once

#include "core/tensor.hpp"

namespace attnlab {

void matmul(const Matrix& a, const Matrix& b, Matrix& c);  // c is resized to (a.rows(), b.cols())
const char* gemm_backend();

// Row-major blocks given by pointer and leading dimension (elements between rows):
// c (m, n) = alpha * a (m, k) * b(n, k)^T        (scores: q k^T)
void gemm_nt(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float* c, int ldc);
// c (m, n) = a (m, k) * b (k, n) + beta c        (weighted sum: w v; beta 1 accumulates)
void gemm_nn(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
             float beta = 0.0f);

}  // namespace attnlab
