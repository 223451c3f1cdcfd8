// The amx path: GEMMs (conv2d, dense) on AMX-INT8 tile registers, everything else as the
// avx512_vnni path. Compiled for that target only (the #pragma region below).
//
// A tile register holds up to 16 rows of 64 bytes. tdpbusd C += A B takes A as 16 rows x 64
// u8 (16 output pixels, 64 k), B as 16 rows x 64 s8 in groups of 4 (16 groups of 4 k for 16
// output channels: the vnni_u8 layout's bytes [g][j][t] for 16 consecutive g and 16
// consecutive j, row stride nv * 64) and C as 16 x 16 int32: 16,384 multiply-adds in one
// instruction, the same integers vpdpbusd sums (no saturation). K is padded to 64 at packing.
//
// Blocking: 32 rows x 32 channels over the whole of K (tiles 0-3 accumulate, 4-5 hold A,
// 6-7 hold B, one step of 64 k at a time). Each 32-channel slice of a panel's weights passes
// over all the task's row blocks before the next one (at batch 1 the deep layers' weights
// are the memory traffic). The accumulators start from zero; after the last k step they go
// to an int32 buffer holding the panel's sums for all the task's rows, which the avx512_vnni
// output stage requantizes (adding the bias) once the panel is done. (Starting the tiles
// from the bias, a tile load with row stride 0, costs four tile loads per block: ~10% on the
// K = 64 layers of ResNet50.) A block of rows past the task's last row computes on whatever
// the scratch holds there and is not stored.
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
constexpr int64_t kBlockRows = 2 * kTileRows;

// Scratch: A [rows rounded up to 32][k_padded] u8, then the int32 sums [rows rounded up to
// 32][64] of one panel.
int64_t scratch_bytes(int64_t rows, int64_t k_padded) {
  const int64_t rows32 = round_up(rows, kBlockRows);
  return round_up(rows32 * k_padded, 64) + rows32 * 64 * 4;
}

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

// Block of 16 or 32 rows (kTwoA) x 16 or 32 channels (kTwoB) over ksteps steps of 64 k.
// a: the block's first row (row stride lda); b: the first 16 channels' first group (row
// stride ldb); c: int32 out [32][ldc].
template <bool kTwoA, bool kTwoB>
void tile_block(const uint8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t ksteps, int32_t* c,
                int64_t ldc) {
  _tile_zero(0);
  if constexpr (kTwoB) _tile_zero(1);
  if constexpr (kTwoA) {
    _tile_zero(2);
    if constexpr (kTwoB) _tile_zero(3);
  }
  for (int64_t s = 0; s < ksteps; ++s, a += 64, b += kTileRows * ldb) {
    _tile_loadd(4, a, lda);
    _tile_loadd(6, b, ldb);
    if constexpr (kTwoB) _tile_loadd(7, b + 64, ldb);
    _tile_dpbusd(0, 4, 6);
    if constexpr (kTwoB) _tile_dpbusd(1, 4, 7);
    if constexpr (kTwoA) {
      _tile_loadd(5, a + kTileRows * lda, lda);
      _tile_dpbusd(2, 5, 6);
      if constexpr (kTwoB) _tile_dpbusd(3, 5, 7);
    }
  }
  const int64_t ldc_bytes = ldc * 4;
  _tile_stored(0, c, ldc_bytes);
  if constexpr (kTwoB) _tile_stored(1, c + 16, ldc_bytes);
  if constexpr (kTwoA) {
    _tile_stored(2, c + kTileRows * ldc, ldc_bytes);
    if constexpr (kTwoB) _tile_stored(3, c + kTileRows * ldc + 16, ldc_bytes);
  }
}

void gemm(const GemmTask& t) {
  configure_tiles();
  const PackedConv& w = *t.packed;
  const int64_t rows = t.m1 - t.m0, kp = w.k_padded, ksteps = kp / 64;
  auto* a = static_cast<uint8_t*>(t.scratch);
  auto* cbuf = reinterpret_cast<int32_t*>(a + round_up(round_up(rows, kBlockRows) * kp, 64));
  if (!t.a_ready) im2col_u8_avx512(t, a, rows, kp);
  for (int64_t p = t.p0; p < t.p1; ++p) {
    const int64_t c0 = 64 * p;
    const int nv = static_cast<int>(std::min<int64_t>(4, (w.oc - c0 + 15) / 16));
    const int64_t width = std::min<int64_t>(64, w.oc - c0), ldb = nv * 64;
    const int8_t* panel = w.weights.data() + p * 64 * kp;
    for (int v = 0; v < nv; v += 2) {
      const bool two_b = v + 1 < nv;
      const int8_t* b = panel + v * 64;
      for (int64_t r0 = 0; r0 < rows; r0 += kBlockRows) {
        const uint8_t* ab = a + r0 * kp;
        int32_t* c = cbuf + r0 * 64 + 16 * v;
        if (rows - r0 > kTileRows)
          (two_b ? tile_block<true, true> : tile_block<true, false>)(ab, kp, b, ldb, ksteps, c, 64);
        else
          (two_b ? tile_block<false, true> : tile_block<false, false>)(ab, kp, b, ldb, ksteps, c, 64);
      }
    }
    requant_rows_avx512(cbuf, 64, rows, nv, width, t.out + t.m0 * w.oc + c0, w.oc, t.rq, c0, t.clamp,
                        /*add_bias=*/true);
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
