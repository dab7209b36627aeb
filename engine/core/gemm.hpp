// C = A B for the large, dense projection GEMMs. Uses OpenBLAS (its OpenMP build, sharing our
// threads) when the build found it: on these 2-core Zen 4 machines it reaches ~195 GFLOP/s on
// (1024 x 768) x (768 x 2304) against Eigen's ~140. Falls back to Eigen otherwise.
#pragma once

#include "core/tensor.hpp"

namespace attnlab {

void matmul(const Matrix& a, const Matrix& b, Matrix& c);  // c is resized to (a.rows(), b.cols())
const char* gemm_backend();

// OpenBLAS picks its kernels when it loads, by the CPU's model number; a model newer than the
// library (Debian 12's 0.3.21 on a Sapphire Rapids Xeon) gets Prescott's SSE3 kernels: 4.6x
// slower (gemm_floor 450 ms against 99 ms with SkylakeX's on such a machine). Called first
// thing in main: when OpenBLAS chose an SSE-only core and the CPU (and the OS) support AVX-512
// or AVX2 + FMA, the process executes itself again with OPENBLAS_CORETYPE naming the matching
// kernels (same pid, arguments and descriptors). A user's own OPENBLAS_CORETYPE is kept.
void choose_blas_kernels(char** argv);
const char* blas_core();  // the kernels OpenBLAS runs ("SkylakeX", "Haswell", "Zen", ...); "" without it
// The core choose_blas_kernels would ask for, given the one OpenBLAS chose and the CPU's
// features; "" to keep it.
const char* better_blas_core(const char* chosen, bool avx512, bool avx2_fma);
// better_blas_core for the core OpenBLAS runs and this CPU's features ("" without OpenBLAS).
const char* wanted_blas_core();

// Row-major blocks given by pointer and leading dimension (elements between rows):
// c (m, n) = alpha * a (m, k) * b(n, k)^T        (scores: q k^T)
void gemm_nt(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float* c, int ldc);
// c (m, n) = a (m, k) * b (k, n) + beta c        (weighted sum: w v; beta 1 accumulates)
void gemm_nn(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
             float beta = 0.0f);

}  // namespace attnlab
