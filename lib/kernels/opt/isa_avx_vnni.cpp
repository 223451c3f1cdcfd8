// The avx_vnni path: AVX2 + AVX-VNNI (VEX-encoded vpdpbusd on ymm registers), compiled for
// that target only (the #pragma region). GEMM on the vnni_u8 layout, each 64-channel panel
// walked as four 16-channel slices of 4 rows x 2 ymm accumulators. The other kernels are the
// avx2 path's.
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
    return o;
  }();
  return ops;
}

}  // namespace qatc::opt::detail
