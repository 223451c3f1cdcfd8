// The quantization plan of a graph: which nodes carry a weight quantizer (conv2d, depthwise,
// dense; with the BatchNorm folded into them), where activations are fake-quantized (the model
// input, the end of every conv/depthwise/dense[+bn][+relu] and add[+relu] group, concat,
// global average pools, standalone activations), which nodes pass scale and zero point through
// (maxpool, flatten, dropout, pad; avgpool reuses its input's quantizer), and which layers stay
// in float (quant.overrides skip).
#pragma once

#include <string>
#include <vector>

#include "nn/graph.h"
#include "quant/qparams.h"
#include "recipe/recipe.h"

namespace qatc::quant {

struct WeightQuantizer {
  int node = -1;     // conv2d or dense
  int bn_node = -1;  // BatchNorm folded into it, or -1
  recipe::WeightQuantSpec spec;
  bool per_channel = true;
  QRange range{};
};

struct ActQuantizer {
  int node = -1;  // whose output is quantized
  recipe::ActivationQuantSpec spec;
  QRange range{};
};

struct QuantPlan {
  std::vector<WeightQuantizer> weights;
  std::vector<ActQuantizer> acts;
  // Per graph node: index into weights / acts, or -1. An avgpool's act index is its input's.
  std::vector<int> weight_of, act_of;
  std::vector<bool> skipped;  // per node: runs in float
  // Per node: the last node of its fused group (conv -> bn -> relu), or itself.
  std::vector<int> group_end;
  std::vector<int> group_start;
};

// Resolves quant settings (defaults + overrides) over the graph. Raises qatc::Error when an
// override matches no layer or skips a layer that cannot stay in float.
QuantPlan make_plan(const nn::Graph& g, const recipe::QuantSpec& spec);

// The act quantizer that governs a node's output values (walking back through
// pass-through nodes), or -1 when the values are float.
int governing_act(const nn::Graph& g, const QuantPlan& p, int node);

}  // namespace qatc::quant
