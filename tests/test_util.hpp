// Helpers shared by the engine tests: golden files and matrix comparison that says where.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/tensor.hpp"

namespace attnlab::test {

inline nlohmann::json golden(const std::string& name) {
  std::ifstream f(std::string(ATTNLAB_GOLDEN_DIR) + "/" + name);
  REQUIRE_MESSAGE(f.good(), "missing golden file " << name << " (run tests/reference/make_golden.py)");
  return nlohmann::json::parse(f);
}

// Compares m with the JSON matrix `expected` (null = -inf, a masked logit):
// |m - e| <= atol + rtol |e|. On mismatch, reports the max difference and the first bad (i, j).
inline void check_matrix(const Matrix& m, const nlohmann::json& expected, double atol, double rtol,
                         const std::string& what) {
  INFO(what);
  REQUIRE(m.rows() == static_cast<Eigen::Index>(expected.size()));
  double max_diff = 0;
  std::string first_bad;
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    REQUIRE(m.cols() == static_cast<Eigen::Index>(expected[i].size()));
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      const auto& e = expected[i][j];
      if (e.is_null()) {
        if (!(std::isinf(m(i, j)) && m(i, j) < 0) && first_bad.empty()) {
          std::ostringstream s;
          s << "(" << i << ", " << j << ") expected masked (-inf), got " << m(i, j);
          first_bad = s.str();
        }
        continue;
      }
      const double ev = e.get<double>();
      const double diff = std::abs(double(m(i, j)) - ev);
      max_diff = std::max(max_diff, diff);
      if (!(diff <= atol + rtol * std::abs(ev)) && first_bad.empty()) {
        std::ostringstream s;
        s << "(" << i << ", " << j << ") expected " << ev << ", got " << m(i, j);
        first_bad = s.str();
      }
    }
  }
  INFO("max |difference| " << max_diff << "; first mismatch " << (first_bad.empty() ? "none" : first_bad));
  CHECK(first_bad.empty());
}

}  // namespace attnlab::test
