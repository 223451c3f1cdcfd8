// The quantization plan: fused groups, quant points, defaults, overrides and skip.
#include <doctest/doctest.h>

#include "core/error.h"
#include "fixtures/tiny.h"
#include "nn/graph.h"
#include "quant/plan.h"

using namespace qatc;

namespace {

const char* kModel = R"(name: p
data: {dataset: mnist}
model:
  input: [8, 8, 1]
  layers:
    - {type: conv2d, name: conv1, filters: 4, kernel: 3, padding: same, use_bias: false}
    - {type: batchnorm, name: bn1}
    - {type: relu, name: relu1}
    - {type: maxpool, name: pool, pool: 2}
    - {type: conv2d, name: conv2, filters: 4, kernel: 3, activation: relu6}
    - {type: avgpool, name: avg, pool: 2}
    - {type: flatten, name: flat}
    - {type: dense, name: fc, units: 8, activation: relu}
    - {type: dense, name: logits, units: 3}
)";

struct Built {
  recipe::Recipe r;
  nn::Graph g;
  quant::QuantPlan p;
};

Built build(const std::vector<std::string>& sets = {}) {
  Built b{recipe::parse_recipe(kModel, "p.yaml", sets), {}, {}};
  b.g = nn::build_graph(b.r.model);
  b.p = quant::make_plan(b.g, b.r.quant);
  return b;
}

std::string error_of(const std::vector<std::string>& sets) {
  try {
    build(sets);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("plan: groups fuse conv bn relu and quantize after the group") {
  Built b = build();
  const auto& g = b.g;
  REQUIRE(b.p.weights.size() == 4);
  const auto& w1 = b.p.weights[0];
  CHECK(g.nodes[static_cast<size_t>(w1.node)].name == "conv1");
  CHECK(g.nodes[static_cast<size_t>(w1.bn_node)].name == "bn1");
  CHECK(w1.per_channel);                 // conv default
  CHECK_FALSE(b.p.weights[2].per_channel);  // dense default: per tensor
  CHECK(w1.range.qmin == -127);
  CHECK(w1.range.qmax == 127);
  std::vector<std::string> points;
  for (const auto& a : b.p.acts) points.push_back(g.nodes[static_cast<size_t>(a.node)].name);
  CHECK(points == std::vector<std::string>{"input", "relu1", "conv2/relu6", "fc/relu", "logits"});
  // No quantizer inside a group or on pass-through nodes; avgpool reuses its input's.
  CHECK(b.p.act_of[static_cast<size_t>(g.find("conv1"))] == -1);
  CHECK(b.p.act_of[static_cast<size_t>(g.find("bn1"))] == -1);
  CHECK(b.p.act_of[static_cast<size_t>(g.find("pool"))] == -1);
  CHECK(b.p.act_of[static_cast<size_t>(g.find("avg"))] == b.p.act_of[static_cast<size_t>(g.find("conv2/relu6"))]);
  CHECK(quant::governing_act(g, b.p, g.find("pool")) == b.p.act_of[static_cast<size_t>(g.find("relu1"))]);
}

TEST_CASE("plan: overrides change only the matched layers") {
  Built b = build({"quant.overrides=[{match: fc, weights: {bits: 4, granularity: per_channel}}, "
                   "{match: 'conv*', activations: {bits: 6}}]"});
  const auto& g = b.g;
  for (const auto& w : b.p.weights) {
    const std::string& name = g.nodes[static_cast<size_t>(w.node)].name;
    CAPTURE(name);
    CHECK(w.spec.bits == (name == "fc" ? 4 : 8));
    CHECK(w.per_channel == (name != "logits"));
  }
  for (const auto& a : b.p.acts) {
    const std::string& name = g.nodes[static_cast<size_t>(a.node)].name;
    CAPTURE(name);
    CHECK(a.spec.bits == (name == "relu1" || name == "conv2/relu6" ? 6 : 8));
    CHECK(a.range.qmax == (a.spec.bits == 6 ? 31 : 127));
  }
}

TEST_CASE("plan: skip keeps the whole group in float and quantizes its output") {
  Built b = build({"quant.overrides=[{match: conv2, skip: true}]"});
  const auto& g = b.g;
  CHECK(b.p.skipped[static_cast<size_t>(g.find("conv2"))]);
  CHECK(b.p.skipped[static_cast<size_t>(g.find("conv2/relu6"))]);
  CHECK_FALSE(b.p.skipped[static_cast<size_t>(g.find("conv1"))]);
  CHECK_FALSE(b.p.skipped[static_cast<size_t>(g.find("fc"))]);
  CHECK(b.p.act_of[static_cast<size_t>(g.find("conv2/relu6"))] >= 0);
}

TEST_CASE("plan: bad overrides are named") {
  CHECK(error_of({"quant.overrides=[{match: nosuch*, skip: true}]"}).find("matches no layer") != std::string::npos);
  CHECK(error_of({"quant.overrides=[{match: pool, skip: true}]"}).find("only conv2d and dense layers can stay in float") !=
        std::string::npos);
  CHECK(error_of({"quant.weights.bits=9"}).find("'quant.weights.bits' is 9, must be in [2, 8]") != std::string::npos);
  CHECK(error_of({"quant.activations.bits=1"}).find("'quant.activations.bits' is 1") != std::string::npos);
  CHECK(error_of({"quant.overrides=[{match: fc, weights: {bits: 12}}]"}).find("bits") != std::string::npos);
}
