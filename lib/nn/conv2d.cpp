// Convolution as im2col + sgemm over fixed chunks of output rows, each chunk one task that
// builds its cols in its own cache-sized slot of the workspace and multiplies them at once;
// inference on AVX-512F instead multiplies the input in place by weights packed at load
// (gemm_packed.h).
// Stride-1 input gradients are a convolution of dout with the rotated kernel (same machinery);
// strided ones use dout * w^T and a col2im gather.
#include "nn/conv2d.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/simd.h"
#include "core/threads.h"
#include "nn/gemm_packed.h"
#include "nn/merge.h"
#include "nn/sgemm.h"

namespace qatc::nn {
namespace {

// Floats for the chunks in flight (12 MB): enough for dozens of threads at the chunk size below.
// The workspace holds these slots plus at most kPartialFloats of dw partial sums and a rotated
// kernel, about 4M floats in all, unless one output row's cols alone need more.
constexpr int64_t kSlotFloats = 3 * (int64_t{1} << 20);
// One chunk's cols (512 KB): written by im2col and read straight back by sgemm while they are
// still in the core's L2 cache. On the cnn_bn convolutions 512 KB and 1 MB ran fastest, 128 KB
// and 2 MB about 8% slower.
constexpr int64_t kChunkFloats = int64_t{1} << 17;
// Weight-gradient partial sums: at most this many groups of chunks, using at most this many
// floats together. Part of how dw is summed, so fixed (never derived from the thread count).
constexpr int64_t kMaxGroups = 16;
constexpr int64_t kPartialFloats = int64_t{1} << 20;
// Strided input gradients (dcols + col2im) chunk whole images, capped like the old scheme.
constexpr int64_t kTaskFloats = int64_t{1} << 22;

int64_t patch_size(const Conv2DGeom& g) { return g.kh * g.kw * g.c; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A 1x1 stride-1 unpadded convolution is a plain matrix product: the input is the cols matrix.
bool is_pointwise(const Conv2DGeom& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 &&
         g.pad_left == 0 && g.oh == g.h && g.ow == g.w;
}

bool is_unit_stride(const Conv2DGeom& g) { return g.stride_h == 1 && g.stride_w == 1; }

// For stride 1, din[i,y,x,ci] = sum_{ky,kx,o} dout[i, y + pad_top - ky, x + pad_left - kx, o]
// * w[ky,kx,ci,o]: a convolution over dout (as the input, oc channels) with c filters, padded by
// kh-1-pad_top above and kw-1-pad_left on the left, whose kernel is w rotated by 180 degrees
// with its channel axes swapped (rotated_kernel). Its output has the shape of `in`.
Conv2DGeom input_grad_geom(const Conv2DGeom& g) {
  return {g.n, g.oh, g.ow, g.oc, g.kh, g.kw, g.c, 1, 1, g.kh - 1 - g.pad_top, g.kw - 1 - g.pad_left, g.h, g.w};
}

// wr[(ky*kw + kx)*oc + o, ci] = w[(kh-1-ky)*kw + (kw-1-kx), ci, o]
void rotated_kernel(float* wr, const float* w, const Conv2DGeom& g) {
  for (int64_t ky = 0; ky < g.kh; ++ky)
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      const float* src = w + ((g.kh - 1 - ky) * g.kw + (g.kw - 1 - kx)) * g.c * g.oc;
      float* dst = wr + (ky * g.kw + kx) * g.oc * g.c;
      for (int64_t ci = 0; ci < g.c; ++ci)
        for (int64_t o = 0; o < g.oc; ++o) dst[o * g.c + ci] = src[ci * g.oc + o];
    }
}

// How the output rows (image, oy) of a convolution are cut into chunks. Depends on the
// geometry only, so every chunk, and therefore every result, is the same for any thread count.
struct Plan {
  int64_t rows;          // n * oh
  int64_t chunk_rows;    // output rows per chunk (the last chunk may be shorter)
  int64_t chunks;
  int64_t slot;          // floats of one chunk's cols
  int64_t slots;         // chunks in flight at once, each in its own slot
  int64_t groups;        // weight-gradient partial sums (0: none, the chunks run in order)
  int64_t group_floats;  // one partial: kh*kw*c*oc
  int64_t extra;         // floats after the slots: the partials (and the rotated kernel)
};

// forward: g is the convolution itself (forward, and dw from im2col(in)).
// input_grad: g is input_grad_geom(...) (din, and dw from im2col(dout)); it needs at least one
// partial, where dw is gathered in rotated order, plus the rotated kernel.
enum class Use { forward, input_grad };

Plan plan_of(const Conv2DGeom& g, Use use) {
  Plan p{};
  const int64_t row_floats = g.ow * patch_size(g);
  p.rows = g.n * g.oh;
  p.chunk_rows = std::clamp<int64_t>(kChunkFloats / row_floats, 1, p.rows);
  p.chunks = ceil_div(p.rows, p.chunk_rows);
  p.slot = p.chunk_rows * row_floats;
  p.group_floats = patch_size(g) * g.oc;
  p.groups = std::min({p.chunks, kMaxGroups, kPartialFloats / p.group_floats});
  if (p.groups < 2) p.groups = 0;
  p.extra = use == Use::forward ? p.groups * p.group_floats : (std::max<int64_t>(p.groups, 1) + 1) * p.group_floats;
  // Each term of slots * slot + extra grows (or stays) with g.n, so a workspace sized for the
  // largest batch serves every smaller one.
  p.slots = std::clamp<int64_t>(kSlotFloats / p.slot, 1, p.chunks);
  return p;
}

// Rows [r0, r1) of chunk `chunk`.
inline void chunk_rows(const Plan& p, int64_t chunk, int64_t* r0, int64_t* r1) {
  *r0 = chunk * p.chunk_rows;
  *r1 = std::min(p.rows, *r0 + p.chunk_rows);
}

// Chunks [c0, c1) of group `grp`.
inline void group_chunks(const Plan& p, int64_t grp, int64_t* c0, int64_t* c1) {
  *c0 = p.chunks * grp / p.groups;
  *c1 = p.chunks * (grp + 1) / p.groups;
}

int64_t images_per_task(const Conv2DGeom& g) {
  const int64_t per_image = g.oh * g.ow * patch_size(g);
  return std::clamp<int64_t>(kTaskFloats / std::max<int64_t>(per_image, 1), 1, g.n);
}

// Runs fn(item, slot) for every item in [0, items) on up to `slots` tasks, each with its own
// slot index. Items are handed out one at a time, so a thread that the OS preempts on a busy
// machine holds up only the item it is working on.
template <class Fn>
void for_each_item(int64_t items, int64_t slots, Fn&& fn) {
  const int64_t tasks = std::min<int64_t>({static_cast<int64_t>(num_threads()), slots, items});
  std::atomic<int64_t> next{0};
  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < items;
           i = next.fetch_add(1, std::memory_order_relaxed))
        fn(i, t);
  });
}

// Runs the chunks of every group on the pool: group grp's chunks, in order, go to
// chunk_fn(chunk, cols, beta, acc, threaded=false) with acc its own partial sum (beta 0 for its
// first chunk, which overwrites the partial) and cols the task's im2col slot.
template <class ChunkFn>
void run_groups(const Plan& p, float* workspace, float* partial, ChunkFn&& chunk_fn) {
  for_each_item(p.groups, p.slots, [&](int64_t grp, int64_t slot) {
    int64_t c0, c1;
    group_chunks(p, grp, &c0, &c1);
    for (int64_t chunk = c0; chunk < c1; ++chunk)
      chunk_fn(chunk, workspace + slot * p.slot, chunk == c0 ? 0.0f : 1.0f, partial + grp * p.group_floats, false);
  });
}

// Kernel rows at least this long (floats) are copied with memcpy, shorter ones inline.
constexpr int64_t kLongRun = 16;

// Valid kernel taps [k0, k1) for a window whose first tap is at input index i0.
struct Span {
  int64_t k0, k1;
};
inline Span valid_taps(int64_t i0, int64_t k, int64_t size) {
  return {std::max<int64_t>(0, -i0), std::min<int64_t>(k, size - i0)};
}

inline void add_floats(float* __restrict d, const float* __restrict s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) d[j] += s[j];
}

// cols[(r - r0)*ow + ox, (ky*kw + kx)*c + ci] = in[i, oy*sh - pt + ky, ox*sw - pl + kx, ci] for the
// output rows r = i*oh + oy in [r0, r1), 0 in the padding. One kernel row (kw*c floats) is
// contiguous in both cols and the input, so each (position, ky) is one copy plus zero fills at
// the borders.
void im2col_rows(float* cols, const float* in, const Conv2DGeom& g, int64_t r0, int64_t r1) {
  const int64_t K = patch_size(g);
  const int64_t row_len = g.kw * g.c;
  // Positions [ox_lo, ox_hi) have their whole window inside the image horizontally.
  const int64_t ox_lo = std::clamp<int64_t>(ceil_div(g.pad_left, g.stride_w), 0, g.ow);
  const int64_t ox_hi = g.w - g.kw + g.pad_left < 0
                            ? ox_lo
                            : std::clamp<int64_t>((g.w - g.kw + g.pad_left) / g.stride_w + 1, ox_lo, g.ow);
  const auto zero = [](float* d, int64_t n) { std::memset(d, 0, static_cast<size_t>(n) * sizeof(float)); };
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / g.oh, oy = r % g.oh;
    const int64_t iy0 = oy * g.stride_h - g.pad_top;
    float* dst_row = cols + (r - r0) * g.ow * K;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = iy0 + ky;
      float* d = dst_row + ky * row_len;
      if (iy < 0 || iy >= g.h) {
        for (int64_t ox = 0; ox < g.ow; ++ox) zero(d + ox * K, row_len);
        continue;
      }
      const float* src_row = in + (img * g.h + iy) * g.w * g.c;
      // Windows that cross the left or right edge.
      auto edge = [&](int64_t ox) {
        const int64_t ix0 = ox * g.stride_w - g.pad_left;
        const Span sx = valid_taps(ix0, g.kw, g.w);
        float* e = d + ox * K;
        if (sx.k0 >= sx.k1) {
          zero(e, row_len);
          return;
        }
        if (sx.k0 > 0) zero(e, sx.k0 * g.c);
        std::memcpy(e + sx.k0 * g.c, src_row + (ix0 + sx.k0) * g.c,
                    static_cast<size_t>((sx.k1 - sx.k0) * g.c) * sizeof(float));
        if (sx.k1 < g.kw) zero(e + sx.k1 * g.c, (g.kw - sx.k1) * g.c);
      };
      for (int64_t ox = 0; ox < ox_lo; ++ox) edge(ox);
      if (ox_lo < ox_hi) {
        const float* src = src_row + (ox_lo * g.stride_w - g.pad_left) * g.c;  // window of ox_lo
        const int64_t step = g.stride_w * g.c;
        float* dst = d + ox_lo * K;
        const int64_t count = ox_hi - ox_lo;
        if (row_len >= kLongRun) {
          for (int64_t i = 0; i < count; ++i)
            std::memcpy(dst + i * K, src + i * step, static_cast<size_t>(row_len) * sizeof(float));
        } else {
          // Few channels: a libc call per run of a few floats would cost more than the copy.
          // The strided inner loop also keeps the compiler from turning it back into such calls.
          for (int64_t j = 0; j < row_len; ++j) {
            float* __restrict dj = dst + j;
            const float* __restrict sj = src + j;
            for (int64_t i = 0; i < count; ++i) dj[i * K] = sj[i * step];
          }
        }
      }
      for (int64_t ox = ox_hi; ox < g.ow; ++ox) edge(ox);
    }
  }
}

// din[i, iy, ix, ci] += every dcols entry that im2col copied from in[i, iy, ix, ci], for whole
// images. Work is split by input row (a gather), so no two tasks write the same element and the
// summation order is fixed whatever the thread count.
void col2im_add(float* din, const float* dcols, const Conv2DGeom& g, int64_t images) {
  const int64_t K = patch_size(g);
  const int64_t row_len = g.kw * g.c;
  const int64_t grain = std::max<int64_t>(1, kChunkFloats / (g.kh * g.w * g.c));
  parallel_for(images * g.h, grain, [&](int64_t r0, int64_t r1) {
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

// out[rows, cols] (rows ld floats apart) = b broadcast over rows.
void fill_rows(float* out, int64_t ld, const float* b, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * ld, b, static_cast<size_t>(cols) * sizeof(float));
}

// out[rows, cols] = residual + b broadcast over rows (out and residual: rows ld floats apart);
// residual may be out.
QATC_SIMD_CLONES
void add_bias_rows(float* out, int64_t ld, const float* residual, const float* b, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * ld;  // may be x: no __restrict
    const float* x = residual + r * ld;
    for (int64_t j = 0; j < cols; ++j) o[j] = x[j] + b[j];
  }
}

// An inference product's starting value: out[rows, cols] = residual + b, either of them nullptr
// meaning 0 (nothing to do when both are); residual may be out.
void start_rows(float* out, int64_t ld, const float* b, const float* residual, int64_t rows, int64_t cols) {
  if (residual && b) {
    add_bias_rows(out, ld, residual, b, rows, cols);
  } else if (b) {
    fill_rows(out, ld, b, rows, cols);
  } else if (residual && residual != out) {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(out + r * ld, residual + r * ld, static_cast<size_t>(cols) * sizeof(float));
  }
}

void forward_gemm(float* out, const float* in, const float* w, const float* b, const Conv2DGeom& g,
                  float* workspace) {
  const Plan p = plan_of(g, Use::forward);
  const int64_t K = patch_size(g);
  for_each_item(p.chunks, p.slots, [&](int64_t chunk, int64_t slot) {
    int64_t r0, r1;
    chunk_rows(p, chunk, &r0, &r1);
    const int64_t m = (r1 - r0) * g.ow;
    float* cols = workspace + slot * p.slot;
    float* c = out + r0 * g.ow * g.oc;
    im2col_rows(cols, in, g, r0, r1);
    if (b) fill_rows(c, g.oc, b, m, g.oc);
    sgemm_single_thread(false, false, m, g.oc, K, 1.0f, cols, K, w, g.oc, b ? 1.0f : 0.0f, c, g.oc);
  });
}

// Inference chunks. With OpenBLAS: about this many floats of cols plus output per chunk (1 MB,
// the L2 cache), unless the weights need more rows per chunk: at least kWeightReuse * oc
// positions, so that packing the K x oc weights (once per product) costs at most 1/kWeightReuse
// of packing the cols. With weights packed at load (gemm_packed) nothing is packed per product;
// a chunk then has at least kPackedRows positions, so that each slice of the weights, read from
// memory once per chunk, serves that many rows.
constexpr int64_t kInferChunkFloats = int64_t{1} << 18;
constexpr int64_t kWeightReuse = 2;
constexpr int64_t kPackedRows = 256;
// With fewer chunks than this (small batches), each chunk's product is cut into blocks of at
// least kMinBlockColumns output channels (a multiple of kPanel), so that threads can share it.
// Fixed numbers, never the thread count: the result is the same on any number of threads.
constexpr int64_t kMinItems = 4;
constexpr int64_t kMinBlockColumns = 128;

struct InferPlan {
  int64_t rows;        // n * oh
  int64_t chunk_rows;  // output rows per chunk (the last one may be shorter)
  int64_t chunks;
  int64_t slot;        // floats of one chunk's cols (0: the input is the cols)
  int64_t blocks;      // column blocks per chunk
  int64_t block_cols;  // output channels per block (the last may have fewer)
};

InferPlan infer_plan_of(const Conv2DGeom& g, bool packed) {
  const int64_t K = patch_size(g);
  InferPlan p{};
  p.rows = g.n * g.oh;
  const int64_t positions = packed ? std::max(kInferChunkFloats / (K + g.oc), kPackedRows)
                                   : std::max(kInferChunkFloats / (K + g.oc), kWeightReuse * g.oc);
  p.chunks = ceil_div(p.rows, std::clamp<int64_t>(ceil_div(positions, g.ow), 1, p.rows));
  p.chunk_rows = ceil_div(p.rows, p.chunks);  // chunks of equal size
  p.slot = packed || is_pointwise(g) ? 0 : p.chunk_rows * g.ow * K;
  p.blocks = 1;
  p.block_cols = g.oc;
  if (p.chunks < kMinItems) {
    const int64_t blocks = std::clamp<int64_t>(ceil_div(kMinItems, p.chunks), 1, std::max<int64_t>(1, g.oc / kMinBlockColumns));
    p.block_cols = ceil_div(ceil_div(g.oc, blocks), kPanel) * kPanel;
    p.blocks = ceil_div(g.oc, p.block_cols);
  }
  return p;
}

// dw[K, oc] += sum over chunks of im2col(in)^T * dout. Chunks are summed in a fixed number of
// contiguous groups, each in order into its own partial, and the partials in order into dw.
void weight_grad_from_input(float* dw, const float* dout, const float* in, const Conv2DGeom& g,
                            float* workspace) {
  const Plan p = plan_of(g, Use::forward);
  const int64_t K = patch_size(g);
  auto chunk_product = [&](int64_t chunk, float* cols, float beta, float* acc, bool threaded) {
    int64_t r0, r1;
    chunk_rows(p, chunk, &r0, &r1);
    im2col_rows(cols, in, g, r0, r1);
    (threaded ? sgemm : sgemm_single_thread)(true, false, K, g.oc, (r1 - r0) * g.ow, 1.0f, cols, K,
                                             dout + r0 * g.ow * g.oc, g.oc, beta, acc, g.oc);
  };
  if (p.groups == 0) {
    // A single chunk, or kernels too large for partials: the chunks add straight into dw in
    // order and each product is split across the threads instead.
    for (int64_t chunk = 0; chunk < p.chunks; ++chunk) chunk_product(chunk, workspace, 1.0f, dw, true);
    return;
  }
  float* partial = workspace + p.slots * p.slot;
  run_groups(p, workspace, partial, chunk_product);
  parallel_for(p.group_floats, 4096, [&](int64_t j0, int64_t j1) {
    for (int64_t grp = 0; grp < p.groups; ++grp) add_floats(dw + j0, partial + grp * p.group_floats + j0, j1 - j0);
  });
}

// Stride 1: din += im2col_t(dout) * wr, with t = input_grad_geom(g), and, when dw is wanted,
// from the same cols dw~[c, kh*kw*oc] += in^T * im2col_t(dout), because
// dw[ky,kx,ci,o] = sum_{i,y,x} in[i,y,x,ci] * dout[i, y + pad_top - ky, x + pad_left - kx, o]
//               = dw~[ci, ((kh-1-ky)*kw + (kw-1-kx))*oc + o].
// One im2col of dout per chunk thus feeds both products; dw~ is summed like weight_grad_from_input.
void backward_unit_stride(float* din, float* dw, const float* dout, const float* in, const float* w,
                          const Conv2DGeom& g, float* workspace) {
  const Conv2DGeom t = input_grad_geom(g);
  const Plan p = plan_of(t, Use::input_grad);
  const int64_t K = patch_size(t);  // kh*kw*oc
  float* partial = workspace + p.slots * p.slot;
  float* wr = partial + std::max<int64_t>(p.groups, 1) * p.group_floats;
  rotated_kernel(wr, w, g);
  auto chunk_products = [&](int64_t chunk, float* cols, float beta, float* acc, bool threaded) {
    int64_t r0, r1;
    chunk_rows(p, chunk, &r0, &r1);
    const int64_t m = (r1 - r0) * t.ow;  // input positions, stride 1: the rows of in and din
    const auto gemm = threaded ? sgemm : sgemm_single_thread;
    im2col_rows(cols, dout, t, r0, r1);
    gemm(false, false, m, g.c, K, 1.0f, cols, K, wr, g.c, 1.0f, din + r0 * t.ow * g.c, g.c);
    if (dw) gemm(true, false, g.c, K, m, 1.0f, in + r0 * t.ow * g.c, g.c, cols, K, beta, acc, K);
  };
  int64_t parts = p.groups;
  if (p.groups == 0) {
    // One chunk, or kernels too large for several partials: the chunks run in order, each
    // product split across the threads.
    parts = 1;
    if (dw) std::fill(partial, partial + p.group_floats, 0.0f);
    for (int64_t chunk = 0; chunk < p.chunks; ++chunk) chunk_products(chunk, workspace, 1.0f, partial, true);
  } else {
    run_groups(p, workspace, partial, chunk_products);
  }
  if (!dw) return;
  // dw[(ky,kx,ci), :] += sum over partials, in order, of dw~[ci, (kh-1-ky, kw-1-kx), :].
  parallel_for(g.kh * g.kw * g.c, 64, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t tap = j / g.c, ci = j % g.c;
      const int64_t rtap = g.kh * g.kw - 1 - tap;  // (kh-1-ky)*kw + (kw-1-kx)
      for (int64_t part = 0; part < parts; ++part)
        add_floats(dw + j * g.oc, partial + part * p.group_floats + ci * K + rtap * g.oc, g.oc);
    }
  });
}

// Strided input gradient: dcols = dout * w^T per chunk of whole images, then col2im.
void input_grad_strided(float* din, const float* dout, const float* w, const Conv2DGeom& g, float* workspace) {
  const int64_t K = patch_size(g);
  const int64_t pos = g.oh * g.ow;
  const int64_t chunk = images_per_task(g);
  for (int64_t i0 = 0; i0 < g.n; i0 += chunk) {
    const int64_t imgs = std::min(chunk, g.n - i0);
    sgemm(false, true, imgs * pos, K, g.oc, 1.0f, dout + i0 * pos * g.oc, g.oc, w, g.oc, 0.0f, workspace, K);
    col2im_add(din + i0 * g.h * g.w * g.c, workspace, g, imgs);
  }
}

// What the windows of gemm_packed's A read (no im2col): the input itself when every window lies
// inside it, else a zero-padded copy. Window (i, oy, ox) starts at row oy*sh, column ox*sw of
// image i of an h x w source, which holds the input at (pad_top, pad_left).
struct Windows {
  bool padded;
  int64_t h, w;  // the source's size: the input's, or the windows' extent
};

Windows windows_of(const Conv2DGeom& g) {
  const int64_t eh = (g.oh - 1) * g.stride_h + g.kh, ew = (g.ow - 1) * g.stride_w + g.kw;
  if (g.pad_top == 0 && g.pad_left == 0 && eh <= g.h && ew <= g.w) return {false, g.h, g.w};
  return {true, eh, ew};
}

// The packed-weights inference: A is the (padded) input read in place, row i the window of
// output position i, one segment per kernel row (kw * c floats, one source row apart); bias,
// residual and activation are applied by gemm_packed in registers. Every (chunk, column block)
// is one item for the threads.
void infer_packed(float* out, const float* in, const float* w, const float* b, const float* residual,
                  const Conv2DGeom& g, Activation act, float* workspace) {
  const InferPlan p = infer_plan_of(g, true);
  const Windows src = windows_of(g);
  const float* base = in;
  if (src.padded) {
    QATC_CHECK(workspace != nullptr);
    // The input at (pad_top, pad_left) of an src.h x src.w map; rows and columns past the
    // windows' extent are cropped (negative bottom and right amounts).
    pad_forward(workspace, in, pad_geom2d(g.n, g.h, g.w, g.c, g.pad_top, src.h - g.h - g.pad_top, g.pad_left,
                                          src.w - g.w - g.pad_left));
    base = workspace;
  }
  const int64_t K = patch_size(g);
  for_each_item(p.chunks * p.blocks, p.chunks * p.blocks, [&](int64_t item, int64_t) {
    const int64_t chunk = item / p.blocks, blk = item % p.blocks;
    const int64_t r0 = chunk * p.chunk_rows, r1 = std::min(p.rows, r0 + p.chunk_rows);
    const int64_t j0 = blk * p.block_cols, j1 = std::min(g.oc, j0 + p.block_cols);
    thread_local std::vector<const float*> rows;
    rows.clear();
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = base + ((r / g.oh) * src.h + (r % g.oh) * g.stride_h) * src.w * g.c;
      for (int64_t ox = 0; ox < g.ow; ++ox) rows.push_back(row + ox * g.stride_w * g.c);
    }
    const int64_t at = r0 * g.ow * g.oc;  // the chunk's first output
    gemm_packed((r1 - r0) * g.ow, K, g.oc, j0, j1, rows.data(), g.kw * g.c, src.w * g.c, w, b,
                residual ? residual + at : nullptr, out + at, g.oc, act);
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
  const Plan p = plan_of(g, Use::forward);
  int64_t need = p.slots * p.slot + p.extra;
  if (is_unit_stride(g)) {
    const Plan q = plan_of(input_grad_geom(g), Use::input_grad);
    need = std::max(need, q.slots * q.slot + q.extra);
  } else {
    need = std::max(need, images_per_task(g) * g.oh * g.ow * patch_size(g));
  }
  return need;
}

void conv2d_forward(float* out, const float* in, const float* w, const float* b,
                    const Conv2DGeom& g, float* workspace) {
  if (is_pointwise(g)) {
    const int64_t rows = g.n * g.oh * g.ow;
    if (b)
      parallel_for(rows, std::max<int64_t>(1, kChunkFloats / g.oc),
                   [&](int64_t r0, int64_t r1) { fill_rows(out + r0 * g.oc, g.oc, b, r1 - r0, g.oc); });
    sgemm(false, false, rows, g.oc, g.c, 1.0f, in, g.c, w, g.oc, b ? 1.0f : 0.0f, out, g.oc);
    return;
  }
  QATC_CHECK(workspace != nullptr);
  forward_gemm(out, in, w, b, g, workspace);
}

int64_t conv2d_infer_workspace_floats(const Conv2DGeom& g, int threads, bool packed) {
  if (packed) {
    const Windows src = windows_of(g);
    return src.padded ? g.n * src.h * src.w * g.c : 0;
  }
  const InferPlan p = infer_plan_of(g, false);
  return p.blocks > 1 ? p.slot : p.slot * std::clamp<int64_t>(threads, 1, p.chunks);
}

void conv2d_infer(float* out, const float* in, const float* w, bool packed, const float* b, const float* residual,
                  const Conv2DGeom& g, Activation act, float* workspace) {
  if (packed) {
    infer_packed(out, in, w, b, residual, g, act, workspace);
    return;
  }
  const InferPlan p = infer_plan_of(g, false);
  const int64_t K = patch_size(g);
  QATC_CHECK(p.slot == 0 || workspace != nullptr);
  const float beta = b || residual ? 1.0f : 0.0f;
  // Output rows [r0, r1), channels [j0, j1), from the cols a of those rows.
  auto product = [&](const float* a, int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    const int64_t m = (r1 - r0) * g.ow, cols = j1 - j0;
    float* c = out + r0 * g.ow * g.oc + j0;
    start_rows(c, g.oc, b ? b + j0 : nullptr, residual ? residual + r0 * g.ow * g.oc + j0 : nullptr, m, cols);
    sgemm_single_thread(false, false, m, cols, K, 1.0f, a, K, w + j0, g.oc, beta, c, g.oc);
    if (cols == g.oc) activate(c, m * cols, act);
    else
      for (int64_t r = 0; r < m; ++r) activate(c + r * g.oc, cols, act);
  };
  const int threads = num_threads();
  if (p.blocks == 1) {
    for_each_item(p.chunks, threads, [&](int64_t chunk, int64_t slot) {
      const int64_t r0 = chunk * p.chunk_rows, r1 = std::min(p.rows, r0 + p.chunk_rows);
      const float* a = in + r0 * g.ow * g.c;  // 1x1 stride 1: rows of the input are rows of cols
      if (p.slot > 0) {
        float* cols = workspace + slot * p.slot;
        im2col_rows(cols, in, g, r0, r1);
        a = cols;
      }
      product(a, r0, r1, 0, g.oc);
    });
    return;
  }
  // Few chunks: each chunk's cols built by all threads, then its column blocks shared out.
  for (int64_t chunk = 0; chunk < p.chunks; ++chunk) {
    const int64_t r0 = chunk * p.chunk_rows, r1 = std::min(p.rows, r0 + p.chunk_rows);
    const float* a = in + r0 * g.ow * g.c;
    if (p.slot > 0) {
      parallel_for(r1 - r0, 1, [&](int64_t i0, int64_t i1) { im2col_rows(workspace + i0 * g.ow * K, in, g, r0 + i0, r0 + i1); });
      a = workspace;
    }
    for_each_item(p.blocks, p.blocks, [&](int64_t blk, int64_t) {
      product(a, r0, r1, blk * p.block_cols, std::min(g.oc, (blk + 1) * p.block_cols));
    });
  }
}

void conv2d_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                     const float* w, const Conv2DGeom& g, float* workspace) {
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
  if (din && is_unit_stride(g)) {
    backward_unit_stride(din, dw, dout, in, w, g, workspace);
    return;
  }
  // The first layer (no din) takes dw from im2col(in), which is narrower than im2col(dout)
  // whenever c < oc.
  if (dw) weight_grad_from_input(dw, dout, in, g, workspace);
  if (din) input_grad_strided(din, dout, w, g, workspace);
}

}  // namespace qatc::nn
