// Node geometry from the graph's shapes and attributes.
#include "nn/node_geom.h"

#include <variant>

namespace qatc::nn {
namespace {

const Shape& input_shape(const Graph& g, const Node& n) { return g.nodes[static_cast<size_t>(n.inputs[0])].shape; }

}  // namespace

Conv2DGeom conv_geom(const Graph& g, const Node& n, int64_t batch) {
  const Shape& in = input_shape(g, n);
  const auto& a = std::get<Conv2DAttrs>(n.attrs);
  return conv2d_geom(batch, in[0], in[1], in[2], a.kh, a.kw, n.shape[2], a.stride_h, a.stride_w, a.padding);
}

DepthwiseGeom dw_geom(const Graph& g, const Node& n, int64_t batch) {
  const Shape& in = input_shape(g, n);
  const auto& a = std::get<DepthwiseAttrs>(n.attrs);
  return depthwise_geom(batch, in[0], in[1], in[2], a.kh, a.kw, a.multiplier, a.stride_h, a.stride_w, a.padding);
}

Pool2DGeom pool_geom(const Graph& g, const Node& n, int64_t batch) {
  const Shape& in = input_shape(g, n);
  const auto& a = std::get<PoolAttrs>(n.attrs);
  return pool2d_geom(batch, in[0], in[1], in[2], a.kh, a.kw, a.stride_h, a.stride_w, a.padding);
}

PadGeom2D pad_geom_of(const Graph& g, const Node& n, int64_t batch) {
  const Shape& in = input_shape(g, n);
  const auto& a = std::get<PadAttrs>(n.attrs);
  return pad_geom2d(batch, in[0], in[1], in[2], a.top, a.bottom, a.left, a.right);
}

std::vector<int64_t> concat_channels(const Graph& g, const Node& n) {
  std::vector<int64_t> ch;
  for (int k : n.inputs) ch.push_back(g.nodes[static_cast<size_t>(k)].shape.back());
  return ch;
}

}  // namespace qatc::nn
