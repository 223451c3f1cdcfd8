// Layers that join or reshape feature maps without weights: residual add, channel concat and
// spatial zero padding / cropping, for float training (NHWC).
#pragma once

#include <cstdint>

#include "nn/activation.h"

namespace qatc::nn {

// inputs[k] [n] -> out [n]: out = act(sum_k inputs[k]) (k = 0..count-1, summed in that order;
// inference fuses the activation). out may alias inputs[0] or inputs[1].
void add_forward(float* out, const float* const* inputs, int64_t count, int64_t n,
                 Activation act = Activation::none);

// Forward: out = sum_k in_k, so din_k += dout for every k. Accumulates (+=) into each
// dinputs[k]; a nullptr entry is "not needed".
void add_backward(float* const* dinputs, int64_t count, const float* dout, int64_t n);

// inputs[k] [outer, channels[k]] -> out [outer, sum_k channels[k]] along the last axis.
void concat_forward(float* out, const float* const* inputs, const int64_t* channels, int64_t count,
                    int64_t outer);

// The slices of dout back to each input. Accumulates (+=); nullptr entries are skipped.
void concat_backward(float* const* dinputs, const int64_t* channels, int64_t count, const float* dout,
                     int64_t outer);

// Spatial padding of [n, h, w, c] by (top, bottom, left, right) into [n, oh, ow, c] with
// oh = h + top + bottom, ow = w + left + right; padded positions are 0 and a negative amount
// crops (Keras ZeroPadding2D and Cropping2D): out[i, y, x, ch] = in[i, y - top, x - left, ch]
// where that lies inside the input, else 0.
struct PadGeom2D {
  int64_t n, h, w, c, top, bottom, left, right, oh, ow;
};
PadGeom2D pad_geom2d(int64_t n, int64_t h, int64_t w, int64_t c, int64_t top, int64_t bottom, int64_t left,
                     int64_t right);
void pad_forward(float* out, const float* in, const PadGeom2D& g);
// din[i, y, x, ch] += dout[i, y + top, x + left, ch] where that lies inside the output.
void pad_backward(float* din, const float* dout, const PadGeom2D& g);

}  // namespace qatc::nn
