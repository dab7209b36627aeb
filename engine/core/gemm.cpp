#include "core/gemm.hpp"

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

const char* gemm_backend() {
#if ATTNLAB_HAVE_CBLAS
  return "openblas";
#else
  return "eigen";
#endif
}

}  // namespace attnlab
