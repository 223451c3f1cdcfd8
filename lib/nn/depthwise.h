// Depthwise 2-D convolution for float training (NHWC input, weights as Keras' DepthwiseConv2D
// stores them). Each input channel ic has `multiplier` (M) filters of its own; output channel
// o = ic*M + j reads input channel ic only, as in Keras and TFLite:
//   out[i,y,x,o] = b[o] + sum_{ky,kx} in[i, y*stride_h - pad_top + ky, x*stride_w - pad_left + kx, o / M]
//                                     * w[ky,kx,o]        (input outside [0,h)x[0,w) reads as 0)
// with w [kh,kw,c,M], which is the same memory as [kh,kw,c*M].
#pragma once

#include <cstdint>

#include "nn/activation.h"
#include "nn/padding.h"

namespace qatc::nn {

// Everything the kernels need, computed once by depthwise_geom. Output channels: c * multiplier.
struct DepthwiseGeom {
  int64_t n, h, w, c;
  int64_t kh, kw, multiplier;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left;
  int64_t oh, ow;
};

// Throws qatc::Error for impossible geometry (sizes < 1, 'valid' window larger than the input).
DepthwiseGeom depthwise_geom(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw,
                             int64_t multiplier, int64_t stride_h, int64_t stride_w, Padding padding);

// in [n,h,w,c], w [kh,kw,c,M], b [c*M] or nullptr -> out [n,oh,ow,c*M]
// out[i,y,x,o] = act(b[o] + sum_{ky,kx} in[i, y*sh - pad_top + ky, x*sw - pad_left + kx, o / M] * w[ky,kx,o])
// (inference fuses the activation; it is applied to each output pixel while it is in cache).
void depthwise_forward(float* out, const float* in, const float* w, const float* b, const DepthwiseGeom& g,
                       Activation act = Activation::none);

// dout [n,oh,ow,c*M], in [n,h,w,c], w [kh,kw,c,M] -> din [n,h,w,c], dw [kh,kw,c,M], db [c*M]
// din[i,iy,ix,ic] = sum over the (y,x,ky,kx) with iy = y*sh - pad_top + ky, ix = x*sw - pad_left + kx
//                   and over j < M of dout[i,y,x,ic*M + j] * w[ky,kx,ic*M + j]
// dw[ky,kx,o]     = sum_{i,y,x} in[i, y*sh - pad_top + ky, x*sw - pad_left + kx, o / M] * dout[i,y,x,o]
// db[o]           = sum_{i,y,x} dout[i,y,x,o]
// Accumulates (+=) into din, dw and db; each may be nullptr, meaning "not needed". The results
// do not depend on the thread count.
void depthwise_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                        const float* w, const DepthwiseGeom& g);

}  // namespace qatc::nn
