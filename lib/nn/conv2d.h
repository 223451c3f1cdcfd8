// 2-D convolution for float training (NHWC input, HWIO weights as Keras stores them).
#pragma once

#include <cstdint>

#include "nn/activation.h"
#include "nn/padding.h"

namespace qatc::nn {

// Everything the kernels need, computed once by conv2d_geom.
struct Conv2DGeom {
  int64_t n, h, w, c;
  int64_t kh, kw, oc;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left;
  int64_t oh, ow;
};

// Throws qatc::Error for impossible geometry (sizes < 1, 'valid' window larger than the input).
Conv2DGeom conv2d_geom(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw,
                       int64_t oc, int64_t stride_h, int64_t stride_w, Padding padding);

// Scratch floats that both conv2d_forward and conv2d_backward need (0 for 1x1 stride-1
// convolutions). Bounded to about 4M floats unless the patches of a single output row (of a
// single image, for strided convolutions) need more. Never grows when g.n shrinks, so a
// workspace sized for the largest batch serves every smaller one.
int64_t conv2d_workspace_floats(const Conv2DGeom& g);

// in [n,h,w,c], w [kh,kw,c,oc], b [oc] or nullptr, workspace [conv2d_workspace_floats(g)]
// -> out [n,oh,ow,oc]
// out[i,y,x,o] = b[o] + sum_{ky,kx,ci} in[i, y*stride_h - pad_top + ky, x*stride_w - pad_left + kx, ci]
//                                      * w[ky,kx,ci,o]     (input outside [0,h)x[0,w) reads as 0)
void conv2d_forward(float* out, const float* in, const float* w, const float* b,
                    const Conv2DGeom& g, float* workspace);

// Inference: out = act(conv2d_forward's out + residual), residual [n,oh,ow,oc] or nullptr (a
// residual add fused into the convolution; it may be out itself), per chunk of output rows.
// w is either
//  - [kh,kw,c,oc] (packed false): im2col + OpenBLAS. Each chunk is big enough that packing the
//    weights (OpenBLAS does, once per product) costs little next to its product; its output
//    starts as bias + residual and gets the activation right after the product, while it is in
//    cache. A 1x1 stride-1 convolution reads the input in place.
//  - or the same matrix [kh*kw*c, oc] laid out by pack_weights (packed true; needs
//    packed_gemm_supported()): gemm_packed reads every window straight from the input (or from
//    a zero-padded copy of it when windows run past its edges), with bias, residual and
//    activation applied in registers: no im2col, no per-product packing.
// With few chunks (small batches) the products are also cut by output channels, for the threads
// to share. The cuts depend on the geometry only, so the result does not depend on the thread
// count. workspace [conv2d_infer_workspace_floats(g, num_threads(), packed)]; h, w and the pads
// may describe a zero padding folded into the convolution (windows may run past the input on
// every side: those taps read as 0).
int64_t conv2d_infer_workspace_floats(const Conv2DGeom& g, int threads, bool packed);
void conv2d_infer(float* out, const float* in, const float* w, bool packed, const float* b, const float* residual,
                  const Conv2DGeom& g, Activation act, float* workspace);

// dout [n,oh,ow,oc], in [n,h,w,c], w [kh,kw,c,oc] -> din [n,h,w,c], dw [kh,kw,c,oc], db [oc]
// Forward: out[i,y,x,o] = b[o] + sum_{ky,kx,ci} in[i, y*sh - pad_top + ky, x*sw - pad_left + kx, ci]
//                                                * w[ky,kx,ci,o]
// Accumulates (+=) into din, dw and db; each may be nullptr, meaning "not needed".
void conv2d_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                     const float* w, const Conv2DGeom& g, float* workspace);

}  // namespace qatc::nn
