// Fully connected layer for float training (weights [in, out] as Keras stores them).
#pragma once

#include <cstdint>

#include "nn/activation.h"

namespace qatc::nn {

// in [n,in_features], w [in_features,out_features], b [out_features] or nullptr
// -> out [n,out_features]
// out[i,o] = act(b[o] + sum_k in[i,k] * w[k,o])   (inference fuses the activation)
void dense_forward(float* out, const float* in, const float* w, const float* b, int64_t n,
                   int64_t in_features, int64_t out_features, Activation act = Activation::none);

// dout [n,out_features], in [n,in_features], w [in_features,out_features]
// -> din [n,in_features], dw [in_features,out_features], db [out_features]
// Forward: out[i,o] = b[o] + sum_k in[i,k] * w[k,o]
// Accumulates (+=) into din, dw and db; each may be nullptr, meaning "not needed".
void dense_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                    const float* w, int64_t n, int64_t in_features, int64_t out_features);

}  // namespace qatc::nn
