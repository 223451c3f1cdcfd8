// Tests for DAG graphs: build_graph on models with named `inputs` (add, concat, depthwise,
// separable, zero padding, cropping), shapes and parameter counts worked out by hand, a
// whole-graph finite-difference gradient check through FloatEngine (a node read by several
// consumers must collect every consumer's gradient), and the build errors, which must name the
// offending layer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"
#include "nn/depthwise.h"
#include "nn/engine.h"
#include "nn/gradcheck.h"
#include "nn/graph.h"
#include "recipe/load.h"
#include "recipe/recipe.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_grad;
using qatc::test::random_floats;
using recipe::LayerSpec;
using recipe::LayerType;
using recipe::ModelSpec;

namespace {

// ---- recipe layers in code ----

LayerSpec layer(LayerType t, const std::string& name, std::vector<std::string> inputs,
                decltype(LayerSpec::attrs) attrs) {
  LayerSpec l;
  l.type = t;
  l.name = name;
  l.inputs = std::move(inputs);
  l.attrs = std::move(attrs);
  l.origin.where = "test.yaml:" + name;
  return l;
}

LayerSpec conv(const std::string& name, int64_t filters, int64_t k, int64_t stride, bool same, bool bias,
               std::vector<std::string> in = {}, recipe::Activation act = recipe::Activation::none) {
  recipe::Conv2DSpec s;
  s.filters = filters;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.padding = same ? recipe::PaddingKind::same : recipe::PaddingKind::valid;
  s.use_bias = bias;
  s.activation = act;
  return layer(LayerType::conv2d, name, std::move(in), s);
}

LayerSpec depthwise(const std::string& name, int64_t k, int64_t stride, int64_t multiplier, bool same, bool bias,
                    std::vector<std::string> in = {}) {
  recipe::DepthwiseSpec s;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.depth_multiplier = multiplier;
  s.padding = same ? recipe::PaddingKind::same : recipe::PaddingKind::valid;
  s.use_bias = bias;
  return layer(LayerType::depthwise_conv2d, name, std::move(in), s);
}

LayerSpec separable(const std::string& name, int64_t filters, int64_t k, int64_t multiplier, bool bias,
                    std::vector<std::string> in = {}, int64_t stride = 1, bool same = true) {
  recipe::DepthwiseSpec s;
  s.filters = filters;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.depth_multiplier = multiplier;
  s.padding = same ? recipe::PaddingKind::same : recipe::PaddingKind::valid;
  s.use_bias = bias;
  return layer(LayerType::separable_conv2d, name, std::move(in), s);
}

LayerSpec pad(const std::string& name, int64_t top, int64_t bottom, int64_t left, int64_t right,
              std::vector<std::string> in = {}) {
  return layer(LayerType::zero_padding2d, name, std::move(in), recipe::PadSpec{top, bottom, left, right});
}

LayerSpec crop(const std::string& name, int64_t top, int64_t bottom, int64_t left, int64_t right,
               std::vector<std::string> in = {}) {
  return layer(LayerType::cropping2d, name, std::move(in), recipe::PadSpec{top, bottom, left, right});
}

LayerSpec add(const std::string& name, std::vector<std::string> in) {
  return layer(LayerType::add, name, std::move(in), recipe::MergeSpec{});
}

LayerSpec concat(const std::string& name, std::vector<std::string> in) {
  return layer(LayerType::concat, name, std::move(in), recipe::MergeSpec{});
}

LayerSpec simple(LayerType t, const std::string& name, std::vector<std::string> in = {}) {
  return layer(t, name, std::move(in), recipe::NoAttrs{});
}

LayerSpec bn(const std::string& name, std::vector<std::string> in = {}) {
  return layer(LayerType::batchnorm, name, std::move(in), recipe::BatchNormSpec{0.9, 1e-3});
}

LayerSpec dense(const std::string& name, int64_t units, std::vector<std::string> in = {}) {
  recipe::DenseSpec s;
  s.units = units;
  return layer(LayerType::dense, name, std::move(in), s);
}

// The DAG used throughout, on a [10, 9, 3] input (odd and even sizes for the 'same' rule; the
// gradient checks use a smaller one):
//
//   stem (conv 3x3, 4) - stem_bn - stem_relu (relu6)
//   dw    depthwise 3x3, multiplier 2, stride 2, same          -> [5, 5, 8]  read 3 times
//   sep   separable 3x3, multiplier 2, 8 filters (from dw)      -> [5, 5, 8]
//   sep_relu
//   res   add [dw, sep_relu]                                    -> [5, 5, 8]  read 2 times
//   pad   zero_padding2d (0, 1, 0, 1) of res                    -> [6, 6, 8]
//   crop  cropping2d (1, 0, 1, 0)                               -> [5, 5, 8]
//   branch  conv 1x1, 3 filters, of res                          -> [5, 5, 3]
//   branch2 conv 1x1, 5 filters, of dw                           -> [5, 5, 5]
//   cat   concat [crop, branch, branch2]                        -> [5, 5, 16]
//   gap, logits (dense 3)
ModelSpec dag_model(bool with_bn, std::vector<int64_t> input = {10, 9, 3}) {
  ModelSpec m;
  m.input = std::move(input);
  m.layers.push_back(conv("stem", 4, 3, 1, true, false));
  if (with_bn) m.layers.push_back(bn("stem_bn"));
  m.layers.push_back(simple(LayerType::relu6, "stem_relu"));
  m.layers.push_back(depthwise("dw", 3, 2, 2, true, true));
  m.layers.push_back(separable("sep", 8, 3, 2, true));
  m.layers.push_back(simple(LayerType::relu, "sep_relu"));
  m.layers.push_back(add("res", {"dw", "sep_relu"}));
  m.layers.push_back(pad("pad", 0, 1, 0, 1));
  m.layers.push_back(crop("crop", 1, 0, 1, 0));
  m.layers.push_back(conv("branch", 3, 1, 1, false, true, {"res"}));
  m.layers.push_back(conv("branch2", 5, 1, 1, false, true, {"dw"}));
  m.layers.push_back(concat("cat", {"crop", "branch", "branch2"}));
  m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
  m.layers.push_back(dense("logits", 3));
  return m;
}

std::string build_error(const ModelSpec& m) {
  try {
    build_graph(m);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Shape shape_of(const Graph& g, const std::string& node) {
  const int i = g.find(node);
  REQUIRE_MESSAGE(i >= 0, "no node ", node);
  return g.nodes[static_cast<size_t>(i)].shape;
}

Shape param_shape(const Graph& g, const std::string& name) {
  const int i = g.find_param(name);
  REQUIRE_MESSAGE(i >= 0, "no parameter ", name);
  return g.params[static_cast<size_t>(i)].shape;
}

std::vector<std::string> input_names(const Graph& g, const std::string& node) {
  const int i = g.find(node);
  REQUIRE_MESSAGE(i >= 0, "no node ", node);
  std::vector<std::string> names;
  for (int k : g.nodes[static_cast<size_t>(i)].inputs) names.push_back(g.nodes[static_cast<size_t>(k)].name);
  return names;
}

// Engine hooks for the whole-graph gradient checks. They record the gradient the engine
// back-propagates to every node's output, can add a perturbation to one element of one node's
// output in the forward pass, and watch the ReLU/ReLU6 nodes: after a forward under record(true),
// a later forward
// in which any unit switches between passing and clipped sets `crossed`.
class Probe : public EngineHooks {
 public:
  explicit Probe(const Graph& g) : grads(g.nodes.size()), g_(g), ref_(g.nodes.size()) {}

  void output(size_t node, float* out, int64_t count, Mode /*mode*/) override {
    const Op op = g_.nodes[node].op;
    if (op != Op::relu && op != Op::relu6) {
      if (node == node_ && index_ >= 0) out[index_] += delta_;
      return;
    }
    auto& ref = ref_[node];
    if (recording_) ref.assign(static_cast<size_t>(count), 0);
    for (int64_t i = 0; i < count; ++i) {
      const uint8_t on = out[i] > 0.0f && (op == Op::relu || out[i] < 6.0f);
      if (recording_) ref[static_cast<size_t>(i)] = on;
      else if (ref[static_cast<size_t>(i)] != on) crossed = true;
    }
    // A perturbation of a ReLU's own output comes after its clipping.
    if (node == node_ && index_ >= 0) out[index_] += delta_;
  }
  void output_backward(size_t node, float* dout, int64_t count) override { grads[node].assign(dout, dout + count); }

  void perturb(size_t node, int64_t index, float delta) {
    node_ = node;
    index_ = index;
    delta_ = delta;
  }
  void record(bool on) { recording_ = on; }

  std::vector<std::vector<float>> grads;
  bool crossed = false;

 private:
  const Graph& g_;
  std::vector<std::vector<uint8_t>> ref_;
  size_t node_ = 0;
  int64_t index_ = -1;
  float delta_ = 0;
  bool recording_ = false;
};

// d loss / d v by finite differences, loss_at(v) evaluating the loss with the variable set to
// v. Through ReLU/ReLU6 the loss is piecewise linear (smooth through BatchNorm), so a step that
// moves some unit across a kink would bias the estimate: the step is shrunk until no unit
// switches (probe.crossed), central difference first, then one-sided on a side with no switch.
// Returns NaN when every step crosses a kink on both sides. Steps are measured after rounding
// to float. Large steps keep float rounding in the loss small against the change.
double kink_free_diff(float v, Probe& probe, const std::function<double(float)>& loss_at) {
  const double l0 = loss_at(v);
  struct Side {
    double slope;
    bool crossed;
  };
  auto side = [&](float step) {
    const float x = v + step;
    probe.crossed = false;
    const double l = loss_at(x);
    return Side{(l - l0) / (static_cast<double>(x) - v), probe.crossed};
  };
  auto step_of = [&](float eps) { return eps * std::max(1.0f, std::fabs(v)); };
  // Central differences are exact for a quadratic, so they come first at every step size;
  // one-sided ones (off by the curvature times the step) only when each central step crosses.
  for (float eps : {3e-2f, 1e-2f, 3e-3f, 1e-3f}) {
    const Side hi = side(step_of(eps)), lo = side(-step_of(eps));
    if (!hi.crossed && !lo.crossed) return 0.5 * (hi.slope + lo.slope);
  }
  for (float eps : {3e-3f, 1e-3f}) {
    const Side hi = side(step_of(eps)), lo = side(-step_of(eps));
    if (!hi.crossed) return hi.slope;
    if (!lo.crossed) return lo.slope;
  }
  return std::nan("");
}

// Elements on a kink are left out (given the analytic value); returns how many.
size_t drop_kinks(const std::vector<float>& analytic, std::vector<double>& numeric) {
  size_t on_kink = 0;
  for (size_t i = 0; i < numeric.size(); ++i)
    if (std::isnan(numeric[i])) {
      numeric[i] = analytic[i];
      ++on_kink;
    }
  return on_kink;
}

}  // namespace

TEST_CASE("graph: a DAG model's nodes, inputs, shapes and parameters") {
  const Graph g = build_graph(dag_model(true));

  // Node order: the input, then one node per layer, separable as two nodes.
  std::vector<std::string> names;
  for (const auto& n : g.nodes) names.push_back(n.name);
  const std::vector<std::string> expected_names = {"input", "stem",  "stem_bn", "stem_relu", "dw",     "sep/depthwise",
                                                   "sep",   "sep_relu", "res", "pad",       "crop",   "branch",
                                                   "branch2", "cat", "gap",   "logits"};
  CHECK(names == expected_names);
  CHECK(g.nodes[static_cast<size_t>(g.find("sep/depthwise"))].op == Op::depthwise_conv2d);
  CHECK(g.nodes[static_cast<size_t>(g.find("sep"))].op == Op::conv2d);
  CHECK(g.nodes[static_cast<size_t>(g.find("pad"))].op == Op::pad);
  CHECK(g.nodes[static_cast<size_t>(g.find("crop"))].op == Op::pad);
  CHECK(g.nodes[static_cast<size_t>(g.find("res"))].op == Op::add);
  CHECK(g.nodes[static_cast<size_t>(g.find("cat"))].op == Op::concat);

  // Edges: named inputs, the previous layer otherwise; separable's halves chained.
  CHECK(input_names(g, "dw") == std::vector<std::string>{"stem_relu"});
  CHECK(input_names(g, "sep/depthwise") == std::vector<std::string>{"dw"});
  CHECK(input_names(g, "sep") == std::vector<std::string>{"sep/depthwise"});
  CHECK(input_names(g, "res") == std::vector<std::string>{"dw", "sep_relu"});
  CHECK(input_names(g, "pad") == std::vector<std::string>{"res"});
  CHECK(input_names(g, "branch") == std::vector<std::string>{"res"});
  CHECK(input_names(g, "branch2") == std::vector<std::string>{"dw"});
  CHECK(input_names(g, "cat") == std::vector<std::string>{"crop", "branch", "branch2"});

  // Shapes. TF 'same' with stride 2 on 10 x 9: out = ceil(10/2) x ceil(9/2) = 5 x 5.
  CHECK(shape_of(g, "stem") == Shape{10, 9, 4});
  CHECK(shape_of(g, "dw") == Shape{5, 5, 8});  // 4 channels x multiplier 2
  CHECK(shape_of(g, "sep/depthwise") == Shape{5, 5, 16});
  CHECK(shape_of(g, "sep") == Shape{5, 5, 8});
  CHECK(shape_of(g, "res") == Shape{5, 5, 8});
  CHECK(shape_of(g, "pad") == Shape{6, 6, 8});
  CHECK(shape_of(g, "crop") == Shape{5, 5, 8});
  CHECK(shape_of(g, "branch") == Shape{5, 5, 3});
  CHECK(shape_of(g, "branch2") == Shape{5, 5, 5});
  CHECK(shape_of(g, "cat") == Shape{5, 5, 16});
  CHECK(shape_of(g, "gap") == Shape{16});
  CHECK(g.output().name == "logits");
  CHECK(g.classes() == 3);

  // Attributes: pad is (top, bottom, left, right), cropping negated.
  const auto& pa = std::get<PadAttrs>(g.nodes[static_cast<size_t>(g.find("pad"))].attrs);
  CHECK((pa.top == 0 && pa.bottom == 1 && pa.left == 0 && pa.right == 1));
  const auto& ca = std::get<PadAttrs>(g.nodes[static_cast<size_t>(g.find("crop"))].attrs);
  CHECK((ca.top == -1 && ca.bottom == 0 && ca.left == -1 && ca.right == 0));
  const auto& da = std::get<DepthwiseAttrs>(g.nodes[static_cast<size_t>(g.find("dw"))].attrs);
  CHECK(da.multiplier == 2);
  CHECK(da.stride_h == 2);
  CHECK(da.use_bias);
  // The separable depthwise half has no bias (Keras puts it on the pointwise conv).
  const auto& sa = std::get<DepthwiseAttrs>(g.nodes[static_cast<size_t>(g.find("sep/depthwise"))].attrs);
  CHECK(!sa.use_bias);
  CHECK(sa.multiplier == 2);
  const auto& pw = std::get<Conv2DAttrs>(g.nodes[static_cast<size_t>(g.find("sep"))].attrs);
  CHECK((pw.kh == 1 && pw.kw == 1 && pw.stride_h == 1 && pw.use_bias));

  // TF 'same' alignment of the stride-2 depthwise: pad_total = (5-1)*2 + 3 - 10 = 1 rows (0 on
  // top) and (5-1)*2 + 3 - 9 = 2 columns (1 on the left).
  const DepthwiseGeom dg = depthwise_geom(1, 10, 9, 4, 3, 3, 2, 2, 2, Padding::same);
  CHECK(dg.oh == 5);
  CHECK(dg.ow == 5);
  CHECK(dg.pad_top == 0);
  CHECK(dg.pad_left == 1);

  // Parameters, by hand.
  CHECK(param_shape(g, "stem/kernel") == Shape{3, 3, 3, 4});             // 108
  CHECK(g.find_param("stem/bias") < 0);
  CHECK(param_shape(g, "stem_bn/moving_variance") == Shape{4});          // 4 x 4 = 16
  CHECK(param_shape(g, "dw/kernel") == Shape{3, 3, 4, 2});               // kh*kw*c*m = 72
  CHECK(param_shape(g, "dw/bias") == Shape{8});                          // c*m = 8
  CHECK(param_shape(g, "sep/depthwise/kernel") == Shape{3, 3, 8, 2});    // 144
  CHECK(g.find_param("sep/depthwise/bias") < 0);
  CHECK(param_shape(g, "sep/kernel") == Shape{1, 1, 16, 8});             // 128
  CHECK(param_shape(g, "sep/bias") == Shape{8});                         // 8
  CHECK(param_shape(g, "branch/kernel") == Shape{1, 1, 8, 3});           // 24 + 3
  CHECK(param_shape(g, "branch2/kernel") == Shape{1, 1, 8, 5});          // 40 + 5
  CHECK(param_shape(g, "logits/kernel") == Shape{16, 3});                // 48 + 3
  const int64_t total = 108 + 16 + (72 + 8) + 144 + (128 + 8) + (24 + 3) + (40 + 5) + (48 + 3);
  CHECK(total == 607);
  int64_t sum = 0;
  for (const auto& p : g.params) sum += numel(p.shape);
  CHECK(sum == total);
  CHECK(g.param_floats == total);
  CHECK(g.trainable_count() == total - 8);  // the BN moving statistics are state
  // Offsets tile the flat buffer in order.
  int64_t offset = 0;
  for (const auto& p : g.params) {
    CHECK(p.offset == offset);
    offset += numel(p.shape);
  }

  // MACs per example: conv 10*9*108, depthwise 5*5*8*9, separable 5*5*16*9 + 5*5*128, the 1x1
  // branches 5*5*24 and 5*5*40, dense 48.
  CHECK(node_macs(g, g.nodes[static_cast<size_t>(g.find("dw"))]) == 5 * 5 * 8 * 9);
  CHECK(node_macs(g, g.nodes[static_cast<size_t>(g.find("sep/depthwise"))]) == 5 * 5 * 16 * 9);
  CHECK(macs_per_example(g) == 10 * 9 * 108 + 5 * 5 * 8 * 9 + 5 * 5 * 16 * 9 + 5 * 5 * 128 + 5 * 5 * 24 +
                                   5 * 5 * 40 + 48);
}

TEST_CASE("graph: the same DAG written as a YAML recipe builds the same graph") {
  const char* text = R"(name: dag
seed: 1
data: {dataset: mnist}
model:
  input: [10, 9, 3]
  layers:
    - {type: conv2d, name: stem, filters: 4, kernel: 3, padding: same, use_bias: false}
    - {type: batchnorm, name: stem_bn, momentum: 0.9}
    - {type: relu6, name: stem_relu}
    - {type: depthwise_conv2d, name: dw, kernel: 3, strides: 2, depth_multiplier: 2, padding: same}
    - {type: separable_conv2d, name: sep, filters: 8, kernel: 3, depth_multiplier: 2, padding: same}
    - {type: relu, name: sep_relu}
    - {type: add, name: res, inputs: [dw, sep_relu]}
    - {type: zero_padding2d, name: pad, padding: [0, 1, 0, 1]}
    - {type: cropping2d, name: crop, cropping: [1, 0, 1, 0]}
    - {type: conv2d, name: branch, filters: 3, kernel: 1, inputs: res}
    - {type: conv2d, name: branch2, filters: 5, kernel: 1, inputs: [dw]}
    - {type: concat, name: cat, inputs: [crop, branch, branch2]}
    - {type: global_avgpool, name: gap}
    - {type: dense, name: logits, units: 3}
)";
  const recipe::Recipe r = recipe::parse_recipe(text, "dag.yaml");
  const Graph from_yaml = build_graph(r.model);
  const Graph from_code = build_graph(dag_model(true));
  REQUIRE(from_yaml.nodes.size() == from_code.nodes.size());
  for (size_t i = 0; i < from_code.nodes.size(); ++i) {
    INFO("node ", from_code.nodes[i].name);
    CHECK(from_yaml.nodes[i].name == from_code.nodes[i].name);
    CHECK(from_yaml.nodes[i].op == from_code.nodes[i].op);
    CHECK(from_yaml.nodes[i].inputs == from_code.nodes[i].inputs);
    CHECK(from_yaml.nodes[i].shape == from_code.nodes[i].shape);
  }
  REQUIRE(from_yaml.params.size() == from_code.params.size());
  for (size_t i = 0; i < from_code.params.size(); ++i) {
    CHECK(from_yaml.params[i].name == from_code.params[i].name);
    CHECK(from_yaml.params[i].shape == from_code.params[i].shape);
  }
  CHECK(from_yaml.param_floats == 607);
  // The origin of a node is its recipe location.
  CHECK(contains(from_yaml.nodes[static_cast<size_t>(from_yaml.find("sep/depthwise"))].origin, "dag.yaml:"));
}

TEST_CASE("graph: 'same' and 'valid' output sizes of depthwise and separable layers follow TensorFlow") {
  struct Case {
    int64_t h, w, k, stride;
    bool same;
    int64_t oh, ow;
  };
  // same: ceil(in / stride); valid: (in - k) / stride + 1.
  const Case cases[] = {{7, 8, 3, 2, true, 4, 4},  {7, 8, 3, 2, false, 3, 3}, {6, 6, 5, 3, true, 2, 2},
                        {6, 9, 5, 1, false, 2, 5}, {1, 1, 3, 1, true, 1, 1},  {9, 4, 2, 4, true, 3, 1}};
  for (const Case& c : cases) {
    INFO("h ", c.h, " w ", c.w, " k ", c.k, " stride ", c.stride, (c.same ? " same" : " valid"));
    ModelSpec d;
    d.input = {c.h, c.w, 2};
    d.layers = {depthwise("d", c.k, c.stride, 3, c.same, false), simple(LayerType::flatten, "flat"), dense("out", 2)};
    const Graph gd = build_graph(d);
    CHECK(shape_of(gd, "d") == Shape{c.oh, c.ow, 6});
    CHECK(param_shape(gd, "d/kernel") == Shape{c.k, c.k, 2, 3});
    CHECK(gd.find_param("d/bias") < 0);
    const DepthwiseGeom geom = depthwise_geom(1, c.h, c.w, 2, c.k, c.k, 3, c.stride, c.stride,
                                              c.same ? Padding::same : Padding::valid);
    CHECK(geom.oh == c.oh);
    CHECK(geom.ow == c.ow);

    ModelSpec s;
    s.input = {c.h, c.w, 2};
    s.layers = {separable("s", 4, c.k, 1, true, {}, c.stride, c.same), simple(LayerType::flatten, "flat"),
                dense("out", 2)};
    const Graph gs = build_graph(s);
    CHECK(shape_of(gs, "s/depthwise") == Shape{c.oh, c.ow, 2});
    CHECK(shape_of(gs, "s") == Shape{c.oh, c.ow, 4});
    CHECK(param_shape(gs, "s/depthwise/kernel") == Shape{c.k, c.k, 2, 1});
    CHECK(param_shape(gs, "s/kernel") == Shape{1, 1, 2, 4});
    CHECK(param_shape(gs, "s/bias") == Shape{4});
    CHECK(gs.param_floats == c.k * c.k * 2 + 2 * 4 + 4 + (c.oh * c.ow * 4) * 2 + 2);
  }
}

TEST_CASE("graph: whole-graph gradients through FloatEngine match finite differences") {
  // L = <logits, r> for a fixed r, so dL/dlogits = r. Every trainable parameter tensor is
  // checked element by element. Node dw feeds three consumers and res two, so a backward that
  // overwrote instead of accumulating would be caught here.
  struct Variant {
    std::string what;
    bool with_bn;
    Mode mode;
  };
  const Variant variants[] = {{"train mode, no batchnorm", false, Mode::train},
                              {"train mode, batchnorm on batch statistics", true, Mode::train},
                              {"eval mode, batchnorm on moving statistics", true, Mode::eval}};
  for (const Variant& v : variants) {
    INFO(v.what);
    const Graph g = build_graph(dag_model(v.with_bn, {6, 5, 2}));
    const int64_t batch = 2;
    std::vector<float> params(static_cast<size_t>(g.param_floats));
    init_params(g, params.data(), 21);
    Rng rng(22);
    // Non-trivial biases, BN affine parameters and moving statistics, so that every term matters.
    for (const auto& p : g.params) {
      float* x = params.data() + p.offset;
      for (int64_t i = 0; i < numel(p.shape); ++i) {
        if (p.name.ends_with("/bias") || p.name.ends_with("/beta") || p.name.ends_with("/moving_mean"))
          x[i] = rng.uniform(-0.3f, 0.3f);
        else if (p.name.ends_with("/gamma") || p.name.ends_with("/moving_variance"))
          x[i] = rng.uniform(0.5f, 1.5f);
      }
    }
    const auto input = random_floats(rng, batch * numel(g.nodes[0].shape));
    const auto r = random_floats(rng, batch * g.classes());
    Probe probe(g);
    FloatEngine engine(g, batch, true, &probe);
    auto loss = [&] {
      const float* logits = engine.forward(input.data(), batch, v.mode, params.data());
      double s = 0.0;
      for (int64_t i = 0; i < batch * g.classes(); ++i) s += static_cast<double>(logits[i]) * r[static_cast<size_t>(i)];
      return s;
    };
    probe.record(true);
    loss();
    probe.record(false);
    std::vector<float> grads(params.size(), 0.0f);
    engine.backward(r.data(), params.data(), grads.data());

    size_t kinks = 0, checked = 0;  // elements sitting on a ReLU kink, left out; must be rare
    for (const auto& p : g.params) {
      const int64_t count = numel(p.shape);
      if (!p.trainable) {
        // State, not trained: the engine leaves its gradient alone.
        for (int64_t i = 0; i < count; ++i) REQUIRE(grads[static_cast<size_t>(p.offset + i)] == 0.0f);
        continue;
      }
      std::vector<float> analytic(grads.begin() + p.offset, grads.begin() + p.offset + count);
      std::vector<double> numeric(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) {
        float& x = params[static_cast<size_t>(p.offset + i)];
        const float saved = x;
        numeric[static_cast<size_t>(i)] = kink_free_diff(saved, probe, [&](float value) {
          x = value;
          return loss();
        });
        x = saved;
      }
      kinks += drop_kinks(analytic, numeric);
      checked += numeric.size();
      check_grad(analytic, numeric, 1e-2, p.name);
    }

    // The gradient reaching every node's output, against perturbing that output directly: a
    // node read by several consumers (dw three times, res twice) must hold the sum.
    for (size_t i = g.nodes.size() - 1; i >= 1; --i) {
      const Node& n = g.nodes[i];
      const int64_t count = batch * numel(n.shape);
      REQUIRE_MESSAGE(static_cast<int64_t>(probe.grads[i].size()) == count, "node ", n.name);
      std::vector<double> numeric(static_cast<size_t>(count));
      for (int64_t k = 0; k < count; ++k)
        numeric[static_cast<size_t>(k)] = kink_free_diff(0.0f, probe, [&](float delta) {
          probe.perturb(i, k, delta);
          return loss();
        });
      probe.perturb(0, -1, 0.0f);
      kinks += drop_kinks(probe.grads[i], numeric);
      checked += numeric.size();
      check_grad(probe.grads[i], numeric, 1e-2, "output of node " + n.name);
    }
    INFO(kinks, " of ", checked, " elements sit on a ReLU kink");
    CHECK(kinks * 50 <= checked);
  }
}

TEST_CASE("graph: forward and backward values of a hand-computed DAG") {
  // input x [2, 2, 1] = [[1, 2], [3, 4]] (a b / c d), named directly in `inputs`:
  //   c1  = conv 1x1 (w = 2)                -> 2x
  //   s   = add [input, c1]                 -> 3x
  //   cat = concat [s, input]               -> (3x, x) per pixel
  //   p   = zero_padding2d (1, 0, 0, 1)     -> [3, 3, 2]: p[y][x] = cat[y - 1][x]
  //   cr  = cropping2d (0, 1, 1, 0)         -> [2, 2, 2]: cr[y][x] = p[y][x + 1]
  //         so only cr[1][0] = cat[0][1] = (3b, b) is non-zero
  //   gap -> (3b / 4, b / 4); logits = dense with the identity kernel -> (1.5, 0.5).
  ModelSpec m;
  m.input = {2, 2, 1};
  m.layers.push_back(conv("c1", 1, 1, 1, false, false));
  m.layers.push_back(add("s", {"input", "c1"}));
  m.layers.push_back(concat("cat", {"s", "input"}));
  m.layers.push_back(pad("p", 1, 0, 0, 1));
  m.layers.push_back(crop("cr", 0, 1, 1, 0));
  m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
  m.layers.push_back(dense("logits", 2));
  const Graph g = build_graph(m);
  CHECK(input_names(g, "s") == std::vector<std::string>{"input", "c1"});
  CHECK(shape_of(g, "p") == Shape{3, 3, 2});
  CHECK(shape_of(g, "cr") == Shape{2, 2, 2});
  std::vector<float> params(static_cast<size_t>(g.param_floats), 0.0f);
  auto offset = [&](const std::string& name) { return g.params[static_cast<size_t>(g.find_param(name))].offset; };
  auto at = [&](const std::string& name) { return params.data() + offset(name); };
  at("c1/kernel")[0] = 2.0f;
  float* k = at("logits/kernel");  // [2, 2]
  k[0] = 1.0f;
  k[3] = 1.0f;
  const std::vector<float> x = {1, 2, 3, 4};
  FloatEngine engine(g, 1, true);
  const float* logits = engine.forward(x.data(), 1, Mode::train, params.data());
  CHECK(logits[0] == 1.5f);
  CHECK(logits[1] == 0.5f);
  const float* cr = engine.activation(static_cast<size_t>(g.find("cr")));
  CHECK(std::vector<float>(cr, cr + 8) == std::vector<float>{0, 0, 0, 0, 6, 2, 0, 0});

  // L = 1 * logit0 + 10 * logit1: dL/dw(c1) = 1 * b / 4 = 0.5 (logit1 does not depend on it);
  // dL/dK[i][j] = gap_i * r_j; dL/dbias = r.
  const std::vector<float> r = {1.0f, 10.0f};
  std::vector<float> grads(params.size(), 0.0f);
  engine.backward(r.data(), params.data(), grads.data());
  auto grad = [&](const std::string& name) { return grads.data() + offset(name); };
  CHECK(grad("c1/kernel")[0] == doctest::Approx(0.5));
  const float* dk = grad("logits/kernel");
  CHECK(dk[0] == doctest::Approx(1.5));
  CHECK(dk[1] == doctest::Approx(15.0));
  CHECK(dk[2] == doctest::Approx(0.5));
  CHECK(dk[3] == doctest::Approx(5.0));
  CHECK(grad("logits/bias")[0] == doctest::Approx(1.0));
  CHECK(grad("logits/bias")[1] == doctest::Approx(10.0));
}

TEST_CASE("graph: a node read twice by one add gets both gradients") {
  // res = x + x (the same name twice): d res / d x = 2.
  ModelSpec m;
  m.input = {4, 4, 2};
  m.layers.push_back(conv("c", 3, 3, 1, true, true));
  m.layers.push_back(add("twice", {"c", "c"}));
  m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
  m.layers.push_back(dense("out", 2));
  const Graph g = build_graph(m);
  CHECK(input_names(g, "twice") == std::vector<std::string>{"c", "c"});
  std::vector<float> params(static_cast<size_t>(g.param_floats));
  init_params(g, params.data(), 3);
  Rng rng(4);
  const auto input = random_floats(rng, 2 * 32);
  const auto r = random_floats(rng, 4);
  FloatEngine engine(g, 2, true);
  engine.forward(input.data(), 2, Mode::train, params.data());
  std::vector<float> grads(params.size(), 0.0f);
  engine.backward(r.data(), params.data(), grads.data());
  // Same model with the add replaced by a scaling of the dense kernel by 2.
  ModelSpec single;
  single.input = m.input;
  single.layers = {m.layers[0], m.layers[2], m.layers[3]};
  single.layers[1].inputs.clear();
  const Graph g1 = build_graph(single);
  REQUIRE(g1.param_floats == g.param_floats);
  auto p1 = params;
  const ParamInfo& k = g1.params[static_cast<size_t>(g1.find_param("out/kernel"))];
  for (int64_t i = 0; i < numel(k.shape); ++i) p1[static_cast<size_t>(k.offset + i)] *= 2.0f;
  FloatEngine e1(g1, 2, true);
  e1.forward(input.data(), 2, Mode::train, p1.data());
  std::vector<float> g1grads(params.size(), 0.0f);
  e1.backward(r.data(), p1.data(), g1grads.data());
  const ParamInfo& ck = g.params[static_cast<size_t>(g.find_param("c/kernel"))];
  for (int64_t i = 0; i < numel(ck.shape); ++i) {
    const auto j = static_cast<size_t>(ck.offset + i);
    REQUIRE(grads[j] == doctest::Approx(g1grads[j]).epsilon(1e-5));
  }
  CHECK(std::fabs(grads[static_cast<size_t>(ck.offset)]) > 0.0f);
}

TEST_CASE("graph: a later layer naming a layer with a fused activation reads the activated output") {
  // In Keras (and in the recipe's layer list, where the next layer reads the activation node)
  // a layer's output is its activated output; `inputs: [a]` must mean the same thing as the
  // implicit previous-layer edge.
  ModelSpec m;
  m.input = {6, 6, 1};
  m.layers.push_back(conv("a", 2, 3, 1, true, true, {}, recipe::Activation::relu));
  m.layers.push_back(conv("b", 2, 3, 1, true, true, {"a"}));
  m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
  m.layers.push_back(dense("out", 2));
  Graph g;
  try {
    g = build_graph(m);
  } catch (const Error& e) {
    FAIL_CHECK("build_graph rejects a named input of a layer with an activation: ", e.what());
    return;
  }
  CHECK(input_names(g, "b") == std::vector<std::string>{"a/relu"});
}

TEST_CASE("graph: build errors name the layer") {
  // The message names the layer and starts with its recipe location.
  auto expect = [](const ModelSpec& m, const std::string& layer, const std::vector<std::string>& parts) {
    const std::string e = build_error(m);
    INFO("error: ", e);
    REQUIRE(!e.empty());
    CHECK(e.rfind("test.yaml:" + layer, 0) == 0);
    CHECK(contains(e, "'" + layer + "'"));
    for (const auto& p : parts) CHECK(contains(e, p));
  };

  SUBCASE("an input no layer has") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("c", 2, 3, 1, true, true));
    m.layers.push_back(conv("d", 2, 3, 1, true, true, {"nope"}));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "d", {"'nope'", "no earlier layer"});
  }
  SUBCASE("a forward reference (how a cycle shows up)") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(add("b", {"a", "c"}));
    m.layers.push_back(conv("c", 2, 3, 1, true, true, {"b"}));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "b", {"'c'", "no earlier layer"});
  }
  SUBCASE("a layer naming itself") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(add("self", {"a", "self"}));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "self", {"no earlier layer"});
  }
  SUBCASE("add of two different shapes") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(conv("b", 3, 3, 1, true, true));
    m.layers.push_back(add("sum", {"a", "b"}));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "sum", {"'a'", "'b'", "[8, 8, 2]", "[8, 8, 3]"});
  }
  SUBCASE("add of different spatial sizes") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(conv("b", 2, 3, 2, true, true));
    m.layers.push_back(add("sum", {"a", "b"}));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "sum", {"'b'"});
  }
  SUBCASE("concat with different spatial sizes") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(conv("b", 2, 3, 1, false, true, {"a"}));  // 6x6
    m.layers.push_back(concat("cat", {"a", "b"}));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "cat", {"'b'", "concat"});
  }
  SUBCASE("concat of an image and a flat tensor") {
    ModelSpec m;
    m.input = {4, 4, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(simple(LayerType::global_avgpool, "g", {"a"}));
    m.layers.push_back(concat("cat", {"a", "g"}));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "cat", {"'g'"});
  }
  SUBCASE("cropping that leaves nothing") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(crop("cut", 4, 4, 0, 0));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "cut", {"nothing"});
    // One row left is fine.
    m.layers[1] = crop("cut", 4, 3, 0, 0);
    const Graph g = build_graph(m);
    CHECK(shape_of(g, "cut") == Shape{1, 8, 2});
  }
  SUBCASE("a depthwise layer after a flatten") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(simple(LayerType::flatten, "flat"));
    m.layers.push_back(depthwise("dw", 3, 1, 1, true, true));
    m.layers.push_back(dense("out", 2));
    expect(m, "dw", {"image input", "[128]"});
  }
  SUBCASE("a separable layer, a pad and a crop after a flatten") {
    for (const LayerSpec& l : {separable("sep", 2, 3, 1, true), pad("p", 1, 1, 1, 1), crop("q", 1, 1, 1, 1)}) {
      ModelSpec m;
      m.input = {8, 8, 1};
      m.layers.push_back(simple(LayerType::flatten, "flat"));
      m.layers.push_back(l);
      m.layers.push_back(dense("out", 2));
      expect(m, l.name, {"image input"});
    }
  }
  SUBCASE("a single-input layer given two inputs") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(conv("b", 2, 3, 1, true, true));
    m.layers.push_back(conv("c", 2, 3, 1, true, true, {"a", "b"}));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "c", {"one input"});
  }
  SUBCASE("a layer nothing reads") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(conv("a", 2, 3, 1, true, true));
    m.layers.push_back(conv("dead", 2, 3, 1, true, true));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap", {"a"}));
    m.layers.push_back(dense("out", 2));
    expect(m, "dead", {"not used"});
  }
  SUBCASE("a layer named like a separable layer's depthwise half") {
    ModelSpec m;
    m.input = {8, 8, 1};
    m.layers.push_back(separable("sep", 2, 3, 1, true));
    m.layers.push_back(conv("sep/depthwise", 2, 3, 1, true, true));
    m.layers.push_back(simple(LayerType::global_avgpool, "gap"));
    m.layers.push_back(dense("out", 2));
    expect(m, "sep/depthwise", {"used twice"});
  }
}


