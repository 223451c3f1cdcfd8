// Depthwise convolution with direct loops (no im2col): every output element of each pass is a
// sum over a rectangle of kernel taps of two channel rows multiplied elementwise, which one
// kernel (window_sum) computes with the channel loop innermost and the sums in registers.
//   forward: out[i,y,x,:] = b + sum_{ky,kx} in[i, y*sh - pt + ky, x*sw - pl + kx, :] * w[ky,kx,:]
//   din:     din[i,iy,ix,:] += sum_{ky,kx} dout[i, (iy + pt - ky)/sh, (ix + pl - kx)/sw, :] * w[ky,kx,:]
//            over the taps with iy + pt - ky, ix + pl - kx multiples of the strides (a gather, so
//            each task owns the input rows it writes)
//   dw:      dw[ky,kx,:] += sum_{i,y,x} in[i, y*sh - pt + ky, x*sw - pl + kx, :] * dout[i,y,x,:]
// (written for multiplier 1; with multiplier M the input side repeats each channel M times, and
// din also sums over the M outputs of each input channel). dw is summed over a fixed number of
// groups of output rows, each into its own partial, and the partials in order into dw, so the
// result does not depend on the thread count.
#include "nn/depthwise.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "nn/sgemm.h"

namespace qatc::nn {
namespace {

// Multiply-adds per parallel_for item at least (per task, when there are few items).
constexpr int64_t kTaskFloats = int64_t{1} << 15;
// Weight-gradient partial sums: at most this many groups of output rows, using at most this many
// floats together. Part of how dw is summed, so fixed (never derived from the thread count).
constexpr int64_t kMaxGroups = 32;
constexpr int64_t kPartialFloats = int64_t{1} << 20;

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

// Outputs [o0, o1) whose tap k reads inside [0, size): 0 <= o*stride - pad + k < size, o < out.
inline Span outputs_reading(int64_t k, int64_t pad, int64_t stride, int64_t size, int64_t out) {
  const int64_t lo = pad - k <= 0 ? 0 : (pad - k + stride - 1) / stride;
  const int64_t last = size - 1 + pad - k;  // o*stride <= last
  const int64_t hi = last < 0 ? 0 : std::min(out, last / stride + 1);
  return {lo, std::max(lo, hi)};
}

// The taps that input index t - pad (t = index + pad) feeds: k = k0, k0 + stride, ... (count of
// them), the first one reaching output o0, each next one output o0 - 1.
struct Gather {
  int64_t k0, count, o0;
};
inline Gather taps_reading(int64_t t, int64_t k, int64_t stride, int64_t out) {
  int64_t k0 = std::max<int64_t>(0, t - (out - 1) * stride);  // output <= out - 1
  k0 += (t - k0) % stride;                                    // (t - k0) a multiple of stride
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
// for k in [c0, c0 + B), with the B sums in registers. init may be o.
template <int64_t B>
inline void window_block(float* o, const float* init, const Window& win, int64_t c0) {
  float acc[B];
  for (int64_t k = 0; k < B; ++k) acc[k] = init ? init[c0 + k] : 0.0f;
  for (int64_t ty = 0; ty < win.ny; ++ty)
    for (int64_t tx = 0; tx < win.nx; ++tx) {
      const float* __restrict a = win.a + ty * win.a_dy + tx * win.a_dx + c0;
      const float* __restrict b = win.b + ty * win.b_dy + tx * win.b_dx + c0;
      for (int64_t k = 0; k < B; ++k) acc[k] += a[k] * b[k];
    }
  for (int64_t k = 0; k < B; ++k) o[c0 + k] = acc[k];
}

// Multiplier 1: o[k] = init[k] + sum_t a_t[k] * b_t[k] for k < c (all rows have c channels).
// Blocks of 16 channels (four SSE registers of sums), then 4, then single channels; every
// channel sees the same order of additions.
void window_sum(float* o, const float* init, const Window& win, int64_t c) {
  int64_t c0 = 0;
  for (; c0 + 16 <= c; c0 += 16) window_block<16>(o, init, win, c0);
  for (; c0 + 4 <= c; c0 += 4) window_block<4>(o, init, win, c0);
  for (; c0 < c; ++c0) window_block<1>(o, init, win, c0);
}

// Multiplier m > 1, a with c channels, b and o with c*m:
// o[ic*m + j] = init[ic*m + j] + sum_t a_t[ic] * b_t[ic*m + j].
void window_spread(float* o, const float* init, const Window& win, int64_t c, int64_t m) {
  const int64_t oc = c * m;
  if (init != o) {
    for (int64_t k = 0; k < oc; ++k) o[k] = init ? init[k] : 0.0f;
  }
  for (int64_t ty = 0; ty < win.ny; ++ty)
    for (int64_t tx = 0; tx < win.nx; ++tx) {
      const float* a = win.a + ty * win.a_dy + tx * win.a_dx;
      const float* b = win.b + ty * win.b_dy + tx * win.b_dx;
      for (int64_t ic = 0; ic < c; ++ic) {
        const float v = a[ic];
        for (int64_t j = 0; j < m; ++j) o[ic * m + j] += v * b[ic * m + j];
      }
    }
}

// Multiplier m > 1, a and b with c*m channels, o with c:
// o[ic] = init[ic] + sum_t sum_{j<m} a_t[ic*m + j] * b_t[ic*m + j]. init may be o.
void window_reduce(float* o, const float* init, const Window& win, int64_t c, int64_t m) {
  if (init != o) {
    for (int64_t ic = 0; ic < c; ++ic) o[ic] = init ? init[ic] : 0.0f;
  }
  for (int64_t ty = 0; ty < win.ny; ++ty)
    for (int64_t tx = 0; tx < win.nx; ++tx) {
      const float* a = win.a + ty * win.a_dy + tx * win.a_dx;
      const float* b = win.b + ty * win.b_dy + tx * win.b_dx;
      for (int64_t ic = 0; ic < c; ++ic) {
        float s = 0.0f;
        for (int64_t j = 0; j < m; ++j) s += a[ic * m + j] * b[ic * m + j];
        o[ic] += s;
      }
    }
}

// Runs fn(item) for every item in [0, items) on up to num_threads() tasks. Items are handed out
// one at a time, so a thread that the OS preempts on a busy machine holds up only its item.
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

// din[i, iy, :] += the gather in the header comment, for the input rows r = i*h + iy in [r0, r1).
void input_grad_rows(float* din, const float* dout, const float* w, const DepthwiseGeom& g, int64_t r0,
                     int64_t r1) {
  const int64_t oc = g.c * g.multiplier;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / g.h, iy = r % g.h;
    const Gather ty = taps_reading(iy + g.pad_top, g.kh, g.stride_h, g.oh);
    if (ty.count == 0) continue;
    for (int64_t ix = 0; ix < g.w; ++ix) {
      const Gather tx = taps_reading(ix + g.pad_left, g.kw, g.stride_w, g.ow);
      if (tx.count == 0) continue;
      // The next tap (ky + sh or kx + sw) reads the previous output row or column.
      const Window win{dout + ((img * g.oh + ty.o0) * g.ow + tx.o0) * oc,
                       -g.ow * oc,
                       -oc,
                       w + (ty.k0 * g.kw + tx.k0) * oc,
                       g.stride_h * g.kw * oc,
                       g.stride_w * oc,
                       ty.count,
                       tx.count};
      float* o = din + (r * g.w + ix) * g.c;
      if (g.multiplier == 1) window_sum(o, o, win, g.c);
      else window_reduce(o, o, win, g.c, g.multiplier);
    }
  }
}

// part[ky,kx,:] += sum over the output rows r = i*oh + y in [r0, r1) and x < ow of
// in[i, y*sh - pt + ky, x*sw - pl + kx, o / M] * dout[i,y,x,o]: row by row (one output row and
// its input rows stay in cache across the taps), each row over the taps in order.
void weight_grad_rows(float* part, const float* dout, const float* in, const DepthwiseGeom& g, int64_t r0,
                      int64_t r1) {
  const int64_t oc = g.c * g.multiplier;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / g.oh, oy = r % g.oh;
    const int64_t iy0 = oy * g.stride_h - g.pad_top;
    const Span sy = valid_taps(iy0, g.kh, g.h);
    for (int64_t ky = sy.k0; ky < sy.k1; ++ky) {
      const float* in_row = in + (img * g.h + iy0 + ky) * g.w * g.c;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const Span xs = outputs_reading(kx, g.pad_left, g.stride_w, g.w, g.ow);
        if (xs.k0 >= xs.k1) continue;
        const Window win{in_row + (xs.k0 * g.stride_w - g.pad_left + kx) * g.c,
                         0,
                         g.stride_w * g.c,
                         dout + (r * g.ow + xs.k0) * oc,
                         0,
                         oc,
                         1,
                         xs.k1 - xs.k0};
        float* o = part + (ky * g.kw + kx) * oc;
        if (g.multiplier == 1) window_sum(o, o, win, g.c);
        else window_spread(o, o, win, g.c, g.multiplier);
      }
    }
  }
}

// dw += sum over all output rows as in weight_grad_rows: a fixed number of contiguous groups of
// rows, each summed in order into its own partial, then the partials in order into dw.
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

void depthwise_forward(float* out, const float* in, const float* w, const float* b, const DepthwiseGeom& g) {
  const int64_t oc = g.c * g.multiplier;
  parallel_for(g.n * g.oh, grain_for(g.ow * g.kh * g.kw * oc), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / g.oh, oy = r % g.oh;
      const int64_t iy0 = oy * g.stride_h - g.pad_top;
      const Span sy = valid_taps(iy0, g.kh, g.h);
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t ix0 = ox * g.stride_w - g.pad_left;
        const Span sx = valid_taps(ix0, g.kw, g.w);
        float* o = out + (r * g.ow + ox) * oc;
        // 'same'/'valid' windows always hold a real tap; only a hand-made geometry could not.
        if (sy.k0 >= sy.k1 || sx.k0 >= sx.k1) {
          for (int64_t k = 0; k < oc; ++k) o[k] = b ? b[k] : 0.0f;
          continue;
        }
        const Window win{in + ((img * g.h + iy0 + sy.k0) * g.w + ix0 + sx.k0) * g.c,
                         g.w * g.c,
                         g.c,
                         w + (sy.k0 * g.kw + sx.k0) * oc,
                         g.kw * oc,
                         oc,
                         sy.k1 - sy.k0,
                         sx.k1 - sx.k0};
        if (g.multiplier == 1) window_sum(o, b, win, g.c);
        else window_spread(o, b, win, g.c, g.multiplier);
      }
    }
  });
}

void depthwise_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                        const float* w, const DepthwiseGeom& g) {
  const int64_t oc = g.c * g.multiplier;
  if (db) add_column_sums(db, dout, g.n * g.oh * g.ow, oc);
  if (dw) weight_grad(dw, dout, in, g);
  if (din) {
    // Taps per input pixel: about ceil(kh / sh) * ceil(kw / sw).
    const int64_t taps = ((g.kh + g.stride_h - 1) / g.stride_h) * ((g.kw + g.stride_w - 1) / g.stride_w);
    parallel_for(g.n * g.h, grain_for(g.w * taps * oc),
                 [&](int64_t r0, int64_t r1) { input_grad_rows(din, dout, w, g, r0, r1); });
  }
}

}  // namespace qatc::nn
