// THE curated shape lists of the int8 kernels, shared by the ref tests, the opt == ref tests
// and the benchmarks (so what is benchmarked is tested). Add a shape here, not in one test.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "nn/padding.h"

namespace qatc::test {

using nn::Padding;

// A conv-like window over [n, h, w, c]. Conv2D uses oc; DepthwiseConv2D uses
// depth_multiplier (its output has c * depth_multiplier channels); pools use neither.
struct ConvShape {
  int64_t n, h, w, c, oc, kh, kw, stride_h, stride_w;
  Padding padding;
  int64_t depth_multiplier = 1;
};

// Sizes 1..10, primes, powers of two +-1, deep and narrow channel counts, kernels
// 1x1/3x3/5x5/1x7/7x1, strides 1 and 2, 'same' (asymmetric pads included) and 'valid'.
inline const std::vector<ConvShape>& conv_shapes() {
  using P = Padding;
  static const std::vector<ConvShape> shapes = {
      // n  h   w   c     oc   kh kw sh sw  padding  dm
      {1, 1, 1, 1, 1, 1, 1, 1, 1, P::valid},             // smallest
      {1, 1, 1, 7, 3, 1, 1, 1, 1, P::same},              // single pixel
      {1, 1, 1, 3, 2, 3, 3, 1, 1, P::same, 2},           // 3x3 on 1x1: pads only
      {1, 1, 1, 1, 1, 1, 1, 2, 2, P::same},              // stride larger than input
      {2, 2, 2, 2, 4, 3, 3, 1, 1, P::same},              // batch 2
      {1, 3, 3, 3, 5, 3, 3, 1, 1, P::valid, 3},          // one output pixel
      {1, 3, 2, 5, 1, 1, 1, 2, 1, P::valid},             // 1x1 strided, odd sizes
      {1, 4, 4, 2, 3, 5, 5, 1, 1, P::same},              // kernel larger than input
      {1, 5, 5, 3, 4, 3, 3, 2, 2, P::same},              // odd input, stride 2: pads 1/1
      {1, 6, 6, 3, 2, 2, 2, 2, 2, P::valid},             // maxpool-like 2x2/2
      {1, 6, 9, 2, 3, 1, 7, 1, 2, P::valid, 2},          // 1x7 valid, stride 1x2
      {1, 7, 7, 8, 8, 3, 3, 1, 1, P::same},              // 7x7x8
      {1, 7, 7, 3, 5, 1, 7, 1, 1, P::same},              // 1x7
      {1, 7, 7, 3, 5, 7, 1, 1, 1, P::same},              // 7x1
      {1, 8, 8, 16, 16, 3, 3, 2, 2, P::same},            // even input, stride 2: pads 0/1
      {1, 9, 9, 15, 17, 3, 3, 2, 2, P::valid},           // 2^4 - 1, 2^4 + 1 channels
      {1, 9, 9, 16, 32, 1, 1, 2, 2, P::valid},           // 1x1 stride 2 (ResNet shortcut)
      {1, 10, 10, 4, 6, 5, 5, 1, 1, P::same, 2},         // 5x5 same
      {1, 11, 13, 5, 3, 5, 5, 2, 2, P::same},            // primes, 5x5 stride 2
      {1, 5, 5, 7, 11, 5, 5, 1, 1, P::valid},            // 5x5 valid -> 1x1
      {1, 1, 9, 4, 4, 1, 7, 1, 1, P::same},              // height 1
      {1, 12, 12, 1, 1, 3, 3, 2, 2, P::same},            // narrowest channels
      {3, 4, 4, 31, 33, 1, 1, 1, 1, P::valid},           // 1x1 conv == dense, batch 3
      {1, 4, 4, 63, 65, 3, 3, 1, 1, P::same},            // 2^6 - 1 in, 2^6 + 1 out
      {1, 5, 5, 129, 127, 3, 3, 1, 1, P::same},          // 2^7 + 1 in, 2^7 - 1 out
      {1, 2, 2, 255, 1, 3, 3, 1, 1, P::same},            // deep in, narrow out
      {1, 3, 3, 1, 257, 3, 3, 1, 1, P::same},            // narrow in, wide out
      {1, 2, 2, 512, 64, 3, 3, 2, 2, P::same},           // deep, stride 2
      {1, 7, 7, 1024, 8, 1, 1, 1, 1, P::valid},          // deep 1x1 (MobileNet tail)
      {1, 17, 15, 3, 8, 3, 3, 2, 2, P::same},            // primes, first-layer-like
      {2, 33, 31, 3, 16, 3, 3, 2, 2, P::same},           // 2^5 + 1, 2^5 - 1
      {1, 28, 28, 1, 12, 3, 3, 1, 1, P::valid},          // the MNIST model's conv
      {1, 14, 14, 32, 32, 3, 3, 2, 2, P::same},          // MobileNet-like block
      {1, 28, 28, 64, 64, 3, 3, 1, 1, P::same},          // a mid-size layer (benchmarks)
  };
  return shapes;
}

// Output size and pads of one axis by TensorFlow's rule (nn::pad_geom):
// same: out = ceil(in / stride), pad_total = max((out - 1) * stride + k - in, 0), smaller
// half before; valid: out = (in - k) / stride + 1, no padding.
struct ConvGeometry {
  int64_t oh, ow, pad_top, pad_left;
};

inline ConvGeometry geometry(const ConvShape& s) {
  const auto gh = nn::pad_geom(s.h, s.kh, s.stride_h, s.padding);
  const auto gw = nn::pad_geom(s.w, s.kw, s.stride_w, s.padding);
  return {gh.out, gw.out, gh.pad_before, gw.pad_before};
}

inline std::string describe(const ConvShape& s) {
  return fmt::format("n{} {}x{}x{} oc{} dm{} k{}x{} s{}x{} {}", s.n, s.h, s.w, s.c, s.oc,
                     s.depth_multiplier, s.kh, s.kw, s.stride_h, s.stride_w,
                     s.padding == Padding::same ? "same" : "valid");
}

struct DenseShape {
  int64_t n, in_features, out_features;
};

inline const std::vector<DenseShape>& dense_shapes() {
  static const std::vector<DenseShape> shapes = {
      {1, 1, 1},    {1, 1, 10},    {2, 3, 5},      {1, 7, 1},     {4, 16, 15},
      {3, 17, 31},  {1, 63, 64},   {2, 65, 33},    {1, 128, 127}, {5, 9, 2},
      {1, 2352, 10},  // the MNIST model's dense: 14x14x12 -> 10
      {2, 1024, 129}, {1, 4097, 3},
  };
  return shapes;
}

// Element counts of elementwise kernels (add, quantize, concat rows): small sizes, powers of
// two +-1 around SIMD widths, and a few large ones.
inline const std::vector<int64_t>& elementwise_sizes() {
  static const std::vector<int64_t> sizes = {1,  2,  3,   4,   5,   6,   7,   8,    9,    10,
                                             15, 16, 17,  31,  32,  33,  63,  64,   65,   127,
                                             128, 129, 255, 256, 257, 1000, 4099, 65537};
  return sizes;
}

// Channel splits of a channel concat: [outer, c_k] inputs.
struct ConcatShape {
  int64_t outer;
  std::vector<int64_t> channels;
};

inline const std::vector<ConcatShape>& concat_shapes() {
  static const std::vector<ConcatShape> shapes = {
      {1, {1}},           {1, {1, 1}},        {3, {2, 5}},          {7, {16, 16}},
      {5, {1, 31, 2}},    {49, {64, 64}},     {9, {3, 17, 33, 1}},  {4, {255, 1}},
      {16, {8, 8, 8, 8}}, {100, {96, 32, 32}},
  };
  return shapes;
}

}  // namespace qatc::test
