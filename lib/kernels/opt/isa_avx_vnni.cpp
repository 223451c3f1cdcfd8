// The avx_vnni path: AVX2 + AVX-VNNI (VEX-encoded vpdpbusd on ymm registers), compiled for
// that target only (the #pragma region). GEMM on the vnni_u8 layout, each 64-channel panel
// walked as four 16-channel slices of 4 rows x 2 ymm accumulators; 3x3 depthwise layers on
// vpdpbusd in blocks of 32 channels (dw_quad.inc). The other kernels are the avx2 path's.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/fixed_point.h"
#include "kernels/quantize_float.h"
#include "kernels/opt/internal.h"
#include "kernels/opt/target.h"

QATC_TARGET_BEGIN("avx2,fma,bmi,bmi2,lzcnt,popcnt,avxvnni")

namespace qatc::opt::detail {
namespace {

#include "kernels/opt/avx2_common.inc"

// im2col's copy policy: q ^ 0x80 (= q + 128 as u8), 32 bytes at a time.
struct XorCopy256 {
  using AT = uint8_t;
  static AT conv(int8_t q) { return static_cast<uint8_t>(static_cast<uint8_t>(q) ^ 0x80u); }
  static void copy(AT* dst, const int8_t* src, int64_t n) {
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                          _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)), flip));
    for (; i < n; ++i) dst[i] = conv(src[i]);
  }
  static void fill(AT* dst, int64_t n, AT v) { std::memset(dst, v, static_cast<size_t>(n)); }
  static void copy_rows(AT* dst, const int8_t* src, int64_t n, int64_t stride, int64_t rows) {
    for (int64_t i = 0; i < rows; ++i) copy(dst + i * n, src + i * stride, n);
  }
};

struct DpbusdU8 {
  using AT = uint8_t;
  using Copy = XorCopy256;
  static constexpr int G = 4;
  static constexpr int64_t kKBlock = 128;  // groups: 32 KB of weights per 64-channel block
  static __m256i dot(__m256i acc, __m256i a, __m256i w) { return _mm256_dpbusd_avx_epi32(acc, a, w); }
  static PanelWalk panel(const PackedConv& w, int64_t p) {
    const int nv = static_cast<int>(std::min<int64_t>(4, (w.oc - 64 * p + 15) / 16));
    return {w.weights.data() + p * 64 * w.k_padded, 64 * p, nv, 64 * nv};
  }
};

// 3x3 depthwise on vpdpbusd in blocks of 32 channels (dw_quad.inc), on ymm registers.
struct Quad256 {
  using V = __m256i;
  static constexpr int64_t kBytes = 32;
  static V load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static V load_xor(const int8_t* p) { return _mm256_xor_si256(load(p), _mm256_set1_epi8(static_cast<char>(0x80))); }
  static V bytes(int8_t v) { return _mm256_set1_epi8(static_cast<char>(v)); }
  static V dpbusd(V acc, V x, V w) { return _mm256_dpbusd_avx_epi32(acc, x, w); }
  static V mbqm_fast(V x, V mult, V odd, V ke, V ko, V shift) { return Avx2::mbqm_fast(x, mult, odd, ke, ko, shift); }
  struct Out {
    V zp16, qmin, qmax;
  };
  static Out out(const OutClamp& c) {
    return {_mm256_set1_epi16(static_cast<int16_t>(c.zero_point)), bytes(static_cast<int8_t>(c.lo + c.zero_point)),
            bytes(static_cast<int8_t>(c.hi + c.zero_point))};
  }
  static V pack(const V* y, const Out& o, V shuf) {
    const V w01 = _mm256_adds_epi16(_mm256_packs_epi32(y[0], y[1]), o.zp16);
    const V w23 = _mm256_adds_epi16(_mm256_packs_epi32(y[2], y[3]), o.zp16);
    const V packed = _mm256_shuffle_epi8(_mm256_packs_epi16(w01, w23), shuf);
    return _mm256_min_epi8(_mm256_max_epi8(packed, o.qmin), o.qmax);
  }
  static void store(int8_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
};

#include "kernels/opt/dw_quad.inc"

// depthwise_row: the vpdpbusd blocks, then the remaining channels 8 at a time.
void depthwise_row_avx_vnni(const DepthwiseRow& t) {
  dw_quad_blocks<Quad256>(t);
  depthwise_row_from<Avx2>(t, t.quad_channels);
}

}  // namespace
}  // namespace qatc::opt::detail

QATC_TARGET_END

namespace qatc::opt::detail {

const IsaOps& avx_vnni_ops() {
  static const IsaOps ops = [] {
    IsaOps o = avx2_ops();
    o.isa = Isa::avx_vnni;
    o.panel_oc = 64;
    o.gemm_scratch_bytes = ymm_gemm_scratch_bytes<DpbusdU8>;
    o.gemm = ymm_gemm<DpbusdU8>;
    o.depthwise_row = depthwise_row_avx_vnni;
    o.pack_depthwise_quad = pack_depthwise_quad<Quad256>;
    return o;
  }();
  return ops;
}

}  // namespace qatc::opt::detail
