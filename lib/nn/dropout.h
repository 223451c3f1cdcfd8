// Inverted dropout for float training, reproducible from a seed whatever the thread count.
#pragma once

#include <cstdint>

namespace qatc::nn {

// in [n] -> out [n], mask [n] (1 = kept, 0 = dropped)
// out[i] = mask[i] ? in[i] / (1 - rate) : 0, with mask[i] = 1 with probability 1 - rate.
// mask is a pure function of (seed, i). Throws qatc::Error unless 0 <= rate < 1.
void dropout_forward(float* out, uint8_t* mask, const float* in, int64_t n, float rate,
                     uint64_t seed);

// dout [n], mask [n] -> din [n]
// Forward: out[i] = mask[i] ? in[i] / (1 - rate) : 0. Accumulates (+=) into din.
void dropout_backward(float* din, const float* dout, const uint8_t* mask, int64_t n, float rate);

}  // namespace qatc::nn
