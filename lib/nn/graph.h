// The model graph: nodes with an op kind, attributes and named inputs, in topological order.
// Float training, quantization and conversion are passes over this one structure.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/shape.h"
#include "nn/padding.h"
#include "recipe/recipe.h"

namespace qatc::nn {

enum class Op {
  input, conv2d, dense, relu, relu6, maxpool, avgpool, global_avgpool, batchnorm, flatten, dropout,
  depthwise_conv2d, pad, add, concat
};
const char* to_string(Op op);

struct Conv2DAttrs {
  int64_t kh, kw, stride_h, stride_w;
  Padding padding;
  bool use_bias;
};
// Output channel oc = ic * multiplier + j reads input channel ic only (Keras, TFLite).
struct DepthwiseAttrs {
  int64_t kh, kw, stride_h, stride_w, multiplier;
  Padding padding;
  bool use_bias;
};
// Spatial zero padding; a negative amount crops (cropping2d).
struct PadAttrs {
  int64_t top, bottom, left, right;
};
struct DenseAttrs {
  bool use_bias;
};
struct PoolAttrs {
  int64_t kh, kw, stride_h, stride_w;
  Padding padding;
};
struct BatchNormAttrs {
  float momentum, epsilon;
};
struct DropoutAttrs {
  float rate;
};
using Attrs = std::variant<std::monostate, Conv2DAttrs, DenseAttrs, PoolAttrs, BatchNormAttrs, DropoutAttrs,
                           DepthwiseAttrs, PadAttrs>;

// One parameter tensor in the flat parameter buffer.
struct ParamInfo {
  std::string name;  // "<layer>/kernel", "<layer>/bias", "<bn>/gamma", "<bn>/moving_mean", ...
  Shape shape;
  int64_t offset = 0;
  bool trainable = true;  // BatchNorm moving statistics are state, not trained
  recipe::Initializer init = recipe::Initializer::zeros;
  int64_t fan_in = 0, fan_out = 0;
};

struct Node {
  std::string name;
  Op op = Op::input;
  std::vector<int> inputs;  // indices of earlier nodes (add and concat: two or more)
  Shape shape;              // output shape of one example: [h, w, c] or [features]
  Attrs attrs;
  std::vector<int> params;  // indices into Graph::params; order fixed per op (see graph.cpp)
  std::string origin;       // recipe location of the layer, for messages
};

struct Graph {
  std::vector<Node> nodes;  // nodes[0] is the input; the last node is the output (logits)
  std::vector<ParamInfo> params;
  int64_t param_floats = 0;  // size of the flat buffer

  const Node& output() const { return nodes.back(); }
  int64_t classes() const { return numel(nodes.back().shape); }
  const ParamInfo& param(const Node& n, size_t i) const { return params[static_cast<size_t>(n.params.at(i))]; }
  int find(const std::string& name) const;        // node index, -1 when absent
  int find_param(const std::string& name) const;  // parameter index, -1 when absent
  int64_t trainable_count() const;
};

// Builds and shape-checks the graph of a recipe model. A layer's `activation` becomes its
// own node named "<layer>/relu" (or relu6) so that every pass sees one op per node.
// Raises qatc::Error naming the layer (and its recipe location) on any inconsistency.
Graph build_graph(const recipe::ModelSpec& spec);

// Fills the flat parameter buffer: Keras initializers (Glorot uniform kernels, zero biases,
// BatchNorm gamma 1, beta 0, moving mean 0, moving variance 1), reproducible from `seed`.
void init_params(const Graph& g, float* values, uint64_t seed);

// Multiply-accumulates of one forward pass for one example (conv, depthwise and dense), of one
// node and of the whole graph.
int64_t node_macs(const Graph& g, const Node& n);
int64_t macs_per_example(const Graph& g);

}  // namespace qatc::nn
