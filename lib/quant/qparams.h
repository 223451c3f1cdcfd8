// Quantization parameters: the one place a float range becomes (scale, zero_point), and the
// one quantize/dequantize pair that fake-quant, calibration and the int8 converter all share.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/quantize_float.h"

namespace qatc::quant {

// The stored integer levels [qmin, qmax] of a quantized tensor.
struct QRange {
  int32_t qmin, qmax;
};

// Signed storage for 2..8 bits (the low bits of an int8):
// not narrow [-2^(bits-1), 2^(bits-1)-1]; narrow [-(2^(bits-1)-1), 2^(bits-1)-1].
// `symmetric` does not change the range (both schemes store signed values); call sites pass it
// so that one call names the whole scheme. bits outside 2..8 raise qatc::Error.
QRange qrange(int bits, bool symmetric, bool narrow_range);

// real = scale * (q - zero_point), q clamped to [qmin, qmax].
struct QParams {
  float scale;
  int32_t zero_point;
  int32_t qmin, qmax;
};

// Turns a float range into (scale, zero_point). The range is first widened to contain 0.
// Asymmetric: scale = (max - min) / (qmax - qmin), zero_point = round(qmin - min / scale)
// clamped to [qmin, qmax], computed from the float scale actually stored, so real 0 is exactly
// q = zero_point ("nudging"). Symmetric: zero_point = 0, scale = max(|min|, |max|) / qmax.
// An all-zero range gives scale 1; a range so small that its scale would not be a normal float
// gets the smallest normal float. min, max must be finite with min <= max (checked).
QParams choose_qparams(float min, float max, QRange r, bool symmetric);

using kernels::round_half_away_from_zero;

// clamp(round_half_away_from_zero(x / scale) + zero_point, qmin, qmax): kernels::quantize_float,
// the one definition every caller (fake-quant, calibration, the int8 converter and runtime)
// shares, so simulated and converted values agree bit for bit.
inline int32_t quantize(float x, const QParams& q) {
  return kernels::quantize_float(x, q.scale, q.zero_point, q.qmin, q.qmax);
}

// scale * (q - zero_point): one float multiply of an exactly converted integer, so
// dequantize(zero_point) is exactly 0.
inline float dequantize(int32_t v, const QParams& q) {
  return q.scale * static_cast<float>(v - q.zero_point);
}

}  // namespace qatc::quant
