// Max, average and global average pooling for float training (NHWC).
#pragma once

#include <cstdint>

#include "nn/padding.h"

namespace qatc::nn {

struct Pool2DGeom {
  int64_t n, h, w, c;
  int64_t kh, kw, stride_h, stride_w;
  int64_t pad_top, pad_left;
  int64_t oh, ow;
};

// Throws qatc::Error for impossible geometry (sizes < 1, 'valid' window larger than the input).
Pool2DGeom pool2d_geom(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw,
                       int64_t stride_h, int64_t stride_w, Padding padding);

// in [n,h,w,c] -> out [n,oh,ow,c], argmax [n,oh,ow,c]
// out[i,y,x,ch] = max over the window's non-padded taps of in[i, y*sh - pad_top + ky,
// x*sw - pad_left + kx, ch]; argmax holds the flat index into `in` (whole batch) of the winner.
// Padding never wins; on ties the first tap in row-major (ky, kx) order wins. argmax may be
// nullptr (inference: no backward follows).
void maxpool2d_forward(float* out, int32_t* argmax, const float* in, const Pool2DGeom& g);

// dout [n,oh,ow,c], argmax [n,oh,ow,c] -> din [n,h,w,c]
// Forward: out[j] = in[argmax[j]], so din[argmax[j]] += dout[j]. Accumulates (+=) into din.
void maxpool2d_backward(float* din, const float* dout, const int32_t* argmax, const Pool2DGeom& g);

// in [n,h,w,c] -> out [n,oh,ow,c]
// out[i,y,x,ch] = (1/count) * sum over the window's non-padded taps of in[...], where count is
// the number of non-padded taps (TensorFlow's rule for 'same' padding).
void avgpool2d_forward(float* out, const float* in, const Pool2DGeom& g);

// dout [n,oh,ow,c] -> din [n,h,w,c]
// Forward: out[i,y,x,ch] = (1/count) * sum over non-padded taps of in[i, y*sh - pad_top + ky,
// x*sw - pad_left + kx, ch]. Accumulates (+=) into din.
void avgpool2d_backward(float* din, const float* dout, const Pool2DGeom& g);

// in [n,hw,c] -> out [n,c]; out[i,ch] = (1/hw) * sum_p in[i,p,ch]
void global_avgpool_forward(float* out, const float* in, int64_t n, int64_t hw, int64_t c);

// dout [n,c] -> din [n,hw,c]
// Forward: out[i,ch] = (1/hw) * sum_p in[i,p,ch]. Accumulates (+=) into din.
void global_avgpool_backward(float* din, const float* dout, int64_t n, int64_t hw, int64_t c);

}  // namespace qatc::nn
