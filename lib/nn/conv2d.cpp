// Convolution as im2col + one sgemm per chunk of images; col2im gathers per input row.
#include "nn/conv2d.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"
#include "nn/sgemm.h"

namespace qatc::nn {
namespace {

// The im2col buffer is capped so that a large batch does not need gigabytes of scratch;
// 4M floats (16 MB) per chunk is still big enough for sgemm to run at full speed.
constexpr int64_t kMaxColsFloats = int64_t{1} << 22;
// Roughly how many floats a parallel_for task should move to be worth a dispatch.
constexpr int64_t kTaskFloats = int64_t{1} << 22;

int64_t patch_size(const Conv2DGeom& g) { return g.kh * g.kw * g.c; }

// A 1x1 stride-1 unpadded convolution is a plain matrix product: the input is the cols matrix.
bool is_pointwise(const Conv2DGeom& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 &&
         g.pad_left == 0 && g.oh == g.h && g.ow == g.w;
}

int64_t images_per_chunk(const Conv2DGeom& g) {
  const int64_t per_image = g.oh * g.ow * patch_size(g);
  return std::clamp<int64_t>(kMaxColsFloats / std::max<int64_t>(per_image, 1), 1, g.n);
}

int64_t grain_rows(int64_t floats_per_row) {
  return std::max<int64_t>(1, kTaskFloats / std::max<int64_t>(floats_per_row, 1));
}

// Valid kernel columns [kx0, kx1) for a window whose left edge is at input column ix0.
struct Span {
  int64_t k0, k1;
};
inline Span valid_taps(int64_t i0, int64_t k, int64_t size) {
  return {std::max<int64_t>(0, -i0), std::min<int64_t>(k, size - i0)};
}

inline void add_floats(float* __restrict d, const float* __restrict s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) d[j] += s[j];
}

// cols[(i*oh + oy)*ow + ox, (ky*kw + kx)*c + ci] = in[i, oy*sh - pt + ky, ox*sw - pl + kx, ci],
// 0 in the padding. One kernel row (kw*c floats) is contiguous in both cols and the input, so
// each (position, ky) is at most one memcpy plus zero fills at the borders.
void im2col(float* cols, const float* in, const Conv2DGeom& g, int64_t images) {
  const int64_t K = patch_size(g);
  const int64_t row_len = g.kw * g.c;
  parallel_for(images * g.oh, grain_rows(g.ow * K), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / g.oh, oy = r % g.oh;
      const float* src_img = in + img * g.h * g.w * g.c;
      const int64_t iy0 = oy * g.stride_h - g.pad_top;
      float* dst_pos = cols + r * g.ow * K;
      for (int64_t ox = 0; ox < g.ow; ++ox, dst_pos += K) {
        const int64_t ix0 = ox * g.stride_w - g.pad_left;
        const Span sx = valid_taps(ix0, g.kw, g.w);
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = iy0 + ky;
          float* d = dst_pos + ky * row_len;
          if (iy < 0 || iy >= g.h || sx.k0 >= sx.k1) {
            std::memset(d, 0, static_cast<size_t>(row_len) * sizeof(float));
            continue;
          }
          if (sx.k0 > 0) std::memset(d, 0, static_cast<size_t>(sx.k0 * g.c) * sizeof(float));
          std::memcpy(d + sx.k0 * g.c, src_img + (iy * g.w + ix0 + sx.k0) * g.c,
                      static_cast<size_t>((sx.k1 - sx.k0) * g.c) * sizeof(float));
          if (sx.k1 < g.kw)
            std::memset(d + sx.k1 * g.c, 0, static_cast<size_t>((g.kw - sx.k1) * g.c) * sizeof(float));
        }
      }
    }
  });
}

// din[i, iy, ix, ci] += every dcols entry that im2col copied from in[i, iy, ix, ci].
// Work is split by input row (a gather), so no two tasks write the same element and the
// summation order is fixed whatever the thread count.
void col2im_add(float* din, const float* dcols, const Conv2DGeom& g, int64_t images) {
  const int64_t K = patch_size(g);
  const int64_t row_len = g.kw * g.c;
  parallel_for(images * g.h, grain_rows(g.kh * g.w * g.c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / g.h, iy = r % g.h;
      float* din_row = din + r * g.w * g.c;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t t = iy + g.pad_top - ky;  // = oy * stride_h for a contributing oy
        if (t < 0 || t % g.stride_h != 0) continue;
        const int64_t oy = t / g.stride_h;
        if (oy >= g.oh) continue;
        const float* src_pos = dcols + (img * g.oh + oy) * g.ow * K + ky * row_len;
        for (int64_t ox = 0; ox < g.ow; ++ox, src_pos += K) {
          const int64_t ix0 = ox * g.stride_w - g.pad_left;
          const Span sx = valid_taps(ix0, g.kw, g.w);
          if (sx.k0 >= sx.k1) continue;
          add_floats(din_row + (ix0 + sx.k0) * g.c, src_pos + sx.k0 * g.c, (sx.k1 - sx.k0) * g.c);
        }
      }
    }
  });
}

void fill_bias(float* out, const float* b, int64_t rows, int64_t oc) {
  parallel_for(rows, grain_rows(oc), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(out + r * oc, b, static_cast<size_t>(oc) * sizeof(float));
  });
}

}  // namespace

Conv2DGeom conv2d_geom(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw,
                       int64_t oc, int64_t stride_h, int64_t stride_w, Padding padding) {
  if (n < 1 || c < 1 || oc < 1)
    fail("conv2d: batch {}, input channels {} and filters {} must all be >= 1", n, c, oc);
  const PadGeom py = pad_geom(h, kh, stride_h, padding);
  const PadGeom px = pad_geom(w, kw, stride_w, padding);
  return {n, h, w, c, kh, kw, oc, stride_h, stride_w, py.pad_before, px.pad_before, py.out, px.out};
}

int64_t conv2d_workspace_floats(const Conv2DGeom& g) {
  if (is_pointwise(g)) return 0;
  return images_per_chunk(g) * g.oh * g.ow * patch_size(g);
}

void conv2d_forward(float* out, const float* in, const float* w, const float* b,
                    const Conv2DGeom& g, float* workspace) {
  const int64_t K = patch_size(g);
  const int64_t pos = g.oh * g.ow;  // output rows per image
  const float beta = b ? 1.0f : 0.0f;
  if (is_pointwise(g)) {
    if (b) fill_bias(out, b, g.n * pos, g.oc);
    sgemm(false, false, g.n * pos, g.oc, g.c, 1.0f, in, g.c, w, g.oc, beta, out, g.oc);
    return;
  }
  QATC_CHECK(workspace != nullptr);
  const int64_t chunk = images_per_chunk(g);
  for (int64_t i0 = 0; i0 < g.n; i0 += chunk) {
    const int64_t imgs = std::min(chunk, g.n - i0);
    float* out_c = out + i0 * pos * g.oc;
    im2col(workspace, in + i0 * g.h * g.w * g.c, g, imgs);
    if (b) fill_bias(out_c, b, imgs * pos, g.oc);
    sgemm(false, false, imgs * pos, g.oc, K, 1.0f, workspace, K, w, g.oc, beta, out_c, g.oc);
  }
}

void conv2d_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                     const float* w, const Conv2DGeom& g, float* workspace) {
  const int64_t K = patch_size(g);
  const int64_t pos = g.oh * g.ow;
  if (db) add_column_sums(db, dout, g.n * pos, g.oc);
  if (!din && !dw) return;
  if (is_pointwise(g)) {
    const int64_t rows = g.n * pos;
    if (dw) sgemm(true, false, g.c, g.oc, rows, 1.0f, in, g.c, dout, g.oc, 1.0f, dw, g.oc);
    if (din) sgemm(false, true, rows, g.c, g.oc, 1.0f, dout, g.oc, w, g.oc, 1.0f, din, g.c);
    return;
  }
  QATC_CHECK(workspace != nullptr);
  const int64_t chunk = images_per_chunk(g);
  for (int64_t i0 = 0; i0 < g.n; i0 += chunk) {
    const int64_t imgs = std::min(chunk, g.n - i0);
    const int64_t rows = imgs * pos;
    const float* dout_c = dout + i0 * pos * g.oc;
    const int64_t in_off = i0 * g.h * g.w * g.c;
    if (dw) {
      // dw[K, oc] += cols^T * dout; beta = 1 carries the sum across chunks.
      im2col(workspace, in + in_off, g, imgs);
      sgemm(true, false, K, g.oc, rows, 1.0f, workspace, K, dout_c, g.oc, 1.0f, dw, g.oc);
    }
    if (din) {
      // The cols are no longer needed, so dcols = dout * w^T reuses the same scratch.
      sgemm(false, true, rows, K, g.oc, 1.0f, dout_c, g.oc, w, g.oc, 0.0f, workspace, K);
      col2im_add(din + in_off, workspace, g, imgs);
    }
  }
}

}  // namespace qatc::nn
