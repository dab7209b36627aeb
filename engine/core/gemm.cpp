#include "core/gemm.hpp"

#include <cstdlib>
#include <cstring>

#include <unistd.h>

#if ATTNLAB_HAVE_CBLAS
#include <cblas.h>
#endif

namespace attnlab {

void matmul(const Matrix& a, const Matrix& b, Matrix& c) {
  c.resize(a.rows(), b.cols());
#if ATTNLAB_HAVE_CBLAS
  if (a.size() && b.size()) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(a.rows()), static_cast<int>(b.cols()),
                static_cast<int>(a.cols()), 1.0f, a.data(), static_cast<int>(a.cols()), b.data(),
                static_cast<int>(b.cols()), 0.0f, c.data(), static_cast<int>(c.cols()));
    return;
  }
#endif
  c.noalias() = a * b;
}

void gemm_nt(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
#if ATTNLAB_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc);
#else
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<const Matrix, 0, Stride> A(a, m, k, Stride(lda)), B(b, n, k, Stride(ldb));
  Eigen::Map<Matrix, 0, Stride> C(c, m, n, Stride(ldc));
  C.noalias() = alpha * A * B.transpose();
#endif
}

void gemm_nn(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc, float beta) {
#if ATTNLAB_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
#else
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<const Matrix, 0, Stride> A(a, m, k, Stride(lda)), B(b, k, n, Stride(ldb));
  Eigen::Map<Matrix, 0, Stride> C(c, m, n, Stride(ldc));
  if (beta == 0.0f)
    C.noalias() = A * B;
  else
    C = beta * C + A * B;
#endif
}

const char* better_blas_core(const char* chosen, bool avx512, bool avx2_fma) {
  // the cores OpenBLAS falls back to, whose kernels use SSE only (or AVX without FMA)
  static const char* const kOld[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
                                     "Katmai",   "Coppermine", "Northwood", "Banias", "Sandybridge", "Unknown"};
  bool old = false;
  for (const char* c : kOld) old |= std::strcmp(chosen, c) == 0;
  if (!old) return "";
  if (avx512) return "SkylakeX";
  if (avx2_fma) return "Haswell";
  return "";
}

const char* blas_core() {
#if ATTNLAB_HAVE_CBLAS
  const char* c = openblas_get_corename();
  return c ? c : "";
#else
  return "";
#endif
}

const char* wanted_blas_core() {
#if ATTNLAB_HAVE_CBLAS && defined(__x86_64__)
  __builtin_cpu_init();
  // libgcc's checks include the OS's support of the registers (XCR0)
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return better_blas_core(blas_core(), avx512, avx2_fma);
#else
  return "";
#endif
}

void choose_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // the user's, or this function's on the second run
  const char* want = wanted_blas_core();
  if (!*want || !argv || !argv[0]) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run on with the slower kernels
}

const char* gemm_backend() {
#if ATTNLAB_HAVE_CBLAS
  return "openblas";
#else
  return "eigen";
#endif
}

}  // namespace attnlab
