// Tests for max, average and global average pooling.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "nn/gradcheck.h"
#include "nn/pool.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_close;
using qatc::test::check_grad;
using qatc::test::dot;
using qatc::test::numeric_grad;
using qatc::test::random_floats;

namespace {

struct PoolCase {
  int64_t n, h, w, c, kh, kw, sh, sw;
  Padding pad;
};
const PoolCase kCases[] = {
    {2, 4, 4, 3, 2, 2, 2, 2, Padding::valid}, {1, 5, 5, 2, 3, 3, 2, 2, Padding::same},
    {2, 7, 6, 1, 3, 2, 2, 1, Padding::same},  {1, 5, 7, 3, 2, 3, 1, 2, Padding::valid},
    {1, 3, 3, 2, 3, 3, 1, 1, Padding::same},  {2, 6, 6, 4, 1, 1, 2, 2, Padding::same},
    {1, 9, 8, 2, 2, 2, 3, 3, Padding::same},  {2, 4, 5, 2, 2, 2, 2, 2, Padding::same},
    // Enough channels for the vectorized compare-and-select, with a ragged tail.
    {2, 6, 6, 37, 2, 2, 2, 2, Padding::valid}, {1, 5, 5, 32, 3, 3, 2, 2, Padding::same},
};

std::string describe(const PoolCase& k) {
  return fmt::format("n{} h{} w{} c{} k{}x{} s{}x{} {}", k.n, k.h, k.w, k.c, k.kh, k.kw, k.sh, k.sw,
                     k.pad == Padding::same ? "same" : "valid");
}
Pool2DGeom geom_of(const PoolCase& k) {
  return pool2d_geom(k.n, k.h, k.w, k.c, k.kh, k.kw, k.sh, k.sw, k.pad);
}
int64_t in_size(const Pool2DGeom& g) { return g.n * g.h * g.w * g.c; }
int64_t out_size(const Pool2DGeom& g) { return g.n * g.oh * g.ow * g.c; }

// Calls f(out_index, in_index) for every non-padded tap, windows in row-major tap order.
template <class F>
void for_each_tap(const Pool2DGeom& g, F&& f) {
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t y = 0; y < g.oh; ++y)
      for (int64_t x = 0; x < g.ow; ++x)
        for (int64_t ch = 0; ch < g.c; ++ch)
          for (int64_t ky = 0; ky < g.kh; ++ky)
            for (int64_t kx = 0; kx < g.kw; ++kx) {
              const int64_t iy = y * g.stride_h - g.pad_top + ky;
              const int64_t ix = x * g.stride_w - g.pad_left + kx;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              f(((i * g.oh + y) * g.ow + x) * g.c + ch, ((i * g.h + iy) * g.w + ix) * g.c + ch);
            }
}

// Distinct values at least 0.1 apart, so a finite-difference step of 0.01 never changes
// which element wins a max window.
std::vector<float> distinct_values(Rng& rng, int64_t n) {
  auto perm = rng.permutation(static_cast<int32_t>(n));
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = 0.1f * static_cast<float>(perm[static_cast<size_t>(i)]) - 3.0f;
  return v;
}

}  // namespace

TEST_CASE("pool: maxpool forward and argmax match a direct search") {
  Rng rng(41);
  for (const PoolCase& k : kCases) {
    INFO(describe(k));
    const Pool2DGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g));
    std::vector<float> expected(static_cast<size_t>(out_size(g)), -std::numeric_limits<float>::infinity());
    std::vector<int32_t> expected_arg(expected.size(), -1);
    for_each_tap(g, [&](int64_t o, int64_t i) {
      if (expected_arg[static_cast<size_t>(o)] < 0 || in[static_cast<size_t>(i)] > expected[static_cast<size_t>(o)]) {
        expected[static_cast<size_t>(o)] = in[static_cast<size_t>(i)];
        expected_arg[static_cast<size_t>(o)] = static_cast<int32_t>(i);
      }
    });
    std::vector<float> out(expected.size());
    std::vector<int32_t> arg(expected.size());
    maxpool2d_forward(out.data(), arg.data(), in.data(), g);
    CHECK(out == expected);
    CHECK(arg == expected_arg);
  }
}

TEST_CASE("pool: maxpool ties go to the first tap and padding never wins") {
  // 2x2 window over [3 5; 5 1]: both 5s tie, the first in row-major order (index 1) wins.
  const Pool2DGeom g = pool2d_geom(1, 2, 2, 1, 2, 2, 2, 2, Padding::valid);
  const std::vector<float> in = {3, 5, 5, 1};
  float out = 0;
  int32_t arg = -1;
  maxpool2d_forward(&out, &arg, in.data(), g);
  CHECK(out == 5.0f);
  CHECK(arg == 1);

  // All-negative input with same padding: a zero pad would win if padding took part.
  const Pool2DGeom gs = pool2d_geom(1, 3, 3, 1, 3, 3, 1, 1, Padding::same);
  const std::vector<float> neg = {-9, -8, -7, -6, -5, -4, -3, -2, -1};
  std::vector<float> o(9);
  std::vector<int32_t> a(9);
  maxpool2d_forward(o.data(), a.data(), neg.data(), gs);
  CHECK(o == std::vector<float>{-5, -4, -4, -2, -1, -1, -2, -1, -1});
  CHECK(a == std::vector<int32_t>{4, 5, 5, 7, 8, 8, 7, 8, 8});
  // argmax indexes the whole batch tensor, not one image: second image is offset by h*w*c.
  const Pool2DGeom g2 = pool2d_geom(2, 2, 2, 1, 2, 2, 2, 2, Padding::valid);
  const std::vector<float> two = {3, 5, 5, 1, 0, 0, 7, 0};
  float o2[2];
  int32_t a2[2];
  maxpool2d_forward(o2, a2, two.data(), g2);
  CHECK(a2[0] == 1);
  CHECK(a2[1] == 6);
}

TEST_CASE("pool: maxpool ties and NaN are handled per channel across many channels") {
  // 2x2 window, 19 channels: channel ch sees [3 5; 5 1] + ch, so the first 5 (tap 1) wins
  // every channel; channel 4 has a NaN in its first tap, which stays; channel 7 a NaN in a later
  // tap, which never wins.
  const int64_t c = 19;
  const Pool2DGeom g = pool2d_geom(1, 2, 2, c, 2, 2, 2, 2, Padding::valid);
  std::vector<float> in(static_cast<size_t>(4 * c));
  const float pattern[4] = {3, 5, 5, 1};
  for (int64_t tap = 0; tap < 4; ++tap)
    for (int64_t ch = 0; ch < c; ++ch) in[static_cast<size_t>(tap * c + ch)] = pattern[tap] + static_cast<float>(ch);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  in[static_cast<size_t>(0 * c + 4)] = nan;
  in[static_cast<size_t>(2 * c + 7)] = nan;
  std::vector<float> out(static_cast<size_t>(c));
  std::vector<int32_t> arg(static_cast<size_t>(c));
  maxpool2d_forward(out.data(), arg.data(), in.data(), g);
  for (int64_t ch = 0; ch < c; ++ch) {
    INFO("channel ", ch);
    if (ch == 4) {
      CHECK(std::isnan(out[static_cast<size_t>(ch)]));
      CHECK(arg[static_cast<size_t>(ch)] == ch);
      continue;
    }
    CHECK(out[static_cast<size_t>(ch)] == 5.0f + static_cast<float>(ch));
    CHECK(arg[static_cast<size_t>(ch)] == 1 * c + ch);
  }
}

TEST_CASE("pool: maxpool gradient matches finite differences and accumulates") {
  Rng rng(42);
  for (const PoolCase& k : kCases) {
    INFO(describe(k));
    const Pool2DGeom g = geom_of(k);
    auto in = distinct_values(rng, in_size(g));
    auto r = random_floats(rng, out_size(g));
    std::vector<float> out(r.size());
    std::vector<int32_t> arg(r.size());
    auto loss = [&] {
      maxpool2d_forward(out.data(), arg.data(), in.data(), g);
      return dot(out, r);
    };
    loss();
    std::vector<float> din(in.size(), 0.0f);
    maxpool2d_backward(din.data(), r.data(), arg.data(), g);
    check_grad(din, numeric_grad(in, 0.01f, loss), 1e-3, "maxpool input");
    loss();  // restore argmax for the unperturbed input
    auto twice = din;
    maxpool2d_backward(twice.data(), r.data(), arg.data(), g);
    for (size_t i = 0; i < din.size(); ++i) REQUIRE(twice[i] == doctest::Approx(2 * din[i]));
  }
}

TEST_CASE("pool: avgpool with same padding divides by the count of real elements") {
  // 3x3 input 1..9, 2x2 window, stride 2, same: pad_total 1, all of it after.
  const Pool2DGeom g = pool2d_geom(1, 3, 3, 1, 2, 2, 2, 2, Padding::same);
  CHECK(g.oh == 2);
  CHECK(g.pad_top == 0);
  const std::vector<float> in = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<float> out(4);
  avgpool2d_forward(out.data(), in.data(), g);
  CHECK(out == std::vector<float>{3.0f, 4.5f, 7.5f, 9.0f});  // divisors 4, 2, 2, 1

  // A constant input stays constant everywhere, borders included.
  const Pool2DGeom gc = pool2d_geom(1, 5, 5, 2, 3, 3, 2, 2, Padding::same);
  std::vector<float> ones(50, 2.5f), oc(static_cast<size_t>(gc.oh * gc.ow * 2));
  avgpool2d_forward(oc.data(), ones.data(), gc);
  for (float v : oc) CHECK(v == doctest::Approx(2.5f));

  // Backward spreads dout over the same counts: the 1-element corner window passes it whole.
  std::vector<float> din(9, 0.0f);
  const std::vector<float> dout = {4, 2, 2, 1};
  avgpool2d_backward(din.data(), dout.data(), g);
  CHECK(din == std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, 1});
}

TEST_CASE("pool: avgpool forward matches a direct average and gradients match finite differences") {
  Rng rng(43);
  for (const PoolCase& k : kCases) {
    INFO(describe(k));
    const Pool2DGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g)), r = random_floats(rng, out_size(g));
    std::vector<double> sum(r.size(), 0.0), cnt(r.size(), 0.0);
    for_each_tap(g, [&](int64_t o, int64_t i) {
      sum[static_cast<size_t>(o)] += in[static_cast<size_t>(i)];
      cnt[static_cast<size_t>(o)] += 1.0;
    });
    for (size_t j = 0; j < sum.size(); ++j) sum[j] /= cnt[j];
    std::vector<float> out(r.size());
    avgpool2d_forward(out.data(), in.data(), g);
    check_close(out, sum, 1e-5, 1e-6, "forward");
    auto loss = [&] {
      avgpool2d_forward(out.data(), in.data(), g);
      return dot(out, r);
    };
    std::vector<float> din(in.size(), 0.0f);
    avgpool2d_backward(din.data(), r.data(), g);
    check_grad(din, numeric_grad(in, 0.25f, loss), 1e-3, "avgpool input");
    auto twice = din;
    avgpool2d_backward(twice.data(), r.data(), g);
    for (size_t i = 0; i < din.size(); ++i) REQUIRE(twice[i] == doctest::Approx(2 * din[i]));
  }
}

TEST_CASE("pool: global average pooling values and gradients") {
  const std::vector<float> in = {1, 10, 2, 20, 3, 30, 4, 40};  // n=2, hw=2, c=2
  std::vector<float> out(4);
  global_avgpool_forward(out.data(), in.data(), 2, 2, 2);
  CHECK(out == std::vector<float>{1.5f, 15.0f, 3.5f, 35.0f});

  Rng rng(44);
  const int64_t n = 3, hw = 7, c = 5;
  auto x = random_floats(rng, n * hw * c), r = random_floats(rng, n * c);
  std::vector<float> o(r.size());
  auto loss = [&] {
    global_avgpool_forward(o.data(), x.data(), n, hw, c);
    return dot(o, r);
  };
  std::vector<float> din(x.size(), 0.0f);
  global_avgpool_backward(din.data(), r.data(), n, hw, c);
  check_grad(din, numeric_grad(x, 0.25f, loss), 1e-3, "global avgpool input");
  auto twice = din;
  global_avgpool_backward(twice.data(), r.data(), n, hw, c);
  for (size_t i = 0; i < din.size(); ++i) REQUIRE(twice[i] == doctest::Approx(2 * din[i]));
}
