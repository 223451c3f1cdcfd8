// Elementwise activations (ReLU, ReLU6) for float training, and the activation that inference
// fuses into the op producing its input.
#pragma once

#include <cstdint>

namespace qatc::nn {

// An activation fused into the op before it (applied to that op's output, in place).
enum class Activation { none, relu, relu6 };

// x [n] -> act(x) in place on the calling thread, with exactly relu_forward's and relu6_forward's
// arithmetic: a fused activation gives the bits the separate pass would.
void activate(float* x, int64_t n, Activation act);

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
