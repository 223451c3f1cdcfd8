// Drivers of the optimized conv2d, dense and depthwise kernels: argument checks, the split
// of the work into tasks for parallel_for, and the per-thread scratch. The arithmetic is in
// the isa_*.cpp files.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/check.h"
#include "kernels/opt/internal.h"
#include "kernels/opt/kernels.h"

namespace qatc::opt {

namespace detail {

void* thread_scratch(size_t bytes) {
  thread_local AlignedVector<uint8_t> buf;
  return grow(buf, bytes);
}

}  // namespace detail

namespace {

using detail::GemmTask;
using detail::IsaOps;

void check_packed(const PackedConv& w, PackedConv::Kind kind, int64_t c, int64_t kh, int64_t kw,
                  int64_t oc, int32_t input_zero_point) {
  QATC_CHECK(w.kind == kind);
  QATC_CHECK_EQ(w.c, c);
  QATC_CHECK_EQ(w.kh, kh);
  QATC_CHECK_EQ(w.kw, kw);
  QATC_CHECK_EQ(w.oc, oc);
  QATC_CHECK_EQ(w.input_zero_point, input_zero_point);
}

// The argument check of a kernel with packed weights: they stand in for p.weights, and the
// per-channel arrays are the packed copies (checked by pack_*), so p's own are not read (an
// executor may have released them once packed).
template <typename Params>
void check_with_packed(Params p, const PackedConv& w, const int8_t* out, const int8_t* in) {
  p.weights = w.weights.data();
  kernels::check(p, out, in, kernels::Channels::packed);
}

// Below this many multiply-adds a layer runs on the calling thread: at ~250 GMAC/s that is
// ~8 us of work, more than the cost of handing it to the pool. Tests set it to 0 so that
// small shapes are split too (set_min_parallel_macs).
int64_t g_min_parallel_macs = kDefaultMinParallelMacs;

// Splits the M x N GEMM into tasks of a block of rows times a range of panels. Row blocks
// hold up to ~192 KB of A (so A stays in L2 while every panel passes over it), balanced to
// equal sizes; panels are split too when there are too few row blocks to feed every thread
// (a 7x7 feature map at batch 1 is 49 rows), and then so that the task count is a multiple
// of the thread count. The threads take the tasks as they become free
// (parallel_for_dynamic): whole row blocks when there are at least 4 per thread (a vnni
// path then forms each block's A once), single tasks otherwise.
void run_gemm(const GemmTask& base, int64_t m, const PackedConv& w) {
  const IsaOps& ops = detail::ops_for(w.isa);
  const int64_t elem = detail::layout_of(w.isa) == detail::Layout::vnni_u8 ? 1 : 2;
  int64_t mb = std::clamp<int64_t>((192 * 1024) / (w.k_padded * elem), 24, detail::kMaxGemmRows);
  int64_t mblocks = (m + mb - 1) / mb;
  mb = (m + mblocks - 1) / mblocks;
  if (w.isa == Isa::amx) {
    // amx keeps no copy of A. Its tiles hold 16 pixels of one output row (any 16 pixels for
    // a contiguous GEMM) and it keeps the sums of 8 tiles at a time: a task is 128 rows (8
    // full tiles) for a contiguous GEMM, else as many whole output rows as make at most 8
    // tiles and 128 rows (128 rows if one output row is longer).
    const int64_t rows = std::min((int64_t{8} * 16) / detail::round_up(base.ow, 16), detail::kMaxGemmRows / base.ow);
    mb = base.contiguous || rows < 1 ? detail::kMaxGemmRows : rows * base.ow;
    mblocks = (m + mb - 1) / mb;
  }
  const int64_t threads = num_threads();
  // A product too small to pay for waking another thread (a few microseconds) runs on one.
  const bool one_thread = m * w.k_padded * w.panels * ops.panel_oc < g_min_parallel_macs;
  int64_t nchunks = 1;
  if (threads > 1 && !one_thread && mblocks < 16 * threads) {
    if (mblocks < 4 * threads) nchunks = std::min(w.panels, (4 * threads + mblocks - 1) / mblocks);
    while (nchunks < w.panels && mblocks * nchunks % threads != 0) ++nchunks;
  }
  const auto bytes = static_cast<size_t>(ops.gemm_scratch_bytes(mb, w.k_padded));
  const int64_t ntasks = mblocks * nchunks;
  const int64_t grain = one_thread ? ntasks : mblocks >= 4 * threads ? nchunks : 1;
  parallel_for_dynamic(ntasks, grain, [&](int64_t t0, int64_t t1) {
    GemmTask t = base;
    t.scratch = detail::thread_scratch(bytes);
    int64_t prev_block = -1;
    for (int64_t i = t0; i < t1; ++i) {
      const int64_t bi = i / nchunks, ci = i % nchunks;
      t.m0 = bi * mb;
      t.m1 = std::min(m, t.m0 + mb);
      t.p0 = ci * w.panels / nchunks;
      t.p1 = (ci + 1) * w.panels / nchunks;
      if (t.p0 >= t.p1) continue;
      t.a_ready = bi == prev_block;
      ops.gemm(t);
      prev_block = bi;
    }
  });
}

GemmTask gemm_task(const int8_t* in, int8_t* out, const PackedConv& w, int32_t zp_in,
                   int32_t zp_out, int32_t qmin, int32_t qmax) {
  GemmTask t{};
  t.in = in;
  t.out = out;
  t.input_zero_point = zp_in;
  t.packed = &w;
  t.rq = detail::channel_requant(w);
  t.clamp = detail::out_clamp(zp_out, qmin, qmax);
  return t;
}

// x ^= 0x80 on n bytes, 8 at a time.
void xor_80(int8_t* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, x + i, 8);
    v ^= 0x8080808080808080u;
    std::memcpy(x + i, &v, 8);
  }
  for (; i < n; ++i) x[i] = static_cast<int8_t>(static_cast<uint8_t>(x[i]) ^ 0x80u);
}

// The amx GEMM reads its A tiles straight from the input (isa_amx.cpp): 16 output pixels
// of one output row, 64 consecutive bytes of one input row each, a tile row stride of
// stride_w * c apart; the avx512_vnni GEMM in its row-group form (PackedConv::row_groups)
// reads each kernel row of an output pixel (padded to groups of 4 bytes) likewise. That needs the padding in
// memory: an unpadded conv's tiles read the input itself, a padded one's a copy with the
// padding (the input zero point), in a buffer of the calling thread kept between calls. The
// row-group form always reads a copy, as u8 (q ^ 0x80, vpdpbusd's unsigned operand), with
// rows long enough for the last pixel's kernel row (padded to groups of 4 bytes). (amx reads
// past the end: isa_amx.cpp.)
void padded_input(GemmTask& t, int64_t n, bool u8) {
  const int64_t c = t.c;
  const int64_t hp = std::max(t.pad_top + t.h, (t.oh - 1) * t.stride_h + t.kh);
  int64_t wp = std::max(t.pad_left + t.w, (t.ow - 1) * t.stride_w + t.kw);
  if (u8) wp = std::max(wp, ((t.ow - 1) * t.stride_w * c + t.packed->k_padded / t.kh + c - 1) / c);
  t.amx_h = hp;
  t.amx_w = wp;
  if (!u8 && hp == t.h && wp == t.w) {
    t.amx_in = t.in;
    t.amx_end = t.in + n * t.h * t.w * c;
    return;
  }
  thread_local AlignedVector<int8_t> buf;
  const int64_t size = n * hp * wp * c;
  int8_t* dst = detail::grow(buf, static_cast<size_t>(size));
  const auto flip = static_cast<uint8_t>(u8 ? 0x80 : 0);
  const auto zp = static_cast<int8_t>(static_cast<uint8_t>(t.input_zero_point) ^ flip);
  const int64_t row = wp * c;
  const GemmTask& g = t;
  parallel_for(n * hp, std::max<int64_t>(1, (int64_t{1} << 16) / row), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int8_t* d = dst + r * row;
      const int64_t b = r / hp, iy = r % hp - g.pad_top;
      if (iy < 0 || iy >= g.h) {
        std::fill(d, d + row, zp);
        continue;
      }
      std::fill(d, d + g.pad_left * c, zp);
      const int8_t* src = g.in + (b * g.h + iy) * g.w * c;
      int8_t* mid = d + g.pad_left * c;
      std::memcpy(mid, src, static_cast<size_t>(g.w * c));
      if (flip != 0) xor_80(mid, g.w * c);
      std::fill(d + (g.pad_left + g.w) * c, d + row, zp);
    }
  });
  t.amx_in = dst;
  t.amx_end = dst + size;
}

void conv2d_run(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p, const PackedConv& w,
                const detail::AddFuse* fuse) {
  check_with_packed(p, w, out, in);
  check_packed(w, PackedConv::Kind::conv2d, p.c, p.kh, p.kw, p.oc, p.input_zero_point);
  GemmTask t = gemm_task(in, out, w, p.input_zero_point, p.output_zero_point, p.qmin, p.qmax);
  t.h = p.h;
  t.w = p.w;
  t.c = p.c;
  t.kh = p.kh;
  t.kw = p.kw;
  t.stride_h = p.stride_h;
  t.stride_w = p.stride_w;
  t.pad_top = p.pad_top;
  t.pad_left = p.pad_left;
  t.oh = p.oh;
  t.ow = p.ow;
  // A 1x1 stride-1 unpadded conv reads the NHWC input rows as they are.
  t.contiguous = p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                 p.pad_top == 0 && p.pad_left == 0 && p.oh == p.h && p.ow == p.w;
  if (w.isa == Isa::amx || w.row_groups) padded_input(t, p.n, w.row_groups);
  t.fuse = fuse;
  run_gemm(t, p.n * p.oh * p.ow, w);
}

}  // namespace

void set_min_parallel_macs(int64_t macs) { g_min_parallel_macs = macs; }

void conv2d_qs8(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p,
                const PackedConv& w) {
  conv2d_run(out, in, p, w, nullptr);
}


bool supports_conv2d_add(Isa isa, const kernels::AddParams& a, const PackedAdd* table) {
  return isa == Isa::amx && (detail::add_pairs_apply(a) || detail::table_for(table, isa) != nullptr);
}

void conv2d_add_qs8(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p, const PackedConv& w,
                    const int8_t* other, const kernels::AddParams& a, bool conv_first, const PackedAdd* table) {
  QATC_CHECK(w.kind == PackedConv::Kind::conv2d && supports_conv2d_add(w.isa, a, table));
  if (table != nullptr) detail::check_table(*table, a);
  QATC_CHECK_EQ(a.size, p.n * p.oh * p.ow * p.oc);
  // The conv's own output never exists: `out` stands in for it in the conv's checks.
  kernels::check(a, out, other, other);
  detail::AddFuse fuse{other, out, &a, conv_first, detail::table_for(table, w.isa)};
  conv2d_run(out, in, p, w, &fuse);
}

void dense_qs8(int8_t* out, const int8_t* in, const kernels::DenseParams& p, const PackedConv& w) {
  check_with_packed(p, w, out, in);
  check_packed(w, PackedConv::Kind::dense, p.in_features, 1, 1, p.out_features,
               p.input_zero_point);
  GemmTask t = gemm_task(in, out, w, p.input_zero_point, p.output_zero_point, p.qmin, p.qmax);
  t.h = t.w = t.oh = t.ow = t.kh = t.kw = t.stride_h = t.stride_w = 1;
  t.c = p.in_features;
  t.contiguous = true;
  if (w.isa == Isa::amx) padded_input(t, p.n, false);
  run_gemm(t, p.n, w);
}

namespace {

// The kernels' form of a depthwise layer's weights: each as an int32 holding w in its low 16
// bits and 0 above (vpmaddwd of an int32 lane x, |x| < 2^15, with it gives x * w), [tap]
// [oc_padded]. Packed weights stay int8 (a quarter of the memory: NASNet's 276 depthwise
// layers would hold 1.6 MB as int32); each call widens them into a buffer of the calling
// thread, kept between calls, that its workers read (not thread_scratch, which the workers,
// the calling thread among them, use for their rows). The cost, taps * oc operations, is
// 1 / (oh * ow) of the layer's multiply-adds.
const int32_t* widened_depthwise_weights(const PackedConv& w) {
  thread_local AlignedVector<int32_t> buf;
  const size_t n = w.weights.size();
  int32_t* __restrict dst = detail::grow(buf, n);
  const int8_t* __restrict src = w.weights.data();
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint16_t>(int16_t{src[i]});
  return dst;
}

}  // namespace

void depthwise_conv2d_qs8(int8_t* out, const int8_t* in, const kernels::DepthwiseConv2DParams& p,
                          const PackedConv& w) {
  check_with_packed(p, w, out, in);
  check_packed(w, PackedConv::Kind::depthwise, p.c, p.kh, p.kw, p.c * p.depth_multiplier,
               p.input_zero_point);
  QATC_CHECK_EQ(w.depth_multiplier, p.depth_multiplier);
  const IsaOps& ops = detail::ops_for(w.isa);
  const int64_t mult = p.depth_multiplier, oc = p.c * mult, row_bytes = p.w * oc;
  detail::DepthwiseRow base{};
  base.w = p.w;
  base.oc = oc;
  base.kh = p.kh;
  base.kw = p.kw;
  base.stride_w = p.stride_w;
  base.pad_left = p.pad_left;
  base.ow = p.ow;
  base.weight_stride = w.oc_padded;
  base.rq = detail::channel_requant(w);
  base.input_zero_point = p.input_zero_point;
  base.clamp = detail::out_clamp(p.output_zero_point, p.qmin, p.qmax);
  if (p.stride_w == 1 || p.stride_w == 2) {
    base.quad_channels = w.dw_quad_channels;
    base.quad_weights = w.dw_quad_weights.data();
    base.quad_consts = w.dw_quad_consts.data();
  }
  // The widened weights only for the channels the vpdpbusd blocks leave.
  base.weights = base.quad_channels < oc ? widened_depthwise_weights(w) : nullptr;
  // Per thread: a row of input zero points (padding rows) and, for a depth multiplier > 1,
  // kh input rows expanded to oc channels (slot iy % kh: the kh rows of one output row are
  // consecutive, so they never share a slot).
  const int64_t slots = mult > 1 ? p.kh : 0;
  const auto bytes = static_cast<size_t>(detail::round_up(row_bytes, 64) * (1 + slots));
  const bool one_thread = p.n * p.oh * p.ow * p.c * mult * p.kh * p.kw < g_min_parallel_macs / 4;  // ~4x a GEMM MAC's cost
  parallel_for(p.n * p.oh, one_thread ? p.n * p.oh : 1, [&](int64_t r0, int64_t r1) {
    auto* zp_row = static_cast<int8_t*>(detail::thread_scratch(bytes));
    std::fill(zp_row, zp_row + row_bytes, static_cast<int8_t>(p.input_zero_point));
    int8_t* slot_base = zp_row + detail::round_up(row_bytes, 64);
    std::vector<int64_t> slot_row(static_cast<size_t>(slots), -1);
    std::vector<const int8_t*> rows(static_cast<size_t>(p.kh));
    detail::DepthwiseRow d = base;
    d.rows = rows.data();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / p.oh, oy = r % p.oh;
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        const int64_t iy = oy * p.stride_h - p.pad_top + ky;
        const int8_t* src = in + (b * p.h + iy) * p.w * p.c;
        const int8_t* row = zp_row;
        if (iy >= 0 && iy < p.h) {
          if (mult == 1) {
            row = src;
          } else {
            const auto slot = static_cast<size_t>(iy % p.kh);
            int8_t* dst = slot_base + static_cast<int64_t>(slot) * detail::round_up(row_bytes, 64);
            if (slot_row[slot] != b * p.h + iy) {
              for (int64_t i = 0; i < p.w * p.c; ++i)
                std::fill(dst + i * mult, dst + (i + 1) * mult, src[i]);
              slot_row[slot] = b * p.h + iy;
            }
            row = dst;
          }
        }
        rows[static_cast<size_t>(ky)] = row;
      }
      d.out = out + r * p.ow * oc;
      ops.depthwise_row(d);
    }
  });
}

void conv2d_qs8(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p) {
  conv2d_qs8(out, in, p, pack_conv2d(p));
}

void dense_qs8(int8_t* out, const int8_t* in, const kernels::DenseParams& p) {
  dense_qs8(out, in, p, pack_dense(p));
}

void depthwise_conv2d_qs8(int8_t* out, const int8_t* in, const kernels::DepthwiseConv2DParams& p) {
  depthwise_conv2d_qs8(out, in, p, pack_depthwise(p));
}

}  // namespace qatc::opt
