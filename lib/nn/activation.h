// Elementwise activations (ReLU, ReLU6) for float training.
#pragma once

#include <cstdint>

namespace qatc::nn {

// in [n] -> out [n]; out = max(in, 0). out may alias in.
void relu_forward(float* out, const float* in, int64_t n);

// dout [n], out [n] (the forward output) -> din [n]
// Forward: out = max(in, 0); the gradient passes where out > 0.
// Accumulates (+=) into din. With `pass` (a 0/1 mask [n], e.g. the straight-through mask of a
// fake quantization applied to out), the gradient passes only where pass[i] is 1 as well: one
// pass over memory instead of masking dout first.
void relu_backward(float* din, const float* dout, const float* out, int64_t n, const uint8_t* pass = nullptr);

// in [n] -> out [n]; out = min(max(in, 0), 6). out may alias in.
void relu6_forward(float* out, const float* in, int64_t n);

// dout [n], out [n] (the forward output) -> din [n]
// Forward: out = min(max(in, 0), 6); the gradient passes where 0 < out < 6.
// Accumulates (+=) into din; `pass` as for relu_backward.
void relu6_backward(float* din, const float* dout, const float* out, int64_t n, const uint8_t* pass = nullptr);

}  // namespace qatc::nn
