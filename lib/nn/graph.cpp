// Graph construction from a recipe model, shape inference and parameter initialization.
#include "nn/graph.h"

#include <cmath>
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"

namespace qatc::nn {
namespace {

Padding to_padding(recipe::PaddingKind p) { return p == recipe::PaddingKind::same ? Padding::same : Padding::valid; }

class Builder {
 public:
  explicit Builder(Graph& g) : g_(g) {}

  int add_node(Node n) {
    if (by_name_.count(n.name)) fail("{}: layer name '{}' is used twice", n.origin, n.name);
    by_name_[n.name] = static_cast<int>(g_.nodes.size());
    g_.nodes.push_back(std::move(n));
    return static_cast<int>(g_.nodes.size()) - 1;
  }
  // A layer's name refers to its final node (its activation, when it has one), as in Keras.
  void alias(const std::string& name, int node) { by_name_[name] = node; }
  int lookup(const std::string& name, const std::string& origin, const std::string& layer) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end())
      fail("{}: layer '{}' names input '{}', but no earlier layer has that name", origin, layer, name);
    return it->second;
  }
  int add_param(Node& n, const std::string& suffix, Shape shape, bool trainable, recipe::Initializer init,
                int64_t fan_in = 0, int64_t fan_out = 0) {
    ParamInfo p;
    p.name = n.name + "/" + suffix;
    p.offset = g_.param_floats;
    p.trainable = trainable;
    p.init = init;
    p.fan_in = fan_in;
    p.fan_out = fan_out;
    g_.param_floats += numel(shape);
    p.shape = std::move(shape);
    g_.params.push_back(std::move(p));
    n.params.push_back(static_cast<int>(g_.params.size()) - 1);
    return n.params.back();
  }

 private:
  Graph& g_;
  std::map<std::string, int> by_name_;
};

[[noreturn]] void layer_error(const recipe::LayerSpec& l, const std::string& msg) {
  fail("{}: layer '{}' ({}): {}", l.origin.where, l.name, recipe::to_string(l.type), msg);
}

void require_image(const recipe::LayerSpec& l, const Shape& in) {
  if (in.size() != 3)
    layer_error(l, "needs an image input [h, w, c] but gets " + qatc::to_string(in) + "; remove the flatten before it");
}

}  // namespace

const char* to_string(Op op) {
  switch (op) {
    case Op::input: return "input";
    case Op::conv2d: return "conv2d";
    case Op::dense: return "dense";
    case Op::relu: return "relu";
    case Op::relu6: return "relu6";
    case Op::maxpool: return "maxpool";
    case Op::avgpool: return "avgpool";
    case Op::global_avgpool: return "global_avgpool";
    case Op::batchnorm: return "batchnorm";
    case Op::flatten: return "flatten";
    case Op::dropout: return "dropout";
    case Op::depthwise_conv2d: return "depthwise_conv2d";
    case Op::pad: return "pad";
    case Op::add: return "add";
    case Op::concat: return "concat";
  }
  return "?";
}

int Graph::find(const std::string& name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == name) return static_cast<int>(i);
  return -1;
}

int Graph::find_param(const std::string& name) const {
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].name == name) return static_cast<int>(i);
  return -1;
}

int64_t Graph::trainable_count() const {
  int64_t n = 0;
  for (const auto& p : params)
    if (p.trainable) n += numel(p.shape);
  return n;
}

Graph build_graph(const recipe::ModelSpec& spec) {
  Graph g;
  Builder b(g);
  Node input;
  input.name = "input";
  input.op = Op::input;
  input.shape = Shape(spec.input.begin(), spec.input.end());
  input.origin = "model.input";
  int prev = b.add_node(std::move(input));

  for (const auto& l : spec.layers) {
    Node n;
    n.name = l.name;
    n.origin = l.origin.where;
    if (l.inputs.empty()) {
      n.inputs.push_back(prev);
    } else {
      for (const auto& in : l.inputs) n.inputs.push_back(b.lookup(in, l.origin.where, l.name));
      const bool merge = l.type == recipe::LayerType::add || l.type == recipe::LayerType::concat;
      if (!merge && n.inputs.size() != 1)
        layer_error(l, "takes exactly one input, got " + std::to_string(n.inputs.size()));
    }
    const Shape in = g.nodes[static_cast<size_t>(n.inputs[0])].shape;
    auto input_shape = [&](size_t k) { return g.nodes[static_cast<size_t>(n.inputs[k])].shape; };
    auto input_name = [&](size_t k) { return g.nodes[static_cast<size_t>(n.inputs[k])].name; };
    recipe::Activation act = recipe::Activation::none;
    try {
      switch (l.type) {
        case recipe::LayerType::conv2d: {
          const auto& s = std::get<recipe::Conv2DSpec>(l.attrs);
          require_image(l, in);
          n.op = Op::conv2d;
          Conv2DAttrs a{s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, to_padding(s.padding), s.use_bias};
          PadGeom ph = pad_geom(in[0], a.kh, a.stride_h, a.padding);
          PadGeom pw = pad_geom(in[1], a.kw, a.stride_w, a.padding);
          n.shape = {ph.out, pw.out, s.filters};
          n.attrs = a;
          b.add_param(n, "kernel", {a.kh, a.kw, in[2], s.filters}, true, s.kernel_initializer,
                      a.kh * a.kw * in[2], a.kh * a.kw * s.filters);
          if (a.use_bias) b.add_param(n, "bias", {s.filters}, true, s.bias_initializer);
          act = s.activation;
          break;
        }
        case recipe::LayerType::dense: {
          const auto& s = std::get<recipe::DenseSpec>(l.attrs);
          if (in.size() != 1) layer_error(l, "needs a flat input but gets " + qatc::to_string(in) + "; add a flatten layer before it");
          n.op = Op::dense;
          n.shape = {s.units};
          n.attrs = DenseAttrs{s.use_bias};
          b.add_param(n, "kernel", {in[0], s.units}, true, s.kernel_initializer, in[0], s.units);
          if (s.use_bias) b.add_param(n, "bias", {s.units}, true, s.bias_initializer);
          act = s.activation;
          break;
        }
        case recipe::LayerType::maxpool:
        case recipe::LayerType::avgpool: {
          const auto& s = std::get<recipe::Pool2DSpec>(l.attrs);
          require_image(l, in);
          n.op = l.type == recipe::LayerType::maxpool ? Op::maxpool : Op::avgpool;
          PoolAttrs a{s.pool_h, s.pool_w, s.stride_h, s.stride_w, to_padding(s.padding)};
          PadGeom ph = pad_geom(in[0], a.kh, a.stride_h, a.padding);
          PadGeom pw = pad_geom(in[1], a.kw, a.stride_w, a.padding);
          n.shape = {ph.out, pw.out, in[2]};
          n.attrs = a;
          break;
        }
        case recipe::LayerType::global_avgpool:
          require_image(l, in);
          n.op = Op::global_avgpool;
          n.shape = {in[2]};
          break;
        case recipe::LayerType::batchnorm: {
          const auto& s = std::get<recipe::BatchNormSpec>(l.attrs);
          n.op = Op::batchnorm;
          n.shape = in;
          n.attrs = BatchNormAttrs{static_cast<float>(s.momentum), static_cast<float>(s.epsilon)};
          const int64_t c = in.back();
          b.add_param(n, "gamma", {c}, true, recipe::Initializer::ones);
          b.add_param(n, "beta", {c}, true, recipe::Initializer::zeros);
          b.add_param(n, "moving_mean", {c}, false, recipe::Initializer::zeros);
          b.add_param(n, "moving_variance", {c}, false, recipe::Initializer::ones);
          break;
        }
        case recipe::LayerType::relu:
        case recipe::LayerType::relu6:
          n.op = l.type == recipe::LayerType::relu ? Op::relu : Op::relu6;
          n.shape = in;
          break;
        case recipe::LayerType::flatten:
          n.op = Op::flatten;
          n.shape = {numel(in)};
          break;
        case recipe::LayerType::depthwise_conv2d:
        case recipe::LayerType::separable_conv2d: {
          const auto& s = std::get<recipe::DepthwiseSpec>(l.attrs);
          require_image(l, in);
          const bool separable = l.type == recipe::LayerType::separable_conv2d;
          DepthwiseAttrs a{s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.depth_multiplier, to_padding(s.padding),
                           s.use_bias && !separable};
          PadGeom ph = pad_geom(in[0], a.kh, a.stride_h, a.padding);
          PadGeom pw = pad_geom(in[1], a.kw, a.stride_w, a.padding);
          const int64_t oc = in[2] * a.multiplier;
          Node& d = n;
          d.op = Op::depthwise_conv2d;
          d.shape = {ph.out, pw.out, oc};
          d.attrs = a;
          if (separable) d.name = l.name + "/depthwise";
          // Keras' fans of a kernel [kh, kw, c, m]: fan_in = kh*kw*c, fan_out = kh*kw*m.
          b.add_param(d, "kernel", {a.kh, a.kw, in[2], a.multiplier}, true,
                      s.kernel_initializer, a.kh * a.kw * in[2], a.kh * a.kw * a.multiplier);
          if (a.use_bias) b.add_param(d, "bias", {oc}, true, s.bias_initializer);
          act = s.activation;
          if (separable) {
            // The pointwise half: a 1x1 conv2d named as the layer, reading the depthwise output.
            const int dw = b.add_node(std::move(d));
            Node pw_node;
            pw_node.name = l.name;
            pw_node.origin = l.origin.where;
            pw_node.inputs = {dw};
            pw_node.op = Op::conv2d;
            pw_node.shape = {ph.out, pw.out, s.filters};
            pw_node.attrs = Conv2DAttrs{1, 1, 1, 1, Padding::valid, s.use_bias};
            b.add_param(pw_node, "kernel", {1, 1, oc, s.filters}, true, s.kernel_initializer, oc, s.filters);
            if (s.use_bias) b.add_param(pw_node, "bias", {s.filters}, true, s.bias_initializer);
            n = std::move(pw_node);
          }
          break;
        }
        case recipe::LayerType::zero_padding2d:
        case recipe::LayerType::cropping2d: {
          const auto& s = std::get<recipe::PadSpec>(l.attrs);
          require_image(l, in);
          const int64_t sign = l.type == recipe::LayerType::cropping2d ? -1 : 1;
          PadAttrs a{sign * s.top, sign * s.bottom, sign * s.left, sign * s.right};
          const int64_t oh = in[0] + a.top + a.bottom, ow = in[1] + a.left + a.right;
          if (oh < 1 || ow < 1)
            layer_error(l, "crops " + qatc::to_string(in) + " to nothing; crop less");
          n.op = Op::pad;
          n.shape = {oh, ow, in[2]};
          n.attrs = a;
          break;
        }
        case recipe::LayerType::add:
        case recipe::LayerType::concat: {
          const bool add = l.type == recipe::LayerType::add;
          n.op = add ? Op::add : Op::concat;
          Shape out = in;
          for (size_t k = 1; k < n.inputs.size(); ++k) {
            const Shape s = input_shape(k);
            const bool same_outer = s.size() == in.size() && std::equal(s.begin(), s.end() - 1, in.begin());
            if (add ? s != in : !same_outer)
              layer_error(l, fmt::format("input '{}' has shape {} but input '{}' has {}; {}", input_name(k),
                                         qatc::to_string(s), input_name(0), qatc::to_string(in),
                                         add ? "add needs equal shapes" : "concat needs equal shapes but for the channels"));
            if (!add) out.back() += s.back();
          }
          n.shape = out;
          if (add) act = std::get<recipe::MergeSpec>(l.attrs).activation;
          break;
        }
        case recipe::LayerType::dropout:
          n.op = Op::dropout;
          n.shape = in;
          n.attrs = DropoutAttrs{static_cast<float>(std::get<recipe::DropoutSpec>(l.attrs).rate)};
          break;
      }
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.rfind(l.origin.where, 0) == 0) throw;
      layer_error(l, msg);
    }
    prev = b.add_node(std::move(n));
    if (act != recipe::Activation::none) {
      Node a;
      a.name = l.name + "/" + recipe::to_string(act);
      a.op = act == recipe::Activation::relu ? Op::relu : Op::relu6;
      a.inputs = {prev};
      a.shape = g.nodes[static_cast<size_t>(prev)].shape;
      a.origin = l.origin.where;
      prev = b.add_node(std::move(a));
      b.alias(l.name, prev);
    }
  }
  if (g.output().shape.size() != 1)
    fail("{}: the last layer '{}' must produce class logits [classes], got {}; end the model with a dense layer",
         g.output().origin, g.output().name, qatc::to_string(g.output().shape));
  // Every node except the output must feed something, or it is dead weight in every pass.
  std::vector<int> uses(g.nodes.size(), 0);
  for (const auto& n : g.nodes)
    for (int i : n.inputs) ++uses[static_cast<size_t>(i)];
  for (size_t i = 0; i + 1 < g.nodes.size(); ++i)
    if (uses[i] == 0)
      fail("{}: layer '{}' is not used by any later layer; remove it or name it in an 'inputs' list",
           g.nodes[i].origin, g.nodes[i].name);
  return g;
}

void init_params(const Graph& g, float* values, uint64_t seed) {
  for (size_t pi = 0; pi < g.params.size(); ++pi) {
    const ParamInfo& p = g.params[pi];
    Rng rng(derive_seed(seed, 0x1417, pi));
    float* v = values + p.offset;
    const int64_t n = numel(p.shape);
    const double fan_in = static_cast<double>(p.fan_in), fan_out = static_cast<double>(p.fan_out);
    switch (p.init) {
      case recipe::Initializer::zeros:
        for (int64_t i = 0; i < n; ++i) v[i] = 0.0f;
        break;
      case recipe::Initializer::ones:
        for (int64_t i = 0; i < n; ++i) v[i] = 1.0f;
        break;
      case recipe::Initializer::glorot_uniform:
      case recipe::Initializer::he_uniform: {
        double limit = p.init == recipe::Initializer::glorot_uniform ? std::sqrt(6.0 / (fan_in + fan_out))
                                                                      : std::sqrt(6.0 / fan_in);
        for (int64_t i = 0; i < n; ++i) v[i] = rng.uniform(static_cast<float>(-limit), static_cast<float>(limit));
        break;
      }
      case recipe::Initializer::glorot_normal:
      case recipe::Initializer::he_normal: {
        // Keras draws from a normal truncated at 2 stddev; the stddev is corrected for the truncation.
        double stddev = p.init == recipe::Initializer::glorot_normal ? std::sqrt(2.0 / (fan_in + fan_out))
                                                                      : std::sqrt(2.0 / fan_in);
        stddev /= 0.87962566103423978;
        for (int64_t i = 0; i < n; ++i) {
          float x;
          do x = rng.normal();
          while (std::fabs(x) > 2.0f);
          v[i] = static_cast<float>(x * stddev);
        }
        break;
      }
    }
  }
}

int64_t node_macs(const Graph& g, const Node& n) {
  switch (n.op) {
    case Op::conv2d: return n.shape[0] * n.shape[1] * numel(g.param(n, 0).shape);
    case Op::depthwise_conv2d: return numel(n.shape) * g.param(n, 0).shape[0] * g.param(n, 0).shape[1];
    case Op::dense: return numel(g.param(n, 0).shape);
    default: return 0;
  }
}

int64_t macs_per_example(const Graph& g) {
  int64_t macs = 0;
  for (const auto& n : g.nodes) macs += node_macs(g, n);
  return macs;
}

}  // namespace qatc::nn
