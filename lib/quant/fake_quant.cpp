// Fake-quant kernels. Work is cut into fixed-size blocks (independent of the thread count), and
// reductions combine per-block results in block order, so any thread count gives the same bits.
#include "quant/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/simd.h"
#include "core/threads.h"

namespace qatc::quant {
namespace {

constexpr int64_t kBlock = int64_t{1} << 14;  // elements per block
constexpr int64_t kChannelBlock = 256;        // columns per block when channels are many

// Calls fn(begin, end) for the fixed blocks [k*block, min(n, (k+1)*block)) of [0, n).
template <class Fn>
void for_blocks(int64_t n, int64_t block, Fn&& fn) {
  const int64_t blocks = (n + block - 1) / block;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) fn(b * block, std::min(n, (b + 1) * block));
  });
}

// The elementwise loops below are written without integer conversions or branches so that the
// compiler vectorizes them, and are compiled for AVX-512, AVX2 and the baseline (QATC_SIMD_CLONES,
// core/simd.h). They compute exactly what dequantize(quantize(x, q), q) computes: the same IEEE
// division x / scale, the same rounding (half away from zero), the clamp to [qmin - zp, qmax - zp]
// in float, and scale times the clamped integer (held exactly in a float), so every path gives the
// scalar functions' values ("+ 0.0f" makes a zero +0 always, as the integer 0 converts to).

struct Grid {
  float scale, lo, hi;    // clamp bounds of the rounded value: qmin - zp, qmax - zp
  float in_lo, in_hi;     // dequantize(qmin), dequantize(qmax): the STE pass band
};

Grid grid_of(const QParams& q) {
  return {q.scale, static_cast<float>(q.qmin - q.zero_point), static_cast<float>(q.qmax - q.zero_point),
          dequantize(q.qmin, q), dequantize(q.qmax, q)};
}

[[gnu::always_inline]] inline float fq_value(float x, float scale, float lo, float hi) {
  const float v = x / scale;
  const float r = round_half_away_from_zero(v);
  float c = r < lo ? lo : (r > hi ? hi : r);
  c = v != v ? 0.0f : c;
  const float y = scale * (c + 0.0f);
  return x != x ? x : y;
}

QATC_SIMD_CLONES
void fq_span(float* out, const float* in, int64_t n, Grid g) {
  for (int64_t i = 0; i < n; ++i) out[i] = fq_value(in[i], g.scale, g.lo, g.hi);
}

// The mask is written first: out may alias in.
QATC_SIMD_CLONES
void fq_span_mask(float* out, uint8_t* __restrict mask, const float* in, int64_t n, Grid g) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = in[i];
    mask[i] = static_cast<uint8_t>((x >= g.in_lo) & (x <= g.in_hi));
    out[i] = fq_value(x, g.scale, g.lo, g.hi);
  }
}

// One row of [rows, channels] with per-channel grids given as arrays.
QATC_SIMD_CLONES
void fq_row(float* out, uint8_t* __restrict mask, const float* in, int64_t channels, const float* __restrict scale,
            const float* __restrict lo, const float* __restrict hi, const float* __restrict in_lo,
            const float* __restrict in_hi) {
  if (mask)
    for (int64_t c = 0; c < channels; ++c) mask[c] = static_cast<uint8_t>((in[c] >= in_lo[c]) & (in[c] <= in_hi[c]));
  for (int64_t c = 0; c < channels; ++c) out[c] = fq_value(in[c], scale[c], lo[c], hi[c]);
}

// din = mask ? dout : 0. A select, not dout * mask: a blocked gradient is exactly 0 even when
// dout is inf or NaN. din may alias dout; the mask is a separate array.
QATC_SIMD_CLONES
void ste_span(float* din, const float* dout, const uint8_t* __restrict mask, int64_t n) {
  for (int64_t i = 0; i < n; ++i) din[i] = mask[i] ? dout[i] : 0.0f;
}

constexpr float kInf = std::numeric_limits<float>::infinity();

// Running minimum and maximum of the finite values, per lane (x - x is 0 exactly when x is finite).
[[gnu::always_inline]] inline void minmax_step(float x, float& mn, float& mx) {
  const bool finite = (x - x) == 0.0f;
  const float a = finite ? x : kInf, b = finite ? x : -kInf;
  mn = a < mn ? a : mn;
  mx = b > mx ? b : mx;
}

// {min, max} over the finite values of x[0, n) folded into *mn, *mx. Min and max are exact, so
// the lane order does not change the result.
QATC_SIMD_CLONES
void minmax_span(const float* x, int64_t n, float* mn, float* mx) {
  constexpr int kLanes = 16;
  float lmn[kLanes], lmx[kLanes];
  for (int j = 0; j < kLanes; ++j) lmn[j] = kInf, lmx[j] = -kInf;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) minmax_step(x[i + j], lmn[j], lmx[j]);
  for (; i < n; ++i) minmax_step(x[i], lmn[0], lmx[0]);
  for (int j = 0; j < kLanes; ++j) {
    *mn = lmn[j] < *mn ? lmn[j] : *mn;
    *mx = lmx[j] > *mx ? lmx[j] : *mx;
  }
}

// Per-column running {min, max} of finite values over rows [r0, r1) of the columns [0, width) of
// x, whose rows are `stride` floats apart.
QATC_SIMD_CLONES
void channel_minmax_rows(const float* x, int64_t r0, int64_t r1, int64_t width, int64_t stride,
                         float* __restrict mn, float* __restrict mx) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < width; ++c) minmax_step(x[r * stride + c], mn[c], mx[c]);
}

MinMax range_or_zero(float mn, float mx) { return mn <= mx ? MinMax{mn, mx} : MinMax{0.0f, 0.0f}; }

}  // namespace

void fake_quant_forward(float* out, uint8_t* mask, const float* in, int64_t n, const QParams& q) {
  const Grid g = grid_of(q);
  for_blocks(n, kBlock, [&](int64_t b, int64_t e) {
    if (mask) fq_span_mask(out + b, mask + b, in + b, e - b, g);
    else fq_span(out + b, in + b, e - b, g);
  });
}

void fake_quant_forward_per_channel(float* out, uint8_t* mask, const float* in, int64_t rows,
                                    int64_t channels, const QParams* q) {
  if (rows <= 0 || channels <= 0) return;
  std::vector<float> v(static_cast<size_t>(5 * channels));
  float *scale = v.data(), *lo = scale + channels, *hi = lo + channels, *in_lo = hi + channels,
        *in_hi = in_lo + channels;
  for (int64_t c = 0; c < channels; ++c) {
    const Grid g = grid_of(q[c]);
    scale[c] = g.scale, lo[c] = g.lo, hi[c] = g.hi, in_lo[c] = g.in_lo, in_hi[c] = g.in_hi;
  }
  const int64_t block_rows = std::max<int64_t>(1, kBlock / channels);
  for_blocks(rows, block_rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * channels;
      fq_row(out + base, mask ? mask + base : nullptr, in + base, channels, scale, lo, hi, in_lo, in_hi);
    }
  });
}

void fake_quant_backward(float* din, const float* dout, const uint8_t* mask, int64_t n) {
  for_blocks(n, kBlock, [&](int64_t b, int64_t e) { ste_span(din + b, dout + b, mask + b, e - b); });
}

MinMax tensor_minmax(const float* x, int64_t n, bool* any_finite) {
  const int64_t blocks = n > 0 ? (n + kBlock - 1) / kBlock : 0;
  std::vector<float> mn(static_cast<size_t>(blocks), kInf), mx(static_cast<size_t>(blocks), -kInf);
  for_blocks(std::max<int64_t>(n, 0), kBlock, [&](int64_t b, int64_t e) {
    const auto k = static_cast<size_t>(b / kBlock);
    minmax_span(x + b, e - b, &mn[k], &mx[k]);
  });
  float tmn = kInf, tmx = -kInf;
  for (size_t k = 0; k < mn.size(); ++k) tmn = std::min(tmn, mn[k]), tmx = std::max(tmx, mx[k]);
  if (any_finite) *any_finite = tmn <= tmx;
  return range_or_zero(tmn, tmx);
}

void channel_minmax(MinMax* out, const float* x, int64_t rows, int64_t channels) {
  if (channels <= 0) return;
  std::vector<float> mn(static_cast<size_t>(channels), kInf), mx(static_cast<size_t>(channels), -kInf);
  if (channels >= kChannelBlock) {
    // Many channels: each block owns a slice of columns and walks all rows; no partials.
    for_blocks(channels, kChannelBlock, [&](int64_t c0, int64_t c1) {
      channel_minmax_rows(x + c0, 0, rows, c1 - c0, channels, &mn[static_cast<size_t>(c0)], &mx[static_cast<size_t>(c0)]);
    });
  } else if (rows > 0) {
    // Few channels: blocks of rows, each with its own per-channel partials, merged after.
    const int64_t block_rows = std::max<int64_t>(1, kBlock / channels);
    const int64_t blocks = (rows + block_rows - 1) / block_rows;
    std::vector<float> pmn(static_cast<size_t>(blocks * channels), kInf), pmx(pmn.size(), -kInf);
    for_blocks(rows, block_rows, [&](int64_t r0, int64_t r1) {
      const int64_t k = r0 / block_rows;
      channel_minmax_rows(x, r0, r1, channels, channels, &pmn[static_cast<size_t>(k * channels)],
                          &pmx[static_cast<size_t>(k * channels)]);
    });
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t c = 0; c < channels; ++c) {
        const auto j = static_cast<size_t>(b * channels + c);
        mn[static_cast<size_t>(c)] = std::min(mn[static_cast<size_t>(c)], pmn[j]);
        mx[static_cast<size_t>(c)] = std::max(mx[static_cast<size_t>(c)], pmx[j]);
      }
  }
  for (int64_t c = 0; c < channels; ++c) out[c] = range_or_zero(mn[static_cast<size_t>(c)], mx[static_cast<size_t>(c)]);
}

}  // namespace qatc::quant
