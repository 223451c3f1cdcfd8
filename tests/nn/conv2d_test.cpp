// Tests for conv2d against a direct double-precision convolution and finite differences.
// Also covers the chunked-batch path, the stride-1 input gradient through the rotated kernel,
// the fallback for kernels too large for partial sums, thread-count independence and the
// accumulate / nullptr conventions; and inference (conv2d_infer) on both weight layouts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "nn/conv2d.h"
#include "nn/gemm_packed.h"
#include "nn/gradcheck.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_close;
using qatc::test::check_grad;
using qatc::test::dot;
using qatc::test::numeric_grad;
using qatc::test::random_floats;

namespace {

struct ConvCase {
  int64_t n, h, w, c, kh, kw, oc, sh, sw;
  Padding pad;
};

// Strides 1..4, both paddings, odd sizes, kh != kw, 1x1 (the no-im2col path and strided),
// kernels as large as the input, stride larger than the kernel.
const ConvCase kCases[] = {
    {2, 5, 5, 3, 3, 3, 4, 1, 1, Padding::same},  {2, 7, 6, 2, 3, 2, 3, 2, 2, Padding::same},
    {1, 6, 7, 3, 2, 3, 2, 2, 1, Padding::valid}, {2, 4, 4, 5, 1, 1, 3, 1, 1, Padding::valid},
    {2, 4, 5, 3, 1, 1, 2, 1, 1, Padding::same},  {1, 5, 5, 2, 1, 1, 3, 2, 2, Padding::same},
    {2, 8, 8, 1, 5, 5, 2, 3, 3, Padding::same},  {1, 9, 8, 2, 3, 3, 2, 4, 3, Padding::valid},
    {1, 3, 3, 2, 3, 3, 2, 1, 1, Padding::valid}, {3, 6, 5, 4, 4, 2, 3, 2, 1, Padding::same},
};

std::string describe(const ConvCase& k) {
  return fmt::format("n{} h{} w{} c{} k{}x{} oc{} s{}x{} {}", k.n, k.h, k.w, k.c, k.kh, k.kw, k.oc,
                     k.sh, k.sw, k.pad == Padding::same ? "same" : "valid");
}

Conv2DGeom geom_of(const ConvCase& k) {
  return conv2d_geom(k.n, k.h, k.w, k.c, k.kh, k.kw, k.oc, k.sh, k.sw, k.pad);
}

int64_t in_size(const Conv2DGeom& g) { return g.n * g.h * g.w * g.c; }
int64_t w_size(const Conv2DGeom& g) { return g.kh * g.kw * g.c * g.oc; }
int64_t out_size(const Conv2DGeom& g) { return g.n * g.oh * g.ow * g.oc; }

// Calls f(i, y, x, o, ky, kx, ci, in_index, w_index) for every tap that reads a real pixel.
template <class F>
void for_each_tap(const Conv2DGeom& g, F&& f) {
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t y = 0; y < g.oh; ++y)
      for (int64_t x = 0; x < g.ow; ++x)
        for (int64_t ky = 0; ky < g.kh; ++ky)
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t iy = y * g.stride_h - g.pad_top + ky;
            const int64_t ix = x * g.stride_w - g.pad_left + kx;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            for (int64_t ci = 0; ci < g.c; ++ci)
              for (int64_t o = 0; o < g.oc; ++o)
                f(((i * g.oh + y) * g.ow + x) * g.oc + o, ((i * g.h + iy) * g.w + ix) * g.c + ci,
                  ((ky * g.kw + kx) * g.c + ci) * g.oc + o);
          }
}

std::vector<double> direct_forward(const std::vector<float>& in, const std::vector<float>& w,
                                   const float* b, const Conv2DGeom& g) {
  std::vector<double> out(static_cast<size_t>(out_size(g)), 0.0);
  if (b)
    for (size_t j = 0; j < out.size(); ++j) out[j] = b[static_cast<int64_t>(j) % g.oc];
  for_each_tap(g, [&](int64_t oi, int64_t ii, int64_t wi) {
    out[static_cast<size_t>(oi)] += static_cast<double>(in[static_cast<size_t>(ii)]) * w[static_cast<size_t>(wi)];
  });
  return out;
}

struct DirectGrads {
  std::vector<double> din, dw, db;
};
DirectGrads direct_backward(const std::vector<float>& dout, const std::vector<float>& in,
                            const std::vector<float>& w, const Conv2DGeom& g) {
  DirectGrads r{std::vector<double>(in.size(), 0.0), std::vector<double>(w.size(), 0.0),
                std::vector<double>(static_cast<size_t>(g.oc), 0.0)};
  for_each_tap(g, [&](int64_t oi, int64_t ii, int64_t wi) {
    const double d = dout[static_cast<size_t>(oi)];
    r.din[static_cast<size_t>(ii)] += d * w[static_cast<size_t>(wi)];
    r.dw[static_cast<size_t>(wi)] += d * in[static_cast<size_t>(ii)];
  });
  for (size_t j = 0; j < dout.size(); ++j) r.db[j % static_cast<size_t>(g.oc)] += dout[j];
  return r;
}

// Scratch is filled with NaN so that any read of an unwritten element shows up in the output.
std::vector<float> make_workspace(const Conv2DGeom& g) {
  return std::vector<float>(static_cast<size_t>(conv2d_workspace_floats(g)),
                            std::numeric_limits<float>::quiet_NaN());
}

}  // namespace

TEST_CASE("conv2d: geometry follows the TensorFlow padding rule") {
  const Conv2DGeom a = conv2d_geom(2, 5, 4, 3, 3, 3, 8, 2, 2, Padding::same);
  CHECK(a.oh == 3);
  CHECK(a.pad_top == 1);
  CHECK(a.ow == 2);
  CHECK(a.pad_left == 0);
  const Conv2DGeom b = conv2d_geom(1, 28, 28, 1, 5, 3, 4, 1, 1, Padding::valid);
  CHECK(b.oh == 24);
  CHECK(b.ow == 26);
  CHECK(b.pad_top == 0);
  CHECK_THROWS_AS(conv2d_geom(1, 2, 5, 1, 3, 3, 1, 1, 1, Padding::valid), qatc::Error);
  CHECK_THROWS_AS(conv2d_geom(1, 5, 5, 0, 3, 3, 1, 1, 1, Padding::same), qatc::Error);
}

TEST_CASE("conv2d: hand-computed 3x3 same convolution") {
  // Input 1..9, all-ones kernel: each output is the sum of its in-image 3x3 neighbourhood.
  const Conv2DGeom g = conv2d_geom(1, 3, 3, 1, 3, 3, 1, 1, 1, Padding::same);
  std::vector<float> in = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w(9, 1.0f), out(9);
  const float b = 0.5f;
  auto ws = make_workspace(g);
  conv2d_forward(out.data(), in.data(), w.data(), &b, g, ws.data());
  const std::vector<float> expected = {12.5f, 21.5f, 16.5f, 27.5f, 45.5f, 33.5f, 24.5f, 39.5f, 28.5f};
  for (size_t i = 0; i < 9; ++i) CHECK(out[i] == expected[i]);
}

TEST_CASE("conv2d: forward matches a direct convolution") {
  Rng rng(11);
  for (const ConvCase& k : kCases) {
    INFO(describe(k));
    const Conv2DGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto b = random_floats(rng, g.oc);
    auto ws = make_workspace(g);
    std::vector<float> out(static_cast<size_t>(out_size(g)));
    conv2d_forward(out.data(), in.data(), w.data(), b.data(), g, ws.data());
    check_close(out, direct_forward(in, w, b.data(), g), 1e-5, 1e-5, "with bias");
    conv2d_forward(out.data(), in.data(), w.data(), nullptr, g, ws.data());
    check_close(out, direct_forward(in, w, nullptr, g), 1e-5, 1e-5, "without bias");
  }
}

TEST_CASE("conv2d: gradients match finite differences") {
  Rng rng(12);
  for (const ConvCase& k : kCases) {
    INFO(describe(k));
    const Conv2DGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto b = random_floats(rng, g.oc), r = random_floats(rng, out_size(g));
    auto ws = make_workspace(g);
    std::vector<float> out(static_cast<size_t>(out_size(g)));
    auto loss = [&] {
      conv2d_forward(out.data(), in.data(), w.data(), b.data(), g, ws.data());
      return dot(out, r);
    };
    std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
    conv2d_backward(din.data(), dw.data(), db.data(), r.data(), in.data(), w.data(), g, ws.data());
    // The loss is linear in each argument, so a large step has no truncation error and
    // keeps float rounding in the loss small relative to the step.
    check_grad(din, numeric_grad(in, 0.25f, loss), 2e-3, "input");
    check_grad(dw, numeric_grad(w, 0.25f, loss), 2e-3, "weights");
    check_grad(db, numeric_grad(b, 0.25f, loss), 2e-3, "bias");
  }
}

TEST_CASE("conv2d: a batch split into several workspace chunks matches direct backward") {
  // Each output row has 52 * 576 patch floats, so the batch is cut into dozens of chunks of a
  // few rows (the last one shorter), summed for dw in several groups: dw and db must accumulate
  // across chunks and groups, and chunks must not straddle images wrongly.
  const Conv2DGeom g = conv2d_geom(3, 52, 52, 64, 3, 3, 3, 1, 1, Padding::same);
  const int64_t per_image = g.oh * g.ow * g.kh * g.kw * g.c;
  CHECK(conv2d_workspace_floats(g) < g.n * per_image);
  Rng rng(13);
  auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
  auto b = random_floats(rng, g.oc), dout = random_floats(rng, out_size(g));
  auto ws = make_workspace(g);
  std::vector<float> out(static_cast<size_t>(out_size(g)));
  conv2d_forward(out.data(), in.data(), w.data(), b.data(), g, ws.data());
  check_close(out, direct_forward(in, w, b.data(), g), 1e-4, 1e-4, "forward");
  std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
  conv2d_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(), w.data(), g, ws.data());
  const DirectGrads ref = direct_backward(dout, in, w, g);
  check_close(din, ref.din, 1e-4, 1e-4, "din");
  check_close(dw, ref.dw, 1e-4, 1e-2, "dw");  // sums of ~8000 terms of size ~0.25
  check_close(db, ref.db, 1e-4, 1e-2, "db");
  // Without din, dw comes from the patches of the input instead of those of dout.
  std::vector<float> dw_only(w.size(), 0.0f);
  conv2d_backward(nullptr, dw_only.data(), nullptr, dout.data(), in.data(), w.data(), g, ws.data());
  check_close(dw_only, ref.dw, 1e-4, 1e-2, "dw without din");
}

TEST_CASE("conv2d: the workspace stays bounded and never grows when the batch shrinks") {
  const Conv2DGeom many = conv2d_geom(128, 28, 28, 32, 3, 3, 64, 1, 1, Padding::same);
  CHECK(conv2d_workspace_floats(many) <= (int64_t{1} << 22));
  CHECK(conv2d_workspace_floats(many) >= 28 * 28 * 9 * 32);
  // Stride 1 works on chunks of output rows, so a large image needs no more than the bound.
  const Conv2DGeom huge = conv2d_geom(2, 200, 200, 64, 3, 3, 8, 1, 1, Padding::same);
  CHECK(conv2d_workspace_floats(huge) <= (int64_t{1} << 22));
  CHECK(conv2d_workspace_floats(huge) >= 200 * 9 * 64);
  // Strided input gradients gather whole images, so one image's patches must fit.
  const Conv2DGeom strided = conv2d_geom(2, 200, 200, 64, 3, 3, 8, 2, 2, Padding::same);
  CHECK(conv2d_workspace_floats(strided) >= 100 * 100 * 9 * 64);
  const Conv2DGeom pointwise = conv2d_geom(4, 9, 9, 16, 1, 1, 8, 1, 1, Padding::same);
  CHECK(conv2d_workspace_floats(pointwise) == 0);
  // The graph engine sizes one workspace for its largest batch and reuses it for the last,
  // smaller batch of an epoch. The number of chunks and of dw partial sums grows with the batch
  // (up to a cap), which must never make a smaller batch need more.
  const Conv2DGeom deep = conv2d_geom(128, 14, 14, 64, 3, 3, 64, 1, 1, Padding::same);
  const Conv2DGeom wide = conv2d_geom(40, 8, 8, 256, 3, 3, 256, 1, 1, Padding::same);
  const Conv2DGeom narrow = conv2d_geom(128, 28, 28, 1, 3, 3, 32, 1, 1, Padding::same);
  for (const Conv2DGeom& big : {many, huge, strided, deep, wide, narrow})
    for (int64_t n = 1; n < big.n; ++n)
      REQUIRE(conv2d_workspace_floats(conv2d_geom(n, big.h, big.w, big.c, big.kh, big.kw, big.oc, big.stride_h,
                                                  big.stride_w, Padding::same)) <= conv2d_workspace_floats(big));
}

TEST_CASE("conv2d: stride-1 input gradient through the rotated kernel matches direct backward") {
  // Stride-1 din is computed as a convolution of dout with the rotated kernel, and dw from the
  // same patches of dout. Cases: odd, even and non-square kernels (asymmetric 'same' padding),
  // 'valid', a kernel as large as the input, c < oc and c > oc, several images.
  const ConvCase cases[] = {
      {2, 5, 5, 3, 3, 3, 4, 1, 1, Padding::same},  {2, 6, 7, 2, 4, 2, 3, 1, 1, Padding::same},
      {1, 7, 5, 3, 2, 3, 2, 1, 1, Padding::same},  {2, 6, 6, 2, 3, 3, 5, 1, 1, Padding::valid},
      {1, 4, 5, 3, 4, 5, 2, 1, 1, Padding::valid}, {3, 4, 4, 5, 5, 5, 3, 1, 1, Padding::same},
      {2, 9, 3, 1, 3, 1, 6, 1, 1, Padding::same},  {1, 3, 8, 4, 1, 3, 4, 1, 1, Padding::valid},
  };
  Rng rng(16);
  for (const ConvCase& k : cases) {
    INFO(describe(k));
    const Conv2DGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto dout = random_floats(rng, out_size(g));
    auto ws = make_workspace(g);
    const DirectGrads ref = direct_backward(dout, in, w, g);
    std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f);
    conv2d_backward(din.data(), dw.data(), nullptr, dout.data(), in.data(), w.data(), g, ws.data());
    check_close(din, ref.din, 1e-5, 1e-5, "din with dw");
    check_close(dw, ref.dw, 1e-5, 1e-5, "dw with din");
    std::vector<float> din_only(in.size(), 0.0f);
    conv2d_backward(din_only.data(), nullptr, nullptr, dout.data(), in.data(), w.data(), g, ws.data());
    CHECK(din_only == din);
  }
}

TEST_CASE("conv2d: kernels too large for partial sums still match direct backward") {
  // 3x3x256x256 weights leave no room for per-group partial sums of dw, and the 8x8 image is
  // still cut into two chunks: the chunks then run in order, each product split over threads.
  const Conv2DGeom g = conv2d_geom(1, 8, 8, 256, 3, 3, 256, 1, 1, Padding::same);
  Rng rng(17);
  auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
  auto dout = random_floats(rng, out_size(g));
  auto ws = make_workspace(g);
  std::vector<float> out(static_cast<size_t>(out_size(g)));
  conv2d_forward(out.data(), in.data(), w.data(), nullptr, g, ws.data());
  check_close(out, direct_forward(in, w, nullptr, g), 1e-4, 1e-4, "forward");
  const DirectGrads ref = direct_backward(dout, in, w, g);
  std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f);
  conv2d_backward(din.data(), dw.data(), nullptr, dout.data(), in.data(), w.data(), g, ws.data());
  check_close(din, ref.din, 1e-4, 1e-4, "din");
  check_close(dw, ref.dw, 1e-4, 1e-4, "dw");
  std::vector<float> dw_only(w.size(), 0.0f);
  conv2d_backward(nullptr, dw_only.data(), nullptr, dout.data(), in.data(), w.data(), g, ws.data());
  check_close(dw_only, ref.dw, 1e-4, 1e-4, "dw without din");
}

TEST_CASE("conv2d: pointwise convolution runs without a workspace") {
  const Conv2DGeom g = conv2d_geom(3, 5, 7, 6, 1, 1, 4, 1, 1, Padding::valid);
  Rng rng(14);
  auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
  auto b = random_floats(rng, g.oc), dout = random_floats(rng, out_size(g));
  std::vector<float> out(static_cast<size_t>(out_size(g)));
  conv2d_forward(out.data(), in.data(), w.data(), b.data(), g, nullptr);
  check_close(out, direct_forward(in, w, b.data(), g), 1e-5, 1e-5, "forward");
  std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
  conv2d_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(), w.data(), g, nullptr);
  const DirectGrads ref = direct_backward(dout, in, w, g);
  check_close(din, ref.din, 1e-5, 1e-5, "din");
  check_close(dw, ref.dw, 1e-5, 1e-5, "dw");
  check_close(db, ref.db, 1e-5, 1e-5, "db");
}

TEST_CASE("conv2d: backward accumulates and skips gradients passed as nullptr") {
  for (const ConvCase& k : {kCases[1], kCases[3]}) {
    INFO(describe(k));
    const Conv2DGeom g = geom_of(k);
    Rng rng(15);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto dout = random_floats(rng, out_size(g));
    auto ws = make_workspace(g);
    std::vector<float> din1(in.size(), 0.0f), dw1(w.size(), 0.0f), db1(static_cast<size_t>(g.oc), 0.0f);
    conv2d_backward(din1.data(), dw1.data(), db1.data(), dout.data(), in.data(), w.data(), g, ws.data());
    auto din2 = din1, dw2 = dw1, db2 = db1;
    conv2d_backward(din2.data(), dw2.data(), db2.data(), dout.data(), in.data(), w.data(), g, ws.data());
    for (size_t i = 0; i < din1.size(); ++i) REQUIRE(din2[i] == doctest::Approx(2 * din1[i]));
    for (size_t i = 0; i < dw1.size(); ++i) REQUIRE(dw2[i] == doctest::Approx(2 * dw1[i]));
    for (size_t i = 0; i < db1.size(); ++i) REQUIRE(db2[i] == doctest::Approx(2 * db1[i]));

    // The first layer passes din = nullptr; weight gradients must not change because of it.
    std::vector<float> dw3(w.size(), 0.0f), db3(static_cast<size_t>(g.oc), 0.0f);
    conv2d_backward(nullptr, dw3.data(), db3.data(), dout.data(), in.data(), w.data(), g, ws.data());
    CHECK(dw3 == dw1);
    CHECK(db3 == db1);
    std::vector<float> din4(in.size(), 0.0f);
    conv2d_backward(din4.data(), nullptr, nullptr, dout.data(), in.data(), w.data(), g, ws.data());
    CHECK(din4 == din1);
  }
}

TEST_CASE("conv2d: the cnn_bn model's convolutions match direct and do not depend on the thread count") {
  // The convolutions of recipes/mnist/cnn_bn.yaml, as timed by bench/bench_float_layers.cpp,
  // at a batch of 4 (several chunks and dw groups per call). The first one gets no din, like
  // the layer that reads the data.
  struct ModelConv {
    int64_t h, w, c, oc;
    bool first;
  };
  const ModelConv convs[] = {{28, 28, 1, 32, true}, {28, 28, 32, 32, false}, {14, 14, 32, 64, false},
                             {14, 14, 64, 64, false}};
  Rng rng(18);
  for (const ModelConv& mc : convs) {
    const Conv2DGeom g = conv2d_geom(4, mc.h, mc.w, mc.c, 3, 3, mc.oc, 1, 1, Padding::same);
    INFO("h ", mc.h, " w ", mc.w, " c ", mc.c, " oc ", mc.oc);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto b = random_floats(rng, g.oc), dout = random_floats(rng, out_size(g));
    auto ws = make_workspace(g);
    struct Result {
      std::vector<float> out, din, dw, db;
    };
    auto run = [&](int threads) {
      set_num_threads(threads);
      Result r{std::vector<float>(static_cast<size_t>(out_size(g))), std::vector<float>(in.size(), 0.0f),
               std::vector<float>(w.size(), 0.0f), std::vector<float>(b.size(), 0.0f)};
      conv2d_forward(r.out.data(), in.data(), w.data(), b.data(), g, ws.data());
      conv2d_backward(mc.first ? nullptr : r.din.data(), r.dw.data(), r.db.data(), dout.data(), in.data(),
                      w.data(), g, ws.data());
      set_num_threads(0);
      return r;
    };
    const Result one = run(1);
    check_close(one.out, direct_forward(in, w, b.data(), g), 1e-4, 1e-4, "forward");
    const DirectGrads ref = direct_backward(dout, in, w, g);
    if (!mc.first) check_close(one.din, ref.din, 1e-4, 1e-4, "din");
    check_close(one.dw, ref.dw, 1e-4, 1e-3, "dw");
    check_close(one.db, ref.db, 1e-4, 1e-3, "db");
    for (int threads : {2, 3}) {
      INFO(threads, " threads");
      const Result r = run(threads);
      CHECK(r.out == one.out);
      CHECK(r.din == one.din);
      CHECK(r.dw == one.dw);
      CHECK(r.db == one.db);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Inference (conv2d_infer): OpenBLAS on HWIO weights, or gemm_packed on packed weights.

namespace {

// The geometries conv2d_infer meets: kCases, plus a stem (7x7 stride 2 on 3 channels), a zero
// padding folded in (pads larger than 'same', windows past every edge), 1x1 stride 2 (windows
// inside the input), and batch-1 shapes wide enough that the products are cut by output channels.
std::vector<Conv2DGeom> infer_geoms() {
  std::vector<Conv2DGeom> gs;
  for (const ConvCase& k : kCases) gs.push_back(geom_of(k));
  gs.push_back(conv2d_geom(2, 23, 23, 3, 7, 7, 8, 2, 2, Padding::same));
  Conv2DGeom folded = conv2d_geom(1, 6, 5, 3, 3, 3, 5, 1, 1, Padding::valid);
  folded.pad_top = 2, folded.pad_left = 1, folded.oh = 6, folded.ow = 7;  // pads 2/2 and 1/3
  gs.push_back(folded);
  gs.push_back(conv2d_geom(2, 9, 9, 16, 1, 1, 24, 2, 2, Padding::same));
  gs.push_back(conv2d_geom(1, 14, 14, 64, 3, 3, 256, 1, 1, Padding::same));
  gs.push_back(conv2d_geom(1, 7, 7, 96, 1, 1, 300, 1, 1, Padding::same));
  return gs;
}

std::string describe(const Conv2DGeom& g) {
  return fmt::format("n{} {}x{}x{} k{}x{} oc{} s{}x{} pads {}/{} out {}x{}", g.n, g.h, g.w, g.c, g.kh, g.kw, g.oc,
                     g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.oh, g.ow);
}

// What gemm_packed promises: per output, bias + residual, then one fused multiply-add per tap in
// (ky, kx, ci) order (taps in the padding multiply a 0), then the activation.
std::vector<float> fma_chain_forward(const std::vector<float>& in, const std::vector<float>& w, const float* b,
                                     const float* residual, const Conv2DGeom& g, Activation act) {
  std::vector<float> out(static_cast<size_t>(out_size(g)));
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t y = 0; y < g.oh; ++y)
      for (int64_t x = 0; x < g.ow; ++x)
        for (int64_t o = 0; o < g.oc; ++o) {
          const int64_t at = ((i * g.oh + y) * g.ow + x) * g.oc + o;
          float s = (residual ? residual[at] : 0.0f) + (b ? b[o] : 0.0f);
          for (int64_t ky = 0; ky < g.kh; ++ky)
            for (int64_t kx = 0; kx < g.kw; ++kx)
              for (int64_t ci = 0; ci < g.c; ++ci) {
                const int64_t iy = y * g.stride_h - g.pad_top + ky, ix = x * g.stride_w - g.pad_left + kx;
                const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
                const float v = inside ? in[static_cast<size_t>(((i * g.h + iy) * g.w + ix) * g.c + ci)] : 0.0f;
                s = std::fma(v, w[static_cast<size_t>(((ky * g.kw + kx) * g.c + ci) * g.oc + o)], s);
              }
          out[static_cast<size_t>(at)] = s;
        }
  activate(out.data(), static_cast<int64_t>(out.size()), act);
  return out;
}

// conv2d_infer on `threads` threads, the residual (if any) added in place (out starts as it).
std::vector<float> run_infer(const Conv2DGeom& g, const std::vector<float>& in, const std::vector<float>& w,
                             bool packed, const float* b, const std::vector<float>* residual, Activation act,
                             int threads) {
  set_num_threads(threads);
  std::vector<float> ws(static_cast<size_t>(conv2d_infer_workspace_floats(g, threads, packed)),
                        std::numeric_limits<float>::quiet_NaN());
  std::vector<float> out = residual ? *residual : std::vector<float>(static_cast<size_t>(out_size(g)), 1e30f);
  conv2d_infer(out.data(), in.data(), w.data(), packed, b, residual ? out.data() : nullptr, g, act,
               ws.empty() ? nullptr : ws.data());
  set_num_threads(0);
  return out;
}

}  // namespace

TEST_CASE("conv2d_infer: OpenBLAS and packed weights match the direct convolution, on any thread count") {
  Rng rng(21);
  for (const Conv2DGeom& g : infer_geoms()) {
    INFO(describe(g));
    const auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    const auto b = random_floats(rng, g.oc), res = random_floats(rng, out_size(g));
    std::vector<double> want = direct_forward(in, w, b.data(), g);
    for (size_t j = 0; j < want.size(); ++j) want[j] = std::clamp(want[j] + res[j], 0.0, 6.0);
    std::vector<bool> modes{false};
    if (packed_gemm_supported()) modes.push_back(true);
    for (bool packed : modes) {
      INFO((packed ? "packed" : "OpenBLAS"));
      std::vector<float> wl = w;
      if (packed) {
        wl.assign(static_cast<size_t>(packed_floats(g.kh * g.kw * g.c, g.oc)), 0.0f);
        pack_weights(wl.data(), w.data(), g.kh * g.kw * g.c, g.oc);
      }
      const auto one = run_infer(g, in, wl, packed, b.data(), &res, Activation::relu6, 1);
      check_close(one, want, 1e-4, 1e-4, "relu6(conv + bias + residual)");
      CHECK(run_infer(g, in, wl, packed, b.data(), &res, Activation::relu6, 2) == one);
      if (packed) CHECK(one == fma_chain_forward(in, w, b.data(), res.data(), g, Activation::relu6));
    }
  }
}

TEST_CASE("conv2d_infer: packed weights give one in-order fma chain per output, bit for bit") {
  if (!packed_gemm_supported()) return;
  Rng rng(22);
  for (const Conv2DGeom& g : infer_geoms()) {
    INFO(describe(g));
    const auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    const auto b = random_floats(rng, g.oc);
    std::vector<float> packed(static_cast<size_t>(packed_floats(g.kh * g.kw * g.c, g.oc)));
    pack_weights(packed.data(), w.data(), g.kh * g.kw * g.c, g.oc);
    // Without bias or residual the output starts at 0; with a bias only; ReLU or none.
    CHECK(run_infer(g, in, packed, true, nullptr, nullptr, Activation::none, 2) ==
          fma_chain_forward(in, w, nullptr, nullptr, g, Activation::none));
    CHECK(run_infer(g, in, packed, true, b.data(), nullptr, Activation::relu, 1) ==
          fma_chain_forward(in, w, b.data(), nullptr, g, Activation::relu));
  }
}
