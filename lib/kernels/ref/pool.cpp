// Reference int8 pooling: max and average 2D pools (input scale kept) and global average pool.
#include "kernels/check.h"
#include "kernels/fixed_point.h"
#include "kernels/ref/kernels.h"

namespace qatc::ref {

namespace {

// Calls f(q) for every non-padded input value of window (b, oy, ox, ch).
template <typename F>
void for_window(const int8_t* in, const kernels::Pool2DParams& p, int64_t b, int64_t oy,
                int64_t ox, int64_t ch, F&& f) {
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const int64_t iy = oy * p.stride_h - p.pad_top + ky;
    if (iy < 0 || iy >= p.h) continue;
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const int64_t ix = ox * p.stride_w - p.pad_left + kx;
      if (ix < 0 || ix >= p.w) continue;
      f(int32_t{in[((b * p.h + iy) * p.w + ix) * p.c + ch]});
    }
  }
}

int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

}  // namespace

// out = clamp(max over the non-padded window of q, qmin, qmax)
void maxpool2d_qs8(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p) {
  kernels::check(p, out, in);
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t oy = 0; oy < p.oh; ++oy)
      for (int64_t ox = 0; ox < p.ow; ++ox)
        for (int64_t ch = 0; ch < p.c; ++ch) {
          int32_t m = -128;
          for_window(in, p, b, oy, ox, ch, [&](int32_t q) { m = q > m ? q : m; });
          out[((b * p.oh + oy) * p.ow + ox) * p.c + ch] =
              static_cast<int8_t>(clamp(m, p.qmin, p.qmax));
        }
}

// out = clamp(round(sum q / count), qmin, qmax) over the count >= 1 non-padded positions,
// rounding half away from zero. Same scale and zero point in and out, so the mean of the
// raw q is the requantized mean.
void avgpool2d_qs8(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p) {
  kernels::check(p, out, in);
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t oy = 0; oy < p.oh; ++oy)
      for (int64_t ox = 0; ox < p.ow; ++ox)
        for (int64_t ch = 0; ch < p.c; ++ch) {
          int32_t sum = 0;
          int32_t count = 0;
          for_window(in, p, b, oy, ox, ch, [&](int32_t q) {
            sum += q;
            ++count;
          });
          const int32_t avg = sum >= 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
          out[((b * p.oh + oy) * p.ow + ox) * p.c + ch] =
              static_cast<int8_t>(clamp(avg, p.qmin, p.qmax));
        }
}

// sum = sum_i (q[b, i, ch] - zp_in)
// out[b, ch] = clamp(zp_out + mbqm(sum * 2^left_shift, multiplier, shift), qmin, qmax)
// with multiplier/shift = s_in / (s_out * hw * 2^left_shift).
void global_avgpool_qs8(int8_t* out, const int8_t* in, const kernels::GlobalAvgPoolParams& p) {
  kernels::check(p, out, in);
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t ch = 0; ch < p.c; ++ch) {
      int32_t sum = 0;
      for (int64_t i = 0; i < p.hw; ++i)
        sum += int32_t{in[(b * p.hw + i) * p.c + ch]} - p.input_zero_point;
      out[b * p.c + ch] = static_cast<int8_t>(fixed::requantize(
          sum * (int32_t{1} << p.left_shift), p.multiplier, p.shift, p.output_zero_point, p.qmin,
          p.qmax));
    }
}

// out = in where the shifted position lies inside the input, else the zero point.
void pad_qs8(int8_t* out, const int8_t* in, const kernels::PadParams& p) {
  kernels::check(p, out, in);
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t y = 0; y < p.oh; ++y)
      for (int64_t x = 0; x < p.ow; ++x)
        for (int64_t ch = 0; ch < p.c; ++ch) {
          const int64_t iy = y - p.top, ix = x - p.left;
          const bool inside = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
          out[((b * p.oh + y) * p.ow + x) * p.c + ch] =
              inside ? in[((b * p.h + iy) * p.w + ix) * p.c + ch] : static_cast<int8_t>(p.zero_point);
        }
}

}  // namespace qatc::ref
