// Internals of the optimized int8 kernels: the work units the drivers (conv.cpp,
// elementwise.cpp) hand to the per-instruction-set code (isa_*.cpp), and the table of that
// code. Not part of the public API.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "kernels/opt/isa.h"
#include "kernels/opt/kernels.h"
#include "kernels/params.h"

namespace qatc::opt::detail {

// Packed GEMM weight layouts.
//   vnni_u8 (avx512_vnni, avx_vnni): activations enter vpdpbusd as u8 = q + 128, weights as
//     s8. Output channels in panels of 64 (the last panel 16, 32, 48 or 64 wide: nv * 16);
//     inside a panel, for each group g of 4 consecutive k, the 4 weights of each channel:
//     byte [g][j][t] = w[oc = 64 p + j][k = 4 g + t], j < nv * 16. Panel p starts at
//     p * (k_padded / 4) * 256. k_padded = K rounded up to 4; padding weights are 0.
//   amx_s8 (amx): as vnni_u8, but activations enter tdpbssd as s8 (q itself), and k runs
//     over kh segments of amx_segment(kw * c) = kw * c rounded up to 64 (k = ky * segment +
//     r holds w[ky][r / c][r % c] for r < kw * c, 0 after), so that each step of 64 k reads
//     64 consecutive input bytes of one input row (amx.cpp). 16 channels of 16 consecutive
//     groups are one AMX B tile (16 rows of 64 bytes, row stride nv * 64).
//   i16_pairs (avx2): activations and weights as int16 (q itself), channels in panels of 16;
//     inside a panel, for each pair g of k: int16 [g][j][t] = w[oc = 16 p + j][k = 2 g + t].
//     Panel p starts at p * (k_padded / 2) * 32 int16. k_padded = K rounded up to 2.
//   i16_rows (portable): activations and weights as int16, weights [oc][k_padded] (the
//     original rows, widened), k_padded = K rounded up to 8; panels of 16 channels for the
//     split of the work only. Plain dot products, which compilers vectorize well.
enum class Layout { vnni_u8, amx_s8, i16_pairs, i16_rows };

inline Layout layout_of(Isa isa) {
  switch (isa) {
    case Isa::amx: return Layout::amx_s8;
    case Isa::avx512_vnni:
    case Isa::avx_vnni: return Layout::vnni_u8;
    case Isa::avx2: return Layout::i16_pairs;
    default: return Layout::i16_rows;
  }
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The k of one kernel row (kw * c) in the amx_s8 layout: a whole number of 64-byte steps.
inline int64_t amx_segment(int64_t kw_c) { return round_up(kw_c, 64); }

// A conv whose kernel rows hold at most 12 bytes (kw * c <= 12: the first conv of an image
// model, 3x3 over 1 or 3 channels), with more than one of them, runs on the avx512_vnni GEMM in
// its row-group form (PackedConv::row_groups): the vnni_u8 layout with each kernel row padded
// to whole groups of 4 k (segp = kw * c rounded up to 4), so that kernel row ky of output
// pixel (oy, ox) is the segp bytes of input row oy * stride_h + ky from column ox * stride_w
// on (the bytes past kw * c meet zero weights). The GEMM then reads its A in place from a
// padded u8 copy of the input, with no im2col (isa_avx512.cpp, gemm_row_groups).
inline bool row_groups_apply(int64_t c, int64_t kh, int64_t kw) { return kh > 1 && kw * c <= 12; }

// The per-channel output stage arrays of a PackedConv (see kernels.h), all oc_padded long.
struct ChannelRequant {
  const int32_t *bias, *multiplier, *left_shift, *right_shift, *round_mask, *round_half;
  bool any_left_shift;
  const int32_t* fast_shift;
  bool fast;
};

inline ChannelRequant channel_requant(const PackedConv& w) {
  return {w.bias.data(),          w.multiplier.data(), w.left_shift.data(), w.right_shift.data(),
          w.round_mask.data(),    w.round_half.data(), w.any_left_shift,    w.fast_shift.data(),
          w.fast_requant};
}

// mbqm in one rounding step. For right = -shift >= 2 (or multiplier 0), with P = x * m:
//   srdhm:  s = floor((P + 2^30) / 2^31)
//   rdbpot: floor((s + 2^(right-1) - [s < 0]) / 2^right)   (ties away from zero)
// and floor((floor(a / b) + c) / d) = floor((a + c b) / (b d)) for integer c give
//   mbqm = floor((P + 2^30 - [P < -2^30] 2^31 + 2^(right-2) 2^32) / 2^(31 + right))
//        = (hi32(Q) + 2^(right-2)) >> (right - 1),   Q = P + 2^30 - [P < -2^30] 2^31,
// with hi32(Q) = floor(Q / 2^32) in [-2^30 - 1, 2^30], so the 32-bit sum cannot overflow.
// The rounding addend joins Q as 2^(right-2) 2^32 (|P| < 2^62, so Q stays below 2^63):
//        = hi32(P + 2^30 + 2^(right-2) 2^32 - [P < -2^30] 2^31) >> (right - 1).
// Vector code: two vpmuldq (even and odd lanes), and per half a compare, an add of the
// 64-bit addend (per channel) and a masked subtract; one shuffle of the high halves and one
// variable shift.
inline bool fast_requant_applies(int32_t multiplier, int32_t shift) {
  return multiplier == 0 || shift <= -2;
}
// The shift of the fast form, right - 1 (1 for multiplier 0, whose sum is 0 either way); its
// rounding addend 2^(right-2) is then 2^(fast_shift - 1).
inline int32_t fast_shift_of(int32_t multiplier, int32_t shift) {
  return multiplier == 0 ? 1 : -shift - 1;
}

// An Add's input term in 32-bit arithmetic. The reference computes, for d = q - zp,
// |d| <= 255, L = left_shift, right = -shift >= 0 (kernels::check: shift <= 0):
//   srdhm(d 2^L, m) = floor((d m 2^L + 2^30) / 2^31) = floor((d m + 2^(k-1)) / 2^k),  k = 31 - L
// and with m = mh 2^k + ml (mh = m >> k, 0 <= ml < 2^k) the multiple d mh 2^k leaves the floor:
//   = d mh + floor((d ml + 2^(k-1)) / 2^k)
// then the rounding right shift by `right`. Both products fit in int32 when L >= 8
// (|d ml| < 2^8 2^23, |d mh| < 2^8 2^22), so this needs no 64-bit multiplies.
struct AddTerm {
  int32_t zero_point, mult_hi, mult_lo, lo_shift, right;
};
inline bool add_terms_apply(const kernels::AddParams& p) { return p.left_shift >= 8 && p.left_shift <= 22; }
// The same terms with no 32-bit multiply (the avx512_vnni and amx Adds, fused into the amx
// GEMM's output stage or not: isa_avx512.cpp AddPairs): each term is d mh' + ((d ml' + K) >> (k + e)) with
// m = mh' 2^(k+e) + ml', d as the int16 pair (d, 128 d) and mh', ml' as pairs
// (x mod 128, x / 128), which needs ml' < 2^(k+e) <= 2^22: k + e <= 22 for both inputs,
// e = -shift. With ResNet-style Adds' left shift 20 (k = 11): e <= 11, input scales within
// 2^10 of each other; other Adds run unfused, on add_range's 32-bit terms.
inline bool add_pairs_apply(const kernels::AddParams& p) {
  const int32_t k = 31 - p.left_shift;
  return p.left_shift >= 9 && p.left_shift <= 22 && k - p.input1_shift <= 22 && k - p.input2_shift <= 22;
}
inline AddTerm add_term(int32_t zero_point, int32_t multiplier, int32_t shift, int32_t left_shift) {
  const int32_t k = 31 - left_shift;
  return {zero_point, multiplier >> k, multiplier & ((int32_t{1} << k) - 1), k, -shift};
}

// Output clamp as applied after mbqm: clamp(v, lo, hi) + zero_point with lo = qmin - zp,
// hi = qmax - zp, equal to clamp(zp + v, qmin, qmax) without the int32 wrap of zp + v.
struct OutClamp {
  int32_t zero_point, lo, hi;
};
inline OutClamp out_clamp(int32_t zero_point, int32_t qmin, int32_t qmax) {
  return {zero_point, qmin - zero_point, qmax - zero_point};
}

// The most rows of A one GemmTask may hold.
constexpr int64_t kMaxGemmRows = 128;

// A conv's output added to another tensor in its output stage (conv2d_add_qs8).
struct AddFuse {
  const int8_t* other;     // element i of the output pairs with other[i]
  const int8_t* out;       // the output's first element
  const kernels::AddParams* add;
  bool conv_first;         // the conv's output is the Add's first input
  const PackedAdd* table;  // the Add's tables (exact, add_table_used), or null: the arithmetic form
};

// The tables are those of the Add's parameters (pack_add; the size may differ).
inline void check_table(const PackedAdd& t, const kernels::AddParams& p) {
  const kernels::AddParams& q = t.params;
  QATC_CHECK(q.input1_zero_point == p.input1_zero_point && q.input2_zero_point == p.input2_zero_point &&
             q.output_zero_point == p.output_zero_point && q.left_shift == p.left_shift &&
             q.input1_multiplier == p.input1_multiplier && q.input1_shift == p.input1_shift &&
             q.input2_multiplier == p.input2_multiplier && q.input2_shift == p.input2_shift &&
             q.output_multiplier == p.output_multiplier && q.output_shift == p.output_shift &&
             q.qmin == p.qmin && q.qmax == p.qmax);
}

// The tables an Add runs by on `isa`: `t` when given, exact and add_table_used(isa); else null
// (the arithmetic form).
inline const PackedAdd* table_for(const PackedAdd* t, Isa isa) {
  return t != nullptr && t->exact && add_table_used(isa) ? t : nullptr;
}

// Rows of an Add by its tables on AVX-512 VBMI (add_table_avx512.cpp; add_table_used):
// out + r * ldo = Add(x1 + r * ld1, x2 + r * ld2) for r < rows, width bytes each. out may be
// x1 or x2 (each 64 bytes are read before they are written).
void add_table_rows(const PackedAdd& t, int8_t* out, int64_t ldo, const int8_t* x1, int64_t ld1, const int8_t* x2,
                    int64_t ld2, int64_t rows, int64_t width);

// One GEMM work unit: rows [m0, m1) of A times panels [p0, p1) of the packed weights.
// Row m of A is output pixel m of the conv (b, oy, ox in NHWC order): its kh * kw * c inputs
// in weight order (ky, kx, ic), padding positions reading the input zero point. A dense
// layer is a conv with h = w = oh = ow = kh = kw = 1.
struct GemmTask {
  const int8_t* in;
  int64_t h, w, c, kh, kw, stride_h, stride_w, pad_top, pad_left, oh, ow;
  int32_t input_zero_point;
  bool contiguous;  // 1x1, stride 1, no padding: row m is in + m * c
  const PackedConv* packed;
  ChannelRequant rq;
  OutClamp clamp;
  int8_t* out;  // [M, oc]
  int64_t m0, m1, p0, p1;  // m1 - m0 <= kMaxGemmRows
  void* scratch;  // gemm_scratch_bytes(rows, k_padded) bytes, 64-aligned
  bool a_ready;   // scratch already holds A for these rows (the previous task's)
  // amx, and avx512_vnni with PackedConv::row_groups: the input its GEMM reads in place,
  // [n][amx_h][amx_w][c] with the conv's padding in it (output pixel (oy, ox) reads from row
  // oy * stride_h and column ox * stride_w on), up to amx_end: the input itself when an amx
  // conv is unpadded, else a padded copy (as u8, q ^ 0x80, for row groups; conv.cpp,
  // padded_input).
  const int8_t *amx_in, *amx_end;
  int64_t amx_h, amx_w;
  // amx: the output goes through an Add with `other` (same shape as out) before it is
  // stored (conv2d_add_qs8); null for a plain conv or dense layer.
  const AddFuse* fuse;
};


// One output row of a depthwise conv: the kh input rows it reads, each [w, oc] (already
// expanded by the depth multiplier; a padding row is a row of input zero points).
struct DepthwiseRow {
  const int8_t* const* rows;  // kh pointers, never nullptr
  int64_t w, oc, kh, kw, stride_w, pad_left, ow;
  // [kh * kw][weight_stride]: w as int32 with its high 16 bits 0 (widened per call; nullptr
  // when quad_channels = oc)
  const int32_t* weights;
  int64_t weight_stride;   // oc_padded
  ChannelRequant rq;
  int32_t input_zero_point;  // value of padding positions
  OutClamp clamp;
  int8_t* out;  // [ow, oc]
  // Channels [0, quad_channels) in the vpdpbusd blocks of the avx512 paths (isa_avx512.cpp,
  // dw_quad) from PackedConv's dw_quad_* arrays: per block of 64 channels from c0, weights at
  // quad_weights + 36 c0 and constants at quad_consts + 5 c0. 0 where they do not apply (or
  // for a horizontal stride other than 1 and 2); the kernel covers [quad_channels, oc) as before.
  int64_t quad_channels = 0;
  const int8_t* quad_weights = nullptr;
  const int32_t* quad_consts = nullptr;
};

// The int8 model's float input: kernels::quantize_float with these parameters.
struct FloatQuant {
  float scale;
  int32_t zero_point, qmin, qmax;
};

// The code of one instruction set. Ranges are [begin, end) in the unit named.
struct IsaOps {
  Isa isa;
  int64_t panel_oc;  // GEMM panel width of the layout
  int64_t (*gemm_scratch_bytes)(int64_t rows, int64_t k_padded);
  void (*gemm)(const GemmTask& t);
  void (*depthwise_row)(const DepthwiseRow& t);
  void (*add)(int8_t* out, const int8_t* a, const int8_t* b, const kernels::AddParams& p,
              int64_t begin, int64_t end);
  // Requantizes n values of one concat input (not copied) into out.
  void (*concat_requant)(int8_t* out, const int8_t* in, int64_t n, const kernels::ConcatInput& ci,
                         int32_t output_zero_point);
  // Output rows r = b * oh + oy.
  void (*maxpool)(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p, int64_t r0,
                  int64_t r1);
  void (*avgpool)(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p, int64_t r0,
                  int64_t r1, int32_t* scratch /* c int32 */);
  // Channels [c0, c1) of image b; scratch: c1 - c0 int32.
  void (*global_avgpool)(int8_t* out, const int8_t* in, const kernels::GlobalAvgPoolParams& p,
                         int64_t b, int64_t c0, int64_t c1, int32_t* scratch);
  void (*quantize)(int8_t* out, const uint8_t* in, const kernels::QuantizeParams& p,
                   int64_t begin, int64_t end);
  void (*mbqm)(int32_t* out, const int32_t* x, const int32_t* multiplier, const int32_t* shift,
               int64_t n);
  void (*quantize_float)(int8_t* out, const float* x, const FloatQuant& q, int64_t begin, int64_t end);
  // At packing, a depthwise layer's PackedConv::dw_quad_* arrays for depthwise_row; nullptr
  // where depthwise_row reads only the common fields.
  void (*pack_depthwise_quad)(PackedConv& w) = nullptr;
};

const IsaOps& portable_ops();
const IsaOps& avx2_ops();
const IsaOps& avx_vnni_ops();
const IsaOps& avx512_vnni_ops();
const IsaOps& amx_ops();

// The avx512_vnni GEMM output stage (isa_avx512.cpp), for the amx GEMM, which accumulates in
// tiles: runs of rows of nv * 16 int32 sums, row r of a run at c + r * ldc for channels chan..
// (add_bias: without the bias yet), to its out + r * ldo, the first `width` channels
// (<= nv * 16) of each row.
struct OutRun {
  const int32_t* c;
  int8_t* out;
  int64_t rows;
};
void requant_rows_avx512(const OutRun* runs, int64_t nruns, int64_t ldc, int nv, int64_t width, int64_t ldo,
                         const ChannelRequant& q, int64_t chan, const OutClamp& clamp, bool add_bias,
                         const AddFuse* fuse = nullptr);

// The table of isa; throws qatc::Error if the CPU lacks it.
const IsaOps& ops_for(Isa isa);

// At least n elements of buf, which its caller keeps between calls (a thread_local of the
// caller's, one per use): grown on demand, never shrunk, contents not kept when it grows.
template <class T>
T* grow(AlignedVector<T>& buf, size_t n) {
  if (buf.size() < n) {
    buf = AlignedVector<T>();
    buf.resize(n);
  }
  return buf.data();
}

// A 64-aligned buffer of at least `bytes` bytes owned by the calling thread, kept between
// calls (grown on demand). One buffer per thread: a caller must not hold it across another
// call of thread_scratch.
void* thread_scratch(size_t bytes);

}  // namespace qatc::opt::detail
