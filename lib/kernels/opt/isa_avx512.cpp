// The avx512_vnni path: AVX-512 F/BW/VL/DQ + VNNI, compiled for that target only (the
// #pragma region below; everything the region calls from other headers is inline or
// baseline code, so nothing in this file leaks AVX-512 code into the rest of qatc).
//
// GEMM: vpdpbusd (u8 x s8, 4 products summed into each int32 lane) on the vnni_u8 layout
// (internal.h). The micro-kernel keeps MR x NV accumulators of 16 output channels in zmm
// registers (MR <= 6 rows of A, NV <= 4 vectors = one 64-channel panel: 24 accumulators,
// 4 weight vectors and a broadcast), walks K in blocks of kKBlock groups of 4 so the weight
// block stays in L1 across the strips of a row block, and requantizes in registers after the
// last block.

// GCC 12.2's avx512fintrin.h initializes its "undefined" vectors from themselves, which
// -Wuninitialized reports at every inlined use (GCC bug 105593, fixed in 12.3). The warning's
// location is the system header, so the suppression wraps its inclusion.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>

#include "kernels/fixed_point.h"
#include "kernels/quantize_float.h"
#include "kernels/opt/internal.h"
#include "kernels/opt/target.h"

QATC_TARGET_BEGIN("avx2,fma,bmi,bmi2,lzcnt,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")

namespace qatc::opt::detail {
namespace {

inline __mmask16 lanes_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }

struct Avx512 {
  using V = __m512i;
  static constexpr int W = 16;

  static V set1(int32_t v) { return _mm512_set1_epi32(v); }
  static V load_i32(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store_i32(int32_t* p, V v) { _mm512_storeu_si512(p, v); }
  static V load_i8(const int8_t* p) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V load_i8_part(const int8_t* p, int n) {
    return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(lanes_mask(n), p));
  }
  static V load_u8(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V load_u8_part(const uint8_t* p, int n) {
    return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes_mask(n), p));
  }
  static void store_i8(int8_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
  }
  static void store_i8_part(int8_t* p, V v, int n) {
    _mm_mask_storeu_epi8(p, lanes_mask(n), _mm512_cvtepi32_epi8(v));
  }
  static V add(V a, V b) { return _mm512_add_epi32(a, b); }
  static V sub(V a, V b) { return _mm512_sub_epi32(a, b); }
  static V min(V a, V b) { return _mm512_min_epi32(a, b); }
  static V max(V a, V b) { return _mm512_max_epi32(a, b); }
  static V sll(V a, int n) { return _mm512_sll_epi32(a, _mm_cvtsi32_si128(n)); }
  static V madd16(V x, V w) { return _mm512_madd_epi16(x, w); }
  static V madd_acc(V acc, V x, V w) { return _mm512_dpwssd_epi32(acc, x, w); }  // VNNI
  static V mullo(V a, V b) { return _mm512_mullo_epi32(a, b); }
  static V sra(V a, int n) { return _mm512_sra_epi32(a, _mm_cvtsi32_si128(n)); }

  // mbqm's constants per lane. Generic form: multiplier (and its odd lanes moved down for
  // vpmuldq), left shift, right shift, its rounding mask 2^right - 1 and half mask >> 1.
  // Fast form (internal.h, requant_fast): multiplier, odd multipliers, right = right - 1,
  // and the 64-bit addends of the even and odd lanes' products (fast_addends).
  struct Rq {
    V mult, mult_odd, left, right, mask, half, ke, ko;
    bool any_left, fast;
  };
  // The fast form's addends of the 64-bit products x * multiplier, even lanes' (ke) and odd
  // lanes' (ko): 2^30 in the low dword and the rounding addend 2^(right - 2) of the lane's
  // channel in the high one, so that the high dwords come out with the rounding added.
  static void fast_addends(V round, V& ke, V& ko) {
    const V c30 = _mm512_set1_epi32(1 << 30);
    ke = _mm512_mask_mov_epi32(_mm512_slli_epi64(round, 32), 0x5555, c30);
    ko = _mm512_mask_mov_epi32(round, 0x5555, c30);
  }
  static Rq fast_form(V mult, V fast_shift, V round) {
    Rq q{mult, _mm512_srli_epi64(mult, 32), V{}, fast_shift, V{}, V{}, V{}, V{}, false, true};
    fast_addends(round, q.ke, q.ko);
    return q;
  }
  static Rq rq_make(V mult, V shift, bool any_left) {
    const V zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    const V right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
    // Fast when every lane has right >= 2 or multiplier 0.
    const __mmask16 ok = _mm512_cmpge_epi32_mask(right, _mm512_set1_epi32(2)) |
                         _mm512_cmpeq_epi32_mask(mult, zero);
    if (ok == 0xFFFF) {
      const V r = _mm512_mask_mov_epi32(right, _mm512_cmpeq_epi32_mask(mult, zero), _mm512_set1_epi32(2));
      return fast_form(mult, _mm512_sub_epi32(r, one), _mm512_sllv_epi32(one, _mm512_sub_epi32(r, _mm512_set1_epi32(2))));
    }
    const V mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
    return {mult, _mm512_srli_epi64(mult, 32), _mm512_max_epi32(shift, zero), right, mask,
            _mm512_srli_epi32(mask, 1), V{}, V{}, any_left, false};
  }
  // Fast form from fast_shift: the rounding addend is 2^(fast_shift - 1).
  static Rq fast_rq(V mult, V shift) {
    const V one = _mm512_set1_epi32(1);
    return fast_form(mult, shift, _mm512_sllv_epi32(one, _mm512_sub_epi32(shift, one)));
  }
  static Rq rq_channels(const ChannelRequant& c, int64_t off) {
    const V mult = _mm512_loadu_si512(c.multiplier + off);
    if (c.fast)
      return fast_rq(mult, _mm512_loadu_si512(c.fast_shift + off));
    return {mult,
            _mm512_srli_epi64(mult, 32),
            _mm512_loadu_si512(c.left_shift + off),
            _mm512_loadu_si512(c.right_shift + off),
            _mm512_loadu_si512(c.round_mask + off),
            _mm512_loadu_si512(c.round_half + off),
            V{},
            V{},
            c.any_left_shift,
            false};
  }
  static Rq rq_uniform(int32_t multiplier, int32_t shift) {
    return rq_make(set1(multiplier), set1(shift), shift > 0);
  }
  static Rq rq_arrays(const int32_t* multiplier, const int32_t* shift) {
    const V s = load_i32(shift);
    return rq_make(load_i32(multiplier), s,
                   _mm512_cmpgt_epi32_mask(s, _mm512_setzero_si512()) != 0);
  }

  // The odd lanes moved to the even positions, where vpmuldq reads them: a shuffle, not the
  // 64-bit shift (the shift unit is the one the multiplies use).
  static V odd_lanes(V x) { return _mm512_shuffle_epi32(x, _MM_PERM_DDBB); }

  // The fast form (internal.h) from the pieces: multipliers of the even and odd lanes, the
  // addends of their products (fast_addends) and the shift. Per 16 values: 2 vpmuldq, 2
  // vpshufd, 2 adds, 2 compares, 2 masked subtracts and the shift.
  static V mbqm_fast(V x, V mult, V mult_odd, V ke, V ko, V shift) {
    const V c31 = _mm512_set1_epi64(int64_t{1} << 31), thr = _mm512_set1_epi64(-(int64_t{1} << 30));
    const V pe = _mm512_mul_epi32(x, mult);
    const V po = _mm512_mul_epi32(odd_lanes(x), mult_odd);
    V qe = _mm512_add_epi64(pe, ke), qo = _mm512_add_epi64(po, ko);
    qe = _mm512_mask_sub_epi64(qe, _mm512_cmplt_epi64_mask(pe, thr), qe, c31);
    qo = _mm512_mask_sub_epi64(qo, _mm512_cmplt_epi64_mask(po, thr), qo, c31);
    // High dwords: the odd lanes' are in place in qo, the even lanes' move down from qe.
    return _mm512_srav_epi32(_mm512_mask_shuffle_epi32(qo, 0x5555, qe, _MM_PERM_DDBB), shift);
  }

  // fixed::multiply_by_quantized_multiplier, lane by lane, for multipliers != INT32_MIN.
  static V mbqm(V x, const Rq& q) {
    if (q.fast) return mbqm_fast(x, q.mult, q.mult_odd, q.ke, q.ko, q.right);
    if (q.any_left) {
      // x * 2^left saturated: where shifting back does not give x, the result is the
      // int32 bound of x's sign (INT32_MAX ^ (x >> 31) is INT32_MIN for negative x).
      const V y = _mm512_sllv_epi32(x, q.left);
      const __mmask16 over = _mm512_cmpneq_epi32_mask(_mm512_srav_epi32(y, q.left), x);
      x = _mm512_mask_mov_epi32(
          y, over, _mm512_xor_si512(_mm512_srai_epi32(x, 31), _mm512_set1_epi32(INT32_MAX)));
    }
    // srdhm = floor((x * m + 2^30) / 2^31): bits 31..62 of the 64-bit x * m + 2^30. Even
    // lanes: shift the sum right by 31 (low dword); odd lanes: double it (high dword).
    const V r30 = _mm512_set1_epi64(int64_t{1} << 30);
    const V pe = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, q.mult), r30), 31);
    V po = _mm512_add_epi64(_mm512_mul_epi32(odd_lanes(x), q.mult_odd), r30);
    po = _mm512_add_epi64(po, po);
    const V s = _mm512_mask_blend_epi32(0xAAAA, pe, po);
    // rounding_divide_by_pot: (s >> right) + 1 where (s & mask) > half + (s < 0), i.e.
    // (s & mask) + (s >> 31) > half (no overflow: the left side is in [-1, mask]).
    const V t = _mm512_add_epi32(_mm512_and_si512(s, q.mask), _mm512_srai_epi32(s, 31));
    const __mmask16 up = _mm512_cmpgt_epi32_mask(t, q.half);
    const V r = _mm512_srav_epi32(s, q.right);
    return _mm512_mask_sub_epi32(r, up, r, _mm512_set1_epi32(-1));
  }
};

#include "kernels/opt/kernels_body.inc"

// ---------------------------------------------------------------------------------------
// GEMM.

inline __mmask64 bytes_mask(int64_t n) { return _bzhi_u64(~uint64_t{0}, static_cast<unsigned>(n)); }

// im2col's copy policy: q ^ 0x80 (= q + 128 as u8) 64 bytes at a time, masked at the end.
struct XorCopy512 {
  using AT = uint8_t;
  static AT conv(int8_t q) { return static_cast<uint8_t>(static_cast<uint8_t>(q) ^ 0x80u); }
  static void copy(AT* dst, const int8_t* src, int64_t n) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
      _mm512_storeu_si512(dst + i, _mm512_xor_si512(_mm512_loadu_si512(src + i), flip));
    if (i < n) {
      const __mmask64 m = bytes_mask(n - i);
      _mm512_mask_storeu_epi8(dst + i, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + i), flip));
    }
  }
  static void fill(AT* dst, int64_t n, AT v) {
    const __m512i x = _mm512_set1_epi8(static_cast<char>(v));
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, x);
    if (i < n) _mm512_mask_storeu_epi8(dst + i, bytes_mask(n - i), x);
  }
  static void copy_rows(AT* dst, const int8_t* src, int64_t n, int64_t stride, int64_t rows) {
    if (n > 64) {
      for (int64_t i = 0; i < rows; ++i) copy(dst + i * n, src + i * stride, n);
      return;
    }
    if (n <= 32) {
      // Whole 32-byte stores: each spills into the next segment, which the next store (or
      // the k tail fill, or the next row) overwrites, and at most 31 bytes past the row
      // block, into the scratch's slack (gemm_scratch_bytes). Cheaper than masked stores.
      const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
      const __mmask32 m = static_cast<__mmask32>(bytes_mask(n));
      for (int64_t i = 0; i < rows; ++i, dst += n, src += stride)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                            _mm256_xor_si256(_mm256_maskz_loadu_epi8(m, src), flip));
      return;
    }
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    const __mmask64 m = bytes_mask(n);
    for (int64_t i = 0; i < rows; ++i, dst += n, src += stride)
      _mm512_mask_storeu_epi8(dst, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src), flip));
  }
};

// The GEMM output stage of one row of a panel: NV vectors of 16 int32 sums (bias included)
// for channels chan.. -> mbqm, then the int32 lanes packed to int16 and int8 with signed
// saturation (the zero point added in between, also saturating), which is clamp(v + zp,
// -128, 127) exactly; then the narrower [qmin, qmax]. The in-lane packs interleave the four
// vectors by groups of 4 channels; one vpermd puts them back in order.
struct OutBytes {
  __m512i zp16, qmin, qmax, order;
};
inline OutBytes out_bytes(const OutClamp& c) {
  return {_mm512_set1_epi16(static_cast<int16_t>(c.zero_point)),
          _mm512_set1_epi8(static_cast<char>(c.lo + c.zero_point)),
          _mm512_set1_epi8(static_cast<char>(c.hi + c.zero_point)),
          _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)};
}

// The per-channel constants of NV vectors of a panel, loaded once for all its rows (the
// stores of the rows are char stores, which would otherwise force a reload per row). Fast
// form: multiplier, odd-lane multiplier, the products' addends, shift; generic: Avx512::Rq.
template <int NV, bool kFast>
struct PanelRq {
  __m512i mult[NV], odd[NV], ke[NV], ko[NV], shift[NV];
  Avx512::Rq rq[kFast ? 1 : NV];
  PanelRq() = default;
  // The constants of NV vectors repeated to fill 4 (fast form only; NV divides 4).
  template <int N>
  static PanelRq replicate(const PanelRq<N, kFast>& k) {
    PanelRq r;
    if constexpr (kFast && 4 % N == 0)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        r.mult[j] = k.mult[j % N];
        r.odd[j] = k.odd[j % N];
        r.ke[j] = k.ke[j % N];
        r.ko[j] = k.ko[j % N];
        r.shift[j] = k.shift[j % N];
      }
    return r;
  }
  PanelRq(const ChannelRequant& q, int64_t chan) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const int64_t o = chan + 16 * v;
      if constexpr (kFast) {
        const Avx512::Rq r = Avx512::fast_rq(_mm512_loadu_si512(q.multiplier + o), _mm512_loadu_si512(q.fast_shift + o));
        mult[v] = r.mult;
        odd[v] = r.mult_odd;
        ke[v] = r.ke;
        ko[v] = r.ko;
        shift[v] = r.right;
      } else {
        rq[v] = Avx512::rq_channels(q, o);
      }
    }
  }
};

template <int NV, bool kFast>
__attribute__((always_inline)) inline __m512i requant_bytes(const __m512i* acc, const PanelRq<NV, kFast>& k,
                                                           const OutBytes& ob) {
  __m512i y[4];
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) {
    if (v >= NV) {
      y[v] = _mm512_setzero_si512();
    } else if constexpr (kFast) {
      y[v] = Avx512::mbqm_fast(acc[v], k.mult[v], k.odd[v], k.ke[v], k.ko[v], k.shift[v]);
    } else {
      y[v] = Avx512::mbqm(acc[v], k.rq[v]);
    }
  }
  const __m512i w01 = _mm512_adds_epi16(_mm512_packs_epi32(y[0], y[1]), ob.zp16);
  const __m512i w23 = _mm512_adds_epi16(_mm512_packs_epi32(y[2], y[3]), ob.zp16);
  const __m512i bytes = _mm512_permutexvar_epi32(ob.order, _mm512_packs_epi16(w01, w23));
  return _mm512_min_epi8(_mm512_max_epi8(bytes, ob.qmin), ob.qmax);
}

template <int NV, bool kFast>
__attribute__((always_inline)) inline void requant_row(const __m512i* acc, const PanelRq<NV, kFast>& k,
                                                       const OutBytes& ob, int8_t* out, __mmask64 store_mask) {
  _mm512_mask_storeu_epi8(out, store_mask, requant_bytes<NV, kFast>(acc, k, ob));
}

// add_range's results 64 bytes at a time without its 32-bit multiplies and count-register
// shifts, which all compete for one port of 512-bit integer work (the Add fused into the amx
// GEMM's output stage was 38% of ResNet50's batch-1 time; FusedAdd, add_range_avx512). An
// input's term
// (AddTerm, internal.h) is the reference's two roundings of d = q - zp,
//   s = floor((d m + 2^(k-1)) / 2^k),  t = floor((s + 2^(e-1) - [s < 0]) / 2^e)  (e >= 1),
// which with [s < 0] = [d < 0] (m >= 2^30, or m = 0 with e = 0, where t = s) and
// floor((floor(a / b) + c) / d) = floor((a + c b) / (b d)) are one:
//   t = floor((d m + K) / 2^(k+e)),  K = 2^(k-1) + 2^(k+e-1) - [d < 0] 2^k  (K = 2^(k-1) if e = 0),
// and with m = mh 2^(k+e) + ml the multiple d mh leaves the floor:
//   t = d mh + ((d ml + K) >> (k + e)).
// d enters as the int16 pair (d, 128 d) (a sign-extension to 16 bits, a 16-bit shift and an
// unpack, for 32 values at a time) and each part x < 2^22 of m as the pair (x mod 128,
// x / 128): one vpdpwssd gives d (x mod 128) + 128 d (x / 128) = d x plus its accumulator.
// Per 16 values: a compare ([d < 0]: the pair's sign), a masked subtract, two vpdpwssd and
// one shift (add_pairs_apply: ml < 2^(k+e) <= 2^22, so |d ml| + K < 2^31). The unpacks put
// each 128-bit lane's 16-bit values 0-3 and 4-7 in two vectors; packing the requantized sums
// back to 16 bits undoes it, and one vpermq orders the 64 bytes.
struct AddPairs {
  struct Term {
    __m512i zp, ml, mh, k0, corr, shift;
  };
  Term t1, t2;
  Avx512::Rq qo;
  OutBytes ob;
  __m512i order;

  static __m512i split(int32_t x) { return _mm512_set1_epi32((x & 127) | ((x >> 7) << 16)); }
  static Term term(int32_t zero_point, int32_t multiplier, int32_t shift, int32_t left_shift) {
    const AddTerm a = add_term(zero_point, multiplier, shift, left_shift);
    const int32_t k = a.lo_shift, e = a.right, n = k + e;
    return {_mm512_set1_epi16(static_cast<int16_t>(zero_point)),
            split(multiplier & ((int32_t{1} << n) - 1)),
            split(multiplier >> n),
            _mm512_set1_epi32((int32_t{1} << (k - 1)) + (e > 0 ? int32_t{1} << (n - 1) : 0)),
            _mm512_set1_epi32(e > 0 ? int32_t{1} << k : 0),
            _mm512_set1_epi32(n)};
  }
  explicit AddPairs(const kernels::AddParams& p)  // add_pairs_apply(p)
      : t1(term(p.input1_zero_point, p.input1_multiplier, p.input1_shift, p.left_shift)),
        t2(term(p.input2_zero_point, p.input2_multiplier, p.input2_shift, p.left_shift)),
        qo(Avx512::rq_uniform(p.output_multiplier, p.output_shift)),
        ob(out_bytes(out_clamp(p.output_zero_point, p.qmin, p.qmax))),
        order(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7)) {}

  __m512i value(__m512i pair, const Term& t) const {
    const __m512i k = _mm512_mask_sub_epi32(t.k0, _mm512_cmplt_epi32_mask(pair, _mm512_setzero_si512()), t.k0, t.corr);
    return _mm512_dpwssd_epi32(_mm512_srav_epi32(_mm512_dpwssd_epi32(k, pair, t.ml), t.shift), pair, t.mh);
  }
  // Bytes 32 h .. 32 h + 31 of both inputs -> their 32 results as int16 (saturated, plus the
  // output zero point), in order.
  template <int H>
  __m512i half(__m512i x1, __m512i x2) const {
    const __m512i d1 = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(x1, H)), t1.zp);
    const __m512i d2 = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(x2, H)), t2.zp);
    const __m512i e1 = _mm512_slli_epi16(d1, 7), e2 = _mm512_slli_epi16(d2, 7);
    const __m512i lo = _mm512_add_epi32(value(_mm512_unpacklo_epi16(d1, e1), t1), value(_mm512_unpacklo_epi16(d2, e2), t2));
    const __m512i hi = _mm512_add_epi32(value(_mm512_unpackhi_epi16(d1, e1), t1), value(_mm512_unpackhi_epi16(d2, e2), t2));
    return _mm512_adds_epi16(_mm512_packs_epi32(Avx512::mbqm(lo, qo), Avx512::mbqm(hi, qo)), ob.zp16);
  }
  // The Add of 64 bytes of each input.
  __m512i operator()(__m512i x1, __m512i x2) const {
    const __m512i bytes = _mm512_permutexvar_epi64(order, _mm512_packs_epi16(half<0>(x1, x2), half<1>(x1, x2)));
    return _mm512_min_epi8(_mm512_max_epi8(bytes, ob.qmin), ob.qmax);
  }
};

// The fused Add on 64 output bytes of the conv (AddFuse): the other input's bytes are at the
// same positions of its tensor.
struct FusedAdd {
  AddPairs add;
  std::ptrdiff_t delta;
  bool conv_first;
  explicit FusedAdd(const AddFuse& f) : add(*f.add), delta(f.other - f.out), conv_first(f.conv_first) {}
  __m512i apply(__m512i conv, const int8_t* out, __mmask64 mask) const {
    const __m512i other = _mm512_maskz_loadu_epi8(mask, out + delta);
    return conv_first ? add(conv, other) : add(other, conv);
  }
};

// add_qs8 on [begin, end): 64 bytes at a time on AddPairs where add_pairs_apply holds (as the
// converter's Adds of inputs whose scales are within 2^10 of each other), else add_range.
void add_range_avx512(int8_t* out, const int8_t* a, const int8_t* b, const kernels::AddParams& p, int64_t begin,
                      int64_t end) {
  if (!add_pairs_apply(p)) {
    add_range<Avx512>(out, a, b, p, begin, end);
    return;
  }
  const AddPairs add(p);
  for (int64_t i = begin; i < end; i += 64) {
    const __mmask64 m = bytes_mask(std::min<int64_t>(64, end - i));
    _mm512_mask_storeu_epi8(out + i, m, add(_mm512_maskz_loadu_epi8(m, a + i), _mm512_maskz_loadu_epi8(m, b + i)));
  }
}

// Runs of rows of int32 sums from memory; kBias: the sums lack the bias, add it.
template <int NV, bool kFast, bool kBias>
void requant_rows_nv(const OutRun* runs, int64_t nruns, int64_t ldc, const ChannelRequant& q, int64_t chan,
                     const OutBytes& ob, int64_t ldo, __mmask64 store_mask) {
  const PanelRq<NV, kFast> k(q, chan);
  __m512i bias[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) bias[v] = kBias ? _mm512_loadu_si512(q.bias + chan + 16 * v) : __m512i{};
  // A layer of 16 or 32 channels: 4 / NV consecutive output rows are 64 contiguous bytes,
  // packed and stored together (the pack costs as much for one row as for four vectors).
  constexpr int R = 4 / NV;
  const bool packed_rows = NV <= 2 && kFast && ldo == 16 * NV && store_mask == (__mmask64{1} << (NV <= 2 ? 16 * NV : 0)) - 1;
  PanelRq<4, kFast> k4 = PanelRq<4, kFast>::replicate(k);
  __m512i bias4[4];
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) bias4[j] = bias[j % NV];
  for (int64_t ri = 0; ri < nruns; ++ri) {
    const int32_t* c = runs[ri].c;
    int8_t* out = runs[ri].out;
    const int64_t rows = runs[ri].rows;
    int64_t r = 0;
    if constexpr (NV <= 2 && kFast) {
      if (packed_rows)
        for (; r + R <= rows; r += R, c += R * ldc, out += R * ldo) {
          __m512i acc[4];
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) {
            acc[j] = _mm512_loadu_si512(c + (j / NV) * ldc + 16 * (j % NV));
            if constexpr (kBias) acc[j] = _mm512_add_epi32(acc[j], bias4[j]);
          }
          requant_row<4, true>(acc, k4, ob, out, ~__mmask64{0});
        }
    }
    for (; r < rows; ++r, c += ldc, out += ldo) {
      __m512i acc[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        acc[v] = _mm512_loadu_si512(c + 16 * v);
        if constexpr (kBias) acc[v] = _mm512_add_epi32(acc[v], bias[v]);
      }
      requant_row<NV, kFast>(acc, k, ob, out, store_mask);
    }
  }
}

constexpr int kMR = 6;             // rows per micro-kernel strip
constexpr int64_t kKBlock = 128;   // groups of 4 k per K block: 512 bytes of each weight row

// One strip: MR rows x NV vectors of 16 channels over kg groups of 4 k.
struct StripArgs {
  const uint8_t* a;  // A at the strip's first row and the block's first k
  int64_t lda;
  // Groups of 4 k are 4 bytes apart, and after each gpr of them skip more bytes: an
  // im2col'd A has one run (skip 0); the row-group form one run per kernel row, the next a
  // row of the padded input further.
  int64_t gpr, skip;
  const int8_t* b;  // the panel at the block's first group: [kg][NV * 16][4]
  int64_t kg;
  int32_t* ctile;  // [MR][64] partial sums between K blocks
  bool first, last;
  int8_t* out;  // the strip's first row at the panel's first channel
  int64_t ldo;
  const ChannelRequant* rq;  // the layer's output stage arrays
  int64_t chan;              // the panel's first channel
  __mmask64 store_mask;      // the panel's channels of a row
  const OutClamp* clamp;
};

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

template <int MR, int NV, bool kFast>
void vnni_strip(const StripArgs& s) {
  __m512i acc[MR][NV];
  if (s.first) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __m512i bias = _mm512_loadu_si512(s.rq->bias + s.chan + 16 * v);
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) acc[r][v] = bias;
    }
  } else {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_load_si512(s.ctile + r * 64 + 16 * v);
  }
  const uint8_t* a = s.a;
  const int8_t* b = s.b;
  const int64_t lda = s.lda;
  const int64_t gpr = s.gpr, skip = s.skip;
  for (int64_t g = 0, j = 0; g < s.kg; ++g, b += NV * 64) {
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(b + 64 * v);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(static_cast<int32_t>(load_u32(a + r * lda)));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
    }
    a += 4;
    if (++j == gpr) j = 0, a += skip;
  }
  if (!s.last) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm512_store_si512(s.ctile + r * 64 + 16 * v, acc[r][v]);
    return;
  }
  const ChannelRequant& q = *s.rq;
  const OutBytes ob = out_bytes(*s.clamp);
  const PanelRq<NV, kFast> k(q, s.chan);
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) requant_row<NV, kFast>(acc[r], k, ob, s.out + r * s.ldo, s.store_mask);
}

using StripFn = void (*)(const StripArgs&);

template <int MR, bool kFast>
constexpr StripFn strip_fn(int nv) {
  return nv == 1 ? vnni_strip<MR, 1, kFast> : nv == 2 ? vnni_strip<MR, 2, kFast>
       : nv == 3 ? vnni_strip<MR, 3, kFast> : vnni_strip<MR, 4, kFast>;
}

template <bool kFast>
StripFn pick_strip(int mr, int nv) {
  switch (mr) {
    case 1: return strip_fn<1, kFast>(nv);
    case 2: return strip_fn<2, kFast>(nv);
    case 3: return strip_fn<3, kFast>(nv);
    case 4: return strip_fn<4, kFast>(nv);
    case 5: return strip_fn<5, kFast>(nv);
    default: return strip_fn<6, kFast>(nv);
  }
}

// A [rows][k_padded] u8, then the int32 tile [rows][64] (which also takes the up to 31 bytes
// XorCopy512::copy_rows may write past A), then slack.
int64_t gemm_scratch_bytes(int64_t rows, int64_t k_padded) {
  return round_up(rows * k_padded, 64) + rows * 64 * 4 + 64;
}

// Points s at panel p of w (its channels, store mask and weights); returns its vectors of 16
// channels (nv).
int panel_args(StripArgs& s, const PackedConv& w, int64_t p) {
  const int64_t c0 = 64 * p;
  const int64_t width = std::min<int64_t>(64, w.oc - c0);  // channels of the panel
  s.store_mask = width == 64 ? ~__mmask64{0} : (__mmask64{1} << width) - 1;
  s.chan = c0;
  s.b = w.weights.data() + p * 64 * w.k_padded;
  return static_cast<int>(std::min<int64_t>(4, (w.oc - c0 + 15) / 16));
}

// The row-group form (PackedConv::row_groups): A read in place from the padded u8 input,
// kernel row ky of output pixel (b, oy, ox) the segp bytes at amx_in + ((b * hp + oy *
// stride_h + ky) * wp + ox * stride_w) * c. A strip's rows are consecutive pixels of one
// output row, stride_w * c bytes apart; one K block.
void gemm_row_groups(const GemmTask& t) {
  const PackedConv& w = *t.packed;
  const auto* in = reinterpret_cast<const uint8_t*>(t.amx_in);
  const int64_t hw_out = t.oh * t.ow;
  StripArgs s{};
  const int64_t segp = w.k_padded / w.kh;  // a kernel row's bytes, padded to groups of 4
  s.lda = t.stride_w * t.c;
  s.gpr = segp / 4;
  s.skip = t.amx_w * t.c - segp;
  s.kg = w.k_padded / 4;
  s.first = s.last = true;
  s.rq = &t.rq;
  s.clamp = &t.clamp;
  s.ldo = w.oc;
  Strip sp[kMaxGemmRows / (kMR - 1) + 2];
  for (int64_t m = t.m0; m < t.m1;) {
    const int64_t b = m / hw_out, oy = (m % hw_out) / t.ow, ox = m % t.ow;
    const int64_t rows = std::min(t.m1 - m, t.ow - ox);  // the rest of this output row
    const uint8_t* base = in + ((b * t.amx_h + oy * t.stride_h) * t.amx_w + ox * t.stride_w) * t.c;
    const int nstrips = plan_strips<kMR>(rows, sp);
    for (int64_t p = t.p0; p < t.p1; ++p) {
      const int nv = panel_args(s, w, p);
      for (int i = 0; i < nstrips; ++i) {
        const Strip& st = sp[i];
        s.a = base + st.r0 * s.lda;
        s.out = t.out + (m + st.r0) * w.oc + s.chan;
        (t.rq.fast ? pick_strip<true>(st.mr, nv) : pick_strip<false>(st.mr, nv))(s);
      }
    }
    m += rows;
  }
}

void gemm(const GemmTask& t) {
  const PackedConv& w = *t.packed;
  if (w.row_groups) {
    gemm_row_groups(t);
    return;
  }
  const int64_t rows = t.m1 - t.m0, kp = w.k_padded, kg = kp / 4;
  auto* a = static_cast<uint8_t*>(t.scratch);
  auto* ctile = reinterpret_cast<int32_t*>(a + round_up(rows * kp, 64));
  if (!t.a_ready) im2col<XorCopy512>(t, t.m0, rows, a, kp);

  Strip sp[kMaxGemmRows / (kMR - 1) + 2];
  const int nstrips = plan_strips<kMR>(rows, sp);
  const int64_t nkb = (kg + kKBlock - 1) / kKBlock;
  const int64_t kb_size = (kg + nkb - 1) / nkb;

  StripArgs s{};
  s.lda = kp;
  s.gpr = kg;
  s.skip = 0;
  s.rq = &t.rq;
  s.clamp = &t.clamp;
  s.ldo = w.oc;
  for (int64_t p = t.p0; p < t.p1; ++p) {
    const int nv = panel_args(s, w, p);
    const int8_t* panel = s.b;
    for (int64_t kb = 0; kb < nkb; ++kb) {
      const int64_t g0 = kb * kb_size;
      s.kg = std::min(kb_size, kg - g0);
      s.first = kb == 0;
      s.last = kb == nkb - 1;
      s.b = panel + g0 * nv * 64;
      for (int i = 0; i < nstrips; ++i) {
        const Strip& st = sp[i];
        s.a = a + st.r0 * kp + 4 * g0;
        s.ctile = ctile + st.r0 * 64;
        s.out = t.out + (t.m0 + st.r0) * w.oc + s.chan;
        (t.rq.fast ? pick_strip<true>(st.mr, nv) : pick_strip<false>(st.mr, nv))(s);
      }
    }
  }
}

}  // namespace

void requant_rows_avx512(const OutRun* runs, int64_t nruns, int64_t ldc, int nv, int64_t width, int64_t ldo,
                         const ChannelRequant& q, int64_t chan, const OutClamp& clamp, bool add_bias,
                         const AddFuse* fuse) {
  const OutBytes ob = out_bytes(clamp);
  std::optional<FusedAdd> add;
  if (fuse != nullptr && fuse->table == nullptr) add.emplace(*fuse);
  const __mmask64 m = width == 64 ? ~__mmask64{0} : (__mmask64{1} << width) - 1;
  using Fn = void (*)(const OutRun*, int64_t, int64_t, const ChannelRequant&, int64_t, const OutBytes&, int64_t,
                      __mmask64);
  static constexpr Fn kFns[2][2][4] = {
      {{requant_rows_nv<1, false, false>, requant_rows_nv<2, false, false>, requant_rows_nv<3, false, false>,
        requant_rows_nv<4, false, false>},
       {requant_rows_nv<1, true, false>, requant_rows_nv<2, true, false>, requant_rows_nv<3, true, false>,
        requant_rows_nv<4, true, false>}},
      {{requant_rows_nv<1, false, true>, requant_rows_nv<2, false, true>, requant_rows_nv<3, false, true>,
        requant_rows_nv<4, false, true>},
       {requant_rows_nv<1, true, true>, requant_rows_nv<2, true, true>, requant_rows_nv<3, true, true>,
        requant_rows_nv<4, true, true>}}};
  const Fn requant = kFns[add_bias ? 1 : 0][q.fast ? 1 : 0][nv - 1];
  if (fuse == nullptr) {
    requant(runs, nruns, ldc, q, chan, ob, ldo, m);
    return;
  }
  // With the Add: the conv's bytes go to a buffer of this thread (rows of `width`, in L1),
  // then the Add of them and the other input's bytes is written to the output, in a second
  // pass (kept apart from the requantization, whose constants already fill the registers).
  // The output may be the other input itself (in place): each output byte is written after
  // the other input's byte at its position is read.
  constexpr int64_t kRuns = 8;  // the amx GEMM's group of tiles
  QATC_CHECK_LE(nruns, kRuns);
  thread_local AlignedVector<int8_t> buf;
  OutRun tmp[kRuns];
  int64_t rows = 0;
  for (int64_t ri = 0; ri < nruns; ++ri) rows += runs[ri].rows;
  int8_t* b = grow(buf, static_cast<size_t>(rows * width));
  for (int64_t ri = 0; ri < nruns; b += runs[ri].rows * width, ++ri) tmp[ri] = {runs[ri].c, b, runs[ri].rows};
  requant(tmp, nruns, ldc, q, chan, ob, width, m);
  if (fuse->table != nullptr) {
    const std::ptrdiff_t delta = fuse->other - fuse->out;
    for (int64_t ri = 0; ri < nruns; ++ri) {
      const int8_t* conv = tmp[ri].out;
      const int8_t* other = runs[ri].out + delta;
      add_table_rows(*fuse->table, runs[ri].out, ldo, fuse->conv_first ? conv : other, fuse->conv_first ? width : ldo,
                     fuse->conv_first ? other : conv, fuse->conv_first ? ldo : width, runs[ri].rows, width);
    }
    return;
  }
  for (int64_t ri = 0; ri < nruns; ++ri) {
    const int8_t* conv = tmp[ri].out;
    int8_t* out = runs[ri].out;
    if (ldo == width) {  // the run's rows are contiguous
      const int64_t n = runs[ri].rows * width;
      for (int64_t i = 0; i < n; i += 64) {
        const __mmask64 mi = bytes_mask(std::min<int64_t>(64, n - i));
        _mm512_mask_storeu_epi8(out + i, mi, add->apply(_mm512_maskz_loadu_epi8(mi, conv + i), out + i, mi));
      }
    } else {
      for (int64_t r = 0; r < runs[ri].rows; ++r, out += ldo, conv += width)
        _mm512_mask_storeu_epi8(out, m, add->apply(_mm512_maskz_loadu_epi8(m, conv), out, m));
    }
  }
}

namespace {

// 3x3 depthwise on vpdpbusd in blocks of 64 channels (dw_quad.inc), on zmm registers.
struct Quad512 {
  using V = __m512i;
  static constexpr int64_t kBytes = 64;
  static V load(const void* p) { return _mm512_loadu_si512(p); }
  static V load_xor(const int8_t* p) {
    return _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  static V bytes(int8_t v) { return _mm512_set1_epi8(static_cast<char>(v)); }
  static V dpbusd(V acc, V x, V w) { return _mm512_dpbusd_epi32(acc, x, w); }
  static V mbqm_fast(V x, V mult, V odd, V ke, V ko, V shift) { return Avx512::mbqm_fast(x, mult, odd, ke, ko, shift); }
  using Out = OutBytes;  // zp16, qmin, qmax (and a permutation this kernel does not use)
  static Out out(const OutClamp& c) { return out_bytes(c); }
  static V pack(const V* y, const Out& o, V shuf) {
    const V w01 = _mm512_adds_epi16(_mm512_packs_epi32(y[0], y[1]), o.zp16);
    const V w23 = _mm512_adds_epi16(_mm512_packs_epi32(y[2], y[3]), o.zp16);
    const V packed = _mm512_shuffle_epi8(_mm512_packs_epi16(w01, w23), shuf);
    return _mm512_min_epi8(_mm512_max_epi8(packed, o.qmin), o.qmax);
  }
  static void store(int8_t* p, V v) { _mm512_storeu_si512(p, v); }
};

#include "kernels/opt/dw_quad.inc"

// depthwise_row: the vpdpbusd blocks, then the remaining channels 16 at a time.
void depthwise_row_avx512(const DepthwiseRow& t) {
  dw_quad_blocks<Quad512>(t);
  depthwise_row_from<Avx512>(t, t.quad_channels);
}

// kernels::quantize_float, 16 lanes at a time (as quantize_float_avx2).
void quantize_float_avx512(int8_t* out, const float* x, const FloatQuant& q, int64_t begin, int64_t end) {
  const __m512 scale = _mm512_set1_ps(q.scale), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512i sign = _mm512_set1_epi32(INT32_MIN);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(q.qmin - q.zero_point));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(q.qmax - q.zero_point));
  const __m512i zp = _mm512_set1_epi32(q.zero_point);
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    const __m512 d = _mm512_div_ps(_mm512_loadu_ps(x + i), scale);
    const __m512 t = _mm512_roundscale_ps(d, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(d, t));
    const __m512 s1 = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(one),
                                                          _mm512_and_si512(sign, _mm512_castps_si512(d))));
    __m512 v = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(frac, half, _CMP_GE_OQ), t, s1);
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), _mm512_min_ps(_mm512_max_ps(v, lo), hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvttps_epi32(v), zp)));
  }
  quantize_float_scalar(out, x, q, i, end);
}

}  // namespace
}  // namespace qatc::opt::detail

QATC_TARGET_END

namespace qatc::opt::detail {

const IsaOps& avx512_vnni_ops() {
  static const IsaOps ops{Isa::avx512_vnni,
                          64,
                          gemm_scratch_bytes,
                          gemm,
                          depthwise_row_avx512,
                          add_range_avx512,
                          concat_requant<Avx512>,
                          maxpool_rows,
                          avgpool_rows,
                          global_avgpool_range<Avx512>,
                          quantize_range<Avx512>,
                          mbqm_batch<Avx512>,
                          quantize_float_avx512,
                          pack_depthwise_quad<Quad512>};
  return ops;
}

}  // namespace qatc::opt::detail
