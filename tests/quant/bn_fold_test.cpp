// Tests for BatchNorm folding: dense + BN (inference mode) equals the folded dense.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "quant/bn_fold.h"

using namespace qatc;
using namespace qatc::quant;

TEST_CASE("bn_scale: gamma over sqrt(var + eps)") {
  const float gamma[3] = {1.0f, -2.0f, 0.5f}, var[3] = {4.0f, 0.25f, 0.0f};
  float s[3];
  bn_scale(s, gamma, var, 1e-3f, 3);
  CHECK(s[0] == static_cast<float>(1.0 / std::sqrt(4.0 + static_cast<double>(1e-3f))));
  CHECK(s[1] == static_cast<float>(-2.0 / std::sqrt(0.25 + static_cast<double>(1e-3f))));
  CHECK(s[2] == doctest::Approx(0.5 / std::sqrt(1e-3)).epsilon(1e-6));
}

TEST_CASE("fold_batchnorm: dense then BN in inference mode equals the folded dense") {
  Rng rng(2);
  const int64_t n = 16, in = 27, out = 8;  // in = 3*3*3 like a Keras HWIO kernel [kh*kw*cin, cout]
  const float eps = 1e-3f;
  std::vector<float> x(static_cast<size_t>(n * in)), w(static_cast<size_t>(in * out)), b(out),
      gamma(out), beta(out), mean(out), var(out);
  for (auto& v : x) v = rng.uniform(-2.0f, 2.0f);
  for (auto& v : w) v = 0.3f * rng.normal();
  for (int64_t c = 0; c < out; ++c) {
    b[static_cast<size_t>(c)] = rng.uniform(-1.0f, 1.0f);
    gamma[static_cast<size_t>(c)] = rng.uniform(0.2f, 2.0f) * (c % 3 == 0 ? -1.0f : 1.0f);
    beta[static_cast<size_t>(c)] = rng.uniform(-1.0f, 1.0f);
    mean[static_cast<size_t>(c)] = rng.uniform(-3.0f, 3.0f);
    var[static_cast<size_t>(c)] = rng.uniform(0.01f, 5.0f);
  }
  for (bool with_bias : {true, false}) {
    INFO("bias = " << with_bias);
    const float* bias = with_bias ? b.data() : nullptr;
    std::vector<float> wf(w.size()), bf(static_cast<size_t>(out));
    fold_batchnorm(wf.data(), bf.data(), w.data(), bias, gamma.data(), beta.data(), mean.data(),
                   var.data(), eps, in, out);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < out; ++c) {
        // Reference: y = x W + b, then gamma * (y - mean) / sqrt(var + eps) + beta, in double.
        double y = with_bias ? b[static_cast<size_t>(c)] : 0.0, yf = bf[static_cast<size_t>(c)];
        for (int64_t k = 0; k < in; ++k) {
          y += static_cast<double>(x[static_cast<size_t>(i * in + k)]) * w[static_cast<size_t>(k * out + c)];
          yf += static_cast<double>(x[static_cast<size_t>(i * in + k)]) * wf[static_cast<size_t>(k * out + c)];
        }
        const size_t cc = static_cast<size_t>(c);
        const double bn = gamma[cc] * (y - mean[cc]) / std::sqrt(static_cast<double>(var[cc]) + eps) + beta[cc];
        REQUIRE(std::fabs(yf - bn) <= 1e-5 * std::max(1.0, std::fabs(bn)));
      }
    // Folding a second time from the same inputs in place gives the same bits.
    std::vector<float> w2 = w, b2 = with_bias ? b : std::vector<float>(static_cast<size_t>(out), 0.0f);
    fold_batchnorm(w2.data(), b2.data(), w2.data(), b2.data(), gamma.data(), beta.data(), mean.data(),
                   var.data(), eps, in, out);
    CHECK(w2 == wf);
    CHECK(b2 == bf);
  }
}
