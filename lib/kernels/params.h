// Parameter structs of the int8 kernels: everything derived is precomputed here at convert
// (or load) time, so kernels read plain integers and never a float. The make_* helpers are
// the only place scales (doubles) turn into multipliers, shifts and clamp bounds.
//
// Conventions shared by all kernels (see docs/int8.md):
//   - layout NHWC; int8 activations, real = scale * (q - zero_point);
//   - weights int8 symmetric (zero point 0), per output channel or per tensor (then the
//     per-channel arrays repeat one value);
//   - bias int32 with scale s_in * s_w[oc] and zero point 0, may be nullptr (no bias);
//   - qmin/qmax: the output clamp, int8 range narrowed by a fused ReLU/ReLU6 (make_clamp);
//   - output buffers never overlap inputs, except add_qs8 which may run in place.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace qatc::kernels {

// acc = bias[oc] + sum_{ky,kx,ic} (q_in - input_zero_point) * q_w[oc, ky, kx, ic]
// out = clamp(output_zero_point + mbqm(acc, multiplier[oc], shift[oc]), qmin, qmax)
// Padding positions read input_zero_point, i.e. contribute 0 (as TFLite does).
struct Conv2DParams {
  int64_t n, h, w, c;    // input [n, h, w, c]
  int64_t kh, kw, oc;    // weights [oc, kh, kw, c] (OHWI, TFLite layout)
  int64_t stride_h, stride_w, pad_top, pad_left;
  int64_t oh, ow;        // output [n, oh, ow, oc]
  int32_t input_zero_point, output_zero_point;
  const int8_t* weights;      // [oc, kh, kw, c], symmetric: zero point 0
  const int32_t* bias;        // [oc], scale s_in * s_w[oc], zero point 0; may be nullptr
  const int32_t* multiplier;  // [oc]: s_in * s_w[oc] / s_out as {multiplier, shift}
  const int32_t* shift;       // [oc]
  int32_t qmin, qmax;         // output clamp with ReLU/ReLU6 folded in
};

// Depthwise: output channel oc = ic * depth_multiplier + j reads only input channel ic.
// acc = bias[oc] + sum_{ky,kx} (q_in[.., ic] - input_zero_point) * q_w[ky, kx, oc]
struct DepthwiseConv2DParams {
  int64_t n, h, w, c;  // input [n, h, w, c]
  int64_t kh, kw, depth_multiplier;
  int64_t stride_h, stride_w, pad_top, pad_left;
  int64_t oh, ow;  // output [n, oh, ow, c * depth_multiplier]
  int32_t input_zero_point, output_zero_point;
  const int8_t* weights;      // [kh, kw, c * depth_multiplier] (TFLite [1, kh, kw, c*m])
  const int32_t* bias;        // [c * depth_multiplier]; may be nullptr
  const int32_t* multiplier;  // [c * depth_multiplier]
  const int32_t* shift;       // [c * depth_multiplier]
  int32_t qmin, qmax;
};

// acc = bias[o] + sum_i (q_in[b, i] - input_zero_point) * q_w[o, i]
// out = clamp(output_zero_point + mbqm(acc, multiplier[o], shift[o]), qmin, qmax)
struct DenseParams {
  int64_t n, in_features, out_features;  // input [n, in], output [n, out]
  int32_t input_zero_point, output_zero_point;
  const int8_t* weights;      // [out, in]
  const int32_t* bias;        // [out]; may be nullptr
  const int32_t* multiplier;  // [out]
  const int32_t* shift;       // [out]
  int32_t qmin, qmax;
};

// Elementwise a + b (same shapes), TFLite's integer Add:
//   x_k = mbqm((q_k - input_k_zero_point) * 2^left_shift, input_k_multiplier, input_k_shift)
//   out = clamp(output_zero_point + mbqm(x_1 + x_2, output_multiplier, output_shift), qmin, qmax)
struct AddParams {
  int64_t size;
  int32_t input1_zero_point, input2_zero_point, output_zero_point;
  int32_t left_shift;  // 20 for int8, as TFLite
  int32_t input1_multiplier, input1_shift;
  int32_t input2_multiplier, input2_shift;
  int32_t output_multiplier, output_shift;
  int32_t qmin, qmax;
};

// s1, s2, s_out > 0. twice_max = 2 * max(s1, s2); input k multiplier s_k / twice_max (<= 1/2),
// output multiplier twice_max / (2^left_shift * s_out); left_shift = 20.
AddParams make_add_params(double s1, int32_t zp1, double s2, int32_t zp2, double s_out,
                          int32_t zp_out, int32_t qmin, int32_t qmax, int64_t size);

// Pre-shifted requantization (concat, global average pool, input quantize): the integer
// x = (q - zero_point) or a sum of them is scaled by 2^left_shift before mbqm, and the
// multiplier divided by as much, as Add does with its left shift 20. These multipliers are
// often close to 1, where mbqm's first rounding (srdhm, to an integer) would otherwise be
// as coarse as the result and make 5-25% of outputs one step off the exactly rounded value;
// with the spare bits of x used, the first rounding is negligible.

// One input of a channel concat.
struct ConcatInput {
  int64_t channels;
  int32_t zero_point;
  bool copy;  // same scale and zero point as the output: bytes copied as is
  // Used when !copy: (q - zero_point) * 2^left_shift times s_in / (s_out * 2^left_shift).
  int32_t left_shift, multiplier, shift;
};

// N inputs [outer, channels_k] concatenated along the last axis into [outer, sum channels_k]:
//   out = copy ? q : clamp(output_zero_point +
//                          mbqm((q - zero_point_k) * 2^left_shift_k, multiplier_k, shift_k),
//                          -128, 127)
// (Concat fuses no activation, so the clamp is the int8 range.)
struct ConcatParams {
  int64_t outer;  // product of all dimensions but the last
  std::vector<ConcatInput> inputs;
  int32_t output_zero_point;
};

// What make_concat_params needs about one input.
struct ConcatInputSpec {
  int64_t channels;
  double scale;
  int32_t zero_point;
};

// copy is chosen when scale == output_scale exactly and the zero points are equal.
ConcatParams make_concat_params(int64_t outer, std::span<const ConcatInputSpec> inputs,
                                double output_scale, int32_t output_zero_point);

// Max and average pooling keep the input scale and zero point (as TFLite requires), so they
// need no requantization. Max ignores padded positions; average divides the sum of the raw
// q over the non-padded positions by their count, rounding half away from zero.
struct Pool2DParams {
  int64_t n, h, w, c, kh, kw, stride_h, stride_w, pad_top, pad_left, oh, ow;
  int32_t qmin, qmax;
};

// Spatial padding of [n, h, w, c] into [n, oh, ow, c] with oh = h + top + bottom and
// ow = w + left + right: out[b, y, x, ch] = in[b, y - top, x - left, ch] inside the input,
// else zero_point (real 0). Negative amounts crop. Same scale and zero point in and out.
struct PadParams {
  int64_t n, h, w, c, top, bottom, left, right, oh, ow;
  int32_t zero_point;
};

// Mean over the hw positions of [n, hw, c] into [n, c]:
//   sum = sum_hw (q - input_zero_point)
//   out = clamp(output_zero_point + mbqm(sum * 2^left_shift, multiplier, shift), qmin, qmax)
// with multiplier/shift = s_in / (s_out * hw * 2^left_shift).
struct GlobalAvgPoolParams {
  int64_t n, hw, c;
  int32_t input_zero_point, output_zero_point;
  int32_t left_shift, multiplier, shift;
  int32_t qmin, qmax;
};

GlobalAvgPoolParams make_global_avgpool_params(int64_t n, int64_t hw, int64_t c,
                                               double input_scale, int32_t input_zero_point,
                                               double output_scale, int32_t output_zero_point);

// The model input: uint8 pixels, real = pixel_scale * (pixel - pixel_zero_point), to int8:
//   out = clamp(output_zero_point +
//               mbqm((pixel - pixel_zero_point) * 2^left_shift, multiplier, shift), qmin, qmax)
// with multiplier/shift = pixel_scale / (output_scale * 2^left_shift). For pixel_scale ==
// output_scale (1/255) the multiplier is exactly 2^-left_shift ({2^30, 1 - left_shift}) and
// every step is exact: with output zero point -128, out = pixel - 128.
struct QuantizeParams {
  int32_t pixel_zero_point;  // uint8 domain, [0, 255]
  int32_t output_zero_point;
  int32_t left_shift, multiplier, shift;
  int32_t qmin, qmax;
};

QuantizeParams make_quantize_params(double pixel_scale, int32_t pixel_zero_point,
                                    double output_scale, int32_t output_zero_point);

// Per-output-channel requantization of a conv/dense/depthwise accumulator:
// multiplier[k], shift[k] = quantize_multiplier(input_scale * weight_scales[k] / output_scale).
struct ChannelMultipliers {
  std::vector<int32_t> multiplier, shift;
};
ChannelMultipliers make_channel_multipliers(double input_scale,
                                            std::span<const double> weight_scales,
                                            double output_scale);

// The int8 clamp bounds of an output whose real values are limited to [lo, hi] by a fused
// activation: none (-inf, +inf), ReLU (0, +inf), ReLU6 (0, 6).
//   qmin = max(-128, quantize(lo)), qmax = min(127, quantize(hi)),
//   quantize(r) = zero_point + round(r / scale) (ties away from zero, as TFLite).
struct Clamp {
  int32_t qmin, qmax;
};
Clamp make_clamp(double output_scale, int32_t output_zero_point, double lo, double hi);

}  // namespace qatc::kernels
