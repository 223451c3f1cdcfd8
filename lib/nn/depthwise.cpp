// Depthwise convolution with direct loops (no im2col). With multiplier M, x_M denotes the input
// with each channel repeated M times (x_M[..., ic*M + j] = in[..., ic]); then every pass is a sum,
// over a rectangle of kernel taps, of two rows of c*M channels multiplied elementwise:
//   forward: out[i,y,x,:] = b + sum_{ky,kx} x_M[i, y*sh - pt + ky, x*sw - pl + kx, :] * w[ky,kx,:]
//   dw:      dw[ky,kx,:] += sum_{i,y,x} x_M[i, y*sh - pt + ky, x*sw - pl + kx, :] * dout[i,y,x,:]
//   din:     t[i,iy,ix,:] = sum_{ky,kx} dout[i, (iy + pt - ky)/sh, (ix + pl - kx)/sw, :] * w[ky,kx,:]
//            over the taps where iy + pt - ky and ix + pl - kx are multiples of the strides,
//            and din[i,iy,ix,ic] += sum_{j<M} t[i,iy,ix,ic*M + j]
// One kernel (window_sum) computes all of them with the channel loop innermost and the sums in
// registers. For M = 1, x_M is the input itself; otherwise each task expands the input rows of
// a few output rows at a time. Forward and din are split by the rows they write (din is a
// gather), so each element has one writer and a fixed order of additions. dw is summed over a
// fixed number of groups of output rows, each into its own partial, and the partials in order
// into dw, so no result depends on the thread count.
#include "nn/depthwise.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "nn/sgemm.h"

namespace qatc::nn {
namespace {

// Multiply-adds per chunk of rows for forward and din (about 0.1 ms): chunks are handed out
// one at a time, so a thread that the OS preempts on a busy machine holds up only its chunk.
constexpr int64_t kChunkMacs = int64_t{1} << 18;
// Weight-gradient partial sums: at most this many groups of output rows, using at most this many
// floats together. Part of how dw is summed, so fixed (never derived from the thread count).
constexpr int64_t kMaxGroups = 32;
constexpr int64_t kPartialFloats = int64_t{1} << 20;
// Output rows per piece whose input rows are expanded at once (multiplier > 1).
constexpr int64_t kPieceRows = 8;

// Kernel taps [k0, k1) that fall inside [0, size) for a window starting at i0.
struct Span {
  int64_t k0, k1;
};
inline Span valid_taps(int64_t i0, int64_t k, int64_t size) {
  return {std::max<int64_t>(0, -i0), std::min<int64_t>(k, size - i0)};
}

// Outputs [k0, k1) whose tap k reads inside [0, size): 0 <= o*stride - pad + k < size, o < out.
inline Span outputs_reading(int64_t k, int64_t pad, int64_t stride, int64_t size, int64_t out) {
  const int64_t lo = pad - k <= 0 ? 0 : (pad - k + stride - 1) / stride;
  const int64_t last = size - 1 + pad - k;  // o*stride <= last
  const int64_t hi = last < 0 ? 0 : std::min(out, last / stride + 1);
  return {lo, std::max(lo, hi)};
}

// The taps that read input index t - pad (t = index + pad): k = k0, k0 + stride, ... (count of
// them); the first reads for output o0, each next one for the output before.
struct Gather {
  int64_t k0, count, o0;
};
inline Gather taps_reading(int64_t t, int64_t k, int64_t stride, int64_t out) {
  int64_t k0 = std::max<int64_t>(0, t - (out - 1) * stride);  // output <= out - 1
  k0 += (t - k0) % stride;                                    // t - k0 a multiple of stride
  const int64_t k1 = std::min(k - 1, t);                      // output >= 0
  if (k0 > k1) return {0, 0, 0};
  return {k0, (k1 - k0) / stride + 1, (t - k0) / stride};
}

// A rectangle of ny x nx taps; at tap (ty, tx) two channel rows a + ty*a_dy + tx*a_dx and
// b + ty*b_dy + tx*b_dx (strides in floats, possibly negative) are multiplied elementwise.
struct Window {
  const float* a;
  int64_t a_dy, a_dx;
  const float* b;
  int64_t b_dy, b_dx;
  int64_t ny, nx;
};

// o[k] = init[k] (0 if init is nullptr) + sum over the taps in row-major order of a_t[k] * b_t[k],
// for k in [c0, c0 + B), with the B sums in registers. init may be o. NX > 0 fixes win.nx at
// compile time (the tap loop then unrolls).
template <int64_t B, int64_t NX>
inline void window_block(float* o, const float* init, const Window& win, int64_t c0) {
  const float* const a0 = win.a + c0;
  const float* const b0 = win.b + c0;
  const int64_t a_dy = win.a_dy, a_dx = win.a_dx, b_dy = win.b_dy, b_dx = win.b_dx, ny = win.ny;
  const int64_t nx = NX > 0 ? NX : win.nx;
  float acc[B];
  for (int64_t k = 0; k < B; ++k) acc[k] = init ? init[c0 + k] : 0.0f;
  for (int64_t ty = 0; ty < ny; ++ty)
    for (int64_t tx = 0; tx < nx; ++tx) {
      const float* __restrict a = a0 + ty * a_dy + tx * a_dx;
      const float* __restrict b = b0 + ty * b_dy + tx * b_dx;
      for (int64_t k = 0; k < B; ++k) acc[k] += a[k] * b[k];
    }
  for (int64_t k = 0; k < B; ++k) o[c0 + k] = acc[k];
}

// Blocks of 16 channels (four SSE registers of sums), then 8, 4 and single channels; every
// channel sees the same order of additions.
template <int64_t NX>
void window_sum_nx(float* o, const float* init, const Window& win, int64_t c) {
  int64_t c0 = 0;
  for (; c0 + 16 <= c; c0 += 16) window_block<16, NX>(o, init, win, c0);
  for (; c0 + 8 <= c; c0 += 8) window_block<8, NX>(o, init, win, c0);
  for (; c0 + 4 <= c; c0 += 4) window_block<4, NX>(o, init, win, c0);
  for (; c0 < c; ++c0) window_block<1, NX>(o, init, win, c0);
}

// o[k] = init[k] (0 if init is nullptr) + sum_t a_t[k] * b_t[k] for k < c, taps in row-major
// order. Three taps per row (3x3 kernels) get their own unrolled copy.
void window_sum(float* o, const float* init, const Window& win, int64_t c) {
  if (win.nx == 3) window_sum_nx<3>(o, init, win, c);
  else window_sum_nx<0>(o, init, win, c);
}

// dst[i*m + j] = src[i] for i < n, j < m. Common multipliers get a constant m, which lets the
// loop vectorize.
template <int64_t M>
void repeat_each(float* __restrict dst, const float* __restrict src, int64_t n, int64_t m) {
  if (M > 0) m = M;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) dst[i * m + j] = src[i];
}
void repeat_each(float* dst, const float* src, int64_t n, int64_t m) {
  switch (m) {
    case 2: return repeat_each<2>(dst, src, n, m);
    case 3: return repeat_each<3>(dst, src, n, m);
    case 4: return repeat_each<4>(dst, src, n, m);
    default: return repeat_each<0>(dst, src, n, m);
  }
}

// o[i] += sum_{j<m} t[i*m + j] for i < n, with a constant m for the common multipliers.
template <int64_t M>
void add_group_sums(float* __restrict o, const float* __restrict t, int64_t n, int64_t m) {
  if (M > 0) m = M;
  for (int64_t i = 0; i < n; ++i) {
    float s = 0.0f;
    for (int64_t j = 0; j < m; ++j) s += t[i * m + j];
    o[i] += s;
  }
}
void add_group_sums(float* o, const float* t, int64_t n, int64_t m) {
  switch (m) {
    case 2: return add_group_sums<2>(o, t, n, m);
    case 3: return add_group_sums<3>(o, t, n, m);
    case 4: return add_group_sums<4>(o, t, n, m);
    default: return add_group_sums<0>(o, t, n, m);
  }
}

// The rows of x_M that the output rows [oy0, oy1) of image img read: row iy is
// data + (iy - first) * w * c*M. For M = 1 they are the input itself; otherwise they are expanded
// into buf (each channel repeated M times).
struct InputRows {
  const float* data;
  int64_t first;
};
InputRows input_rows(std::vector<float>& buf, const float* in, const DepthwiseGeom& g, int64_t img, int64_t oy0,
                     int64_t oy1) {
  if (g.multiplier == 1) return {in + img * g.h * g.w * g.c, 0};
  const int64_t m = g.multiplier;
  const int64_t first = std::max<int64_t>(0, oy0 * g.stride_h - g.pad_top);
  const int64_t last = std::min(g.h, (oy1 - 1) * g.stride_h - g.pad_top + g.kh);  // exclusive
  const int64_t count = std::max<int64_t>(0, last - first) * g.w * g.c;  // input floats
  buf.resize(static_cast<size_t>(count * m));
  repeat_each(buf.data(), in + (img * g.h + first) * g.w * g.c, count, m);
  return {buf.data(), first};
}

// Calls fn(img, oy0, oy1) for the output rows r = img*oh + oy in [r0, r1), in order, cut into
// pieces within one image each. With M > 1 the pieces have at most kPieceRows rows, so that
// their expanded input rows stay in cache until they are read.
template <class Fn>
void for_each_image_part(const DepthwiseGeom& g, int64_t r0, int64_t r1, Fn&& fn) {
  const int64_t piece = g.multiplier == 1 ? g.oh : kPieceRows;
  for (int64_t r = r0; r < r1;) {
    const int64_t img = r / g.oh, oy0 = r % g.oh;
    const int64_t oy1 = std::min({g.oh, oy0 + (r1 - r), oy0 + piece});
    fn(img, oy0, oy1);
    r += oy1 - oy0;
  }
}

// Runs fn(item) for every item in [0, items) on up to num_threads() tasks of parallel_for.
// Items are handed out one at a time, so a thread that the OS preempts on a busy machine holds
// up only its item.
template <class Fn>
void for_each_item(int64_t items, Fn&& fn) {
  const int64_t tasks = std::min<int64_t>(num_threads(), items);
  std::atomic<int64_t> next{0};
  parallel_for(tasks, 1, [&](int64_t, int64_t) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < items;
         i = next.fetch_add(1, std::memory_order_relaxed))
      fn(i);
  });
}

// Runs fn(r0, r1) over [0, rows) in chunks of about kChunkMacs multiply-adds (rows of
// macs_per_row each), handed out by for_each_item.
template <class Fn>
void for_row_chunks(int64_t rows, int64_t macs_per_row, Fn&& fn) {
  const int64_t chunk = std::max<int64_t>(1, kChunkMacs / std::max<int64_t>(macs_per_row, 1));
  for_each_item((rows + chunk - 1) / chunk, [&](int64_t i) { fn(i * chunk, std::min(rows, (i + 1) * chunk)); });
}

// out for the output rows r in [r0, r1).
void forward_rows(float* out, const float* in, const float* w, const float* b, const DepthwiseGeom& g,
                  Activation act, int64_t r0, int64_t r1) {
  const int64_t oc = g.c * g.multiplier;
  std::vector<float> buf;
  for_each_image_part(g, r0, r1, [&](int64_t img, int64_t oy0, int64_t oy1) {
    const InputRows x = input_rows(buf, in, g, img, oy0, oy1);
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      const int64_t iy0 = oy * g.stride_h - g.pad_top;
      const Span sy = valid_taps(iy0, g.kh, g.h);
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t ix0 = ox * g.stride_w - g.pad_left;
        const Span sx = valid_taps(ix0, g.kw, g.w);
        float* o = out + ((img * g.oh + oy) * g.ow + ox) * oc;
        // 'same'/'valid' windows always hold a real tap; only a hand-made geometry could not.
        if (sy.k0 >= sy.k1 || sx.k0 >= sx.k1) {
          for (int64_t k = 0; k < oc; ++k) o[k] = b ? b[k] : 0.0f;
          activate(o, oc, act);
          continue;
        }
        const Window win{x.data + ((iy0 + sy.k0 - x.first) * g.w + ix0 + sx.k0) * oc,
                         g.w * oc,
                         oc,
                         w + (sy.k0 * g.kw + sx.k0) * oc,
                         g.kw * oc,
                         oc,
                         sy.k1 - sy.k0,
                         sx.k1 - sx.k0};
        window_sum(o, b, win, oc);
        if (act != Activation::none) activate(o, oc, act);
      }
    }
  });
}

// din for the input rows r = img*h + iy in [r0, r1).
void input_grad_rows(float* din, const float* dout, const float* w, const DepthwiseGeom& g, int64_t r0,
                     int64_t r1) {
  const int64_t m = g.multiplier, oc = g.c * m;
  std::vector<float> t(static_cast<size_t>(m > 1 ? oc : 0));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / g.h, iy = r % g.h;
    const Gather ty = taps_reading(iy + g.pad_top, g.kh, g.stride_h, g.oh);
    if (ty.count == 0) continue;
    for (int64_t ix = 0; ix < g.w; ++ix) {
      const Gather tx = taps_reading(ix + g.pad_left, g.kw, g.stride_w, g.ow);
      if (tx.count == 0) continue;
      // The next tap (ky + sh or kx + sw) reads the output row or column before.
      const Window win{dout + ((img * g.oh + ty.o0) * g.ow + tx.o0) * oc,
                       -g.ow * oc,
                       -oc,
                       w + (ty.k0 * g.kw + tx.k0) * oc,
                       g.stride_h * g.kw * oc,
                       g.stride_w * oc,
                       ty.count,
                       tx.count};
      float* o = din + (r * g.w + ix) * g.c;
      if (m == 1) {
        window_sum(o, o, win, g.c);
        continue;
      }
      window_sum(t.data(), nullptr, win, oc);
      add_group_sums(o, t.data(), g.c, m);
    }
  }
}

// part[ky,kx,:] += the dw sum over the output rows r in [r0, r1): row by row (one output row and
// its input rows stay in cache across the taps), each row over the taps in order.
void weight_grad_rows(float* part, const float* dout, const float* in, const DepthwiseGeom& g, int64_t r0,
                      int64_t r1) {
  const int64_t oc = g.c * g.multiplier;
  std::vector<float> buf;
  for_each_image_part(g, r0, r1, [&](int64_t img, int64_t oy0, int64_t oy1) {
    const InputRows x = input_rows(buf, in, g, img, oy0, oy1);
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      const int64_t iy0 = oy * g.stride_h - g.pad_top;
      const Span sy = valid_taps(iy0, g.kh, g.h);
      const float* dout_row = dout + (img * g.oh + oy) * g.ow * oc;
      for (int64_t ky = sy.k0; ky < sy.k1; ++ky) {
        const float* x_row = x.data + (iy0 + ky - x.first) * g.w * oc;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const Span xs = outputs_reading(kx, g.pad_left, g.stride_w, g.w, g.ow);
          if (xs.k0 >= xs.k1) continue;
          const Window win{x_row + (xs.k0 * g.stride_w - g.pad_left + kx) * oc,
                           0,
                           g.stride_w * oc,
                           dout_row + xs.k0 * oc,
                           0,
                           oc,
                           1,
                           xs.k1 - xs.k0};
          float* o = part + (ky * g.kw + kx) * oc;
          window_sum(o, o, win, oc);
        }
      }
    }
  });
}

// dw += the sum over all output rows: a fixed number of contiguous groups of rows, each summed
// in order into its own partial, then the partials in order into dw.
void weight_grad(float* dw, const float* dout, const float* in, const DepthwiseGeom& g) {
  const int64_t rows = g.n * g.oh;
  const int64_t size = g.kh * g.kw * g.c * g.multiplier;
  const int64_t groups = std::max<int64_t>(1, std::min({rows, kMaxGroups, kPartialFloats / size}));
  std::vector<float> partial(static_cast<size_t>(groups * size));
  for_each_item(groups, [&](int64_t grp) {
    float* part = partial.data() + grp * size;
    std::fill(part, part + size, 0.0f);
    weight_grad_rows(part, dout, in, g, rows * grp / groups, rows * (grp + 1) / groups);
  });
  parallel_for(size, 4096, [&](int64_t j0, int64_t j1) {
    for (int64_t grp = 0; grp < groups; ++grp) {
      const float* __restrict p = partial.data() + grp * size;
      for (int64_t j = j0; j < j1; ++j) dw[j] += p[j];
    }
  });
}

}  // namespace

DepthwiseGeom depthwise_geom(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw,
                             int64_t multiplier, int64_t stride_h, int64_t stride_w, Padding padding) {
  if (n < 1 || c < 1 || multiplier < 1)
    fail("depthwise_conv2d: batch {}, channels {} and depth multiplier {} must all be >= 1", n, c, multiplier);
  const PadGeom py = pad_geom(h, kh, stride_h, padding);
  const PadGeom px = pad_geom(w, kw, stride_w, padding);
  return {n, h, w, c, kh, kw, multiplier, stride_h, stride_w, py.pad_before, px.pad_before, py.out, px.out};
}

void depthwise_forward(float* out, const float* in, const float* w, const float* b, const DepthwiseGeom& g,
                       Activation act) {
  for_row_chunks(g.n * g.oh, g.ow * g.kh * g.kw * g.c * g.multiplier,
                 [&](int64_t r0, int64_t r1) { forward_rows(out, in, w, b, g, act, r0, r1); });
}

void depthwise_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                        const float* w, const DepthwiseGeom& g) {
  const int64_t oc = g.c * g.multiplier;
  if (db) add_column_sums(db, dout, g.n * g.oh * g.ow, oc);
  if (dw) weight_grad(dw, dout, in, g);
  if (din) {
    // Taps per input pixel: about ceil(kh / sh) * ceil(kw / sw).
    const int64_t taps = ((g.kh + g.stride_h - 1) / g.stride_h) * ((g.kw + g.stride_w - 1) / g.stride_w);
    for_row_chunks(g.n * g.h, g.w * taps * oc,
                   [&](int64_t r0, int64_t r1) { input_grad_rows(din, dout, w, g, r0, r1); });
  }
}

}  // namespace qatc::nn
