// Reference int8 elementwise kernels: add, channel concat, and the uint8 image input quantize.
#include <cstring>

#include "kernels/check.h"
#include "kernels/fixed_point.h"
#include "kernels/ref/kernels.h"

namespace qatc::ref {

// TFLite's integer Add: both inputs are brought to a common fixed-point scale
// (twice the larger input scale / 2^left_shift), summed, then requantized:
//   x_k = mbqm((q_k - zp_k) * 2^left_shift, input_k_multiplier, input_k_shift)
//   out = clamp(zp_out + mbqm(x_1 + x_2, output_multiplier, output_shift), qmin, qmax)
void add_qs8(int8_t* out, const int8_t* a, const int8_t* b, const kernels::AddParams& p) {
  kernels::check(p, out, a, b);
  for (int64_t i = 0; i < p.size; ++i) {
    const int32_t x1 = (int32_t{a[i]} - p.input1_zero_point) * (int32_t{1} << p.left_shift);
    const int32_t x2 = (int32_t{b[i]} - p.input2_zero_point) * (int32_t{1} << p.left_shift);
    const int32_t s1 = fixed::multiply_by_quantized_multiplier(x1, p.input1_multiplier,
                                                               p.input1_shift);
    const int32_t s2 = fixed::multiply_by_quantized_multiplier(x2, p.input2_multiplier,
                                                               p.input2_shift);
    out[i] = static_cast<int8_t>(fixed::requantize(s1 + s2, p.output_multiplier, p.output_shift,
                                                   p.output_zero_point, p.qmin, p.qmax));
  }
}

// Each output row is the inputs' rows side by side. An input with the output's scale and
// zero point is copied; any other is requantized:
//   out = clamp(zp_out + mbqm((q - zp_k) * 2^left_shift_k, multiplier_k, shift_k), -128, 127)
void concat_qs8(int8_t* out, const int8_t* const* inputs, const kernels::ConcatParams& p) {
  kernels::check(p, out, inputs);
  for (int64_t r = 0; r < p.outer; ++r) {
    for (size_t k = 0; k < p.inputs.size(); ++k) {
      const kernels::ConcatInput& ci = p.inputs[k];
      const int8_t* src = inputs[k] + r * ci.channels;
      if (ci.copy) {
        std::memcpy(out, src, static_cast<size_t>(ci.channels));
      } else {
        for (int64_t j = 0; j < ci.channels; ++j)
          out[j] = static_cast<int8_t>(fixed::requantize(
              (int32_t{src[j]} - ci.zero_point) * (int32_t{1} << ci.left_shift), ci.multiplier,
              ci.shift, p.output_zero_point, -128, 127));
      }
      out += ci.channels;
    }
  }
}

// out = clamp(zp_out + mbqm((pixel - pixel_zp) * 2^left_shift, multiplier, shift), qmin, qmax);
// with pixel scale == output scale the multiplier is exactly 2^-left_shift and this is exact.
void quantize_u8_to_qs8(int8_t* out, const uint8_t* in, int64_t count,
                        const kernels::QuantizeParams& p) {
  kernels::check(p, out, in, count);
  for (int64_t i = 0; i < count; ++i)
    out[i] = static_cast<int8_t>(fixed::requantize(
        (int32_t{in[i]} - p.pixel_zero_point) * (int32_t{1} << p.left_shift), p.multiplier,
        p.shift, p.output_zero_point, p.qmin, p.qmax));
}

}  // namespace qatc::ref
