// Tests for the weightless DAG layers: add, concat and spatial pad / crop (lib/nn/merge.h).
// Forward values are checked exactly against index formulas, backward against finite
// differences (add, concat) or as the adjoint of the forward map (pad), together with the
// accumulate (+=) and nullptr conventions the graph engine relies on when one node feeds
// several consumers.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"
#include "nn/gradcheck.h"
#include "nn/merge.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_grad;
using qatc::test::dot;
using qatc::test::numeric_grad;
using qatc::test::random_floats;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Reference pad/crop: out[i, y, x, ch] = in[i, y - top, x - left, ch] inside the input, else 0.
std::vector<float> reference_pad(const std::vector<float>& in, const PadGeom2D& g) {
  std::vector<float> out(static_cast<size_t>(g.n * g.oh * g.ow * g.c), 0.0f);
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t y = 0; y < g.oh; ++y)
      for (int64_t x = 0; x < g.ow; ++x) {
        const int64_t iy = y - g.top, ix = x - g.left;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
        for (int64_t ch = 0; ch < g.c; ++ch)
          out[static_cast<size_t>(((i * g.oh + y) * g.ow + x) * g.c + ch)] =
              in[static_cast<size_t>(((i * g.h + iy) * g.w + ix) * g.c + ch)];
      }
  return out;
}

std::string describe(const PadGeom2D& g) {
  return fmt::format("n{} h{} w{} c{} top{} bottom{} left{} right{}", g.n, g.h, g.w, g.c, g.top, g.bottom, g.left,
                     g.right);
}

}  // namespace

// ---- add ----

TEST_CASE("add: forward sums three inputs in order") {
  Rng rng(101);
  const int64_t n = 37;
  auto a = random_floats(rng, n), b = random_floats(rng, n), c = random_floats(rng, n);
  const float* ins[] = {a.data(), b.data(), c.data()};
  std::vector<float> out(static_cast<size_t>(n), kNaN);
  add_forward(out.data(), ins, 3, n);
  for (size_t i = 0; i < out.size(); ++i) REQUIRE(out[i] == (a[i] + b[i]) + c[i]);

  // Two inputs, hand values.
  const std::vector<float> x = {1.0f, -2.0f, 0.5f}, y = {3.0f, 2.0f, 0.25f};
  const float* two[] = {x.data(), y.data()};
  std::vector<float> o(3, kNaN);
  add_forward(o.data(), two, 2, 3);
  CHECK(o == std::vector<float>{4.0f, 0.0f, 0.75f});
}

TEST_CASE("add: backward matches finite differences for every input") {
  Rng rng(102);
  const int64_t n = 29;
  std::vector<std::vector<float>> x = {random_floats(rng, n), random_floats(rng, n), random_floats(rng, n)};
  const auto r = random_floats(rng, n);
  std::vector<float> out(static_cast<size_t>(n));
  auto loss = [&] {
    const float* ins[] = {x[0].data(), x[1].data(), x[2].data()};
    add_forward(out.data(), ins, 3, n);
    return dot(out, r);
  };
  std::vector<std::vector<float>> d(3, std::vector<float>(static_cast<size_t>(n), 0.0f));
  float* dins[] = {d[0].data(), d[1].data(), d[2].data()};
  add_backward(dins, 3, r.data(), n);
  for (size_t k = 0; k < 3; ++k) check_grad(d[k], numeric_grad(x[k], 0.25f, loss), 1e-3, fmt::format("input {}", k));
}

TEST_CASE("add: backward accumulates and skips nullptr entries") {
  Rng rng(103);
  const int64_t n = 17;
  const auto dout = random_floats(rng, n);
  const auto base0 = random_floats(rng, n), base2 = random_floats(rng, n);
  auto d0 = base0, d2 = base2;
  float* dins[] = {d0.data(), nullptr, d2.data()};
  add_backward(dins, 3, dout.data(), n);
  for (size_t i = 0; i < d0.size(); ++i) {
    REQUIRE(d0[i] == base0[i] + dout[i]);
    REQUIRE(d2[i] == base2[i] + dout[i]);
  }
  // A second call adds again (a node read twice by one add gets both contributions).
  add_backward(dins, 3, dout.data(), n);
  for (size_t i = 0; i < d0.size(); ++i) REQUIRE(d0[i] == (base0[i] + dout[i]) + dout[i]);

  // The same buffer named twice collects both terms.
  std::vector<float> shared(static_cast<size_t>(n), 0.0f);
  float* twice[] = {shared.data(), shared.data()};
  add_backward(twice, 2, dout.data(), n);
  for (size_t i = 0; i < shared.size(); ++i) REQUIRE(shared[i] == 2.0f * dout[i]);
}

// ---- concat ----

TEST_CASE("concat: forward places each input's channels in order") {
  Rng rng(104);
  const int64_t outer = 6;  // e.g. n * h * w
  const int64_t ch[] = {2, 3, 1};
  const int64_t total = 6;
  std::vector<std::vector<float>> x;
  for (int64_t c : ch) x.push_back(random_floats(rng, outer * c));
  const float* ins[] = {x[0].data(), x[1].data(), x[2].data()};
  std::vector<float> out(static_cast<size_t>(outer * total), kNaN);
  concat_forward(out.data(), ins, ch, 3, outer);
  for (int64_t r = 0; r < outer; ++r) {
    int64_t offset = 0;
    for (size_t k = 0; k < 3; ++k) {
      for (int64_t c = 0; c < ch[k]; ++c)
        REQUIRE(out[static_cast<size_t>(r * total + offset + c)] == x[k][static_cast<size_t>(r * ch[k] + c)]);
      offset += ch[k];
    }
  }

  // Hand values: two rows, channels 1 + 2.
  const std::vector<float> a = {1, 2}, b = {10, 11, 20, 21};
  const float* two[] = {a.data(), b.data()};
  const int64_t ch2[] = {1, 2};
  std::vector<float> o(6, kNaN);
  concat_forward(o.data(), two, ch2, 2, 2);
  CHECK(o == std::vector<float>{1, 10, 11, 2, 20, 21});
}

TEST_CASE("concat: backward returns each input its slice, accumulating") {
  Rng rng(105);
  const int64_t outer = 5;
  const int64_t ch[] = {3, 1, 4};
  const int64_t total = 8;
  const auto dout = random_floats(rng, outer * total);
  std::vector<std::vector<float>> base, d;
  for (int64_t c : ch) base.push_back(random_floats(rng, outer * c));
  d = base;
  float* dins[] = {d[0].data(), d[1].data(), d[2].data()};
  concat_backward(dins, ch, 3, dout.data(), outer);
  for (int64_t r = 0; r < outer; ++r) {
    int64_t offset = 0;
    for (size_t k = 0; k < 3; ++k) {
      for (int64_t c = 0; c < ch[k]; ++c) {
        const auto j = static_cast<size_t>(r * ch[k] + c);
        REQUIRE(d[k][j] == base[k][j] + dout[static_cast<size_t>(r * total + offset + c)]);
      }
      offset += ch[k];
    }
  }

  // nullptr entries are skipped and the others still get their own slice.
  std::vector<float> first(static_cast<size_t>(outer * ch[0]), 0.0f), last(static_cast<size_t>(outer * ch[2]), 0.0f);
  float* partial[] = {first.data(), nullptr, last.data()};
  concat_backward(partial, ch, 3, dout.data(), outer);
  for (int64_t r = 0; r < outer; ++r) {
    for (int64_t c = 0; c < ch[0]; ++c)
      REQUIRE(first[static_cast<size_t>(r * ch[0] + c)] == dout[static_cast<size_t>(r * total + c)]);
    for (int64_t c = 0; c < ch[2]; ++c)
      REQUIRE(last[static_cast<size_t>(r * ch[2] + c)] == dout[static_cast<size_t>(r * total + ch[0] + ch[1] + c)]);
  }
}

TEST_CASE("concat: backward matches finite differences") {
  Rng rng(106);
  const int64_t outer = 4;
  const int64_t ch[] = {2, 5, 3};
  std::vector<std::vector<float>> x;
  for (int64_t c : ch) x.push_back(random_floats(rng, outer * c));
  const auto r = random_floats(rng, outer * 10);
  std::vector<float> out(static_cast<size_t>(outer * 10));
  auto loss = [&] {
    const float* ins[] = {x[0].data(), x[1].data(), x[2].data()};
    concat_forward(out.data(), ins, ch, 3, outer);
    return dot(out, r);
  };
  std::vector<std::vector<float>> d;
  for (int64_t c : ch) d.emplace_back(static_cast<size_t>(outer * c), 0.0f);
  float* dins[] = {d[0].data(), d[1].data(), d[2].data()};
  concat_backward(dins, ch, 3, r.data(), outer);
  for (size_t k = 0; k < 3; ++k) check_grad(d[k], numeric_grad(x[k], 0.25f, loss), 1e-3, fmt::format("input {}", k));
}

// ---- pad / crop ----

TEST_CASE("pad: geometry and the hand-computed cases") {
  SUBCASE("zero padding") {
    // [[1, 2], [3, 4]] padded top 1, right 1 -> 3x3.
    const PadGeom2D g = pad_geom2d(1, 2, 2, 1, 1, 0, 0, 1);
    CHECK(g.oh == 3);
    CHECK(g.ow == 3);
    const std::vector<float> in = {1, 2, 3, 4};
    std::vector<float> out(9, kNaN);
    pad_forward(out.data(), in.data(), g);
    CHECK(out == std::vector<float>{0, 0, 0, 1, 2, 0, 3, 4, 0});
  }
  SUBCASE("cropping") {
    // 1..9 in 3x3, cropped top 1 and left 1 (Cropping2D((1, 0), (1, 0))) -> [[5, 6], [8, 9]].
    const PadGeom2D g = pad_geom2d(1, 3, 3, 1, -1, 0, -1, 0);
    CHECK(g.oh == 2);
    CHECK(g.ow == 2);
    const std::vector<float> in = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    std::vector<float> out(4, kNaN);
    pad_forward(out.data(), in.data(), g);
    CHECK(out == std::vector<float>{5, 6, 8, 9});
  }
  SUBCASE("NASNet's ZeroPadding2D((0, 1), (0, 1)) then Cropping2D((1, 0), (1, 0))") {
    // Two images of 3x3x2: the pair shifts the map up-left by one and fills the last row and
    // column with zeros; the single mixed op (-1, +1, -1, +1) is the same map.
    const int64_t n = 2, h = 3, w = 3, c = 2;
    std::vector<float> in(static_cast<size_t>(n * h * w * c));
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i + 1);
    const PadGeom2D pad = pad_geom2d(n, h, w, c, 0, 1, 0, 1);
    CHECK(pad.oh == 4);
    CHECK(pad.ow == 4);
    std::vector<float> padded(static_cast<size_t>(n * 4 * 4 * c), kNaN);
    pad_forward(padded.data(), in.data(), pad);
    const PadGeom2D crop = pad_geom2d(n, 4, 4, c, -1, 0, -1, 0);
    CHECK(crop.oh == 3);
    CHECK(crop.ow == 3);
    std::vector<float> shifted(in.size(), kNaN);
    pad_forward(shifted.data(), padded.data(), crop);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          for (int64_t ch = 0; ch < c; ++ch) {
            INFO("i ", i, " y ", y, " x ", x, " ch ", ch);
            const float expected =
                y + 1 < h && x + 1 < w ? in[static_cast<size_t>(((i * h + y + 1) * w + x + 1) * c + ch)] : 0.0f;
            REQUIRE(shifted[static_cast<size_t>(((i * h + y) * w + x) * c + ch)] == expected);
          }
    const PadGeom2D mixed = pad_geom2d(n, h, w, c, -1, 1, -1, 1);
    CHECK(mixed.oh == h);
    CHECK(mixed.ow == w);
    std::vector<float> direct(in.size(), kNaN);
    pad_forward(direct.data(), in.data(), mixed);
    CHECK(direct == shifted);
  }
  SUBCASE("padding that leaves nothing is an error") {
    CHECK_THROWS_AS(pad_geom2d(1, 3, 3, 1, -2, -1, 0, 0), qatc::Error);
    CHECK_THROWS_AS(pad_geom2d(1, 3, 3, 1, 0, 0, -3, 0), qatc::Error);
    CHECK_NOTHROW(pad_geom2d(1, 3, 3, 1, -2, 0, 0, -2));
  }
}

TEST_CASE("pad: forward matches the index formula and backward is its adjoint") {
  struct Case {
    int64_t n, h, w, c, top, bottom, left, right;
  };
  const Case cases[] = {
      {2, 4, 5, 3, 1, 2, 3, 1},      // zero padding on every side, different amounts
      {1, 3, 3, 2, 3, 3, 3, 3},      // ResNet's conv1_pad: 3 everywhere
      {2, 6, 5, 2, -1, -2, -2, -1},  // cropping on every side
      {2, 4, 4, 3, -1, 1, -1, 1},    // NASNet's shift: crop top/left, pad bottom/right
      {1, 5, 3, 2, 2, -3, -1, 2},    // mixed in the other direction
      {3, 2, 3, 1, 0, 0, 0, 0},      // identity
      {1, 3, 2, 2, 0, 1, 3, -4},     // the output column lies wholly in the padding
  };
  Rng rng(107);
  for (const Case& k : cases) {
    const PadGeom2D g = pad_geom2d(k.n, k.h, k.w, k.c, k.top, k.bottom, k.left, k.right);
    INFO(describe(g));
    CHECK(g.oh == k.h + k.top + k.bottom);
    CHECK(g.ow == k.w + k.left + k.right);
    const int64_t in_n = g.n * g.h * g.w * g.c, out_n = g.n * g.oh * g.ow * g.c;
    const auto x = random_floats(rng, in_n);
    std::vector<float> out(static_cast<size_t>(out_n), kNaN);
    pad_forward(out.data(), x.data(), g);
    CHECK(out == reference_pad(x, g));

    // <pad(x), r> == <x, pad_backward(r)> for random x and r, which pins pad_backward as the
    // transpose of the forward map.
    const auto r = random_floats(rng, out_n);
    std::vector<float> zero_start(static_cast<size_t>(in_n), 0.0f);
    pad_backward(zero_start.data(), r.data(), g);
    CHECK(dot(out, r) == doctest::Approx(dot(x, zero_start)).epsilon(1e-6));
    // Exactly: every input element gets at most one output element's gradient.
    for (int64_t i = 0; i < g.n; ++i)
      for (int64_t iy = 0; iy < g.h; ++iy)
        for (int64_t ix = 0; ix < g.w; ++ix)
          for (int64_t ch = 0; ch < g.c; ++ch) {
            const int64_t y = iy + g.top, x2 = ix + g.left;
            const float expected = y >= 0 && y < g.oh && x2 >= 0 && x2 < g.ow
                                       ? r[static_cast<size_t>(((i * g.oh + y) * g.ow + x2) * g.c + ch)]
                                       : 0.0f;
            REQUIRE(zero_start[static_cast<size_t>(((i * g.h + iy) * g.w + ix) * g.c + ch)] == expected);
          }
    // Accumulates on top of what is there.
    const auto base = random_floats(rng, in_n);
    auto din = base;
    pad_backward(din.data(), r.data(), g);
    for (size_t i = 0; i < din.size(); ++i) REQUIRE(din[i] == base[i] + zero_start[i]);
    // nullptr: "not needed" (the data input).
    CHECK_NOTHROW(pad_backward(nullptr, r.data(), g));
  }
}

TEST_CASE("pad: large maps split across threads match the reference") {
  // Beyond one thread task (2^16 floats) so the row split is exercised.
  const PadGeom2D g = pad_geom2d(3, 40, 37, 24, -1, 1, 2, -3);
  Rng rng(108);
  const auto x = random_floats(rng, g.n * g.h * g.w * g.c);
  std::vector<float> out(static_cast<size_t>(g.n * g.oh * g.ow * g.c), kNaN);
  pad_forward(out.data(), x.data(), g);
  CHECK(out == reference_pad(x, g));
  const auto r = random_floats(rng, static_cast<int64_t>(out.size()));
  std::vector<float> din(x.size(), 0.0f);
  pad_backward(din.data(), r.data(), g);
  CHECK(dot(out, r) == doctest::Approx(dot(x, din)).epsilon(1e-5));
}
