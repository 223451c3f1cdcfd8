// The portable path: plain C++ for the x86-64-v2 baseline (whatever the compiler
// auto-vectorizes), one int32 lane per "vector" in the shared kernels. GEMM on the i16_rows
// layout: dot products of im2col rows with weight rows, two by two.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/fixed_point.h"
#include "kernels/quantize_float.h"
#include "kernels/opt/internal.h"

namespace qatc::opt::detail {
namespace {

// One lane. Adds wrap like the vector instructions (as uint32: no signed-overflow UB).
struct Scalar {
  using V = int32_t;
  static constexpr int W = 1;

  static V set1(int32_t v) { return v; }
  static V load_i32(const int32_t* p) { return *p; }
  static void store_i32(int32_t* p, V v) { *p = v; }
  static V load_i8(const int8_t* p) { return *p; }
  static V load_i8_part(const int8_t* p, int) { return *p; }
  static V load_u8(const uint8_t* p) { return *p; }
  static V load_u8_part(const uint8_t* p, int) { return *p; }
  static void store_i8(int8_t* p, V v) { *p = static_cast<int8_t>(v); }
  static void store_i8_part(int8_t* p, V v, int) { *p = static_cast<int8_t>(v); }
  static V add(V a, V b) { return static_cast<V>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b)); }
  static V sub(V a, V b) { return static_cast<V>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b)); }
  static V min(V a, V b) { return a < b ? a : b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static V sll(V a, int n) { return static_cast<V>(static_cast<uint32_t>(a) << n); }
  static V madd16(V x, V w) { return x * static_cast<int16_t>(static_cast<uint16_t>(w & 0xFFFF)); }
  static V madd_acc(V acc, V x, V w) { return add(acc, madd16(x, w)); }
  static V mullo(V a, V b) { return static_cast<V>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b)); }
  static V sra(V a, int n) { return a >> n; }

  struct Rq {
    int32_t mult, shift;
  };
  static Rq rq_channels(const ChannelRequant& c, int64_t off) {
    return {c.multiplier[off], c.left_shift[off] - c.right_shift[off]};
  }
  static Rq rq_uniform(int32_t multiplier, int32_t shift) { return {multiplier, shift}; }
  static Rq rq_arrays(const int32_t* multiplier, const int32_t* shift) { return {*multiplier, *shift}; }
  static V mbqm(V x, const Rq& q) { return fixed::multiply_by_quantized_multiplier(x, q.mult, q.shift); }
};

#include "kernels/opt/kernels_body.inc"

int64_t gemm_scratch_bytes(int64_t rows, int64_t k_padded) {
  return round_up(rows * k_padded * 2, 64) + 64;
}

// Four dot products of two rows of A with two rows of weights, int16 x int16 summed from 0:
// |partial sums| <= 128 * 128 * K < 2^31 (kernels::check), and adding the folded bias last
// gives the exact accumulator. Compilers vectorize the four reductions (pmaddwd on x86).
inline void dot2x2(const int16_t* __restrict a0, const int16_t* __restrict a1,
                   const int16_t* __restrict w0, const int16_t* __restrict w1, int64_t n,
                   int32_t* s) {
  int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int32_t x0 = a0[k], x1 = a1[k], y0 = w0[k], y1 = w1[k];
    s00 += x0 * y0;
    s01 += x0 * y1;
    s10 += x1 * y0;
    s11 += x1 * y1;
  }
  s[0] = s00, s[1] = s01, s[2] = s10, s[3] = s11;
}

void gemm(const GemmTask& t) {
  const PackedConv& w = *t.packed;
  const int64_t rows = t.m1 - t.m0, kp = w.k_padded;
  auto* a = static_cast<int16_t*>(t.scratch);
  if (!t.a_ready) im2col<WidenCopyLoop>(t, t.m0, rows, a, kp);
  const auto* weights = reinterpret_cast<const int16_t*>(w.weights.data());
  const int64_t o0 = 16 * t.p0, o1 = std::min(w.oc, 16 * t.p1);
  const auto out = [&](int64_t r, int64_t o, int32_t sum) {
    const auto ch = static_cast<size_t>(o);
    t.out[(t.m0 + r) * w.oc + o] = static_cast<int8_t>(fixed::requantize(
        sum + w.bias[ch], w.multiplier[ch], w.shift[ch], t.clamp.zero_point,
        t.clamp.lo + t.clamp.zero_point, t.clamp.hi + t.clamp.zero_point));
  };
  // Pairs of rows x pairs of channels; an odd last row or channel pairs with itself.
  for (int64_t r = 0; r < rows; r += 2) {
    const int64_t r1 = std::min(r + 1, rows - 1);
    for (int64_t o = o0; o < o1; o += 2) {
      const int64_t oo = std::min(o + 1, o1 - 1);
      int32_t s[4];
      dot2x2(a + r * kp, a + r1 * kp, weights + o * kp, weights + oo * kp, kp, s);
      out(r, o, s[0]);
      if (oo != o) out(r, oo, s[1]);
      if (r1 != r) {
        out(r1, o, s[2]);
        if (oo != o) out(r1, oo, s[3]);
      }
    }
  }
}

}  // namespace

const IsaOps& portable_ops() {
  static const IsaOps ops{Isa::portable,
                          16,
                          gemm_scratch_bytes,
                          gemm,
                          depthwise_row<Scalar>,
                          add_range<Scalar>,
                          concat_requant<Scalar>,
                          maxpool_rows,
                          avgpool_rows,
                          global_avgpool_range<Scalar>,
                          quantize_range<Scalar>,
                          mbqm_batch<Scalar>,
                          quantize_float_scalar};
  return ops;
}

}  // namespace qatc::opt::detail
