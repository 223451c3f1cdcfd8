// Tests of the reference add, concat and uint8 -> int8 input quantize kernels.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/params.h"
#include "kernels/ref/kernels.h"
#include "kernels/shapes.h"
#include "kernels/testutil.h"

using namespace qatc;
using namespace qatc::kernels;
using namespace qatc::test;

TEST_CASE("make_add_params computes the multipliers the TFLite way") {
  const AddParams p = make_add_params(0.5, 0, 0.25, 10, 1.0, -5, -128, 127, 4);
  CHECK(p.left_shift == 20);
  CHECK(p.input1_multiplier == 1 << 30);  // 0.5 / (2 * 0.5) = 0.5
  CHECK(p.input1_shift == 0);
  CHECK(p.input2_multiplier == 1 << 30);  // 0.25
  CHECK(p.input2_shift == -1);
  CHECK(p.output_multiplier == 1 << 30);  // 1 / (2^20 * 1) = 2^-20
  CHECK(p.output_shift == -19);
}

TEST_CASE("ref add with different scales hand-computed") {
  // real = 0.5 * a and 0.25 * (b - 10); out scale 1, zero point -5.
  const std::vector<int8_t> a = {4, -3, 0, 100, -128, 1};
  const std::vector<int8_t> b = {18, 10, 12, 127, -128, 12};
  // 2 + 2 = 4; -1.5 + 0 = -1.5 -> -2; 0.5 -> 1; 50 + 29.25 -> 79; -64 - 34.5 = -98.5 -> -99;
  // 0.5 + 0.5 = 1.
  const std::vector<int8_t> want = {-1, -7, -4, 74, -104, -4};
  const AddParams p = make_add_params(0.5, 0, 0.25, 10, 1.0, -5, -128, 127, 6);
  std::vector<int8_t> out(6);
  ref::add_qs8(out.data(), a.data(), b.data(), p);
  CHECK(out == want);
  std::vector<int8_t> in_place = a;  // out may alias an input
  ref::add_qs8(in_place.data(), in_place.data(), b.data(), p);
  CHECK(in_place == want);
  // A fused ReLU clamps at the output zero point.
  const AddParams relu = make_add_params(0.5, 0, 0.25, 10, 1.0, -5, -5, 127, 6);
  ref::add_qs8(out.data(), a.data(), b.data(), relu);
  CHECK(out == std::vector<int8_t>{-1, -5, -4, 74, -5, -4});
}

TEST_CASE("ref add matches the real-arithmetic oracle on every curated size") {
  Rng rng(301);
  Agreement total;
  for (int64_t n : elementwise_sizes()) {
    const auto a = random_int8(rng, n), b = random_int8(rng, n);
    const double s1 = uniform_real(rng, 0.01, 0.1), s2 = s1 * uniform_real(rng, 0.1, 10.0);
    const double s_out = std::max(s1, s2) * uniform_real(rng, 0.5, 2.5);
    const int32_t zp1 = uniform_int(rng, -60, 60), zp2 = uniform_int(rng, -60, 60),
                  zp_out = uniform_int(rng, -60, 60);
    const AddParams p = make_add_params(s1, zp1, s2, zp2, s_out, zp_out, -128, 127, n);
    std::vector<int8_t> out(static_cast<size_t>(n));
    ref::add_qs8(out.data(), a.data(), b.data(), p);
    std::vector<int32_t> want;
    for (size_t i = 0; i < a.size(); ++i)
      want.push_back(quantize_real(s1 * (a[i] - zp1) + s2 * (b[i] - zp2), s_out, zp_out));
    const Agreement ag = compare(out, want);
    INFO("add size " << n);
    CHECK(ag.max_diff <= 1);
    total += ag;
  }
  check_agreement(total, "add, all sizes");
}

TEST_CASE("ref concat requantizes one input and copies the other byte for byte") {
  // Output scale 0.1, zero point 0. Input A has the same: copied. Input B has scale 0.2,
  // zero point 3: out = 2 * (q - 3), saturated.
  const std::vector<ConcatInputSpec> specs = {{2, 0.1, 0}, {3, 0.2, 3}};
  const ConcatParams p = make_concat_params(2, specs, 0.1, 0);
  CHECK(p.inputs[0].copy);
  CHECK(!p.inputs[1].copy);
  const std::vector<int8_t> a = {-128, 127, 5, -7};
  const std::vector<int8_t> b = {3, 10, 100, -128, 0, 66};
  std::vector<int8_t> out(10);
  const int8_t* inputs[] = {a.data(), b.data()};
  ref::concat_qs8(out.data(), inputs, p);
  CHECK(out == std::vector<int8_t>{-128, 127, 0, 14, 127, 5, -7, -128, -6, 126});
}

TEST_CASE("make_concat_params copies only on equal scale and zero point") {
  const std::vector<ConcatInputSpec> specs = {{1, 0.1, 0}, {1, 0.1, 1}, {1, 0.1000001, 0}};
  const ConcatParams p = make_concat_params(1, specs, 0.1, 0);
  CHECK(p.inputs[0].copy);
  CHECK(!p.inputs[1].copy);
  CHECK(!p.inputs[2].copy);
}

TEST_CASE("ref concat matches the real-arithmetic oracle on every curated shape") {
  Rng rng(303);
  Agreement total;
  for (const ConcatShape& s : concat_shapes()) {
    const double s_out = uniform_real(rng, 0.02, 0.05);
    const int32_t zp_out = uniform_int(rng, -20, 20);
    std::vector<ConcatInputSpec> specs;
    std::vector<std::vector<int8_t>> data;
    for (size_t k = 0; k < s.channels.size(); ++k) {
      // Every other input shares the output's quantization (the copy path).
      const bool same = k % 2 == 0;
      specs.push_back({s.channels[k], same ? s_out : s_out * uniform_real(rng, 0.25, 4.0),
                       same ? zp_out : uniform_int(rng, -40, 40)});
      data.push_back(random_int8(rng, s.outer * s.channels[k]));
    }
    const ConcatParams p = make_concat_params(s.outer, specs, s_out, zp_out);
    std::vector<const int8_t*> ptrs;
    int64_t width = 0;
    for (size_t k = 0; k < data.size(); ++k) {
      ptrs.push_back(data[k].data());
      width += s.channels[k];
    }
    std::vector<int8_t> out(static_cast<size_t>(s.outer * width));
    ref::concat_qs8(out.data(), ptrs.data(), p);
    std::vector<int32_t> want;
    for (int64_t r = 0; r < s.outer; ++r)
      for (size_t k = 0; k < specs.size(); ++k)
        for (int64_t j = 0; j < specs[k].channels; ++j) {
          const int32_t q = data[k][static_cast<size_t>(r * specs[k].channels + j)];
          want.push_back(quantize_real(specs[k].scale * (q - specs[k].zero_point), s_out, zp_out));
        }
    const Agreement a = compare(out, want);
    CHECK(a.max_diff <= 1);
    total += a;
  }
  check_agreement(total, "concat, all shapes");
}

TEST_CASE("ref quantize u8 to int8 is exactly pixel - 128 for scale 1/255") {
  std::vector<uint8_t> pixels(256);
  for (int i = 0; i < 256; ++i) pixels[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  std::vector<int8_t> out(256);
  const auto check_exact = [&](const QuantizeParams& p) {
    ref::quantize_u8_to_qs8(out.data(), pixels.data(), 256, p);
    int mismatches = 0;
    for (int i = 0; i < 256; ++i) mismatches += out[static_cast<size_t>(i)] != i - 128 ? 1 : 0;
    CHECK(mismatches == 0);
  };
  const QuantizeParams p = make_quantize_params(1.0 / 255.0, 0, 1.0 / 255.0, -128);
  CHECK(p.left_shift == 22);  // 255 * 2^22 <= 2^30
  CHECK(p.multiplier == 1 << 30);  // exactly 1.0 / 2^22
  CHECK(p.shift == 1 - 22);
  check_exact(p);
  // A model input scale that went through float32 (a checkpoint) is still exact.
  check_exact(make_quantize_params(1.0 / 255.0, 0, static_cast<float>(1.0 / 255.0), -128));
}

TEST_CASE("ref quantize u8 to int8 matches the real-arithmetic oracle") {
  Rng rng(305);
  Agreement total;
  std::vector<uint8_t> pixels(256);
  for (int i = 0; i < 256; ++i) pixels[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  for (int trial = 0; trial < 50; ++trial) {
    const double pixel_scale = 1.0 / 255.0 * uniform_real(rng, 0.5, 2.0);
    const int32_t pixel_zp = uniform_int(rng, 0, 255);
    const double s_out = uniform_real(rng, 0.002, 0.02);
    const int32_t zp_out = uniform_int(rng, -128, 127);
    const QuantizeParams p = make_quantize_params(pixel_scale, pixel_zp, s_out, zp_out);
    std::vector<int8_t> out(256);
    ref::quantize_u8_to_qs8(out.data(), pixels.data(), 256, p);
    std::vector<int32_t> want;
    for (int i = 0; i < 256; ++i) want.push_back(quantize_real(pixel_scale * (i - pixel_zp), s_out, zp_out));
    const Agreement a = compare(out, want);
    CHECK(a.max_diff <= 1);
    total += a;
  }
  check_agreement(total, "quantize u8, random scales");
}
