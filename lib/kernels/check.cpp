// The shared argument checks of the int8 kernels (see check.h). Per call they cost O(channels),
// never O(data), so the opt kernels run them too.
#include "kernels/check.h"

#include <limits>

#include <fmt/format.h>

#include "core/error.h"

namespace qatc::kernels {

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

[[noreturn]] void bad(const std::string& what) { throw InternalError("int8 kernel: " + what); }

void check_int8(int32_t v, const char* name) {
  if (v < -128 || v > 127) bad(fmt::format("{} = {} is outside int8 [-128, 127]", name, v));
}

void check_clamp(int32_t qmin, int32_t qmax) {
  check_int8(qmin, "qmin");
  check_int8(qmax, "qmax");
  QATC_CHECK_LE(qmin, qmax);
}

// {multiplier, shift} as quantize_multiplier makes them: normalized Q31 mantissa or exact zero.
void check_multiplier(int32_t multiplier, int32_t shift, const char* name, int64_t index) {
  const bool zero = multiplier == 0 && shift == 0;
  const bool normal = multiplier >= (int32_t{1} << 30) && shift >= -31 && shift <= 30;
  if (!zero && !normal)
    bad(fmt::format("{}[{}] = {{multiplier {}, shift {}}} is not a quantized multiplier "
                    "(multiplier in [2^30, 2^31) and shift in [-31, 30], or {{0, 0}})",
                    name, index, multiplier, shift));
}

// Every output window must overlap the input (so average pools never divide by zero):
// 0 <= pad < k and the last window starts inside the input.
void check_window(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t out,
                  const char* axis) {
  if (in < 1 || k < 1 || stride < 1 || out < 1 || pad < 0 || pad >= k ||
      (out - 1) * stride - pad > in - 1)
    bad(fmt::format("bad {} window: input {}, kernel {}, stride {}, pad before {}, output {}",
                    axis, in, k, stride, pad, out));
}

// (q - zero_point) terms bounded by max_abs_x, scaled by 2^left_shift, must fit in int32.
void check_left_shift(int32_t left_shift, int64_t max_abs_x, const char* op) {
  if (left_shift < 0 || left_shift > 30 || max_abs_x > (kInt32Max >> left_shift))
    bad(fmt::format("{}: left shift {} of values up to {} overflows int32", op, left_shift,
                    max_abs_x));
}

void check_dims(std::initializer_list<int64_t> dims, const char* what) {
  for (int64_t d : dims)
    if (d < 1) bad(fmt::format("{}: every dimension must be >= 1, got {}", what, d));
}

// The requantized conv/dense/depthwise arrays: bias bound and normalized multipliers, and
// depth * 255 * 128 + max |bias| <= INT32_MAX so the int32 accumulator can never wrap.
void check_channels(const int32_t* bias, const int32_t* multiplier, const int32_t* shift,
                    int64_t channels, int64_t depth, const char* op) {
  QATC_CHECK(multiplier != nullptr);
  QATC_CHECK(shift != nullptr);
  int64_t max_abs_bias = 0;
  for (int64_t k = 0; k < channels; ++k) {
    check_multiplier(multiplier[k], shift[k], "multiplier/shift", k);
    if (bias != nullptr) {
      const int64_t b = bias[k] < 0 ? -int64_t{bias[k]} : int64_t{bias[k]};
      if (b > max_abs_bias) max_abs_bias = b;
    }
  }
  if (depth > kInt32Max || depth * 255 * 128 + max_abs_bias > kInt32Max)
    bad(fmt::format("{}: reduction depth {} with max |bias| {} can overflow the int32 "
                    "accumulator",
                    op, depth, max_abs_bias));
}

}  // namespace

void check(const Conv2DParams& p, const int8_t* out, const int8_t* in, Channels ch) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(in != nullptr);
  QATC_CHECK(p.weights != nullptr);
  check_dims({p.n, p.h, p.w, p.c, p.kh, p.kw, p.oc, p.oh, p.ow}, "conv2d");
  check_window(p.h, p.kh, p.stride_h, p.pad_top, p.oh, "conv2d height");
  check_window(p.w, p.kw, p.stride_w, p.pad_left, p.ow, "conv2d width");
  check_int8(p.input_zero_point, "input_zero_point");
  check_int8(p.output_zero_point, "output_zero_point");
  check_clamp(p.qmin, p.qmax);
  if (ch == Channels::check) check_channels(p.bias, p.multiplier, p.shift, p.oc, p.kh * p.kw * p.c, "conv2d");
}

void check(const DepthwiseConv2DParams& p, const int8_t* out, const int8_t* in, Channels ch) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(in != nullptr);
  QATC_CHECK(p.weights != nullptr);
  check_dims({p.n, p.h, p.w, p.c, p.kh, p.kw, p.depth_multiplier, p.oh, p.ow},
             "depthwise_conv2d");
  check_window(p.h, p.kh, p.stride_h, p.pad_top, p.oh, "depthwise_conv2d height");
  check_window(p.w, p.kw, p.stride_w, p.pad_left, p.ow, "depthwise_conv2d width");
  check_int8(p.input_zero_point, "input_zero_point");
  check_int8(p.output_zero_point, "output_zero_point");
  check_clamp(p.qmin, p.qmax);
  if (ch == Channels::check)
    check_channels(p.bias, p.multiplier, p.shift, p.c * p.depth_multiplier, p.kh * p.kw, "depthwise_conv2d");
}

void check(const DenseParams& p, const int8_t* out, const int8_t* in, Channels ch) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(in != nullptr);
  QATC_CHECK(p.weights != nullptr);
  check_dims({p.n, p.in_features, p.out_features}, "dense");
  check_int8(p.input_zero_point, "input_zero_point");
  check_int8(p.output_zero_point, "output_zero_point");
  check_clamp(p.qmin, p.qmax);
  if (ch == Channels::check) check_channels(p.bias, p.multiplier, p.shift, p.out_features, p.in_features, "dense");
}

void check(const AddParams& p, const int8_t* out, const int8_t* a, const int8_t* b) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(a != nullptr);
  QATC_CHECK(b != nullptr);
  check_dims({p.size}, "add");
  check_int8(p.input1_zero_point, "input1_zero_point");
  check_int8(p.input2_zero_point, "input2_zero_point");
  check_int8(p.output_zero_point, "output_zero_point");
  check_clamp(p.qmin, p.qmax);
  // |q - zp| <= 255 < 2^8: the shifted inputs stay below 2^30 and, with input multipliers
  // below 1 (shift <= 0), so does each scaled input, so their int32 sum cannot wrap.
  QATC_CHECK_GE(p.left_shift, 0);
  QATC_CHECK_LE(p.left_shift, 22);
  check_multiplier(p.input1_multiplier, p.input1_shift, "input1", 0);
  check_multiplier(p.input2_multiplier, p.input2_shift, "input2", 0);
  check_multiplier(p.output_multiplier, p.output_shift, "output", 0);
  QATC_CHECK_LE(p.input1_shift, 0);
  QATC_CHECK_LE(p.input2_shift, 0);
}

void check(const ConcatParams& p, const int8_t* out, const int8_t* const* inputs) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(inputs != nullptr);
  QATC_CHECK_GE(p.outer, 1);
  QATC_CHECK_GE(p.inputs.size(), size_t{1});
  check_int8(p.output_zero_point, "output_zero_point");
  for (size_t k = 0; k < p.inputs.size(); ++k) {
    const ConcatInput& ci = p.inputs[k];
    if (inputs[k] == nullptr) bad(fmt::format("concat: input {} is nullptr", k));
    if (ci.channels < 1) bad(fmt::format("concat: input {} has {} channels", k, ci.channels));
    check_int8(ci.zero_point, "concat input zero_point");
    if (ci.copy) {
      if (ci.zero_point != p.output_zero_point)
        bad(fmt::format("concat: input {} is copied but its zero point {} differs from the "
                        "output's {}",
                        k, ci.zero_point, p.output_zero_point));
    } else {
      check_multiplier(ci.multiplier, ci.shift, "concat input", static_cast<int64_t>(k));
      check_left_shift(ci.left_shift, 255, "concat");
    }
  }
}

void check(const Pool2DParams& p, const int8_t* out, const int8_t* in) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(in != nullptr);
  check_dims({p.n, p.h, p.w, p.c, p.kh, p.kw, p.oh, p.ow}, "pool2d");
  check_window(p.h, p.kh, p.stride_h, p.pad_top, p.oh, "pool2d height");
  check_window(p.w, p.kw, p.stride_w, p.pad_left, p.ow, "pool2d width");
  check_clamp(p.qmin, p.qmax);
  if (p.kh * p.kw > kInt32Max / 128)
    bad(fmt::format("pool2d: window {}x{} can overflow the int32 sum", p.kh, p.kw));
}

void check(const PadParams& p, const int8_t* out, const int8_t* in) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(in != nullptr);
  check_dims({p.n, p.h, p.w, p.c, p.oh, p.ow}, "pad");
  check_int8(p.zero_point, "zero_point");
  if (p.oh != p.h + p.top + p.bottom || p.ow != p.w + p.left + p.right)
    bad(fmt::format("pad: {}x{} padded by ({}, {}, {}, {}) is not {}x{}", p.h, p.w, p.top, p.bottom, p.left, p.right,
                    p.oh, p.ow));
}

void check(const GlobalAvgPoolParams& p, const int8_t* out, const int8_t* in) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(in != nullptr);
  check_dims({p.n, p.hw, p.c}, "global_avgpool");
  check_int8(p.input_zero_point, "input_zero_point");
  check_int8(p.output_zero_point, "output_zero_point");
  check_clamp(p.qmin, p.qmax);
  check_multiplier(p.multiplier, p.shift, "global_avgpool", 0);
  if (p.hw > kInt32Max / 255)
    bad(fmt::format("global_avgpool: {} positions can overflow the int32 sum", p.hw));
  check_left_shift(p.left_shift, 255 * p.hw, "global_avgpool");
}

void check(const QuantizeParams& p, const int8_t* out, const uint8_t* in, int64_t n) {
  QATC_CHECK(out != nullptr);
  QATC_CHECK(in != nullptr);
  QATC_CHECK_GE(n, 1);
  QATC_CHECK_GE(p.pixel_zero_point, 0);
  QATC_CHECK_LE(p.pixel_zero_point, 255);
  check_int8(p.output_zero_point, "output_zero_point");
  check_clamp(p.qmin, p.qmax);
  check_multiplier(p.multiplier, p.shift, "quantize", 0);
  check_left_shift(p.left_shift, 255, "quantize");
}

}  // namespace qatc::kernels
