// Tests for softmax cross-entropy: hand values, ties, huge logits, gradient, bad labels.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "nn/gradcheck.h"
#include "nn/loss.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_grad;
using qatc::test::numeric_grad;
using qatc::test::random_floats;

TEST_CASE("loss: softmax cross-entropy matches hand-computed values") {
  const std::vector<float> logits = {0, 0, 0, 1, 2, 3, 3, 1, 3};
  const std::vector<int32_t> labels = {1, 2, 0};
  std::vector<float> d(9);
  const LossResult r = softmax_xent(d.data(), logits.data(), labels.data(), 3, 3);
  const double e = std::exp(1.0);
  const double expected = std::log(3.0) + (std::log(e + e * e + e * e * e) - 3.0) +
                          (std::log(2 * e * e * e + e) - 3.0);
  CHECK(r.loss_sum == doctest::Approx(expected).epsilon(1e-12));
  // Row 0 is a three-way tie (argmax 0, label 1: wrong); row 2 ties 0 and 2 (argmax 0: right).
  CHECK(r.correct == 2);
  // Row 0: (softmax - onehot) / n with n = 3.
  CHECK(d[0] == doctest::Approx(1.0 / 9.0));
  CHECK(d[1] == doctest::Approx((1.0 / 3.0 - 1.0) / 3.0));
  CHECK(d[2] == doctest::Approx(1.0 / 9.0));
  for (int row = 0; row < 3; ++row) {
    double s = 0;
    for (int j = 0; j < 3; ++j) s += d[static_cast<size_t>(row * 3 + j)];
    CHECK(std::fabs(s) < 1e-7);  // softmax sums to one, the one-hot too
  }
  // dlogits is optional.
  const LossResult r2 = softmax_xent(nullptr, logits.data(), labels.data(), 3, 3);
  CHECK(r2.loss_sum == r.loss_sum);
  CHECK(r2.correct == r.correct);
}

TEST_CASE("loss: huge logits give finite loss and gradient") {
  const std::vector<float> logits = {1000, -1000, 0, 3e38f, -3e38f, 3e38f, 88.8f, 88.8f, 88.8f};
  const std::vector<int32_t> labels = {1, 2, 0};
  std::vector<float> d(9);
  const LossResult r = softmax_xent(d.data(), logits.data(), labels.data(), 3, 3);
  CHECK(std::isfinite(r.loss_sum));
  // Row 0: 2000. Row 1: ties at 3e38, label hits one of them: log 2. Row 2: log 3.
  CHECK(r.loss_sum == doctest::Approx(2000.0 + std::log(2.0) + std::log(3.0)).epsilon(1e-12));
  for (float v : d) CHECK(std::isfinite(v));
  CHECK(d[0] == doctest::Approx(1.0 / 3.0));
  CHECK(d[1] == doctest::Approx(-1.0 / 3.0));
  CHECK(d[5] == doctest::Approx((0.5 - 1.0) / 3.0));
  // Row 0 argmax 0 vs label 1 and row 1 tie won by index 0 vs label 2: wrong; row 2: right.
  CHECK(r.correct == 1);
}

TEST_CASE("loss: gradient of the mean loss matches finite differences") {
  Rng rng(71);
  for (int64_t classes : {2, 5, 10}) {
    const int64_t n = 6;
    INFO("classes ", classes);
    auto logits = random_floats(rng, n * classes, -3.0f, 3.0f);
    std::vector<int32_t> labels(static_cast<size_t>(n));
    for (auto& l : labels) l = static_cast<int32_t>(rng.below(static_cast<uint32_t>(classes)));
    std::vector<float> d(logits.size());
    softmax_xent(d.data(), logits.data(), labels.data(), n, classes);
    auto loss = [&] {
      return softmax_xent(nullptr, logits.data(), labels.data(), n, classes).loss_sum / static_cast<double>(n);
    };
    check_grad(d, numeric_grad(logits, 1e-3f, loss), 2e-3, "logits");
  }
}

TEST_CASE("loss: labels outside the class range are rejected") {
  const std::vector<float> logits = {0, 1, 2, 3};
  const std::vector<int32_t> too_big = {0, 2}, negative = {-1, 0};
  CHECK_THROWS_AS(softmax_xent(nullptr, logits.data(), too_big.data(), 2, 2), qatc::Error);
  CHECK_THROWS_AS(softmax_xent(nullptr, logits.data(), negative.data(), 2, 2), qatc::Error);
}
