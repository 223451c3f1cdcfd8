// Tests for depthwise convolution against a direct double-precision formula and finite
// differences: multipliers 1..3, strides 1..3, both paddings, odd sizes, kh != kw, channel
// counts that exercise every channel block of the kernel, TensorFlow's 'same' alignment,
// thread-count independence and the accumulate / nullptr conventions.
#include <doctest/doctest.h>

#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "nn/depthwise.h"
#include "nn/gradcheck.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_close;
using qatc::test::check_grad;
using qatc::test::dot;
using qatc::test::numeric_grad;
using qatc::test::random_floats;

namespace {

struct DwCase {
  int64_t n, h, w, c, kh, kw, m, sh, sw;
  Padding pad;
};

// Multipliers 1, 2 and 3, strides 1..3, both paddings, odd sizes, kh != kw, 1x1 kernels, kernels
// as large as the input, and 21 / 23 channels (a block of 16, blocks of 4 and single channels).
const DwCase kCases[] = {
    {2, 5, 5, 3, 3, 3, 1, 1, 1, Padding::same},   {2, 7, 6, 2, 3, 2, 2, 2, 2, Padding::same},
    {1, 6, 7, 3, 2, 3, 1, 2, 1, Padding::valid},  {1, 9, 8, 2, 3, 3, 2, 1, 1, Padding::valid},
    {2, 8, 8, 5, 5, 5, 1, 3, 3, Padding::same},   {3, 6, 5, 4, 4, 2, 3, 2, 1, Padding::same},
    {1, 5, 5, 21, 3, 3, 1, 2, 2, Padding::same},  {2, 4, 4, 2, 1, 1, 2, 1, 1, Padding::valid},
    {1, 3, 3, 2, 3, 3, 1, 1, 1, Padding::valid},  {1, 7, 9, 23, 3, 3, 1, 1, 2, Padding::valid},
    {2, 5, 6, 6, 2, 4, 2, 1, 1, Padding::same},   {1, 6, 6, 17, 3, 3, 1, 2, 2, Padding::same},
};

std::string describe(const DwCase& k) {
  return fmt::format("n{} h{} w{} c{} k{}x{} m{} s{}x{} {}", k.n, k.h, k.w, k.c, k.kh, k.kw, k.m, k.sh,
                     k.sw, k.pad == Padding::same ? "same" : "valid");
}

DepthwiseGeom geom_of(const DwCase& k) {
  return depthwise_geom(k.n, k.h, k.w, k.c, k.kh, k.kw, k.m, k.sh, k.sw, k.pad);
}

int64_t out_channels(const DepthwiseGeom& g) { return g.c * g.multiplier; }
int64_t in_size(const DepthwiseGeom& g) { return g.n * g.h * g.w * g.c; }
int64_t w_size(const DepthwiseGeom& g) { return g.kh * g.kw * out_channels(g); }
int64_t out_size(const DepthwiseGeom& g) { return g.n * g.oh * g.ow * out_channels(g); }

// Calls f(out_index, in_index, w_index) for every tap that reads a real pixel, straight from
// the definition: output channel o = ic*M + j reads input channel ic = o / M.
template <class F>
void for_each_tap(const DepthwiseGeom& g, F&& f) {
  const int64_t oc = out_channels(g);
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t y = 0; y < g.oh; ++y)
      for (int64_t x = 0; x < g.ow; ++x)
        for (int64_t ky = 0; ky < g.kh; ++ky)
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t iy = y * g.stride_h - g.pad_top + ky;
            const int64_t ix = x * g.stride_w - g.pad_left + kx;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            for (int64_t ic = 0; ic < g.c; ++ic)
              for (int64_t j = 0; j < g.multiplier; ++j) {
                const int64_t o = ic * g.multiplier + j;
                f(((i * g.oh + y) * g.ow + x) * oc + o, ((i * g.h + iy) * g.w + ix) * g.c + ic,
                  (ky * g.kw + kx) * oc + o);
              }
          }
}

std::vector<double> direct_forward(const std::vector<float>& in, const std::vector<float>& w,
                                   const float* b, const DepthwiseGeom& g) {
  std::vector<double> out(static_cast<size_t>(out_size(g)), 0.0);
  if (b)
    for (size_t j = 0; j < out.size(); ++j) out[j] = b[static_cast<int64_t>(j) % out_channels(g)];
  for_each_tap(g, [&](int64_t oi, int64_t ii, int64_t wi) {
    out[static_cast<size_t>(oi)] += static_cast<double>(in[static_cast<size_t>(ii)]) * w[static_cast<size_t>(wi)];
  });
  return out;
}

struct DirectGrads {
  std::vector<double> din, dw, db;
};
DirectGrads direct_backward(const std::vector<float>& dout, const std::vector<float>& in,
                            const std::vector<float>& w, const DepthwiseGeom& g) {
  const size_t oc = static_cast<size_t>(out_channels(g));
  DirectGrads r{std::vector<double>(in.size(), 0.0), std::vector<double>(w.size(), 0.0),
                std::vector<double>(oc, 0.0)};
  for_each_tap(g, [&](int64_t oi, int64_t ii, int64_t wi) {
    const double d = dout[static_cast<size_t>(oi)];
    r.din[static_cast<size_t>(ii)] += d * w[static_cast<size_t>(wi)];
    r.dw[static_cast<size_t>(wi)] += d * in[static_cast<size_t>(ii)];
  });
  for (size_t j = 0; j < dout.size(); ++j) r.db[j % oc] += dout[j];
  return r;
}

}  // namespace

TEST_CASE("depthwise: geometry follows the TensorFlow padding rule") {
  // 5 -> 3 with stride 2 and k 3: (3-1)*2 + 3 - 5 = 2 padding rows, one on each side.
  const DepthwiseGeom a = depthwise_geom(1, 5, 5, 4, 3, 3, 1, 2, 2, Padding::same);
  CHECK(a.oh == 3);
  CHECK(a.ow == 3);
  CHECK(a.pad_top == 1);
  CHECK(a.pad_left == 1);
  // 6 -> 3: a single padding row, which TensorFlow puts at the bottom (and right).
  const DepthwiseGeom b = depthwise_geom(1, 6, 6, 4, 3, 3, 1, 2, 2, Padding::same);
  CHECK(b.oh == 3);
  CHECK(b.pad_top == 0);
  CHECK(b.pad_left == 0);
  CHECK((b.oh - 1) * b.stride_h + b.kh - b.h - b.pad_top == 1);  // bottom padding
  const DepthwiseGeom v = depthwise_geom(2, 9, 8, 3, 3, 2, 2, 2, 3, Padding::valid);
  CHECK(v.oh == 4);
  CHECK(v.ow == 3);
  CHECK(v.pad_top == 0);
  CHECK(v.multiplier == 2);
  CHECK_THROWS_AS(depthwise_geom(1, 2, 5, 1, 3, 3, 1, 1, 1, Padding::valid), qatc::Error);
  CHECK_THROWS_AS(depthwise_geom(1, 5, 5, 0, 3, 3, 1, 1, 1, Padding::same), qatc::Error);
  CHECK_THROWS_AS(depthwise_geom(1, 5, 5, 2, 3, 3, 0, 1, 1, Padding::same), qatc::Error);
  CHECK_THROWS_AS(depthwise_geom(1, 5, 5, 2, 3, 3, 1, 0, 1, Padding::same), qatc::Error);
}

TEST_CASE("depthwise: 'same' padding is aligned as in TensorFlow") {
  // h = w = 6, stride 2, k 3: output (y, x) reads rows 2y..2y+2, the last one padded. A kernel
  // that is 1 only at tap (0, 0) therefore copies in[2y, 2x] (no padding above or left); with
  // the padding split the other way the first output would read padding instead.
  const DepthwiseGeom g = depthwise_geom(1, 6, 6, 1, 3, 3, 1, 2, 2, Padding::same);
  std::vector<float> in(36), w(9, 0.0f), out(9);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i + 1);
  w[0] = 1.0f;
  depthwise_forward(out.data(), in.data(), w.data(), nullptr, g);
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 0; x < 3; ++x) CHECK(out[static_cast<size_t>(y * 3 + x)] == in[static_cast<size_t>(2 * y * 6 + 2 * x)]);
  // h = w = 5: one padding row above, so tap (1, 1) is the centre and reads in[2y, 2x].
  const DepthwiseGeom g5 = depthwise_geom(1, 5, 5, 1, 3, 3, 1, 2, 2, Padding::same);
  std::vector<float> in5(25), w5(9, 0.0f), out5(9);
  for (size_t i = 0; i < in5.size(); ++i) in5[i] = static_cast<float>(i + 1);
  w5[4] = 1.0f;
  depthwise_forward(out5.data(), in5.data(), w5.data(), nullptr, g5);
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 0; x < 3; ++x)
      CHECK(out5[static_cast<size_t>(y * 3 + x)] == in5[static_cast<size_t>(2 * y * 5 + 2 * x)]);
}

TEST_CASE("depthwise: hand-computed 3x3 same convolution with two channels and multiplier 2") {
  // Input channel 0 is 1..9, channel 1 is 10 * (1..9). Output channels: 0 = channel 0 * ones,
  // 1 = channel 0 * twos, 2 = channel 1 * ones, 3 = channel 1 * zeros (then only the bias).
  const DepthwiseGeom g = depthwise_geom(1, 3, 3, 2, 3, 3, 2, 1, 1, Padding::same);
  std::vector<float> in(18), w(36), out(36);
  for (int64_t p = 0; p < 9; ++p) {
    in[static_cast<size_t>(p * 2)] = static_cast<float>(p + 1);
    in[static_cast<size_t>(p * 2 + 1)] = static_cast<float>(10 * (p + 1));
  }
  for (int64_t t = 0; t < 9; ++t) {
    w[static_cast<size_t>(t * 4 + 0)] = 1.0f;
    w[static_cast<size_t>(t * 4 + 1)] = 2.0f;
    w[static_cast<size_t>(t * 4 + 2)] = 1.0f;
    w[static_cast<size_t>(t * 4 + 3)] = 0.0f;
  }
  const float b[4] = {0.5f, 0.0f, 0.0f, -1.0f};
  depthwise_forward(out.data(), in.data(), w.data(), b, g);
  const float sums[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};  // 3x3 neighbourhood sums of 1..9
  for (size_t p = 0; p < 9; ++p) {
    CHECK(out[p * 4 + 0] == sums[p] + 0.5f);
    CHECK(out[p * 4 + 1] == 2 * sums[p]);
    CHECK(out[p * 4 + 2] == 10 * sums[p]);
    CHECK(out[p * 4 + 3] == -1.0f);
  }
}

TEST_CASE("depthwise: forward matches the direct formula") {
  Rng rng(21);
  for (const DwCase& k : kCases) {
    INFO(describe(k));
    const DepthwiseGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto b = random_floats(rng, out_channels(g));
    std::vector<float> out(static_cast<size_t>(out_size(g)));
    depthwise_forward(out.data(), in.data(), w.data(), b.data(), g);
    check_close(out, direct_forward(in, w, b.data(), g), 1e-5, 1e-5, "with bias");
    depthwise_forward(out.data(), in.data(), w.data(), nullptr, g);
    check_close(out, direct_forward(in, w, nullptr, g), 1e-5, 1e-5, "without bias");
  }
}

TEST_CASE("depthwise: gradients match finite differences") {
  Rng rng(22);
  for (const DwCase& k : kCases) {
    INFO(describe(k));
    const DepthwiseGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto b = random_floats(rng, out_channels(g)), r = random_floats(rng, out_size(g));
    std::vector<float> out(static_cast<size_t>(out_size(g)));
    auto loss = [&] {
      depthwise_forward(out.data(), in.data(), w.data(), b.data(), g);
      return dot(out, r);
    };
    std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
    depthwise_backward(din.data(), dw.data(), db.data(), r.data(), in.data(), w.data(), g);
    // The loss is linear in each argument, so a large step has no truncation error and
    // keeps float rounding in the loss small relative to the step.
    check_grad(din, numeric_grad(in, 0.25f, loss), 2e-3, "input");
    check_grad(dw, numeric_grad(w, 0.25f, loss), 2e-3, "weights");
    check_grad(db, numeric_grad(b, 0.25f, loss), 2e-3, "bias");
  }
}

TEST_CASE("depthwise: gradients match the direct formula") {
  Rng rng(23);
  for (const DwCase& k : kCases) {
    INFO(describe(k));
    const DepthwiseGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto dout = random_floats(rng, out_size(g));
    std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f), db(static_cast<size_t>(out_channels(g)), 0.0f);
    depthwise_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(), w.data(), g);
    const DirectGrads ref = direct_backward(dout, in, w, g);
    check_close(din, ref.din, 1e-5, 1e-5, "din");
    check_close(dw, ref.dw, 1e-5, 1e-5, "dw");
    check_close(db, ref.db, 1e-5, 1e-5, "db");
  }
}

TEST_CASE("depthwise: backward accumulates and skips gradients passed as nullptr") {
  for (const DwCase& k : {kCases[1], kCases[6], kCases[5]}) {
    INFO(describe(k));
    const DepthwiseGeom g = geom_of(k);
    Rng rng(24);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto dout = random_floats(rng, out_size(g));
    const size_t oc = static_cast<size_t>(out_channels(g));
    std::vector<float> din1(in.size(), 0.0f), dw1(w.size(), 0.0f), db1(oc, 0.0f);
    depthwise_backward(din1.data(), dw1.data(), db1.data(), dout.data(), in.data(), w.data(), g);
    auto din2 = din1, dw2 = dw1, db2 = db1;
    depthwise_backward(din2.data(), dw2.data(), db2.data(), dout.data(), in.data(), w.data(), g);
    for (size_t i = 0; i < din1.size(); ++i) REQUIRE(din2[i] == doctest::Approx(2 * din1[i]));
    for (size_t i = 0; i < dw1.size(); ++i) REQUIRE(dw2[i] == doctest::Approx(2 * dw1[i]));
    for (size_t i = 0; i < db1.size(); ++i) REQUIRE(db2[i] == doctest::Approx(2 * db1[i]));
    // Accumulating onto arbitrary values: the result is the old value plus the gradient.
    auto din3 = random_floats(rng, in_size(g)), dw3 = random_floats(rng, w_size(g));
    auto db3 = random_floats(rng, static_cast<int64_t>(oc));
    const auto din3_old = din3, dw3_old = dw3, db3_old = db3;
    depthwise_backward(din3.data(), dw3.data(), db3.data(), dout.data(), in.data(), w.data(), g);
    for (size_t i = 0; i < din3.size(); ++i) REQUIRE(din3[i] == doctest::Approx(din3_old[i] + din1[i]));
    for (size_t i = 0; i < dw3.size(); ++i) REQUIRE(dw3[i] == doctest::Approx(dw3_old[i] + dw1[i]));
    for (size_t i = 0; i < db3.size(); ++i) REQUIRE(db3[i] == doctest::Approx(db3_old[i] + db1[i]));

    // Each gradient alone equals the same gradient computed together with the others.
    std::vector<float> dw4(w.size(), 0.0f), db4(oc, 0.0f), din4(in.size(), 0.0f);
    depthwise_backward(nullptr, dw4.data(), nullptr, dout.data(), in.data(), w.data(), g);
    depthwise_backward(nullptr, nullptr, db4.data(), dout.data(), in.data(), w.data(), g);
    depthwise_backward(din4.data(), nullptr, nullptr, dout.data(), in.data(), w.data(), g);
    CHECK(dw4 == dw1);
    CHECK(db4 == db1);
    CHECK(din4 == din1);
    depthwise_backward(nullptr, nullptr, nullptr, dout.data(), in.data(), w.data(), g);  // no-op
  }
}

TEST_CASE("depthwise: MobileNet-like layers match direct and do not depend on the thread count") {
  // Enough output rows for every dw partial-sum group (and several rows per group), channel
  // counts that use the 16-, 8-, 4- and 1-channel blocks, strides 1 and 2, multipliers 1, 2 and 5.
  // The last three are cut into several chunks of rows (for din; the first two for forward
  // too), some of them straddling two images, and (multiplier 2) into several pieces of
  // expanded input rows.
  const DwCase cases[] = {
      {4, 14, 14, 32, 3, 3, 1, 1, 1, Padding::same},  {3, 15, 16, 40, 3, 3, 1, 2, 2, Padding::same},
      {5, 12, 12, 19, 3, 3, 1, 2, 2, Padding::same},  {2, 11, 13, 8, 3, 3, 2, 1, 1, Padding::same},
      {2, 10, 10, 64, 5, 5, 1, 1, 1, Padding::valid}, {2, 9, 7, 3, 3, 3, 5, 2, 1, Padding::same},
      {2, 40, 40, 48, 3, 3, 1, 1, 1, Padding::same},  {2, 30, 30, 24, 3, 3, 2, 1, 1, Padding::same},
      {3, 33, 31, 29, 3, 3, 1, 2, 2, Padding::same},
  };
  Rng rng(25);
  for (const DwCase& k : cases) {
    INFO(describe(k));
    const DepthwiseGeom g = geom_of(k);
    auto in = random_floats(rng, in_size(g)), w = random_floats(rng, w_size(g));
    auto b = random_floats(rng, out_channels(g)), dout = random_floats(rng, out_size(g));
    struct Result {
      std::vector<float> out, din, dw, db;
    };
    auto run = [&](int threads) {
      set_num_threads(threads);
      Result r{std::vector<float>(static_cast<size_t>(out_size(g))), std::vector<float>(in.size(), 0.0f),
               std::vector<float>(w.size(), 0.0f), std::vector<float>(b.size(), 0.0f)};
      depthwise_forward(r.out.data(), in.data(), w.data(), b.data(), g);
      depthwise_backward(r.din.data(), r.dw.data(), r.db.data(), dout.data(), in.data(), w.data(), g);
      set_num_threads(0);
      return r;
    };
    const Result one = run(1);
    check_close(one.out, direct_forward(in, w, b.data(), g), 1e-4, 1e-4, "forward");
    const DirectGrads ref = direct_backward(dout, in, w, g);
    check_close(one.din, ref.din, 1e-4, 1e-4, "din");
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
