// Optimized int8 kernels: the same names, signatures and results (bit for bit) as the
// reference kernels of kernels/ref/kernels.h, plus pre-packed weights for conv2d, dense and
// depthwise conv2d.
//
// Convolutions and dense layers are GEMMs: C[M, N] = A[M, K] * B[K, N] with M = output
// pixels (n * oh * ow, or the batch), K = kh * kw * c (or in_features), N = output channels.
// The weights B are packed once (pack_*) into the layout of the instruction set, with the
// input zero point folded into the bias; A is formed per block of rows (im2col, or a plain
// copy of the NHWC rows for 1x1 stride-1 convolutions and dense layers) in a bounded scratch,
// and the requantization (per-channel multiplier, output zero point, clamp) is fused into the
// GEMM's output stage. Depthwise convolutions are direct, vectorized over channels. Every
// kernel runs kernels::check first and splits its work with qatc::parallel_for; the result
// does not depend on the thread count or the instruction set.
//
// Which instruction set runs: the kernels without packed weights use active_isa() (isa.h);
// a PackedConv runs on the instruction set it was packed for (its layout is that path's), so
// set the ISA before packing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <vector>

#include "core/aligned.h"
#include "kernels/opt/isa.h"
#include "kernels/params.h"

namespace qatc::opt {

using qatc::AlignedVector;  // std::vector storage aligned for 512-bit loads (core/aligned.h)

// Weights of one conv2d, dense or depthwise layer in the layout of one instruction set, with
// the per-channel arrays of the output stage. Built by pack_conv2d / pack_dense /
// pack_depthwise from the layer's params; the kernels taking a PackedConv then read its
// weights, bias, multipliers and shifts, not the params' pointers, which may be null (the
// unpacked arrays may be freed once packed: pack_* checked them). They check the rest of the
// params, and that the geometry and input zero point are the packed ones.
struct PackedConv {
  enum class Kind { conv2d, dense, depthwise };
  Kind kind = Kind::conv2d;
  Isa isa = Isa::portable;
  // conv2d: weights [oc, kh, kw, c]; dense: c = in_features, oc = out_features, kh = kw = 1;
  // depthwise: weights [kh, kw, oc] with oc = c * depth_multiplier.
  int64_t c = 0, kh = 0, kw = 0, oc = 0, depth_multiplier = 1;
  int32_t input_zero_point = 0;  // folded into bias

  // GEMM (conv2d, dense): K = kh * kw * c rounded up to the layout's group (4 for VNNI, 2
  // for int16; amx: kh rows of kw * c rounded up to 64, internal.h), output channels in
  // panels of panel_oc.
  int64_t k = 0, k_padded = 0, panel_oc = 0, panels = 0;
  // avx512_vnni conv2d: each kernel row padded to whole groups of 4 k (internal.h,
  // row_groups_apply), and the GEMM reads A in place from a padded u8 copy of the input.
  bool row_groups = false;
  // oc rounded up to 16 (a vector of int32 lanes): the length of every per-channel array below.
  int64_t oc_padded = 0;
  // Packed (int16 pairs for the portable and avx2 paths; depthwise: int8 [tap][oc_padded]).
  AlignedVector<int8_t> weights;
  // Per output channel: the folded bias (bias - (zp_in + 128) * sum w for VNNI, where the
  // activations enter as u8 = q + 128; bias - zp_in * sum w otherwise; depthwise likewise
  // with zp_in), multiplier and shift (copies), and mbqm's split of the shift:
  // left = max(shift, 0), right = max(-shift, 0), round_mask = 2^right - 1,
  // round_half = round_mask >> 1.
  AlignedVector<int32_t> bias, multiplier, shift, left_shift, right_shift, round_mask,
      round_half;
  bool any_left_shift = false;  // some channel has shift > 0 (saturating left shift needed)
  // The one-rounding form of mbqm the vector output stages use when every channel has
  // shift <= -2 or multiplier 0 (fast_requant; see requant_fast in internal.h):
  // fast_shift = right - 1 (1 for multiplier 0). Its other constants are derived where they
  // are loaded: the rounding addend 2^(fast_shift - 1) and the odd lanes' multipliers (the
  // multiplier vector shifted down 32 bits, where vpmuldq reads them).
  AlignedVector<int32_t> fast_shift;
  bool fast_requant = false;
  // Depthwise 3x3 layers with the fast form on the avx512 paths: the vpdpbusd layout of
  // channels [0, dw_quad_channels) (blocks of 64; isa_avx512.cpp, dw_quad), made at packing.
  int64_t dw_quad_channels = 0;
  AlignedVector<int8_t> dw_quad_weights;
  AlignedVector<int32_t> dw_quad_consts;
  // Packing leaves only the arrays the path's kernels read (pack.cpp, fill_channels): the
  // vector paths' fast form (bias, multiplier, fast_shift) or
  // generic one (bias, multiplier, left/right_shift, round_mask, round_half), the portable
  // path's bias, multiplier, shift, left/right_shift; the others are empty.
};

// The instruction set a conv2d's (kh x kw over c channels, oc outputs) or, with kh = kw = 1,
// a dense layer's GEMM weights are packed for, and so run on, under the active one: the active
// one, except that on amx a 1x1 conv of c <= 32 input channels and oc >= 64 outputs (the
// expansions of MobileNetV2) runs on avx512_vnni: a tile step takes 64 k, so a K of 16 or 24
// uses a quarter or three eighths of each tdpbssd, and the sums go through memory to the output
// stage, while the vpdpbusd kernel requantizes its accumulators in registers. Measured
// (2026-11-28, `qatc --threads 1 --kernels amx|avx512_vnni bench mobilenet_v2_224.int8
// --profile`, ms per layer, amx -> avx512_vnni): batch 1, 112x112 16 -> 96 0.432 -> 0.313,
// 56x56 24 -> 144 0.165 -> 0.124, 28x28 32 -> 192 0.050 -> 0.043; batch 32: 15.96 -> 12.98,
// 5.39 -> 4.81, 1.52 -> 1.54; narrower outputs do not gain (112x112 32 -> 16 at batch 32:
// 3.43 -> 4.38), nor does the 3x3 first conv (K = 27: 7.26 -> 8.84) as im2col'd. A conv
// whose kernel rows hold at most 12 bytes (internal.h, row_groups_apply: a 3x3 first conv on
// one or three channels) runs on avx512_vnni in its row-group form, with no im2col: 28x28x1
// -> 32 at batch 32 0.351 ms on tiles, 0.315 so (2026-11-28, `bench_int8_kernels --model
// cnn_bn --batch 32 --paths amx --only conv1_28_1_32`; docs/performance.md).
Isa gemm_isa(int64_t c, int64_t kh, int64_t kw, int64_t oc);

// rows_packed, if given, is called as the packing stops reading the weights of output
// channels [0, rows) (after each panel of the vnni and amx layouts), so that an owner
// releasing the source as it goes holds a large layer once, not twice.
using RowsPacked = std::function<void(int64_t rows)>;
PackedConv pack_conv2d(const kernels::Conv2DParams& p, const RowsPacked& rows_packed = {});
PackedConv pack_dense(const kernels::DenseParams& p, const RowsPacked& rows_packed = {});
PackedConv pack_depthwise(const kernels::DepthwiseConv2DParams& p);

// With packed weights.
void conv2d_qs8(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p,
                const PackedConv& w);
void depthwise_conv2d_qs8(int8_t* out, const int8_t* in, const kernels::DepthwiseConv2DParams& p,
                          const PackedConv& w);
void dense_qs8(int8_t* out, const int8_t* in, const kernels::DenseParams& p, const PackedConv& w);

// An Add as two tables of 256 entries, one per input, indexed by the input byte: add_qs8's
// result for inputs (q1, q2) is a function of the two bytes alone, and pack_add finds integers
// A1, A2 with
//   clamp(floor((A1[q1] + A2[q2]) / 256), qmin, qmax) == ref::add_qs8's output
// for all 65,536 pairs, checked exhaustively (the search and why it succeeds: add_table.cpp,
// docs/int8.md "The Add as two tables"). The avx512 paths then add with byte permutes
// (vpermi2b, AVX-512 VBMI) and 16-bit adds: about 40 vector operations per 64 outputs against
// the arithmetic form's 120. Where no such tables exist (not seen in practice) `exact` is
// false and the kernels compute the Add arithmetically.
struct PackedAdd {
  bool exact = false;
  kernels::AddParams params{};  // the Add's parameters (size aside, which the tables do not depend on)
  // A_k[u] for the input byte q = (int8) u: A = 256 H + L, |A| < 2^23, stored as three byte
  // planes [input][L, H & 255, H >> 8][u] (H = floor(A / 256) as int16, L = A mod 256).
  alignas(64) uint8_t planes[2][3][256] = {};
  int32_t table[2][256] = {};
};
// The tables of an Add (checked as add_qs8 checks its parameters).
PackedAdd pack_add(const kernels::AddParams& p);
// Whether the path adds by tables (the avx512 paths on a CPU with AVX-512 VBMI); elsewhere a
// PackedAdd is accepted and unused.
bool add_table_used(Isa isa);

// add_qs8 of conv2d_qs8's output and `other` in one pass (the conv's output as the Add's first
// input when conv_first, else as its second): the conv's int8 output goes through a small
// buffer of the thread, in cache, never to memory, exactly as the two kernels in turn. For
// conv2d weights packed for an ISA where supports_conv2d_add holds (amx, and an Add whose left
// shift and input shifts allow its int16-pair arithmetic, internal.h add_pairs_apply: with the
// converter's left shift 20, input scales within 2^10 of each other); a.size must be the
// conv's output size. `out` may be `other` (in place), not `in`.
// With `table` (pack_add(a), exact, and add_table_used(isa)) any Add is supported on amx and
// computed by its tables.
bool supports_conv2d_add(Isa isa, const kernels::AddParams& a, const PackedAdd* table = nullptr);
void conv2d_add_qs8(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p, const PackedConv& w,
                    const int8_t* other, const kernels::AddParams& a, bool conv_first,
                    const PackedAdd* table = nullptr);

// Drop-in replacements of the ref kernels (the convolutions pack their weights on every call).
void conv2d_qs8(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p);
void depthwise_conv2d_qs8(int8_t* out, const int8_t* in, const kernels::DepthwiseConv2DParams& p);
void dense_qs8(int8_t* out, const int8_t* in, const kernels::DenseParams& p);
void add_qs8(int8_t* out, const int8_t* a, const int8_t* b, const kernels::AddParams& p);
// The same with the Add's tables (pack_add of p, size aside): used where add_table_used.
void add_qs8(int8_t* out, const int8_t* a, const int8_t* b, const kernels::AddParams& p, const PackedAdd& table);
void concat_qs8(int8_t* out, const int8_t* const* inputs, const kernels::ConcatParams& p);
void maxpool2d_qs8(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p);
void avgpool2d_qs8(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p);
void global_avgpool_qs8(int8_t* out, const int8_t* in, const kernels::GlobalAvgPoolParams& p);
void quantize_u8_to_qs8(int8_t* out, const uint8_t* in, int64_t count,
                        const kernels::QuantizeParams& p);
void pad_qs8(int8_t* out, const int8_t* in, const kernels::PadParams& p);
// The int8 model's float input: out[i] = kernels::quantize_float(x[i], scale, zero_point, qmin,
// qmax), bit for bit, for any float (NaN, infinities, ties); scale > 0, -128 <= qmin <= qmax <= 127.
void quantize_f32_to_qs8(int8_t* out, const float* x, int64_t count, float scale, int32_t zero_point,
                         int32_t qmin, int32_t qmax);

// Test hook: conv, dense and depthwise layers with fewer multiply-adds than this (default
// kDefaultMinParallelMacs) run on the calling thread; tests set 0 so that every shape is split
// across threads.
inline constexpr int64_t kDefaultMinParallelMacs = int64_t{1} << 21;
void set_min_parallel_macs(int64_t macs);

// Test hook: out[i] = fixed::multiply_by_quantized_multiplier(x[i], multiplier[i], shift[i])
// computed by the vector code of `isa`'s output stages, for any int32 x and any
// {multiplier, shift} that kernels::check accepts (multiplier in [2^30, 2^31) and shift in
// [-31, 30], or {0, 0}). Such a multiplier is never INT32_MIN, so the high multiply's one
// saturating case (INT32_MIN * INT32_MIN) cannot occur and the vector code omits it; the
// saturating left shift (shift > 0) is implemented. Throws qatc::Error if the CPU lacks isa.
void mbqm_for_test(Isa isa, int32_t* out, const int32_t* x, const int32_t* multiplier,
                   const int32_t* shift, int64_t n);

}  // namespace qatc::opt
