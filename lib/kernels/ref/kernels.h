// Reference int8 kernels: scalar loops, int32 accumulators, written to be obviously right.
// They are the oracle the optimized kernels (qatc::opt, same names and signatures) must
// match bit for bit. Every kernel first calls the shared kernels::check. Flatten and Reshape
// need no kernel: NHWC data is already in flattened order.
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace qatc::ref {

// in [n, h, w, c] -> out [n, oh, ow, oc]
void conv2d_qs8(int8_t* out, const int8_t* in, const kernels::Conv2DParams& p);

// in [n, h, w, c] -> out [n, oh, ow, c * depth_multiplier]
void depthwise_conv2d_qs8(int8_t* out, const int8_t* in, const kernels::DepthwiseConv2DParams& p);

// in [n, in_features] -> out [n, out_features]
void dense_qs8(int8_t* out, const int8_t* in, const kernels::DenseParams& p);

// a, b, out [size]; out may be a or b (in place).
void add_qs8(int8_t* out, const int8_t* a, const int8_t* b, const kernels::AddParams& p);

// inputs[k] [outer, channels_k] -> out [outer, sum_k channels_k]
void concat_qs8(int8_t* out, const int8_t* const* inputs, const kernels::ConcatParams& p);

// in [n, h, w, c] -> out [n, oh, ow, c], same scale and zero point.
void maxpool2d_qs8(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p);
void avgpool2d_qs8(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p);

// in [n, h, w, c] -> out [n, oh, ow, c], same scale and zero point.
void pad_qs8(int8_t* out, const int8_t* in, const kernels::PadParams& p);

// in [n, hw, c] -> out [n, c]
void global_avgpool_qs8(int8_t* out, const int8_t* in, const kernels::GlobalAvgPoolParams& p);

// uint8 pixels in [count] -> int8 out [count]
void quantize_u8_to_qs8(int8_t* out, const uint8_t* in, int64_t count,
                        const kernels::QuantizeParams& p);

}  // namespace qatc::ref
