// Quantization plan construction.
#include "quant/plan.h"

#include <fnmatch.h>

#include "core/error.h"

namespace qatc::quant {
namespace {

std::vector<std::vector<int>> consumers_of(const nn::Graph& g) {
  std::vector<std::vector<int>> c(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int in : g.nodes[i].inputs) c[static_cast<size_t>(in)].push_back(static_cast<int>(i));
  return c;
}

bool matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

bool is_activation(nn::Op op) { return op == nn::Op::relu || op == nn::Op::relu6; }

}  // namespace

QuantPlan make_plan(const nn::Graph& g, const recipe::QuantSpec& spec) {
  const size_t nn_ = g.nodes.size();
  QuantPlan p;
  p.weight_of.assign(nn_, -1);
  p.act_of.assign(nn_, -1);
  p.skipped.assign(nn_, false);
  p.group_end.resize(nn_);
  p.group_start.resize(nn_);
  for (size_t i = 0; i < nn_; ++i) p.group_end[i] = p.group_start[i] = static_cast<int>(i);
  const auto cons = consumers_of(g);

  // Fused groups: conv2d/depthwise_conv2d/dense, then a BatchNorm (convolutions only), then
  // ReLU/ReLU6; or an add, then ReLU/ReLU6. Each member is the single consumer of the one
  // before, and the members are consecutive nodes.
  for (size_t i = 0; i < nn_; ++i) {
    const nn::Op op = g.nodes[i].op;
    const bool conv = op == nn::Op::conv2d || op == nn::Op::depthwise_conv2d;
    // A BatchNorm not folded into a convolution (ResNet v2's pre-activation) is a per-channel
    // affine map of its own; the integer model runs it as a 1x1 depthwise convolution.
    const bool lone_bn = op == nn::Op::batchnorm && p.group_start[i] == static_cast<int>(i);
    if (!conv && op != nn::Op::dense && op != nn::Op::add && !lone_bn) continue;
    int end = static_cast<int>(i);
    auto next = [&](int n) {
      const auto& c = cons[static_cast<size_t>(n)];
      return c.size() == 1 && c[0] == n + 1 ? c[0] : -1;
    };
    int bn = -1;
    int nx = next(end);
    if (conv && nx >= 0 && g.nodes[static_cast<size_t>(nx)].op == nn::Op::batchnorm) {
      bn = nx;
      end = nx;
      nx = next(end);
    }
    if (nx >= 0 && is_activation(g.nodes[static_cast<size_t>(nx)].op)) end = nx;
    for (int k = static_cast<int>(i); k <= end; ++k) {
      p.group_end[static_cast<size_t>(k)] = end;
      p.group_start[static_cast<size_t>(k)] = static_cast<int>(i);
    }
    if (op == nn::Op::add || lone_bn) continue;
    WeightQuantizer w;
    w.node = static_cast<int>(i);
    w.bn_node = bn;
    p.weight_of[i] = static_cast<int>(p.weights.size());
    p.weights.push_back(w);
  }

  // Settings per group (keyed by the group's first node), defaults then overrides in order.
  std::vector<recipe::WeightQuantSpec> wspec(nn_, spec.weights);
  std::vector<recipe::ActivationQuantSpec> aspec(nn_, spec.activations);
  for (const auto& ov : spec.overrides) {
    bool any = false;
    for (size_t i = 0; i < nn_; ++i) {
      if (!matches(ov.match, g.nodes[i].name)) continue;
      if (p.group_start[i] != static_cast<int>(i)) {
        // A BatchNorm or activation fused into a conv/dense is quantized as part of it.
        const auto& head = g.nodes[static_cast<size_t>(p.group_start[i])];
        if (matches(ov.match, head.name)) continue;
        fail("{}: quant override '{}' matches layer '{}', which is fused into '{}' ({}); match '{}' instead",
             ov.origin.where, ov.match, g.nodes[i].name, head.name, nn::to_string(head.op), head.name);
      }
      any = true;
      if (ov.weights) wspec[i] = *ov.weights;
      if (ov.activations) aspec[i] = *ov.activations;
      if (ov.skip) {
        const nn::Op op = g.nodes[i].op;
        if (op != nn::Op::conv2d && op != nn::Op::dense)
          fail("{}: quant override '{}' skips layer '{}' ({}), but only conv2d and dense layers can stay in float",
               ov.origin.where, ov.match, g.nodes[i].name, nn::to_string(op));
        for (int k = static_cast<int>(i); k <= p.group_end[i]; ++k) p.skipped[static_cast<size_t>(k)] = true;
      }
    }
    if (!any) {
      std::string names;
      for (size_t i = 1; i < nn_; ++i)
        if (p.group_start[i] == static_cast<int>(i)) names += (names.empty() ? "" : ", ") + g.nodes[i].name;
      fail("{}: quant override match '{}' matches no layer; layers are: {}", ov.origin.where, ov.match, names);
    }
  }

  for (auto& w : p.weights) {
    const auto& ws = wspec[static_cast<size_t>(w.node)];
    w.spec = ws;
    const bool conv = g.nodes[static_cast<size_t>(w.node)].op != nn::Op::dense;
    w.per_channel = ws.granularity ? *ws.granularity == recipe::Granularity::per_channel : conv;
    w.range = qrange(static_cast<int>(ws.bits), ws.symmetric, ws.narrow_range);
  }
  auto add_act = [&](size_t node, const recipe::ActivationQuantSpec& s) {
    ActQuantizer a;
    a.node = static_cast<int>(node);
    a.spec = s;
    a.range = qrange(static_cast<int>(s.bits), s.symmetric, false);
    p.act_of[node] = static_cast<int>(p.acts.size());
    p.acts.push_back(a);
  };

  add_act(0, spec.activations);  // the model input
  for (size_t i = 1; i < nn_; ++i) {
    const nn::Node& n = g.nodes[i];
    const int start = p.group_start[i];
    if (p.group_end[i] != static_cast<int>(i)) continue;  // inside a group
    switch (n.op) {
      case nn::Op::maxpool:
      case nn::Op::flatten:
      case nn::Op::dropout:
      case nn::Op::pad:
        break;  // same values (padding adds exact zeros), same grid
      case nn::Op::avgpool:
        // The int8 average pool keeps its input's scale and zero point (as TFLite requires);
        // its output is rounded back onto that grid.
        p.act_of[i] = governing_act(g, p, n.inputs[0]);
        break;
      default:
        add_act(i, aspec[static_cast<size_t>(start)]);
    }
  }
  return p;
}

int governing_act(const nn::Graph& g, const QuantPlan& p, int node) {
  for (;;) {
    if (p.act_of[static_cast<size_t>(node)] >= 0) return p.act_of[static_cast<size_t>(node)];
    const nn::Node& n = g.nodes[static_cast<size_t>(node)];
    if (n.op != nn::Op::maxpool && n.op != nn::Op::flatten && n.op != nn::Op::dropout && n.op != nn::Op::pad)
      return -1;
    node = n.inputs[0];
  }
}

}  // namespace qatc::quant
