// Finite-difference gradient checking shared by the nn layer tests.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/rng.h"

namespace qatc::test {

inline std::vector<float> random_floats(Rng& rng, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.uniform(lo, hi);
  return v;
}

// Layer tests reduce an output to the scalar L = <out, r> for a fixed random r: then
// dL/dout = r is what is fed to backward, and dL/dx is what finite differences estimate.
inline double dot(const float* a, const float* b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}
inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  return dot(a.data(), b.data(), static_cast<int64_t>(a.size()));
}

// Central differences dL/dx[i] ~ (L(x + eps e_i) - L(x - eps e_i)) / (actual step), for every
// element of x; x is restored afterwards. The step is measured after rounding to float so that
// the estimate is not biased by the representable neighbours of x[i].
inline std::vector<double> numeric_grad(std::vector<float>& x, float eps,
                                        const std::function<double()>& loss) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float saved = x[i];
    const float hi = saved + eps, lo = saved - eps;
    x[i] = hi;
    const double lp = loss();
    x[i] = lo;
    const double lm = loss();
    x[i] = saved;
    g[i] = (lp - lm) / (static_cast<double>(hi) - static_cast<double>(lo));
  }
  return g;
}

// Elementwise |analytic - numeric| <= rtol * max(|numeric|, 0.05 * max_j |numeric_j|): entries
// much smaller than the gradient's scale are judged against that scale, since finite
// differences carry an absolute error proportional to it. An all-zero numeric gradient fails,
// because such a check could not catch a wrong backward.
inline void check_grad(const std::vector<float>& analytic, const std::vector<double>& numeric,
                       double rtol, const std::string& what) {
  INFO("gradient of ", what);
  REQUIRE(analytic.size() == numeric.size());
  double scale = 0.0;
  for (double v : numeric) scale = std::max(scale, std::fabs(v));
  REQUIRE(scale > 1e-6);
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    const double tol = rtol * std::max(std::fabs(numeric[i]), 0.05 * scale);
    const double ratio = std::fabs(static_cast<double>(analytic[i]) - numeric[i]) / tol;
    if (!(ratio <= worst)) {  // also catches NaN
      worst = std::isnan(ratio) ? 1e300 : ratio;
      worst_i = i;
    }
  }
  INFO("worst element ", worst_i, ": analytic ", analytic[worst_i], " numeric ", numeric[worst_i],
       " (error / tolerance = ", worst, ")");
  CHECK(worst <= 1.0);
}

// Elementwise |a - b| <= atol + rtol * |b| with the first offending element reported.
inline void check_close(const float* a, const double* b, int64_t n, double rtol, double atol,
                        const std::string& what) {
  INFO(what);
  int64_t bad = -1;
  for (int64_t i = 0; i < n && bad < 0; ++i)
    if (!(std::fabs(static_cast<double>(a[i]) - b[i]) <= atol + rtol * std::fabs(b[i]))) bad = i;
  std::string detail = "all elements within tolerance";
  if (bad >= 0)
    detail = fmt::format("element {}: got {} expected {}", bad, a[bad], b[bad]);
  INFO(detail);
  CHECK(bad < 0);
}
inline void check_close(const std::vector<float>& a, const std::vector<double>& b, double rtol,
                        double atol, const std::string& what) {
  REQUIRE(a.size() == b.size());
  check_close(a.data(), b.data(), static_cast<int64_t>(a.size()), rtol, atol, what);
}

}  // namespace qatc::test
