// Float -> int8 quantization of one value: the single definition that fake quantization,
// calibration, the int8 converter and the int8 runtime's float inputs all use, so simulated and
// converted values agree bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

namespace qatc::kernels {

// Rounds to the nearest integer, ties away from zero; equal to std::round for every float
// (NaN and +-inf pass through), but inlined: std::round is a libm call in the hot loops.
// x - trunc(x) is exact in float, so the tie test has no rounding error.
inline float round_half_away_from_zero(float x) {
  const float t = std::trunc(x);
  return std::fabs(x - t) >= 0.5f ? t + std::copysign(1.0f, x) : t;
}

// clamp(round_half_away_from_zero(x / scale) + zero_point, qmin, qmax).
// x / scale is one IEEE float division (never a multiply by 1/scale), and the rounding is
// applied before zero_point is added, so ties round away from real 0 on both sides.
// Infinities clamp; NaN maps to zero_point. The vector versions (opt::quantize_f32_to_qs8)
// compute exactly this.
inline int32_t quantize_float(float x, float scale, int32_t zero_point, int32_t qmin, int32_t qmax) {
  const float v = round_half_away_from_zero(x / scale);
  // Clamp in float before converting: x / scale may be far outside the int32 range. Written
  // as selects (no early return) so loops over it can be vectorized.
  const float lo = static_cast<float>(qmin - zero_point);
  const float hi = static_cast<float>(qmax - zero_point);
  const float c = v != v ? 0.0f : (v < lo ? lo : (v > hi ? hi : v));
  return static_cast<int32_t>(c) + zero_point;
}

}  // namespace qatc::kernels
