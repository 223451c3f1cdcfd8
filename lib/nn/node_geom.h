// The kernel geometry of a graph node at a batch size, shared by the training engine and the
// inference executor.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/conv2d.h"
#include "nn/depthwise.h"
#include "nn/graph.h"
#include "nn/merge.h"
#include "nn/pool.h"

namespace qatc::nn {

Conv2DGeom conv_geom(const Graph& g, const Node& n, int64_t batch);           // conv2d
DepthwiseGeom dw_geom(const Graph& g, const Node& n, int64_t batch);          // depthwise_conv2d
Pool2DGeom pool_geom(const Graph& g, const Node& n, int64_t batch);           // maxpool, avgpool
PadGeom2D pad_geom_of(const Graph& g, const Node& n, int64_t batch);          // pad
std::vector<int64_t> concat_channels(const Graph& g, const Node& n);          // concat: per input

}  // namespace qatc::nn
