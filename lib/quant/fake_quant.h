// Fake quantization (quantize then dequantize in float) with its straight-through-estimator
// gradient, per tensor and per channel, and the min/max reductions the observers need.
#pragma once

#include <cstdint>

#include "quant/qparams.h"

namespace qatc::quant {

// in [n] -> out [n], mask [n] (or nullptr: eval, no gradient needed). out may equal in.
// out = dequantize(quantize(x, q), q)   (rounding and clamping: see quantize)
// mask = 1 where dequantize(qmin) <= x <= dequantize(qmax) (boundaries included), else 0:
// the straight-through estimator passes the gradient inside the range and blocks it where
// the output is clamped. NaN propagates to out (so divergence stays visible) with mask 0.
void fake_quant_forward(float* out, uint8_t* mask, const float* in, int64_t n, const QParams& q);

// in [rows,channels], q [channels] (channel = last axis) -> out [rows,channels], mask
// [rows,channels] or nullptr. Element (r, c) is fake-quantized with q[c], same rules as above.
void fake_quant_forward_per_channel(float* out, uint8_t* mask, const float* in, int64_t rows,
                                    int64_t channels, const QParams* q);

// dout [n], mask [n] -> din [n]
// Forward: out = dequantize(quantize(x)); STE: d out / d x = mask.
// din = mask ? dout : 0. OVERWRITES din (does not accumulate); din may alias dout.
// Serves both the per-tensor and the per-channel forward.
void fake_quant_backward(float* din, const float* dout, const uint8_t* mask, int64_t n);

struct MinMax {
  float min, max;
};

// x [n] -> {min, max} over the finite values of x. NaN and +-inf are skipped, so a diverging
// step cannot poison a range (the trainer detects divergence from the loss); with no finite
// value (or n == 0) the result is {0, 0}, the degenerate range choose_qparams accepts;
// *any_finite (when given) says whether there was one.
MinMax tensor_minmax(const float* x, int64_t n, bool* any_finite = nullptr);

// x [rows,channels] -> out [channels]: tensor_minmax of each column (channel = last axis).
void channel_minmax(MinMax* out, const float* x, int64_t rows, int64_t channels);

}  // namespace qatc::quant
