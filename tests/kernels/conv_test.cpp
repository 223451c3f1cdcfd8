// Tests of the reference conv2d, depthwise conv2d and dense kernels: every curated shape
// against a real-arithmetic oracle (dequantize, convolve in double, requantize with the
// exact real multiplier), plus hand-computed cases.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/params.h"
#include "kernels/ref/kernels.h"
#include "kernels/shapes.h"
#include "kernels/testutil.h"

using namespace qatc;
using namespace qatc::kernels;
using namespace qatc::test;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The fused activation of a random case, as real bounds: none, ReLU, or a ReLU6-like cap at
// half the largest |output| (so that it bites).
struct RealBounds {
  double lo, hi;
};
RealBounds activation_of(size_t case_index, double max_abs) {
  switch (case_index % 3) {
    case 0: return {-kInf, kInf};
    case 1: return {0.0, kInf};
    default: return {0.0, 0.5 * max_abs};
  }
}

// Shared random quantization of a conv-like layer with `channels` output channels and
// reduction depth `depth`; the output scale is set from the real accumulators so that the
// outputs span int8 with a little saturation.
struct Quant {
  double s_in;
  int32_t zp_in;
  std::vector<double> s_w;
  std::vector<int32_t> bias;
};

Quant random_quant(Rng& rng, int64_t channels, int64_t depth, bool per_channel) {
  Quant q;
  q.s_in = uniform_real(rng, 0.005, 0.05);
  q.zp_in = uniform_int(rng, -40, 40);
  const double shared = uniform_real(rng, 0.001, 0.02);
  const int32_t bias_range =
      static_cast<int32_t>(std::min(4000.0 * std::sqrt(static_cast<double>(depth)), 1e8));
  for (int64_t k = 0; k < channels; ++k) {
    q.s_w.push_back(per_channel ? uniform_real(rng, 0.001, 0.02) : shared);
    q.bias.push_back(uniform_int(rng, -bias_range, bias_range));
  }
  return q;
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m > 0.0 ? m : 1.0;
}

// Requantizes real accumulators with the exact real output scale.
std::vector<int32_t> oracle_output(const std::vector<double>& acc_real, double s_out,
                                   int32_t zp_out, RealBounds b) {
  std::vector<int32_t> out;
  out.reserve(acc_real.size());
  for (double r : acc_real) out.push_back(quantize_real(std::clamp(r, b.lo, b.hi), s_out, zp_out));
  return out;
}

struct ConvCase {
  ConvShape shape;
  ConvGeometry g;
  std::vector<int8_t> input, weights;
  Quant q;
  double s_out;
  int32_t zp_out;
  RealBounds bounds;
  ChannelMultipliers cm;
  Conv2DParams params;
  std::vector<double> acc_real;  // oracle, before the output scale
};

// Real conv in double: sum (s_in (q - zp_in)) (s_w q_w) + s_in s_w bias, padding = real 0.
std::vector<double> real_conv(const ConvCase& t) {
  const ConvShape& s = t.shape;
  std::vector<double> acc;
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t oy = 0; oy < t.g.oh; ++oy)
      for (int64_t ox = 0; ox < t.g.ow; ++ox)
        for (int64_t oc = 0; oc < s.oc; ++oc) {
          const size_t k = static_cast<size_t>(oc);
          double r = t.q.s_in * t.q.s_w[k] * t.q.bias[k];
          for (int64_t ky = 0; ky < s.kh; ++ky)
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              const int64_t iy = oy * s.stride_h - t.g.pad_top + ky;
              const int64_t ix = ox * s.stride_w - t.g.pad_left + kx;
              if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
              for (int64_t ic = 0; ic < s.c; ++ic) {
                const double x = t.q.s_in * (t.input[static_cast<size_t>(((b * s.h + iy) * s.w + ix) * s.c + ic)] - t.q.zp_in);
                const double w = t.q.s_w[k] * t.weights[static_cast<size_t>(((oc * s.kh + ky) * s.kw + kx) * s.c + ic)];
                r += x * w;
              }
            }
          acc.push_back(r);
        }
  return acc;
}

ConvCase make_conv_case(Rng& rng, const ConvShape& s, size_t index) {
  ConvCase t;
  t.shape = s;
  t.g = geometry(s);
  t.input = random_int8(rng, s.n * s.h * s.w * s.c);
  t.weights = random_int8(rng, s.oc * s.kh * s.kw * s.c, -127, 127);
  t.q = random_quant(rng, s.oc, s.kh * s.kw * s.c, index % 2 == 0);
  t.acc_real = real_conv(t);
  const double m = max_abs(t.acc_real);
  t.s_out = m / 120.0;
  t.zp_out = uniform_int(rng, -10, 10);
  t.bounds = activation_of(index, m);
  t.cm = make_channel_multipliers(t.q.s_in, t.q.s_w, t.s_out);
  const Clamp c = make_clamp(t.s_out, t.zp_out, t.bounds.lo, t.bounds.hi);
  t.params = Conv2DParams{s.n, s.h, s.w, s.c, s.kh, s.kw, s.oc, s.stride_h, s.stride_w,
                          t.g.pad_top, t.g.pad_left, t.g.oh, t.g.ow, t.q.zp_in, t.zp_out,
                          t.weights.data(), t.q.bias.data(), t.cm.multiplier.data(),
                          t.cm.shift.data(), c.qmin, c.qmax};
  return t;
}

}  // namespace

TEST_CASE("ref conv2d matches the real-arithmetic oracle on every curated shape") {
  Rng rng(101);
  Agreement total;
  const auto& shapes = conv_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) {
    const ConvCase t = make_conv_case(rng, shapes[i], i);
    std::vector<int8_t> out(static_cast<size_t>(t.shape.n * t.g.oh * t.g.ow * t.shape.oc));
    ref::conv2d_qs8(out.data(), t.input.data(), t.params);
    const Agreement a = compare(out, oracle_output(t.acc_real, t.s_out, t.zp_out, t.bounds));
    INFO(describe(t.shape));
    CHECK(a.max_diff <= 1);
    total += a;
  }
  check_agreement(total, "conv2d, all shapes");
}

TEST_CASE("ref conv2d padding reads the input zero point") {
  // One pixel, 3x3 'same' kernel: the 8 neighbours are padding. Weights 1 around, 2 centre.
  std::vector<int8_t> w(9, 1);
  w[4] = 2;
  const int32_t bias = 10;
  const int32_t mult = 1 << 30, shift = 0;  // m = 0.5
  Conv2DParams p{1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, /*zp_in*/ 5, /*zp_out*/ -3,
                 w.data(), &bias, &mult, &shift, -128, 127};
  int8_t out = 0;
  const int8_t in7 = 7;  // acc = 10 + (7 - 5) * 2 = 14 -> 7 -> -3 + 7 = 4
  ref::conv2d_qs8(&out, &in7, p);
  CHECK(int{out} == 4);
  const int8_t in5 = 5;  // real zero: acc = bias = 10 -> 5 -> 2
  ref::conv2d_qs8(&out, &in5, p);
  CHECK(int{out} == 2);
  // Had padding been q = 0 it would add (0 - 5) * 8 = -40.
}

TEST_CASE("ref conv2d 1x1 equals dense bit for bit") {
  Rng rng(103);
  const ConvShape s{3, 4, 5, 31, 33, 1, 1, 1, 1, Padding::valid};
  const ConvCase t = make_conv_case(rng, s, 1);
  std::vector<int8_t> conv_out(static_cast<size_t>(3 * 4 * 5 * 33));
  ref::conv2d_qs8(conv_out.data(), t.input.data(), t.params);
  // A 1x1 conv weight [oc, 1, 1, c] is a dense weight [out, in]; pixels are rows.
  DenseParams d{3 * 4 * 5, 31, 33, t.q.zp_in, t.zp_out, t.weights.data(), t.q.bias.data(),
                t.cm.multiplier.data(), t.cm.shift.data(), t.params.qmin, t.params.qmax};
  std::vector<int8_t> dense_out(conv_out.size());
  ref::dense_qs8(dense_out.data(), t.input.data(), d);
  CHECK(conv_out == dense_out);
}

TEST_CASE("ref conv2d without bias equals zero bias") {
  Rng rng(107);
  const ConvShape s{1, 5, 5, 3, 4, 3, 3, 2, 2, Padding::same};
  ConvCase t = make_conv_case(rng, s, 0);
  std::fill(t.q.bias.begin(), t.q.bias.end(), 0);
  std::vector<int8_t> with_zero(static_cast<size_t>(3 * 3 * 4)), without(with_zero.size());
  ref::conv2d_qs8(with_zero.data(), t.input.data(), t.params);
  t.params.bias = nullptr;
  ref::conv2d_qs8(without.data(), t.input.data(), t.params);
  CHECK(with_zero == without);
}

TEST_CASE("ref dense ReLU6 clamp bounds") {
  // s_out = 0.05, zp_out = -10: ReLU6 is [quantize(0), quantize(6)] = [-10, -10 + 120].
  const Clamp c = make_clamp(0.05, -10, 0.0, 6.0);
  CHECK(c.qmin == -10);
  CHECK(c.qmax == 110);
  const std::vector<int8_t> w = {-50, 20, 127, 0};
  const std::vector<int32_t> mult(4, 1 << 30), shift(4, 1);  // m = 1
  DenseParams p{1, 1, 4, 0, -10, w.data(), nullptr, mult.data(), shift.data(), c.qmin, c.qmax};
  const int8_t in = 1;
  std::vector<int8_t> out(4);
  ref::dense_qs8(out.data(), &in, p);
  CHECK(out == std::vector<int8_t>{-10, 10, 110, -10});  // -60 -> -10, 10, 117 -> 110, 0 - 10
  // ReLU6 whose 6.0 lies beyond int8: the cap is 127; ReLU alone: qmax 127.
  CHECK(make_clamp(0.1, -128, 0.0, 6.0).qmax == -68);
  CHECK(make_clamp(6.0 / 255.0, -128, 0.0, 6.0).qmax == 127);
  CHECK(make_clamp(0.01, 0, 0.0, 6.0).qmax == 127);
  CHECK(make_clamp(0.01, 5, 0.0, kInf).qmin == 5);
  CHECK(make_clamp(0.01, 5, -kInf, kInf).qmin == -128);
}

TEST_CASE("ref dense matches the real-arithmetic oracle on every curated shape") {
  Rng rng(109);
  Agreement total;
  const auto& shapes = dense_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) {
    const DenseShape& s = shapes[i];
    const auto input = random_int8(rng, s.n * s.in_features);
    const auto weights = random_int8(rng, s.out_features * s.in_features, -127, 127);
    const Quant q = random_quant(rng, s.out_features, s.in_features, i % 2 == 0);
    std::vector<double> acc;
    for (int64_t b = 0; b < s.n; ++b)
      for (int64_t o = 0; o < s.out_features; ++o) {
        const size_t k = static_cast<size_t>(o);
        double r = q.s_in * q.s_w[k] * q.bias[k];
        for (int64_t j = 0; j < s.in_features; ++j)
          r += (q.s_in * (input[static_cast<size_t>(b * s.in_features + j)] - q.zp_in)) *
               (q.s_w[k] * weights[static_cast<size_t>(o * s.in_features + j)]);
        acc.push_back(r);
      }
    const double m = max_abs(acc);
    const double s_out = m / 120.0;
    const int32_t zp_out = uniform_int(rng, -10, 10);
    const RealBounds bounds = activation_of(i, m);
    const ChannelMultipliers cm = make_channel_multipliers(q.s_in, q.s_w, s_out);
    const Clamp c = make_clamp(s_out, zp_out, bounds.lo, bounds.hi);
    DenseParams p{s.n, s.in_features, s.out_features, q.zp_in, zp_out, weights.data(),
                  q.bias.data(), cm.multiplier.data(), cm.shift.data(), c.qmin, c.qmax};
    std::vector<int8_t> out(static_cast<size_t>(s.n * s.out_features));
    ref::dense_qs8(out.data(), input.data(), p);
    const Agreement a = compare(out, oracle_output(acc, s_out, zp_out, bounds));
    INFO("dense n" << s.n << " in" << s.in_features << " out" << s.out_features);
    CHECK(a.max_diff <= 1);
    total += a;
  }
  check_agreement(total, "dense, all shapes");
}

TEST_CASE("ref depthwise conv2d matches the real-arithmetic oracle on every curated shape") {
  Rng rng(113);
  Agreement total;
  const auto& shapes = conv_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) {
    const ConvShape& s = shapes[i];
    const ConvGeometry g = geometry(s);
    const int64_t m = s.depth_multiplier, oc_count = s.c * m;
    const auto input = random_int8(rng, s.n * s.h * s.w * s.c);
    const auto weights = random_int8(rng, s.kh * s.kw * oc_count, -127, 127);
    const Quant q = random_quant(rng, oc_count, s.kh * s.kw, i % 2 == 0);
    std::vector<double> acc;
    for (int64_t b = 0; b < s.n; ++b)
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox)
          for (int64_t oc = 0; oc < oc_count; ++oc) {
            const int64_t ic = oc / m;
            const size_t k = static_cast<size_t>(oc);
            double r = q.s_in * q.s_w[k] * q.bias[k];
            for (int64_t ky = 0; ky < s.kh; ++ky)
              for (int64_t kx = 0; kx < s.kw; ++kx) {
                const int64_t iy = oy * s.stride_h - g.pad_top + ky;
                const int64_t ix = ox * s.stride_w - g.pad_left + kx;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                r += (q.s_in * (input[static_cast<size_t>(((b * s.h + iy) * s.w + ix) * s.c + ic)] - q.zp_in)) *
                     (q.s_w[k] * weights[static_cast<size_t>((ky * s.kw + kx) * oc_count + oc)]);
              }
            acc.push_back(r);
          }
    const double mx = max_abs(acc);
    const double s_out = mx / 120.0;
    const int32_t zp_out = uniform_int(rng, -10, 10);
    const RealBounds bounds = activation_of(i, mx);
    const ChannelMultipliers cm = make_channel_multipliers(q.s_in, q.s_w, s_out);
    const Clamp c = make_clamp(s_out, zp_out, bounds.lo, bounds.hi);
    DepthwiseConv2DParams p{s.n, s.h, s.w, s.c, s.kh, s.kw, m, s.stride_h, s.stride_w,
                            g.pad_top, g.pad_left, g.oh, g.ow, q.zp_in, zp_out, weights.data(),
                            q.bias.data(), cm.multiplier.data(), cm.shift.data(), c.qmin, c.qmax};
    std::vector<int8_t> out(static_cast<size_t>(s.n * g.oh * g.ow * oc_count));
    ref::depthwise_conv2d_qs8(out.data(), input.data(), p);
    const Agreement a = compare(out, oracle_output(acc, s_out, zp_out, bounds));
    INFO(describe(s));
    CHECK(a.max_diff <= 1);
    total += a;
  }
  check_agreement(total, "depthwise conv2d, all shapes");
}

TEST_CASE("ref depthwise conv2d on one channel equals conv2d") {
  // c = 1, depth multiplier m: depthwise weights [kh, kw, m] are conv weights [m, kh, kw, 1]
  // transposed; the outputs must be identical bytes.
  Rng rng(127);
  const ConvShape s{2, 7, 6, 1, 3, 3, 3, 2, 1, Padding::same, 3};
  ConvCase t = make_conv_case(rng, s, 2);
  std::vector<int8_t> dw_weights(static_cast<size_t>(3 * 3 * 3));
  for (int64_t oc = 0; oc < 3; ++oc)
    for (int64_t k = 0; k < 9; ++k)
      dw_weights[static_cast<size_t>(k * 3 + oc)] = t.weights[static_cast<size_t>(oc * 9 + k)];
  const Conv2DParams& cp = t.params;
  DepthwiseConv2DParams p{cp.n, cp.h, cp.w, 1, cp.kh, cp.kw, 3, cp.stride_h, cp.stride_w,
                          cp.pad_top, cp.pad_left, cp.oh, cp.ow, cp.input_zero_point,
                          cp.output_zero_point, dw_weights.data(), cp.bias, cp.multiplier,
                          cp.shift, cp.qmin, cp.qmax};
  std::vector<int8_t> conv_out(static_cast<size_t>(2 * cp.oh * cp.ow * 3)), dw_out(conv_out.size());
  ref::conv2d_qs8(conv_out.data(), t.input.data(), cp);
  ref::depthwise_conv2d_qs8(dw_out.data(), t.input.data(), p);
  CHECK(conv_out == dw_out);
}
