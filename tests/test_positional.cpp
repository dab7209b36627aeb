#include <doctest/doctest.h>

#include "positional.hpp"
#include "test_util.hpp"

using namespace attnlab;

TEST_CASE("positional: sinusoidal matches the reference to 1e-6") {
  const auto g = test::golden("sinusoidal.json");
  const Matrix pe = sinusoidal_encoding(g["n"], g["d"]);
  test::check_matrix(pe, g["pe"], 1e-6, 0, "sinusoidal (7, 10)");
}

TEST_CASE("positional: sinusoidal by hand - position 0 is (0, 1, 0, 1, ...), odd d ends in a sine") {
  const Matrix pe = sinusoidal_encoding(3, 5);
  for (int c = 0; c < 5; ++c) CHECK(pe(0, c) == (c % 2 ? 1.0f : 0.0f));
  CHECK(pe(1, 0) == doctest::Approx(std::sin(1.0)));
  CHECK(pe(2, 1) == doctest::Approx(std::cos(2.0)));
  CHECK(pe(1, 4) == doctest::Approx(std::sin(1.0 / std::pow(10000.0, 4.0 / 5))));
}
