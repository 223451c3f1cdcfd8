// Fixed-point requantization helpers, bit for bit gemmlowp's (and so TFLite's reference
// integer kernels'): a real multiplier is a Q31 mantissa and a power-of-two shift. The
// derivation and the rounding rule are in docs/int8.md.
#pragma once

#include <cstdint>
#include <limits>

#include "core/error.h"

namespace qatc::fixed {

// real m = multiplier * 2^(shift - 31); multiplier in [2^30, 2^31), or multiplier == 0 and
// shift == 0 for m == 0; shift in [-31, 30].
struct QuantizedMultiplier {
  int32_t multiplier;
  int32_t shift;
};

// m (finite, >= 0) as {multiplier, shift}, mantissa rounded to nearest (ties away from zero),
// relative error <= 2^-31. m rounding below 2^-32 gives {0, 0}: |x * m| < 1/2 for every
// int32 x, so the exact rounded product is 0 anyway. m >= 2^30 saturates to {2^31 - 1, 30} (every nonzero
// int32 x times such an m is far outside int8). Run at convert time, never in kernels.
QuantizedMultiplier quantize_multiplier(double m);

// round(a * b / 2^31) to nearest, ties toward +infinity (gemmlowp's nudge; the same as ARM's
// SQRDMULH). The only overflow, a == b == INT32_MIN (result +2^31), saturates to INT32_MAX.
inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min())
    return std::numeric_limits<int32_t>::max();
  const int64_t ab = int64_t{a} * int64_t{b};
  // Truncating division with a sign-dependent nudge equals floor((ab + 2^30) / 2^31).
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : 1 - (int64_t{1} << 30);
  return static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));
}

// round(x / 2^exponent) to nearest, ties away from zero; exponent in [0, 31]. Never overflows.
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  QATC_DCHECK(exponent >= 0 && exponent <= 31);
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// x * real(multiplier, shift) as gemmlowp computes it, rounding twice:
//   rounding_divide_by_pot(srdhm(x * 2^max(shift, 0), multiplier), max(-shift, 0)).
// The left shift saturates to the int32 range (only reachable for m >= 1/2 and results far
// outside int8, so a clamped int8 output equals the exact one). shift in [-31, 30].
inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift) {
  QATC_DCHECK(shift >= -31 && shift <= 30);
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  int64_t shifted = int64_t{x} * (int64_t{1} << left);
  if (shifted > std::numeric_limits<int32_t>::max()) shifted = std::numeric_limits<int32_t>::max();
  if (shifted < std::numeric_limits<int32_t>::min()) shifted = std::numeric_limits<int32_t>::min();
  return rounding_divide_by_pot(
      saturating_rounding_doubling_high_mul(static_cast<int32_t>(shifted), multiplier), right);
}

// The output stage of every requantizing kernel:
//   clamp(zero_point + multiply_by_quantized_multiplier(acc, multiplier, shift), qmin, qmax).
// The zero-point add cannot wrap (it is done wide before the clamp).
inline int32_t requantize(int32_t acc, int32_t multiplier, int32_t shift, int32_t zero_point,
                          int32_t qmin, int32_t qmax) {
  const int64_t v =
      int64_t{zero_point} + multiply_by_quantized_multiplier(acc, multiplier, shift);
  return static_cast<int32_t>(v < qmin ? qmin : (v > qmax ? qmax : v));
}

}  // namespace qatc::fixed
