// Pooling kernels for NHWC float tensors.
// Forward work is split by output row; backward by image, because its scatters into
// overlapping windows never leave one image.
#include "nn/pool.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

namespace qatc::nn {
namespace {

constexpr int64_t kTaskFloats = int64_t{1} << 14;

int64_t grain_for(int64_t floats_per_item) {
  return std::max<int64_t>(1, kTaskFloats / std::max<int64_t>(floats_per_item, 1));
}

// Kernel taps [k0, k1) that fall inside [0, size) for a window starting at i0.
struct Span {
  int64_t k0, k1;
};
inline Span valid_taps(int64_t i0, int64_t k, int64_t size) {
  return {std::max<int64_t>(0, -i0), std::min<int64_t>(k, size - i0)};
}

// The window's first real tap: o = s, a = the flat indices of s.
inline void first_tap(float* __restrict o, int32_t* __restrict a, const float* __restrict s, int32_t base,
                      int64_t c) {
  for (int32_t ch = 0; ch < static_cast<int32_t>(c); ++ch) {
    o[ch] = s[ch];
    a[ch] = base + ch;
  }
}

// Every later tap: compare and select over the channels (contiguous in NHWC), no branches, so
// the loop vectorizes. Strict '>' keeps the earliest tap on ties; a NaN never takes over.
inline void max_tap(float* __restrict o, int32_t* __restrict a, const float* __restrict s, int32_t base,
                    int64_t c) {
  for (int32_t ch = 0; ch < static_cast<int32_t>(c); ++ch) {
    const float v = s[ch], cur = o[ch];
    // The index is selected with a mask: GCC turns "a = gt ? x : a" into a conditional store,
    // which does not vectorize.
    const int32_t take = -static_cast<int32_t>(v > cur);
    o[ch] = v > cur ? v : cur;
    a[ch] = (a[ch] & ~take) | ((base + ch) & take);
  }
}

// o = the maximum over the window's real taps [sy) x [sx), with max_tap's rule but no indices.
// Tap (ky, kx) is at in + origin + ky*row + kx*c (origin: the window's top-left tap, which may lie
// in the padding).
inline void window_max(float* __restrict o, const float* __restrict in, int64_t origin, Span sy, Span sx,
                       int64_t row, int64_t c) {
  const float* first = in + (origin + sy.k0 * row + sx.k0 * c);
  for (int64_t ch = 0; ch < c; ++ch) o[ch] = first[ch];
  for (int64_t ky = sy.k0; ky < sy.k1; ++ky)
    for (int64_t kx = sx.k0; kx < sx.k1; ++kx) {
      const float* s = in + (origin + ky * row + kx * c);
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = s[ch] > o[ch] ? s[ch] : o[ch];
    }
}

}  // namespace

Pool2DGeom pool2d_geom(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw,
                       int64_t stride_h, int64_t stride_w, Padding padding) {
  if (n < 1 || c < 1) fail("pool2d: batch {} and channels {} must be >= 1", n, c);
  const PadGeom py = pad_geom(h, kh, stride_h, padding);
  const PadGeom px = pad_geom(w, kw, stride_w, padding);
  return {n, h, w, c, kh, kw, stride_h, stride_w, py.pad_before, px.pad_before, py.out, px.out};
}

void maxpool2d_forward(float* out, int32_t* argmax, const float* in, const Pool2DGeom& g) {
  // argmax is int32 to halve its memory; a batch tensor that large would not train anyway.
  QATC_CHECK_LE(g.n * g.h * g.w * g.c, static_cast<int64_t>(std::numeric_limits<int32_t>::max()));
  parallel_for(g.n * g.oh, grain_for(g.ow * g.kh * g.kw * g.c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / g.oh, oy = r % g.oh;
      const int64_t iy0 = oy * g.stride_h - g.pad_top;
      const Span sy = valid_taps(iy0, g.kh, g.h);
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t ix0 = ox * g.stride_w - g.pad_left;
        const Span sx = valid_taps(ix0, g.kw, g.w);
        float* o = out + (r * g.ow + ox) * g.c;
        // 'same'/'valid' windows always hold a real tap; only a hand-made geometry could not.
        QATC_DCHECK(sy.k0 < sy.k1 && sx.k0 < sx.k1);
        if (!argmax) {
          window_max(o, in, ((img * g.h + iy0) * g.w + ix0) * g.c, sy, sx, g.w * g.c, g.c);
          continue;
        }
        int32_t* a = argmax + (r * g.ow + ox) * g.c;
        for (int64_t ky = sy.k0; ky < sy.k1; ++ky)
          for (int64_t kx = sx.k0; kx < sx.k1; ++kx) {
            const int64_t base = ((img * g.h + iy0 + ky) * g.w + ix0 + kx) * g.c;
            if (ky == sy.k0 && kx == sx.k0) first_tap(o, a, in + base, static_cast<int32_t>(base), g.c);
            else max_tap(o, a, in + base, static_cast<int32_t>(base), g.c);
          }
      }
    }
  });
}

void maxpool2d_backward(float* din, const float* dout, const int32_t* argmax, const Pool2DGeom& g) {
  if (!din) return;
  const int64_t per_image = g.oh * g.ow * g.c;
  parallel_for(g.n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t j = i0 * per_image; j < i1 * per_image; ++j) din[argmax[j]] += dout[j];
  });
}

void avgpool2d_forward(float* out, const float* in, const Pool2DGeom& g) {
  parallel_for(g.n * g.oh, grain_for(g.ow * g.kh * g.kw * g.c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / g.oh, oy = r % g.oh;
      const int64_t iy0 = oy * g.stride_h - g.pad_top;
      const Span sy = valid_taps(iy0, g.kh, g.h);
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t ix0 = ox * g.stride_w - g.pad_left;
        const Span sx = valid_taps(ix0, g.kw, g.w);
        float* o = out + (r * g.ow + ox) * g.c;
        std::fill(o, o + g.c, 0.0f);
        for (int64_t ky = sy.k0; ky < sy.k1; ++ky)
          for (int64_t kx = sx.k0; kx < sx.k1; ++kx) {
            const float* s = in + ((img * g.h + iy0 + ky) * g.w + ix0 + kx) * g.c;
            for (int64_t ch = 0; ch < g.c; ++ch) o[ch] += s[ch];
          }
        const float inv = 1.0f / static_cast<float>((sy.k1 - sy.k0) * (sx.k1 - sx.k0));
        for (int64_t ch = 0; ch < g.c; ++ch) o[ch] *= inv;
      }
    }
  });
}

void avgpool2d_backward(float* din, const float* dout, const Pool2DGeom& g) {
  if (!din) return;
  parallel_for(g.n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t img = i0; img < i1; ++img) {
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const int64_t iy0 = oy * g.stride_h - g.pad_top;
        const Span sy = valid_taps(iy0, g.kh, g.h);
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t ix0 = ox * g.stride_w - g.pad_left;
          const Span sx = valid_taps(ix0, g.kw, g.w);
          const float inv = 1.0f / static_cast<float>((sy.k1 - sy.k0) * (sx.k1 - sx.k0));
          const float* d = dout + ((img * g.oh + oy) * g.ow + ox) * g.c;
          for (int64_t ky = sy.k0; ky < sy.k1; ++ky)
            for (int64_t kx = sx.k0; kx < sx.k1; ++kx) {
              float* t = din + ((img * g.h + iy0 + ky) * g.w + ix0 + kx) * g.c;
              for (int64_t ch = 0; ch < g.c; ++ch) t[ch] += d[ch] * inv;
            }
        }
      }
    }
  });
}

void global_avgpool_forward(float* out, const float* in, int64_t n, int64_t hw, int64_t c) {
  parallel_for(n, grain_for(hw * c), [&](int64_t i0, int64_t i1) {
    std::vector<double> acc(static_cast<size_t>(c));
    for (int64_t img = i0; img < i1; ++img) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t p = 0; p < hw; ++p) {
        const float* s = in + (img * hw + p) * c;
        for (int64_t ch = 0; ch < c; ++ch) acc[static_cast<size_t>(ch)] += s[ch];
      }
      for (int64_t ch = 0; ch < c; ++ch)
        out[img * c + ch] = static_cast<float>(acc[static_cast<size_t>(ch)] / static_cast<double>(hw));
    }
  });
}

void global_avgpool_backward(float* din, const float* dout, int64_t n, int64_t hw, int64_t c) {
  if (!din) return;
  const float inv = 1.0f / static_cast<float>(hw);
  parallel_for(n, grain_for(hw * c), [&](int64_t i0, int64_t i1) {
    for (int64_t img = i0; img < i1; ++img)
      for (int64_t p = 0; p < hw; ++p) {
        float* t = din + (img * hw + p) * c;
        const float* d = dout + img * c;
        for (int64_t ch = 0; ch < c; ++ch) t[ch] += d[ch] * inv;
      }
  });
}

}  // namespace qatc::nn
