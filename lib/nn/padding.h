// TensorFlow's 'same' / 'valid' padding rule, shared by convolutions and pooling.
#pragma once

#include <cstdint>

#include "core/error.h"

namespace qatc::nn {

enum class Padding { same, valid };

struct PadGeom {
  int64_t out, pad_before;
};

// valid: out = (in - k) / stride + 1, no padding.
// same:  out = ceil(in / stride); pad_total = max((out - 1) * stride + k - in, 0) and the
//        smaller half goes before, exactly as TensorFlow does (checkpoints and int8 models
//        converted from Keras depend on the same alignment).
inline PadGeom pad_geom(int64_t in, int64_t k, int64_t stride, Padding p) {
  if (in < 1 || k < 1 || stride < 1)
    fail("bad window geometry: input size {}, kernel size {}, stride {} (all must be >= 1)", in, k,
         stride);
  if (p == Padding::valid) {
    if (in < k)
      fail("'valid' padding needs input size >= kernel size, got input {} < kernel {}; use "
           "'same' padding or a smaller kernel",
           in, k);
    return {(in - k) / stride + 1, 0};
  }
  const int64_t out = (in + stride - 1) / stride;
  int64_t pad_total = (out - 1) * stride + k - in;
  if (pad_total < 0) pad_total = 0;
  return {out, pad_total / 2};
}

}  // namespace qatc::nn
