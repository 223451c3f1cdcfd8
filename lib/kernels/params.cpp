// Convert-time constructors of the kernel parameter structs: scales in, integers out.
#include "kernels/params.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/fixed_point.h"

namespace qatc::kernels {

namespace {

void check_scale(double s) {
  QATC_CHECK(std::isfinite(s));
  QATC_CHECK_GT(s, 0.0);
}

void check_zero_point(int32_t zp) {
  QATC_CHECK_GE(zp, -128);
  QATC_CHECK_LE(zp, 127);
}

struct PreShifted {
  int32_t left_shift;
  fixed::QuantizedMultiplier qm;
};

// m applied to x * 2^left_shift for |x| <= max_abs_x: the largest left shift that keeps
// max_abs_x * 2^left_shift <= 2^30 and the multiplier's shift >= -31. Dividing m by a power
// of two leaves the mantissa unchanged, so this is exactly m's multiplier, re-shifted.
PreShifted pre_shifted_multiplier(double m, int64_t max_abs_x) {
  QATC_CHECK_GE(max_abs_x, 1);
  const auto qm = fixed::quantize_multiplier(m);
  if (qm.multiplier == 0) return {0, qm};
  int32_t left = 0;
  while (left < 30 && (max_abs_x << (left + 1)) <= (int64_t{1} << 30) && qm.shift - (left + 1) >= -31)
    ++left;
  return {left, {qm.multiplier, qm.shift - left}};
}

}  // namespace

AddParams make_add_params(double s1, int32_t zp1, double s2, int32_t zp2, double s_out,
                          int32_t zp_out, int32_t qmin, int32_t qmax, int64_t size) {
  check_scale(s1);
  check_scale(s2);
  check_scale(s_out);
  AddParams p{};
  p.size = size;
  p.input1_zero_point = zp1;
  p.input2_zero_point = zp2;
  p.output_zero_point = zp_out;
  p.left_shift = 20;
  const double twice_max = 2.0 * std::max(s1, s2);
  const auto m1 = fixed::quantize_multiplier(s1 / twice_max);
  const auto m2 = fixed::quantize_multiplier(s2 / twice_max);
  const auto mo = fixed::quantize_multiplier(twice_max / (std::ldexp(1.0, p.left_shift) * s_out));
  p.input1_multiplier = m1.multiplier;
  p.input1_shift = m1.shift;
  p.input2_multiplier = m2.multiplier;
  p.input2_shift = m2.shift;
  p.output_multiplier = mo.multiplier;
  p.output_shift = mo.shift;
  p.qmin = qmin;
  p.qmax = qmax;
  return p;
}

ConcatParams make_concat_params(int64_t outer, std::span<const ConcatInputSpec> inputs,
                                double output_scale, int32_t output_zero_point) {
  check_scale(output_scale);
  ConcatParams p;
  p.outer = outer;
  p.output_zero_point = output_zero_point;
  for (const auto& in : inputs) {
    check_scale(in.scale);
    ConcatInput ci{};
    ci.channels = in.channels;
    ci.zero_point = in.zero_point;
    ci.copy = in.scale == output_scale && in.zero_point == output_zero_point;
    const auto ps = pre_shifted_multiplier(ci.copy ? 1.0 : in.scale / output_scale, 255);
    ci.left_shift = ps.left_shift;
    ci.multiplier = ps.qm.multiplier;
    ci.shift = ps.qm.shift;
    p.inputs.push_back(ci);
  }
  return p;
}

GlobalAvgPoolParams make_global_avgpool_params(int64_t n, int64_t hw, int64_t c,
                                               double input_scale, int32_t input_zero_point,
                                               double output_scale, int32_t output_zero_point) {
  check_scale(input_scale);
  check_scale(output_scale);
  QATC_CHECK_GE(hw, 1);
  GlobalAvgPoolParams p{};
  p.n = n;
  p.hw = hw;
  p.c = c;
  p.input_zero_point = input_zero_point;
  p.output_zero_point = output_zero_point;
  const auto ps = pre_shifted_multiplier(
      input_scale / (output_scale * static_cast<double>(hw)), 255 * hw);
  p.left_shift = ps.left_shift;
  p.multiplier = ps.qm.multiplier;
  p.shift = ps.qm.shift;
  p.qmin = -128;
  p.qmax = 127;
  return p;
}

QuantizeParams make_quantize_params(double pixel_scale, int32_t pixel_zero_point,
                                    double output_scale, int32_t output_zero_point) {
  check_scale(pixel_scale);
  check_scale(output_scale);
  QATC_CHECK_GE(pixel_zero_point, 0);
  QATC_CHECK_LE(pixel_zero_point, 255);
  check_zero_point(output_zero_point);
  QuantizeParams p{};
  p.pixel_zero_point = pixel_zero_point;
  p.output_zero_point = output_zero_point;
  // pixel_scale == output_scale gives m = 1 = {2^30, 1}, re-shifted to {2^30, 1 - L}:
  // srdhm(x * 2^L, 2^30) = x * 2^(L-1) and the right shift by L - 1 are both exact.
  const auto ps = pre_shifted_multiplier(pixel_scale / output_scale, 255);
  p.left_shift = ps.left_shift;
  p.multiplier = ps.qm.multiplier;
  p.shift = ps.qm.shift;
  p.qmin = -128;
  p.qmax = 127;
  return p;
}

ChannelMultipliers make_channel_multipliers(double input_scale,
                                            std::span<const double> weight_scales,
                                            double output_scale) {
  check_scale(input_scale);
  check_scale(output_scale);
  ChannelMultipliers cm;
  cm.multiplier.reserve(weight_scales.size());
  cm.shift.reserve(weight_scales.size());
  for (double sw : weight_scales) {
    check_scale(sw);
    const auto m = fixed::quantize_multiplier(input_scale * sw / output_scale);
    cm.multiplier.push_back(m.multiplier);
    cm.shift.push_back(m.shift);
  }
  return cm;
}

Clamp make_clamp(double output_scale, int32_t output_zero_point, double lo, double hi) {
  check_scale(output_scale);
  check_zero_point(output_zero_point);
  QATC_CHECK(!std::isnan(lo) && !std::isnan(hi));
  QATC_CHECK_LE(lo, hi);
  // quantize(r) clamped to int8 first, so infinities and huge bounds need no special case.
  const auto quantize = [&](double r) {
    const double q = static_cast<double>(output_zero_point) + std::round(r / output_scale);
    return static_cast<int32_t>(std::clamp(q, -128.0, 127.0));
  };
  return {quantize(lo), quantize(hi)};
}

}  // namespace qatc::kernels
