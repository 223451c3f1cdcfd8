// Tests for ReLU and ReLU6: values, where the gradient passes, finite differences, accumulation.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "nn/activation.h"
#include "nn/gradcheck.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_grad;
using qatc::test::dot;
using qatc::test::numeric_grad;

namespace {
// Random values in [-8, 8] kept at least 0.05 away from the kinks at 0 and 6, where the
// derivative does not exist and central differences would straddle two slopes.
std::vector<float> away_from_kinks(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    do x = rng.uniform(-8.0f, 8.0f);
    while (std::fabs(x) < 0.05f || std::fabs(x - 6.0f) < 0.05f);
  }
  return v;
}
}  // namespace

TEST_CASE("activation: relu and relu6 forward values") {
  const std::vector<float> in = {-2.0f, -0.0f, 0.0f, 0.5f, 5.9f, 6.0f, 7.5f};
  std::vector<float> out(in.size());
  relu_forward(out.data(), in.data(), 7);
  CHECK(out == std::vector<float>{0, 0, 0, 0.5f, 5.9f, 6.0f, 7.5f});
  relu6_forward(out.data(), in.data(), 7);
  CHECK(out == std::vector<float>{0, 0, 0, 0.5f, 5.9f, 6.0f, 6.0f});
  // In place, as the graph engine may run it.
  std::vector<float> x = in;
  relu6_forward(x.data(), x.data(), 7);
  CHECK(x == out);
}

TEST_CASE("activation: gradient passes only where the output is inside the linear range") {
  const std::vector<float> out = {0.0f, 0.5f, 5.9f, 6.0f};
  const std::vector<float> dout = {1.0f, 2.0f, 3.0f, 4.0f};
  std::vector<float> din(4, 10.0f);
  relu_backward(din.data(), dout.data(), out.data(), 4);
  CHECK(din == std::vector<float>{10.0f, 12.0f, 13.0f, 14.0f});
  std::vector<float> din6(4, 10.0f);
  relu6_backward(din6.data(), dout.data(), out.data(), 4);
  CHECK(din6 == std::vector<float>{10.0f, 12.0f, 13.0f, 10.0f});
  relu_backward(nullptr, dout.data(), out.data(), 4);
}

TEST_CASE("activation: gradients match finite differences") {
  Rng rng(31);
  for (int64_t n : {1, 17, 300}) {
    INFO("n ", n);
    auto in = away_from_kinks(rng, n), r = qatc::test::random_floats(rng, n);
    std::vector<float> out(in.size());
    auto relu_loss = [&] {
      relu_forward(out.data(), in.data(), n);
      return dot(out, r);
    };
    auto relu6_loss = [&] {
      relu6_forward(out.data(), in.data(), n);
      return dot(out, r);
    };
    auto has_signal = [&] {  // a slice with every gradient zero would prove nothing
      for (float v : in)
        if (v > 0.0f && v < 6.0f) return true;
      return false;
    };
    if (!has_signal()) in[0] = 1.0f;
    std::vector<float> din(in.size(), 0.0f);
    relu_forward(out.data(), in.data(), n);
    relu_backward(din.data(), r.data(), out.data(), n);
    check_grad(din, numeric_grad(in, 0.01f, relu_loss), 1e-3, "relu");
    std::vector<float> din6(in.size(), 0.0f);
    relu6_forward(out.data(), in.data(), n);
    relu6_backward(din6.data(), r.data(), out.data(), n);
    check_grad(din6, numeric_grad(in, 0.01f, relu6_loss), 1e-3, "relu6");
  }
}

TEST_CASE("activation: large inputs are split across threads and still exact") {
  const int64_t n = (int64_t{1} << 18) + 3;
  std::vector<float> in(static_cast<size_t>(n)), out(static_cast<size_t>(n)), din(static_cast<size_t>(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) in[static_cast<size_t>(i)] = static_cast<float>(i % 17) - 8.0f;
  relu6_forward(out.data(), in.data(), n);
  relu6_backward(din.data(), in.data(), out.data(), n);  // dout = in, for a checkable pattern
  relu6_backward(din.data(), in.data(), out.data(), n);  // twice: must accumulate
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = in[static_cast<size_t>(i)];
    const float y = x < 0 ? 0.0f : (x > 6 ? 6.0f : x);
    if (out[static_cast<size_t>(i)] != y) ++wrong;
    if (din[static_cast<size_t>(i)] != ((y > 0 && y < 6) ? 2 * x : 0.0f)) ++wrong;
  }
  CHECK(wrong == 0);
}

TEST_CASE("activation: a pass mask in the ReLU/ReLU6 backward equals masking dout first") {
  const int64_t n = 1000;
  std::vector<float> out(n), dout(n);
  std::vector<uint8_t> pass(n);
  for (int64_t i = 0; i < n; ++i) {
    out[static_cast<size_t>(i)] = static_cast<float>(i % 9) - 1.5f;  // below 0, inside, above 6
    dout[static_cast<size_t>(i)] = 0.25f * static_cast<float>(i % 13) - 1.0f;
    pass[static_cast<size_t>(i)] = static_cast<uint8_t>((i * 7) % 3 != 0);
  }
  std::vector<float> masked(n);
  for (int64_t i = 0; i < n; ++i) masked[static_cast<size_t>(i)] = pass[static_cast<size_t>(i)] ? dout[static_cast<size_t>(i)] : 0.0f;
  for (bool six : {false, true}) {
    std::vector<float> want(n, 0.5f), got(n, 0.5f);  // both accumulate onto the same start
    auto bwd = six ? relu6_backward : relu_backward;
    bwd(want.data(), masked.data(), out.data(), n, nullptr);
    bwd(got.data(), dout.data(), out.data(), n, pass.data());
    CHECK(got == want);
    int64_t blocked = 0;
    for (int64_t i = 0; i < n; ++i) blocked += got[static_cast<size_t>(i)] == 0.5f;
    CHECK(blocked > n / 3);  // the mask and the ReLU both block something
  }
}
