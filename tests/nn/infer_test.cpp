// Tests for the float inference executor (nn/infer.h): on small graphs covering every op and
// every fold (conv/depthwise/dense + BatchNorm, activations, a residual add into its conv, zero
// padding into a conv or max pool), and on small presets, its logits must match the training
// engine's eval-mode forward within 1e-4 of the logit range with the same top-1; the folds must
// actually happen (fewer steps); results must not depend on the thread count or on batches
// larger than the engine was made for; and the buffers must be shared.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "models/presets.h"
#include "nn/engine.h"
#include "nn/graph.h"
#include "nn/gemm_packed.h"
#include "nn/infer.h"
#include "recipe/load.h"

using namespace qatc;
using namespace qatc::nn;

namespace {

Graph graph_of(const std::string& input, const std::string& layers) {
  const std::string text = "name: t\nseed: 1\ndata: {dataset: mnist}\nmodel:\n  input: " + input +
                           "\n  layers:\n" + layers;
  return build_graph(recipe::parse_recipe(text, "infer_test.yaml").model);
}

Graph preset_graph(const std::string& name, double alpha, std::vector<int64_t> blocks = {}) {
  recipe::ModelSpec m;
  m.input = {32, 32, 3};
  m.preset.name = name;
  m.preset.alpha = alpha;
  m.preset.classes = 7;
  m.preset.blocks = std::move(blocks);
  m.preset.origin.where = "infer_test";
  m.layers = models::preset_layers(m.preset, m.input);
  return build_graph(m);
}

// Keras' initial weights, then every bias and BatchNorm parameter random (the initial
// gamma 1, beta 0, mean 0, variance 1 would make folding a no-op).
std::vector<float> random_params(const Graph& g, uint64_t seed) {
  std::vector<float> p(static_cast<size_t>(g.param_floats));
  init_params(g, p.data(), seed);
  Rng rng(seed + 1);
  for (const ParamInfo& info : g.params) {
    const std::string& n = info.name;
    auto ends = [&](const std::string& s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
    float lo = 0, hi = 0;
    if (ends("/bias") || ends("/beta") || ends("/moving_mean")) lo = -0.5f, hi = 0.5f;
    else if (ends("/gamma")) lo = 0.5f, hi = 1.5f;
    else if (ends("/moving_variance")) lo = 0.3f, hi = 2.0f;
    else continue;
    for (int64_t k = 0; k < numel(info.shape); ++k) p[static_cast<size_t>(info.offset + k)] = rng.uniform(lo, hi);
  }
  return p;
}

std::vector<float> random_input(const Graph& g, int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n * numel(g.nodes[0].shape)));
  for (auto& v : x) v = rng.uniform(-1.0f, 1.0f);
  return x;
}

int64_t argmax(const float* v, int64_t n) { return std::max_element(v, v + n) - v; }

// The training engine's eval forward against the executor's on n random images: logits within
// 1e-4 of the range of the reference logits, the same top-1.
void check_matches(const Graph& g, int64_t n, uint64_t seed = 7) {
  std::vector<float> params = random_params(g, seed);
  const std::vector<float> x = random_input(g, n, seed + 2);
  FloatEngine ref_engine(g, n, false);
  const float* ref = ref_engine.forward(x.data(), n, Mode::eval, params.data());
  InferenceEngine engine(g, params.data(), n);
  const float* got = engine.forward(x.data(), n);
  const int64_t classes = g.classes();
  const auto [lo, hi] = std::minmax_element(ref, ref + n * classes);
  const double range = *hi - *lo;
  REQUIRE(range > 0);
  double worst = 0;
  for (int64_t i = 0; i < n * classes; ++i) worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - ref[i]));
  INFO("max |difference| " << worst << " over a logit range of " << range);
  CHECK(worst <= 1e-4 * range);
  for (int64_t i = 0; i < n; ++i) CHECK(argmax(got + i * classes, classes) == argmax(ref + i * classes, classes));
}

size_t steps_of(const Graph& g) {
  const std::vector<float> p = random_params(g, 1);
  return InferenceEngine(g, p.data(), 1).step_nodes().size();
}

}  // namespace

TEST_CASE("infer: conv + BN + ReLU, max pool, dense + BN + ReLU fold into three conv/dense steps") {
  const Graph g = graph_of("[10, 10, 2]", R"(
    - {type: conv2d, name: c1, filters: 6, kernel: 3, padding: same}
    - {type: batchnorm, name: bn1}
    - {type: relu, name: r1}
    - {type: conv2d, name: c2, filters: 5, kernel: 3, strides: 2, use_bias: false}
    - {type: batchnorm, name: bn2}
    - {type: relu, name: r2}
    - {type: maxpool, name: p, pool: 2}
    - {type: flatten, name: f}
    - {type: dense, name: d, units: 8}
    - {type: batchnorm, name: bn3}
    - {type: relu, name: r3}
    - {type: dropout, name: drop, rate: 0.3}
    - {type: dense, name: logits, units: 4}
)");
  check_matches(g, 3);
  const std::vector<float> p = random_params(g, 1);
  InferenceEngine e(g, p.data(), 1);
  // c1+bn1+r1, c2+bn2+r2, p, d+bn3+r3, logits; flatten and dropout are views.
  CHECK(e.step_nodes() == std::vector<int>{g.find("r1"), g.find("r2"), g.find("p"), g.find("r3"), g.find("logits")});
  CHECK(e.step_kernels() == std::vector<int>{g.find("c1"), g.find("c2"), g.find("p"), g.find("d"), g.find("logits")});
}

TEST_CASE("infer: depthwise + BN + ReLU6, multiplier 2, separable, zero padding folded into the depthwise") {
  const Graph g = graph_of("[9, 9, 3]", R"(
    - {type: conv2d, name: c, filters: 4, kernel: 1}
    - {type: batchnorm, name: bn}
    - {type: relu6, name: r}
    - {type: zero_padding2d, name: pad, padding: [0, 1, 0, 1]}
    - {type: depthwise_conv2d, name: dw, kernel: 3, strides: 2, depth_multiplier: 2, use_bias: false}
    - {type: batchnorm, name: dwbn}
    - {type: relu6, name: dwr}
    - {type: separable_conv2d, name: sep, filters: 6, kernel: 3, padding: same, activation: relu6}
    - {type: global_avgpool, name: gap}
    - {type: dense, name: logits, units: 5}
)");
  check_matches(g, 2);
  // c, dw (pad and BN folded), sep/depthwise, sep (its ReLU6 fused), gap, logits.
  CHECK(steps_of(g) == 6);
}

TEST_CASE("infer: residual adds fused into the conv, a plain add in place, ReLU after them") {
  const Graph g = graph_of("[8, 8, 4]", R"(
    - {type: conv2d, name: a, filters: 4, kernel: 3, padding: same}
    - {type: batchnorm, name: abn}
    - {type: add, name: res, inputs: [abn, input], activation: relu}
    - {type: conv2d, name: b, filters: 4, kernel: 1}
    - {type: batchnorm, name: bbn}
    - {type: relu, name: br}
    - {type: add, name: res2, inputs: [res, bbn]}
    - {type: relu, name: r3, inputs: res2}
    - {type: add, name: res3, inputs: [r3, br, res2], activation: relu6}
    - {type: conv2d, name: c, filters: 4, kernel: 3, strides: 2, padding: same}
    - {type: add, name: res4, inputs: [c, c]}
    - {type: global_avgpool, name: gap}
    - {type: dense, name: logits, units: 3}
)");
  check_matches(g, 3);
  const std::vector<float> p = random_params(g, 1);
  InferenceEngine e(g, p.data(), 1);
  const std::vector<int> last = e.step_nodes();
  // a+abn+res+relu in one step; b's BN cannot take res2 (br also reads it); res2's ReLU is
  // separate (res3 reads res2 too); x + x stays an add.
  CHECK(last.front() == g.find("res/relu"));
  CHECK(std::count(last.begin(), last.end(), g.find("res2")) == 1);
  CHECK(std::count(last.begin(), last.end(), g.find("res4")) == 1);
}

TEST_CASE("infer: concat, average pools, a lone BatchNorm + ReLU, padding and cropping") {
  const Graph g = graph_of("[12, 12, 3]", R"(
    - {type: batchnorm, name: inbn}
    - {type: relu, name: inr}
    - {type: zero_padding2d, name: pp, padding: 1}
    - {type: maxpool, name: mp, pool: 3, strides: 2}
    - {type: conv2d, name: c1, filters: 3, kernel: 1, inputs: mp}
    - {type: avgpool, name: ap, pool: 3, strides: 1, padding: same, inputs: mp}
    - {type: concat, name: cat, inputs: [c1, ap, mp]}
    - {type: batchnorm, name: catbn}
    - {type: zero_padding2d, name: zp, padding: [1, 2, 0, 1]}
    - {type: avgpool, name: ap2, pool: 2}
    - {type: cropping2d, name: crop, cropping: [1, 0, 0, 1]}
    - {type: conv2d, name: c2, filters: 4, kernel: 2, activation: relu}
    - {type: maxpool, name: mp2, pool: 2, padding: same}
    - {type: flatten, name: f}
    - {type: dense, name: logits, units: 6}
)");
  check_matches(g, 4);
  // inbn+inr, mp (pp folded: over a ReLU), c1, ap, cat, catbn, zp, ap2, crop, c2, mp2, logits.
  CHECK(steps_of(g) == 12);
}

TEST_CASE("infer: small presets match the training engine's eval forward") {
  struct Case {
    const char* what;
    Graph g;
  };
  const Case cases[] = {
      {"mobilenet_v1 alpha 0.25", preset_graph("mobilenet_v1", 0.25)},
      {"mobilenet_v2 alpha 0.35", preset_graph("mobilenet_v2", 0.35)},
      {"resnet50_v1 [1, 1, 1, 1] alpha 0.25", preset_graph("resnet50_v1", 0.25, {1, 1, 1, 1})},
      {"resnet50_v2 [1, 1, 1, 1] alpha 0.25", preset_graph("resnet50_v2", 0.25, {1, 1, 1, 1})},
      {"nasnet_mobile [1] alpha 0.5", preset_graph("nasnet_mobile", 0.5, {1})},
  };
  // Both convolution paths: packed weights (the default where AVX-512F is) and OpenBLAS.
  std::vector<bool> packed_modes{false};
  if (packed_gemm_supported()) packed_modes.push_back(true);
  for (bool packed : packed_modes) {
    set_packed_gemm(packed);
    for (const Case& c : cases) {
      INFO(std::string(c.what), packed ? ", packed weights" : ", OpenBLAS");
      check_matches(c.g, 2);
      CHECK(3 * steps_of(c.g) < 2 * c.g.nodes.size());
    }
  }
  set_packed_gemm(packed_gemm_supported());
}

TEST_CASE("infer: a wrong fold is caught (the check can fail)") {
  // The same graph and weights, but the executor made from other BatchNorm statistics.
  const Graph g = graph_of("[6, 6, 2]", R"(
    - {type: conv2d, name: c, filters: 3, kernel: 3}
    - {type: batchnorm, name: bn}
    - {type: flatten, name: f}
    - {type: dense, name: logits, units: 3}
)");
  std::vector<float> params = random_params(g, 3);
  const std::vector<float> x = random_input(g, 2, 4);
  FloatEngine ref(g, 2, false);
  const std::vector<float> want(ref.forward(x.data(), 2, Mode::eval, params.data()), ref.forward(x.data(), 2, Mode::eval, params.data()) + 6);
  params[static_cast<size_t>(g.params[static_cast<size_t>(g.find_param("bn/moving_variance"))].offset)] *= 1.01f;
  InferenceEngine e(g, params.data(), 2);
  const float* got = e.forward(x.data(), 2);
  double worst = 0;
  for (int i = 0; i < 6; ++i) worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[static_cast<size_t>(i)]));
  CHECK(worst > 1e-4);
}

TEST_CASE("infer: the same bits on 1 and 2 threads, and for batches beyond max_batch") {
  const Graph g = preset_graph("resnet50_v1", 0.25, {1, 1, 1, 1});
  const std::vector<float> p = random_params(g, 5);
  const std::vector<float> x = random_input(g, 5, 6);
  const int64_t classes = g.classes();
  set_num_threads(1);
  InferenceEngine one(g, p.data(), 5), two_images(g, p.data(), 2);
  const float* a = one.forward(x.data(), 5);
  const std::vector<float> want5(a, a + 5 * classes);
  a = two_images.forward(x.data(), 2);
  const std::vector<float> want2(a, a + 2 * classes);
  set_num_threads(2);
  InferenceEngine grown(g, p.data(), 1);  // grows to 5, then runs 2 in the larger buffers
  const float* b = grown.forward(x.data(), 5);
  CHECK(std::vector<float>(b, b + 5 * classes) == want5);
  b = grown.forward(x.data(), 2);
  CHECK(std::vector<float>(b, b + 2 * classes) == want2);
  set_num_threads(0);
}

TEST_CASE("infer: activations share buffers") {
  const Graph g = preset_graph("mobilenet_v1", 0.25);
  const std::vector<float> p = random_params(g, 1);
  InferenceEngine e(g, p.data(), 4);
  int64_t every_node = 0;
  for (const Node& n : g.nodes) every_node += 4 * numel(n.shape) * static_cast<int64_t>(sizeof(float));
  // Two or three feature maps alive at once, out of about 90 nodes.
  CHECK(e.arena_bytes() * 10 < every_node);
}
