// gemm_packed on AVX-512F (the #pragma region below; nothing in this file is called unless
// packed_gemm_supported()).
//
// Blocking: the reduction is walked in blocks of about kKBlock (whole segments of A, or equal
// pieces of one long segment); within a block, each panel's slice of B (up to kKBlock x 64
// floats) serves every tile of kRows rows of A in turn, and those rows' pieces stay in cache for
// the next panel. A tile keeps its kRows x 64 sums in 24 zmm registers; per k it loads four
// vectors of B, broadcasts one float of each row and issues 24 FMAs; C is read and written
// once per block. 64-wide panels read A half as often as 32-wide ones; on ResNet50's shapes
// 6 x 64 tiles ran as fast as or faster than 12 x 32 ones.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/opt/target.h"
#include "nn/gemm_packed.h"

QATC_TARGET_BEGIN("avx2,fma,avx512f")

namespace qatc::nn {
namespace {

constexpr int kRows = 6;
constexpr int64_t kKBlock = 256;

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u);
}

// How a block starts and ends: the first starts from bias + residual (else from C), the last
// applies the activation before it stores C.
struct Ends {
  const float* bias;      // at the tile's first column, or nullptr
  const float* residual;  // at the tile's first row and column (rows ldc apart), or nullptr
  bool first, last;
  Activation act;
};

// One block of the reduction for MR rows: c[r, 0:cols] (+)= sum over the block of A * B, where
// the block is `segs` segments of `len` floats of row r, starting at rows[r] + off and
// seg_stride apart, and b the block's slice of a panel (rows 16 * NV floats apart, cols <= 16 * NV).
template <int MR, int NV>
void tile(const float* const* rows, int64_t off, int64_t segs, int64_t len, int64_t seg_stride, const float* b,
          float* c, int64_t ldc, int64_t cols, const Ends& e) {
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = lanes(cols - 16 * v);
  __m512 acc[MR][NV];
  const float* a[MR];
  if (!e.first) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_maskz_loadu_ps(mask[v], c + r * ldc + 16 * v);
  } else {
    // residual + bias, as start_rows adds them; either alone as it is; 0 without both.
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __m512 bias = e.bias ? _mm512_maskz_loadu_ps(mask[v], e.bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        acc[r][v] = bias;
        if (e.residual) {
          const __m512 x = _mm512_maskz_loadu_ps(mask[v], e.residual + r * ldc + 16 * v);
          acc[r][v] = e.bias ? _mm512_add_ps(x, bias) : x;
        }
      }
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) a[r] = rows[r] + off;
  for (int64_t s = 0; s < segs; ++s) {
    for (int64_t kk = 0; kk < len; ++kk) {
      __m512 bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + v * 16);  // aligned in the engine
      b += NV * 16;
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        const __m512 x = _mm512_set1_ps(a[r][kk]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
      }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) a[r] += seg_stride;
  }
  if (e.last && e.act != Activation::none) {
    // vmaxps/vminps return their second operand for a NaN or two zeros: x > 0 ? x : 0, then
    // v < 6 ? v : 6, exactly as nn::activate.
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        acc[r][v] = _mm512_max_ps(acc[r][v], zero);
        if (e.act == Activation::relu6) acc[r][v] = _mm512_min_ps(acc[r][v], six);
      }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], acc[r][v]);
}

using TileFn = void (*)(const float* const*, int64_t, int64_t, int64_t, int64_t, const float*, float*, int64_t,
                        int64_t, const Ends&);

// kTiles[NV - 1][MR - 1] = &tile<MR, NV>
template <int NV, int... R>
constexpr std::array<TileFn, sizeof...(R)> row_tiles(std::integer_sequence<int, R...>) {
  return {&tile<R + 1, NV>...};
}
constexpr std::array<std::array<TileFn, kRows>, 4> kTiles = {
    row_tiles<1>(std::make_integer_sequence<int, kRows>{}), row_tiles<2>(std::make_integer_sequence<int, kRows>{}),
    row_tiles<3>(std::make_integer_sequence<int, kRows>{}), row_tiles<4>(std::make_integer_sequence<int, kRows>{})};

}  // namespace

void gemm_packed(int64_t m, int64_t k, int64_t n, int64_t j0, int64_t j1, const float* const* rows, int64_t seg_len,
                 int64_t seg_stride, const float* packed, const float* bias, const float* residual, float* c,
                 int64_t ldc, Activation act) {
  // One block: `segs` segments of `len` floats from offset `off` of every row, reduction index k0.
  auto block = [&](int64_t k0, int64_t off, int64_t segs, int64_t len) {
    for (int64_t j = j0; j < j1; j += kPanel) {
      // The panel's width in registers: the last panel of B may be narrower (gemm_packed.h).
      const int64_t nv = std::min(kPanel, n - j + 15) / 16;
      const float* b = packed + j * k + k0 * nv * 16;
      const auto& fns = kTiles[static_cast<size_t>(nv - 1)];
      const int64_t cols = std::min(kPanel, j1 - j);
      for (int64_t i = 0; i < m; i += kRows) {
        const int64_t r = std::min<int64_t>(kRows, m - i);
        const Ends e{bias ? bias + j : nullptr, residual ? residual + i * ldc + j : nullptr, k0 == 0,
                     k0 + segs * len == k, act};
        fns[static_cast<size_t>(r - 1)](rows + i, off, segs, len, seg_stride, b, c + i * ldc + j, ldc, cols, e);
      }
    }
  };
  const int64_t nseg = k / seg_len;
  if (seg_len <= kKBlock) {
    const int64_t per = kKBlock / seg_len;  // whole segments per block
    for (int64_t s = 0; s < nseg; s += per) block(s * seg_len, s * seg_stride, std::min(per, nseg - s), seg_len);
  } else {
    // Equal pieces of each segment, none longer than kKBlock.
    const int64_t pieces = (seg_len + kKBlock - 1) / kKBlock, piece = (seg_len + pieces - 1) / pieces;
    for (int64_t s = 0; s < nseg; ++s)
      for (int64_t p = 0; p < seg_len; p += piece)
        block(s * seg_len + p, s * seg_stride + p, 1, std::min(piece, seg_len - p));
  }
}

}  // namespace qatc::nn

QATC_TARGET_END
