// Tests for batch normalization (statistics, forward modes, moving averages, gradients).
// Gradients are checked against finite differences of a double-precision reference.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "nn/batchnorm.h"
#include "nn/gradcheck.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_close;
using qatc::test::check_grad;
using qatc::test::numeric_grad;
using qatc::test::random_floats;

namespace {

struct Stats {
  std::vector<double> mean, var;
};
Stats reference_stats(const std::vector<float>& in, int64_t rows, int64_t c) {
  Stats s{std::vector<double>(static_cast<size_t>(c), 0.0), std::vector<double>(static_cast<size_t>(c), 0.0)};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t ch = 0; ch < c; ++ch) s.mean[static_cast<size_t>(ch)] += in[static_cast<size_t>(r * c + ch)];
  for (auto& m : s.mean) m /= static_cast<double>(rows);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t ch = 0; ch < c; ++ch) {
      const double d = in[static_cast<size_t>(r * c + ch)] - s.mean[static_cast<size_t>(ch)];
      s.var[static_cast<size_t>(ch)] += d * d;
    }
  for (auto& v : s.var) v /= static_cast<double>(rows);
  return s;
}

// L = sum out * r of the training-mode forward, all in double: the finite-difference oracle.
double reference_train_loss(const std::vector<float>& in, const std::vector<float>& gamma,
                            const std::vector<float>& beta, const std::vector<float>& r,
                            float eps, int64_t rows, int64_t c) {
  const Stats s = reference_stats(in, rows, c);
  double l = 0.0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const size_t u = static_cast<size_t>(ch), j = static_cast<size_t>(i * c + ch);
      const double xhat = (in[j] - s.mean[u]) / std::sqrt(s.var[u] + eps);
      l += (gamma[u] * xhat + beta[u]) * r[j];
    }
  return l;
}

double reference_eval_loss(const std::vector<float>& in, const std::vector<float>& gamma,
                           const std::vector<float>& beta, const std::vector<float>& mean,
                           const std::vector<float>& var, const std::vector<float>& r, float eps,
                           int64_t rows, int64_t c) {
  double l = 0.0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const size_t u = static_cast<size_t>(ch), j = static_cast<size_t>(i * c + ch);
      const double xhat = (in[j] - static_cast<double>(mean[u])) / std::sqrt(static_cast<double>(var[u]) + eps);
      l += (gamma[u] * xhat + beta[u]) * r[j];
    }
  return l;
}

// Per-channel offsets and scales so that every channel has different statistics.
std::vector<float> channel_data(Rng& rng, int64_t rows, int64_t c) {
  std::vector<float> v(static_cast<size_t>(rows * c));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t ch = 0; ch < c; ++ch)
      v[static_cast<size_t>(r * c + ch)] = static_cast<float>(ch) - 1.5f + (0.5f + static_cast<float>(ch)) * rng.uniform(-1.0f, 1.0f);
  return v;
}

struct BnCase {
  int64_t rows, c;
};
// 600: several row blocks; 130 x 17: float runs with a ragged end, vectorized channels with a tail.
const BnCase kCases[] = {{2, 1}, {5, 3}, {12, 4}, {64, 2}, {600, 2}, {130, 17}};

}  // namespace

TEST_CASE("batchnorm: training forward normalizes each channel to mean 0 and variance 1") {
  Rng rng(51);
  const int64_t rows = 300, c = 4;
  const float eps = 1e-3f;
  auto in = channel_data(rng, rows, c);
  std::vector<float> out(in.size()), mean(4), var(4), ones(4, 1.0f), zeros(4, 0.0f);
  batchnorm_forward_train(out.data(), mean.data(), var.data(), in.data(), ones.data(), zeros.data(), eps, rows, c);
  const Stats ref = reference_stats(in, rows, c);
  const Stats got = reference_stats(out, rows, c);
  for (int64_t ch = 0; ch < c; ++ch) {
    const size_t u = static_cast<size_t>(ch);
    CHECK(mean[u] == doctest::Approx(ref.mean[u]).epsilon(1e-6));
    CHECK(var[u] == doctest::Approx(ref.var[u]).epsilon(1e-6));
    CHECK(std::fabs(got.mean[u]) < 1e-5);
    CHECK(got.var[u] == doctest::Approx(ref.var[u] / (ref.var[u] + eps)).epsilon(1e-5));
  }
  // gamma and beta set the output's scale and offset.
  const std::vector<float> gamma = {2, 0.5f, 1, 3}, beta = {-1, 4, 0, 0.25f};
  batchnorm_forward_train(out.data(), mean.data(), var.data(), in.data(), gamma.data(), beta.data(), 0.0f, rows, c);
  const Stats scaled = reference_stats(out, rows, c);
  for (size_t u = 0; u < 4; ++u) {
    CHECK(scaled.mean[u] == doctest::Approx(beta[u]).epsilon(1e-5));
    CHECK(std::sqrt(scaled.var[u]) == doctest::Approx(gamma[u]).epsilon(1e-5));
  }
}

TEST_CASE("batchnorm: statistics stay accurate when the mean dwarfs the spread") {
  // A naive float E[x^2] - E[x]^2 loses every digit of a unit variance at mean 1e4.
  Rng rng(52);
  const int64_t rows = 5000, c = 2;
  std::vector<float> in(static_cast<size_t>(rows * c));
  for (auto& x : in) x = 1.0e4f + rng.uniform(-1.0f, 1.0f);
  std::vector<float> out(in.size()), mean(2), var(2), gamma(2, 1.0f), beta(2, 0.0f);
  batchnorm_forward_train(out.data(), mean.data(), var.data(), in.data(), gamma.data(), beta.data(), 1e-5f, rows, c);
  const Stats ref = reference_stats(in, rows, c);
  for (size_t u = 0; u < 2; ++u) {
    CHECK(mean[u] == doctest::Approx(ref.mean[u]).epsilon(1e-7));
    CHECK(var[u] == doctest::Approx(ref.var[u]).epsilon(1e-5));
  }
  const Stats normalized = reference_stats(out, rows, c);
  for (size_t u = 0; u < 2; ++u) {
    CHECK(std::fabs(normalized.mean[u]) < 1e-3);
    CHECK(normalized.var[u] == doctest::Approx(1.0).epsilon(1e-3));
  }
}

TEST_CASE("batchnorm: statistics do not depend on the thread count") {
  Rng rng(53);
  const int64_t rows = 3000, c = 5;
  auto in = channel_data(rng, rows, c);
  auto gamma = random_floats(rng, c), beta = random_floats(rng, c), dout = random_floats(rng, rows * c);
  std::vector<float> out1(in.size()), out2(in.size()), m1(5), v1(5), m2(5), v2(5);
  std::vector<float> din1(in.size(), 0.0f), din2(in.size(), 0.0f), dg1(5, 0.0f), dg2(5, 0.0f);
  set_num_threads(1);
  batchnorm_forward_train(out1.data(), m1.data(), v1.data(), in.data(), gamma.data(), beta.data(), 1e-3f, rows, c);
  batchnorm_backward(din1.data(), dg1.data(), nullptr, dout.data(), in.data(), gamma.data(), m1.data(), v1.data(), 1e-3f, rows, c);
  set_num_threads(2);
  batchnorm_forward_train(out2.data(), m2.data(), v2.data(), in.data(), gamma.data(), beta.data(), 1e-3f, rows, c);
  batchnorm_backward(din2.data(), dg2.data(), nullptr, dout.data(), in.data(), gamma.data(), m2.data(), v2.data(), 1e-3f, rows, c);
  set_num_threads(0);
  CHECK(m1 == m2);
  CHECK(v1 == v2);
  CHECK(out1 == out2);
  CHECK(din1 == din2);
  CHECK(dg1 == dg2);
}

TEST_CASE("batchnorm: eval forward uses the moving statistics") {
  const std::vector<float> in = {1, 3, -1, 0};  // rows 2, c 2
  const std::vector<float> gamma = {2, 1}, beta = {1, 0}, mean = {0.5f, -1}, var = {4, 0.25f};
  std::vector<float> out(4);
  batchnorm_forward_eval(out.data(), in.data(), gamma.data(), beta.data(), mean.data(), var.data(), 0.0f, 2, 2);
  // Rows (1, 3) and (-1, 0). ch0: 2 * (x - 0.5) / 2 + 1;  ch1: (x + 1) / 0.5
  CHECK(out[0] == doctest::Approx(1.5f));
  CHECK(out[1] == doctest::Approx(8.0f));
  CHECK(out[2] == doctest::Approx(-0.5f));
  CHECK(out[3] == doctest::Approx(2.0f));
}

TEST_CASE("batchnorm: moving statistics follow the Keras momentum rule") {
  std::vector<float> mm = {1, 0}, mv = {2, 1};
  const std::vector<float> bm = {3, 10}, bv = {4, 1};
  batchnorm_update_moving(mm.data(), mv.data(), bm.data(), bv.data(), 0.9f, 2);
  CHECK(mm[0] == doctest::Approx(1.2f));
  CHECK(mm[1] == doctest::Approx(1.0f));
  CHECK(mv[0] == doctest::Approx(2.2f));
  CHECK(mv[1] == doctest::Approx(1.0f));
}

TEST_CASE("batchnorm: training backward matches finite differences") {
  Rng rng(54);
  const float eps = 1e-3f;
  for (const BnCase& k : kCases) {
    INFO("rows ", k.rows, " c ", k.c);
    auto in = channel_data(rng, k.rows, k.c);
    auto gamma = random_floats(rng, k.c, 0.5f, 2.0f), beta = random_floats(rng, k.c);
    auto r = random_floats(rng, k.rows * k.c);
    std::vector<float> out(in.size()), mean(static_cast<size_t>(k.c)), var(static_cast<size_t>(k.c));
    batchnorm_forward_train(out.data(), mean.data(), var.data(), in.data(), gamma.data(), beta.data(), eps, k.rows, k.c);
    std::vector<float> din(in.size(), 0.0f), dgamma(gamma.size(), 0.0f), dbeta(beta.size(), 0.0f);
    batchnorm_backward(din.data(), dgamma.data(), dbeta.data(), r.data(), in.data(), gamma.data(),
                       mean.data(), var.data(), eps, k.rows, k.c);
    auto loss = [&] { return reference_train_loss(in, gamma, beta, r, eps, k.rows, k.c); };
    check_grad(din, numeric_grad(in, 1e-3f, loss), 2e-3, "input");
    check_grad(dgamma, numeric_grad(gamma, 1e-2f, loss), 1e-3, "gamma");
    check_grad(dbeta, numeric_grad(beta, 1e-2f, loss), 1e-3, "beta");
  }
}

TEST_CASE("batchnorm: eval backward matches finite differences") {
  Rng rng(55);
  const float eps = 1e-3f;
  for (const BnCase& k : kCases) {
    INFO("rows ", k.rows, " c ", k.c);
    auto in = channel_data(rng, k.rows, k.c);
    auto gamma = random_floats(rng, k.c, 0.5f, 2.0f), beta = random_floats(rng, k.c);
    auto mean = random_floats(rng, k.c), var = random_floats(rng, k.c, 0.5f, 3.0f);
    auto r = random_floats(rng, k.rows * k.c);
    std::vector<float> din(in.size(), 0.0f), dgamma(gamma.size(), 0.0f), dbeta(beta.size(), 0.0f);
    batchnorm_backward_eval(din.data(), dgamma.data(), dbeta.data(), r.data(), in.data(), gamma.data(),
                            mean.data(), var.data(), eps, k.rows, k.c);
    auto loss = [&] { return reference_eval_loss(in, gamma, beta, mean, var, r, eps, k.rows, k.c); };
    check_grad(din, numeric_grad(in, 0.25f, loss), 1e-4, "input");
    check_grad(dgamma, numeric_grad(gamma, 0.25f, loss), 1e-4, "gamma");
    check_grad(dbeta, numeric_grad(beta, 0.25f, loss), 1e-4, "beta");
    // The float forward must agree with the reference the gradients were checked against.
    std::vector<float> out(in.size());
    batchnorm_forward_eval(out.data(), in.data(), gamma.data(), beta.data(), mean.data(), var.data(), eps, k.rows, k.c);
    CHECK(qatc::test::dot(out, r) == doctest::Approx(loss()).epsilon(1e-5));
  }
}

TEST_CASE("batchnorm: both backward modes accumulate and skip gradients passed as nullptr") {
  Rng rng(56);
  const int64_t rows = 40, c = 3;
  const float eps = 1e-3f;
  auto in = channel_data(rng, rows, c);
  auto gamma = random_floats(rng, c, 0.5f, 2.0f), beta = random_floats(rng, c);
  auto dout = random_floats(rng, rows * c);
  std::vector<float> out(in.size()), mean(3), var(3);
  batchnorm_forward_train(out.data(), mean.data(), var.data(), in.data(), gamma.data(), beta.data(), eps, rows, c);
  for (bool train : {true, false}) {
    INFO("training mode: ", train);
    auto backward = [&](float* din, float* dg, float* db) {
      if (train)
        batchnorm_backward(din, dg, db, dout.data(), in.data(), gamma.data(), mean.data(), var.data(), eps, rows, c);
      else
        batchnorm_backward_eval(din, dg, db, dout.data(), in.data(), gamma.data(), mean.data(), var.data(), eps, rows, c);
    };
    std::vector<float> din(in.size(), 0.0f), dg(3, 0.0f), db(3, 0.0f);
    backward(din.data(), dg.data(), db.data());
    auto din2 = din, dg2 = dg, db2 = db;
    backward(din2.data(), dg2.data(), db2.data());
    for (size_t i = 0; i < din.size(); ++i) REQUIRE(din2[i] == doctest::Approx(2 * din[i]));
    for (size_t i = 0; i < 3; ++i) {
      REQUIRE(dg2[i] == doctest::Approx(2 * dg[i]));
      REQUIRE(db2[i] == doctest::Approx(2 * db[i]));
    }
    std::vector<float> din3(in.size(), 0.0f);
    backward(din3.data(), nullptr, nullptr);
    CHECK(din3 == din);
    std::vector<float> dg4(3, 0.0f);
    backward(nullptr, dg4.data(), nullptr);
    CHECK(dg4 == dg);
  }
}
