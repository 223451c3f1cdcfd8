// The avx2 path: AVX2 without VNNI, compiled for that target only (the #pragma region).
// GEMM on the i16_pairs layout: activations and weights as int16, vpmaddwd (two products
// summed per int32 lane, exact) and vpaddd, 4 rows x 16 channels per micro-kernel strip.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/fixed_point.h"
#include "kernels/quantize_float.h"
#include "kernels/opt/internal.h"
#include "kernels/opt/target.h"

QATC_TARGET_BEGIN("avx2,fma,bmi,bmi2,lzcnt,popcnt")

namespace qatc::opt::detail {
namespace {

#include "kernels/opt/avx2_common.inc"

// im2col's copy policy: sign-extend 16 bytes at a time.
struct WidenCopy256 {
  using AT = int16_t;
  static AT conv(int8_t q) { return q; }
  static void copy(AT* dst, const int8_t* src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    for (; i < n; ++i) dst[i] = src[i];
  }
  static void fill(AT* dst, int64_t n, AT v) {
    const __m256i x = _mm256_set1_epi16(v);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), x);
    for (; i < n; ++i) dst[i] = v;
  }
  static void copy_rows(AT* dst, const int8_t* src, int64_t n, int64_t stride, int64_t rows) {
    for (int64_t i = 0; i < rows; ++i) copy(dst + i * n, src + i * stride, n);
  }
};

struct MaddI16 {
  using AT = int16_t;
  using Copy = WidenCopy256;
  static constexpr int G = 2;
  static constexpr int64_t kKBlock = 256;  // pairs: 16 KB of weights per panel block
  static __m256i dot(__m256i acc, __m256i a, __m256i w) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, w));
  }
  static PanelWalk panel(const PackedConv& w, int64_t p) {
    return {w.weights.data() + p * 16 * w.k_padded * 2, 16 * p, 1, 64};
  }
};

// kernels::quantize_float, 8 lanes at a time: the same IEEE division, truncation and tie test
// (|d - trunc(d)| >= 0.5 is exact), the clamp, and NaN to 0 (not clamped), so every lane equals it.
void quantize_float_avx2(int8_t* out, const float* x, const FloatQuant& q, int64_t begin, int64_t end) {
  const __m256 scale = _mm256_set1_ps(q.scale), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 lo = _mm256_set1_ps(static_cast<float>(q.qmin - q.zero_point));
  const __m256 hi = _mm256_set1_ps(static_cast<float>(q.qmax - q.zero_point));
  const __m256i zp = _mm256_set1_epi32(q.zero_point);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 d = _mm256_div_ps(_mm256_loadu_ps(x + i), scale);
    const __m256 t = _mm256_round_ps(d, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(d, t));
    const __m256 away = _mm256_add_ps(t, _mm256_or_ps(one, _mm256_and_ps(sign, d)));
    __m256 v = _mm256_blendv_ps(t, away, _mm256_cmp_ps(frac, half, _CMP_GE_OQ));
    const __m256 ordered = _mm256_cmp_ps(v, v, _CMP_ORD_Q);
    v = _mm256_and_ps(_mm256_min_ps(_mm256_max_ps(v, lo), hi), ordered);  // NaN: 0, unclamped
    Avx2::store_i8(out + i, _mm256_add_epi32(_mm256_cvttps_epi32(v), zp));
  }
  quantize_float_scalar(out, x, q, i, end);
}

}  // namespace
}  // namespace qatc::opt::detail

QATC_TARGET_END

namespace qatc::opt::detail {

const IsaOps& avx2_ops() {
  static const IsaOps ops{Isa::avx2,
                          16,
                          ymm_gemm_scratch_bytes<MaddI16>,
                          ymm_gemm<MaddI16>,
                          depthwise_row<Avx2>,
                          add_range<Avx2>,
                          concat_requant<Avx2>,
                          maxpool_rows,
                          avgpool_rows,
                          global_avgpool_range<Avx2>,
                          quantize_range<Avx2>,
                          mbqm_batch<Avx2>,
                          quantize_float_avx2};
  return ops;
}

}  // namespace qatc::opt::detail
