// Folding BatchNormalization into the weights and bias of the Conv2D / Dense before it, as the
// integer model holds it (see docs/quantization.md, "Batch normalization folding").
#pragma once

#include <cmath>
#include <cstdint>

namespace qatc::quant {

// gamma, var [channels] -> s [channels]
// s = gamma / sqrt(var + eps), computed in double and rounded once to float.
void bn_scale(float* s, const float* gamma, const float* var, float eps, int64_t channels);

// w [rows,channels] (channel = output channel = last axis; a Keras HWIO conv kernel is
// [kh*kw*cin, cout], a dense kernel [in, out]), b [channels] or nullptr (no bias, i.e. 0),
// gamma, beta, mean, var [channels] -> w_folded [rows,channels], b_folded [channels]
// With s = gamma / sqrt(var + eps):  w' = w * s (per column),  b' = beta + (b - mean) * s,
// so BN(x * w + b) = x * w' + b' with BN in inference mode. Computed in double, rounded once.
// w_folded may equal w and b_folded may equal b (in-place).
void fold_batchnorm(float* w_folded, float* b_folded, const float* w, const float* b,
                    const float* gamma, const float* beta, const float* mean, const float* var,
                    float eps, int64_t rows, int64_t channels);

// A BatchNorm that folds into no convolution, in inference mode, as the per-channel affine map
// y = s * x + b with s = gamma / sqrt(var + eps), b = beta - mean * s (double). The integer
// model runs it as a 1x1 depthwise convolution of weight sign(s) * 127 at weight scale
// lone_weight_scale(s) = |s| / 127 (1 when s = 0), which the fake-quant model mirrors.
struct ChannelAffine {
  double scale, bias;
};
inline ChannelAffine lone_batchnorm(double gamma, double beta, double mean, double var, float eps) {
  const double s = gamma / std::sqrt(var + static_cast<double>(eps));
  return {s, beta - mean * s};
}
inline double lone_weight_scale(double s) { return s != 0 ? std::fabs(s) / 127.0 : 1.0; }

}  // namespace qatc::quant
