// Reference int8 convolutions: conv2d, depthwise conv2d and dense (a 1x1 conv on [n, in]).
#include "kernels/check.h"
#include "kernels/fixed_point.h"
#include "kernels/ref/kernels.h"

namespace qatc::ref {

// acc = bias[oc] + sum_{ky,kx,ic} (q_in - zp_in) * q_w[oc, ky, kx, ic]
// out = clamp(zp_out + mbqm(acc, multiplier[oc], shift[oc]), qmin, qmax)
// A padded position holds zp_in, contributing (zp_in - zp_in) * q_w = 0: it is skipped.
void conv2d_qs8(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p) {
  kernels::check(p, out, in);
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t oy = 0; oy < p.oh; ++oy)
      for (int64_t ox = 0; ox < p.ow; ++ox)
        for (int64_t oc = 0; oc < p.oc; ++oc) {
          int32_t acc = p.bias != nullptr ? p.bias[oc] : 0;
          for (int64_t ky = 0; ky < p.kh; ++ky) {
            const int64_t iy = oy * p.stride_h - p.pad_top + ky;
            if (iy < 0 || iy >= p.h) continue;
            for (int64_t kx = 0; kx < p.kw; ++kx) {
              const int64_t ix = ox * p.stride_w - p.pad_left + kx;
              if (ix < 0 || ix >= p.w) continue;
              const int8_t* x = in + ((b * p.h + iy) * p.w + ix) * p.c;
              const int8_t* wt = p.weights + ((oc * p.kh + ky) * p.kw + kx) * p.c;
              for (int64_t ic = 0; ic < p.c; ++ic)
                acc += (int32_t{x[ic]} - p.input_zero_point) * int32_t{wt[ic]};
            }
          }
          out[((b * p.oh + oy) * p.ow + ox) * p.oc + oc] = static_cast<int8_t>(fixed::requantize(
              acc, p.multiplier[oc], p.shift[oc], p.output_zero_point, p.qmin, p.qmax));
        }
}

// Output channel oc = ic * m + j (m = depth_multiplier) reads input channel ic only:
// acc = bias[oc] + sum_{ky,kx} (q_in[.., ic] - zp_in) * q_w[ky, kx, oc]
// out = clamp(zp_out + mbqm(acc, multiplier[oc], shift[oc]), qmin, qmax)
void depthwise_conv2d_qs8(int8_t* out, const int8_t* in, const kernels::DepthwiseConv2DParams& p) {
  kernels::check(p, out, in);
  const int64_t m = p.depth_multiplier;
  const int64_t oc_count = p.c * m;
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t oy = 0; oy < p.oh; ++oy)
      for (int64_t ox = 0; ox < p.ow; ++ox)
        for (int64_t ic = 0; ic < p.c; ++ic)
          for (int64_t j = 0; j < m; ++j) {
            const int64_t oc = ic * m + j;
            int32_t acc = p.bias != nullptr ? p.bias[oc] : 0;
            for (int64_t ky = 0; ky < p.kh; ++ky) {
              const int64_t iy = oy * p.stride_h - p.pad_top + ky;
              if (iy < 0 || iy >= p.h) continue;
              for (int64_t kx = 0; kx < p.kw; ++kx) {
                const int64_t ix = ox * p.stride_w - p.pad_left + kx;
                if (ix < 0 || ix >= p.w) continue;
                const int32_t x = in[((b * p.h + iy) * p.w + ix) * p.c + ic];
                const int32_t wt = p.weights[(ky * p.kw + kx) * oc_count + oc];
                acc += (x - p.input_zero_point) * wt;
              }
            }
            out[((b * p.oh + oy) * p.ow + ox) * oc_count + oc] = static_cast<int8_t>(
                fixed::requantize(acc, p.multiplier[oc], p.shift[oc], p.output_zero_point,
                                  p.qmin, p.qmax));
          }
}

// acc = bias[o] + sum_i (q_in[b, i] - zp_in) * q_w[o, i]
// out = clamp(zp_out + mbqm(acc, multiplier[o], shift[o]), qmin, qmax)
void dense_qs8(int8_t* out, const int8_t* in, const kernels::DenseParams& p) {
  kernels::check(p, out, in);
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t o = 0; o < p.out_features; ++o) {
      int32_t acc = p.bias != nullptr ? p.bias[o] : 0;
      const int8_t* x = in + b * p.in_features;
      const int8_t* wt = p.weights + o * p.in_features;
      for (int64_t i = 0; i < p.in_features; ++i)
        acc += (int32_t{x[i]} - p.input_zero_point) * int32_t{wt[i]};
      out[b * p.out_features + o] = static_cast<int8_t>(fixed::requantize(
          acc, p.multiplier[o], p.shift[o], p.output_zero_point, p.qmin, p.qmax));
    }
}

}  // namespace qatc::ref
