// The Add by tables (kernels.h, PackedAdd) on AVX-512 VBMI, for the avx512_vnni and amx paths
// on CPUs that have it (add_table_used). Compiled for that target only (the region below).
//
// Per 64 bytes of each input: a 256-entry byte plane is two vpermi2b (entries 0-127 and
// 128-255, each from two registers by the index's low 7 bits) and a blend by the byte's sign
// (bit 7); three planes per input give L and the two bytes of H. Unpacking H's bytes gives 32
// int16 H per vector, L's with zero 32 int16 L, and
//   floor((A1 + A2) / 256) = H1 + H2 + ((L1 + L2) >> 8)
// in saturating 16-bit adds (a true value beyond int16 saturates towards its own side, where
// the pack to int8 clamps it anyway). vpacksswb packs the two halves back into byte order
// (the unpacks and the pack pair the same bytes of each 128-bit lane) with the int8 clamp;
// then qmin and qmax. About 40 vector operations per 64 outputs.

// GCC 12.2's avx512fintrin.h initializes its "undefined" vectors from themselves, which
// -Wuninitialized reports at every inlined use (GCC bug 105593, fixed in 12.3).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdint>

#include "kernels/opt/internal.h"
#include "kernels/opt/target.h"

QATC_TARGET_BEGIN("avx2,bmi,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")

namespace qatc::opt::detail {
namespace {

struct TableAdd {
  const uint8_t* t1;  // planes [3][256] of input 1
  const uint8_t* t2;
  __m512i qmin, qmax;

  explicit TableAdd(const PackedAdd& t)
      : t1(&t.planes[0][0][0]),
        t2(&t.planes[1][0][0]),
        qmin(_mm512_set1_epi8(static_cast<char>(t.params.qmin))),
        qmax(_mm512_set1_epi8(static_cast<char>(t.params.qmax))) {}

  static __m512i look(const uint8_t* plane, __m512i x, __mmask64 negative) {
    const __m512i lo = _mm512_permutex2var_epi8(_mm512_load_si512(plane), x, _mm512_load_si512(plane + 64));
    const __m512i hi = _mm512_permutex2var_epi8(_mm512_load_si512(plane + 128), x, _mm512_load_si512(plane + 192));
    return _mm512_mask_blend_epi8(negative, lo, hi);
  }

  __m512i operator()(__m512i x1, __m512i x2) const {
    const __mmask64 n1 = _mm512_movepi8_mask(x1), n2 = _mm512_movepi8_mask(x2);
    const __m512i l1 = look(t1, x1, n1), h1a = look(t1 + 256, x1, n1), h1b = look(t1 + 512, x1, n1);
    const __m512i l2 = look(t2, x2, n2), h2a = look(t2 + 256, x2, n2), h2b = look(t2 + 512, x2, n2);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i lo = _mm512_adds_epi16(
        _mm512_adds_epi16(_mm512_unpacklo_epi8(h1a, h1b), _mm512_unpacklo_epi8(h2a, h2b)),
        _mm512_srli_epi16(_mm512_add_epi16(_mm512_unpacklo_epi8(l1, zero), _mm512_unpacklo_epi8(l2, zero)), 8));
    const __m512i hi = _mm512_adds_epi16(
        _mm512_adds_epi16(_mm512_unpackhi_epi8(h1a, h1b), _mm512_unpackhi_epi8(h2a, h2b)),
        _mm512_srli_epi16(_mm512_add_epi16(_mm512_unpackhi_epi8(l1, zero), _mm512_unpackhi_epi8(l2, zero)), 8));
    return _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(lo, hi), qmin), qmax);
  }
};

}  // namespace

void add_table_rows(const PackedAdd& t, int8_t* out, int64_t ldo, const int8_t* x1, int64_t ld1, const int8_t* x2,
                    int64_t ld2, int64_t rows, int64_t width) {
  const TableAdd add(t);
  for (int64_t r = 0; r < rows; ++r, out += ldo, x1 += ld1, x2 += ld2) {
    int64_t i = 0;
    for (; i + 64 <= width; i += 64)
      _mm512_storeu_si512(out + i, add(_mm512_loadu_si512(x1 + i), _mm512_loadu_si512(x2 + i)));
    if (i < width) {
      const __mmask64 m = _bzhi_u64(~uint64_t{0}, static_cast<unsigned>(width - i));
      _mm512_mask_storeu_epi8(out + i, m, add(_mm512_maskz_loadu_epi8(m, x1 + i), _mm512_maskz_loadu_epi8(m, x2 + i)));
    }
  }
}

}  // namespace qatc::opt::detail

QATC_TARGET_END
