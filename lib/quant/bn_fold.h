// Folding BatchNormalization into the weights and bias of the Conv2D / Dense before it, as the
// integer model holds it (see docs/quantization.md, "Batch normalization folding").
#pragma once

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

}  // namespace qatc::quant
