#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "core/gemm.hpp"

int main(int argc, char** argv) {
  attnlab::choose_blas_kernels(argv);  // the suite runs on the kernels the app and CLI run on
  doctest::Context context(argc, argv);
  return context.run();
}
