// The amx path: GEMMs (conv2d, dense) on AMX-INT8 tile registers, everything else as the
// avx512_vnni path. Compiled for that target only (the #pragma region below).
//
// A tile register holds up to 16 rows of 64 bytes. tdpbssd C += A B takes A as 16 rows x 64
// s8 (16 output pixels, 64 k), B as 16 rows x 64 s8 in groups of 4 (16 groups of 4 k for 16
// output channels: the amx_s8 layout's bytes [g][j][t] for 16 consecutive g and 16
// consecutive j, row stride nv * 64) and C as 16 x 16 int32: 16,384 multiply-adds in one
// instruction, exact int32 sums as vpdpbusd's (no saturation).
//
// No im2col: an A tile is read from the input in place. Its 16 rows are 16 output pixels of
// one output row (of consecutive rows for a 1x1 stride-1 conv or a dense layer), stride_w * c
// bytes apart; one step of 64 k is 64 consecutive bytes of one input row, which the
// amx_s8 layout makes true by padding each kernel row's kw * c bytes to a multiple of 64
// (the bytes past it belong to the next pixels and meet zero weights). conv.cpp's
// padded_input provides the input with its padding in memory; the few tiles whose reads run
// past its end read a copy of the rest (copy_tail_tiles).
// Rows of a tile past the last pixel compute on whatever is there and are not stored.
//
// Blocking: two tiles of A x 32 channels over the whole of K (tiles 0-3 accumulate, 4-5
// hold A, 6-7 hold B). Each 32-channel slice of a panel's weights passes over every tile of
// a group of 8 (128 pixels) before the next one (at batch 1 the deep layers' weights are
// the memory traffic). The accumulators start from zero; the sums go to an int32 buffer
// that the avx512_vnni output stage requantizes (adding the bias) once the panel is done.
// (Starting the tiles from the bias, a tile load with row stride 0, costs four tile loads
// per block: ~10% on the K = 64 layers of ResNet50.)
//
// Linux grants a process the tile state only on request (isa.cpp asks before amx is
// reported as supported); each thread loads the tile configuration before its first GEMM.

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/opt/internal.h"
#include "kernels/opt/target.h"

namespace qatc::opt::detail {
namespace {

// The LDTILECFG operand (palette 1): 8 tiles of 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

constexpr int64_t kTileRows = 16;
constexpr int64_t kGroupTiles = 8;  // tiles whose sums the int32 buffer holds at once

// Scratch: the int32 sums [kGroupTiles * 16][64] of one panel.
int64_t scratch_bytes(int64_t /*rows*/, int64_t /*k_padded*/) { return kGroupTiles * kTileRows * 64 * 4; }

// Up to 16 output pixels of one output row (or of consecutive rows, for a contiguous GEMM):
// the first one's GEMM row m, their count, and where the first one's receptive field starts.
struct Tile {
  const int8_t* a;
  int64_t m, n;
};

}  // namespace
}  // namespace qatc::opt::detail

QATC_TARGET_BEGIN("avx2,fma,bmi,bmi2,lzcnt,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")

namespace qatc::opt::detail {
namespace {

void configure_tiles() {
  thread_local bool configured = false;
  if (configured) return;
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = kTileRows;
  }
  _tile_loadconfig(&cfg);
  configured = true;
}

// One or two tiles of A (kTwoA) x 16 or 32 channels (kTwoB) over the whole of K: kh kernel
// rows of steps 64-byte steps each, a kernel row `row` bytes after the previous one in the
// input. a0, a1: the tiles' first bytes (row stride lda); b: the first 16 channels' first
// group (row stride ldb); c0, c1: the tiles' int32 sums [16][ldc].
template <bool kTwoA, bool kTwoB>
void tile_block(const int8_t* a0, const int8_t* a1, int64_t lda, int64_t kh, int64_t row, int64_t steps,
                const int8_t* b, int64_t ldb, int32_t* c0, int32_t* c1, int64_t ldc) {
  _tile_zero(0);
  if constexpr (kTwoB) _tile_zero(1);
  if constexpr (kTwoA) {
    _tile_zero(2);
    if constexpr (kTwoB) _tile_zero(3);
  }
  for (int64_t ky = 0; ky < kh; ++ky) {
    const int64_t off0 = ky * row;
    for (int64_t s = 0; s < steps; ++s, b += kTileRows * ldb) {
      const int64_t off = off0 + 64 * s;
      _tile_loadd(4, a0 + off, lda);
      _tile_loadd(6, b, ldb);
      if constexpr (kTwoB) _tile_loadd(7, b + 64, ldb);
      _tile_dpbssd(0, 4, 6);
      if constexpr (kTwoB) _tile_dpbssd(1, 4, 7);
      if constexpr (kTwoA) {
        _tile_loadd(5, a1 + off, lda);
        _tile_dpbssd(2, 5, 6);
        if constexpr (kTwoB) _tile_dpbssd(3, 5, 7);
      }
    }
  }
  const int64_t ldc_bytes = ldc * 4;
  _tile_stored(0, c0, ldc_bytes);
  if constexpr (kTwoB) _tile_stored(1, c0 + 16, ldc_bytes);
  if constexpr (kTwoA) {
    _tile_stored(2, c1, ldc_bytes);
    if constexpr (kTwoB) _tile_stored(3, c1 + 16, ldc_bytes);
  }
}

// The task's rows as tiles; returns their count (<= rows).
int64_t plan_tiles(const GemmTask& t, Tile* tiles) {
  int64_t n = 0;
  const int64_t hw = t.oh * t.ow;
  for (int64_t m = t.m0; m < t.m1; ++n) {
    if (t.contiguous) {
      tiles[n] = {t.amx_in + m * t.c, m, std::min(kTileRows, t.m1 - m)};
    } else {
      const int64_t b = m / hw, oy = m % hw / t.ow, ox = m % t.ow;
      tiles[n] = {t.amx_in + ((b * t.amx_h + oy * t.stride_h) * t.amx_w + ox * t.stride_w) * t.c, m,
                  std::min({kTileRows, t.ow - ox, t.m1 - m})};
    }
    m += tiles[n].n;
  }
  return n;
}

// A tile whose reads run past the end of the input (its rows past the last pixel, a step's
// bytes past the last kernel row: only the last few tiles of a layer) reads a copy of what
// is left, zeros after it, in a buffer of this thread.
void copy_tail_tiles(const GemmTask& t, Tile* tiles, int64_t ntiles, int64_t span) {
  int64_t over = 0;
  for (int64_t i = 0; i < ntiles; ++i) over += t.amx_end - tiles[i].a < span;
  if (over == 0) return;
  const int64_t stride = round_up(span, 64);
  thread_local AlignedVector<int8_t> buf;
  int8_t* dst = grow(buf, static_cast<size_t>(over * stride));
  for (int64_t i = 0; i < ntiles; ++i) {
    if (t.amx_end - tiles[i].a >= span) continue;
    const int64_t have = t.amx_end - tiles[i].a;
    std::memcpy(dst, tiles[i].a, static_cast<size_t>(have));
    std::memset(dst + have, 0, static_cast<size_t>(stride - have));
    tiles[i].a = dst;
    dst += stride;
  }
}

void gemm(const GemmTask& t) {
  configure_tiles();
  const PackedConv& w = *t.packed;
  const int64_t segp = amx_segment(t.kw * t.c), steps = segp / 64, row = t.amx_w * t.c;
  const int64_t lda = t.stride_w * t.c;
  auto* cbuf = static_cast<int32_t*>(t.scratch);
  Tile tiles[kMaxGemmRows];
  const int64_t ntiles = plan_tiles(t, tiles);
  copy_tail_tiles(t, tiles, ntiles, (kTileRows - 1) * lda + (t.kh - 1) * row + segp);
  for (int64_t g0 = 0; g0 < ntiles; g0 += kGroupTiles) {
    const int64_t g1 = std::min(ntiles, g0 + kGroupTiles);
    for (int64_t p = t.p0; p < t.p1; ++p) {
      const int64_t c0 = 64 * p;
      const int nv = static_cast<int>(std::min<int64_t>(4, (w.oc - c0 + 15) / 16));
      const int64_t width = std::min<int64_t>(64, w.oc - c0), ldb = nv * 64;
      const int8_t* panel = w.weights.data() + p * 64 * w.k_padded;
      // Each 32-channel slice of the panel's weights passes over every tile of the group
      // before the next slice (at batch 1 the deep layers' weights are the memory traffic).
      for (int v = 0; v < nv; v += 2) {
        const bool two_b = v + 1 < nv;
        const int8_t* b = panel + v * 64;
        for (int64_t i = g0; i < g1; i += 2) {
          int32_t* ca = cbuf + (i - g0) * kTileRows * 64 + 16 * v;
          if (i + 1 < g1)
            (two_b ? tile_block<true, true> : tile_block<true, false>)(
                tiles[i].a, tiles[i + 1].a, lda, t.kh, row, steps, b, ldb, ca, ca + kTileRows * 64, 64);
          else
            (two_b ? tile_block<false, true> : tile_block<false, false>)(
                tiles[i].a, nullptr, lda, t.kh, row, steps, b, ldb, ca, nullptr, 64);
        }
      }
      OutRun runs[kGroupTiles];
      for (int64_t i = g0; i < g1; ++i)
        runs[i - g0] = {cbuf + (i - g0) * kTileRows * 64, t.out + tiles[i].m * w.oc + c0, tiles[i].n};
      requant_rows_avx512(runs, g1 - g0, 64, nv, width, w.oc, t.rq, c0, t.clamp, /*add_bias=*/true, t.fuse);
    }
  }
}

}  // namespace
}  // namespace qatc::opt::detail

QATC_TARGET_END

namespace qatc::opt::detail {

const IsaOps& amx_ops() {
  static const IsaOps ops = [] {
    IsaOps o = avx512_vnni_ops();
    o.isa = Isa::amx;
    o.panel_oc = 64;
    o.gemm_scratch_bytes = scratch_bytes;
    o.gemm = gemm;
    return o;
  }();
  return ops;
}

}  // namespace qatc::opt::detail
