// The fake-quantized model: folding, determinism, calibration, state round trip.
#include <doctest/doctest.h>

#include <cmath>

#include "data/loader.h"
#include "fixtures/tiny.h"
#include "nn/graph.h"
#include "quant/quant_model.h"
#include "train/model.h"

using namespace qatc;

namespace {

const char* kBnModel = R"(name: q
seed: 4
data: {dataset: mnist}
model:
  input: [8, 8, 1]
  layers:
    - {type: conv2d, name: conv, filters: 5, kernel: 3, padding: same, use_bias: true}
    - {type: batchnorm, name: bn}
    - {type: relu, name: relu}
    - {type: flatten, name: flat}
    - {type: dense, name: logits, units: 3}
)";

std::vector<float> random_params(const nn::Graph& g, uint64_t seed) {
  std::vector<float> p(static_cast<size_t>(g.param_floats));
  nn::init_params(g, p.data(), seed);
  // Non-trivial BatchNorm statistics so folding has something to do.
  Rng rng(seed + 1);
  for (const auto& info : g.params) {
    float* v = p.data() + info.offset;
    const int64_t n = numel(info.shape);
    if (info.name.find("moving_variance") != std::string::npos)
      for (int64_t i = 0; i < n; ++i) v[i] = rng.uniform(0.2f, 3.0f);
    else if (info.name.find("moving_mean") != std::string::npos || info.name.find("beta") != std::string::npos ||
             info.name.find("bias") != std::string::npos)
      for (int64_t i = 0; i < n; ++i) v[i] = rng.uniform(-0.5f, 0.5f);
    else if (info.name.find("gamma") != std::string::npos)
      for (int64_t i = 0; i < n; ++i) v[i] = rng.uniform(0.5f, 2.0f);
  }
  return p;
}

std::vector<float> batch_of(const data::Dataset& ds, int64_t n) {
  std::vector<int32_t> idx = data::all_indices(ds);
  std::vector<float> x(static_cast<size_t>(n * 64));
  std::vector<int32_t> y(static_cast<size_t>(n));
  data::gather_batch(ds, idx.data(), n, recipe::DataSpec{}, x.data(), y.data());
  return x;
}

}  // namespace

TEST_CASE("quant model: with 8-bit everything its output stays close to the float model") {
  recipe::Recipe r = recipe::parse_recipe(kBnModel, "q.yaml");
  nn::Graph g = nn::build_graph(r.model);
  auto params = random_params(g, 3);
  data::Dataset ds = testing::tiny_dataset(32);
  auto x = batch_of(ds, 32);
  train::FloatModel f(g, params, 32, false);
  std::vector<float> ref(f.forward(x.data(), 32, nn::Mode::eval, 0), f.forward(x.data(), 32, nn::Mode::eval, 0) + 96);
  quant::QatSchedule frozen{0, 0, -1};
  quant::QuantModel q(g, quant::make_plan(g, r.quant), params, 32, false, frozen);
  q.begin_calibration();
  q.forward(x.data(), 32, nn::Mode::eval, 0);
  q.end_calibration(recipe::RangeMethod::minmax, 100);
  const float* out = q.forward(x.data(), 32, nn::Mode::eval, 0);
  double max_ref = 0, max_err = 0;
  for (int i = 0; i < 96; ++i) {
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[static_cast<size_t>(i)])));
    max_err = std::max(max_err, std::fabs(static_cast<double>(out[i] - ref[static_cast<size_t>(i)])));
  }
  CHECK(max_err > 0.0);               // it does quantize
  CHECK(max_err < 0.05 * max_ref);    // and 8 bits keep it close
}

TEST_CASE("quant model: folded weights reproduce conv followed by batchnorm") {
  recipe::Recipe r = recipe::parse_recipe(kBnModel, "q.yaml");
  nn::Graph g = nn::build_graph(r.model);
  auto params = random_params(g, 5);
  quant::QuantModel q(g, quant::make_plan(g, r.quant), params, 4, false);
  quant::FoldedWeights f = q.folded_weights(0);
  const nn::Node& conv = g.nodes[static_cast<size_t>(g.find("conv"))];
  const nn::Node& bn = g.nodes[static_cast<size_t>(g.find("bn"))];
  const float* w = params.data() + g.param(conv, 0).offset;
  const float* gamma = params.data() + g.param(bn, 0).offset;
  const float* var = params.data() + g.param(bn, 3).offset;
  REQUIRE(f.bn_scale.size() == 5);
  REQUIRE(f.qparams.size() == 5);  // per channel
  for (size_t i = 0; i < f.folded.size(); ++i) {
    const size_t c = i % 5;
    const double s = gamma[c] / std::sqrt(static_cast<double>(var[c]) + 1e-3);
    CHECK(f.folded[i] == doctest::Approx(w[i] * s).epsilon(1e-6));
  }
  for (const auto& qp : f.qparams) {
    CHECK(qp.zero_point == 0);
    CHECK(qp.qmax == 127);
  }
}

TEST_CASE("quant model: frozen observers and batchnorm make training steps leave ranges alone") {
  recipe::Recipe r = recipe::parse_recipe(kBnModel, "q.yaml");
  nn::Graph g = nn::build_graph(r.model);
  auto params = random_params(g, 7);
  data::Dataset ds = testing::tiny_dataset(16);
  auto x = batch_of(ds, 16);
  quant::QatSchedule sched{0, 1, 1};  // everything frozen from step 1
  quant::QuantModel q(g, quant::make_plan(g, r.quant), params, 16, true, sched);
  q.before_step(0);
  q.forward(x.data(), 16, nn::Mode::train, 1);
  const std::string after_step0 = q.save_state();
  const std::vector<float> bn_stats(q.params().begin(), q.params().end());
  q.before_step(1);
  q.forward(x.data(), 16, nn::Mode::train, 2);
  q.before_step(2);
  std::vector<float> o1(q.forward(x.data(), 16, nn::Mode::train, 3), q.forward(x.data(), 16, nn::Mode::train, 3) + 48);
  const float* o2 = q.forward(x.data(), 16, nn::Mode::train, 3);
  CHECK(q.save_state() == after_step0);
  CHECK(q.params() == bn_stats);  // frozen BN: moving statistics untouched
  for (int i = 0; i < 48; ++i) CHECK(o1[static_cast<size_t>(i)] == o2[i]);
}

TEST_CASE("quant model: state round trip gives bit-identical outputs") {
  recipe::Recipe r = recipe::parse_recipe(kBnModel, "q.yaml");
  nn::Graph g = nn::build_graph(r.model);
  auto params = random_params(g, 9);
  data::Dataset ds = testing::tiny_dataset(16);
  auto x = batch_of(ds, 16);
  quant::QuantModel a(g, quant::make_plan(g, r.quant), params, 16, true);
  for (int s = 0; s < 3; ++s) {
    a.before_step(s);
    a.forward(x.data(), 16, nn::Mode::train, static_cast<uint64_t>(s));
  }
  quant::QuantModel b(g, quant::make_plan(g, r.quant), a.params(), 16, false);
  b.load_state(a.save_state(), "state");
  std::vector<float> oa(a.forward(x.data(), 16, nn::Mode::eval, 0), a.forward(x.data(), 16, nn::Mode::eval, 0) + 48);
  const float* ob = b.forward(x.data(), 16, nn::Mode::eval, 0);
  for (int i = 0; i < 48; ++i) CHECK(oa[static_cast<size_t>(i)] == ob[i]);
  // Another plan (a different model) refuses the state.
  recipe::Recipe r2 = recipe::parse_recipe(kBnModel, "q.yaml", {"model.layers.2.name=act"});
  nn::Graph g2 = nn::build_graph(r2.model);
  quant::QuantModel c(g2, quant::make_plan(g2, r2.quant), a.params(), 16, false);
  CHECK_THROWS_AS(c.load_state(a.save_state(), "state"), Error);
}

TEST_CASE("quant model: before quant_delay_steps activations stay float") {
  recipe::Recipe r = recipe::parse_recipe(kBnModel, "q.yaml");
  nn::Graph g = nn::build_graph(r.model);
  auto params = random_params(g, 11);
  data::Dataset ds = testing::tiny_dataset(16);
  auto x = batch_of(ds, 16);
  quant::QatSchedule delayed{5, -1, -1};
  quant::QuantModel q(g, quant::make_plan(g, r.quant), params, 16, true, delayed);
  q.before_step(0);
  const float* out = q.forward(x.data(), 16, nn::Mode::train, 0);
  // Only the weights are quantized before the delay: no logit lies on the logits quantizer's grid.
  const quant::QParams lp = q.act_qparams(q.plan().act_of[g.nodes.size() - 1]);
  int on_grid = 0;
  for (int i = 0; i < 48; ++i) on_grid += quant::dequantize(quant::quantize(out[i], lp), lp) == out[i];
  CHECK(on_grid < 48);
  q.before_step(5);
  out = q.forward(x.data(), 16, nn::Mode::train, 1);
  const quant::QParams lp2 = q.act_qparams(q.plan().act_of[g.nodes.size() - 1]);
  for (int i = 0; i < 48; ++i) CHECK(quant::dequantize(quant::quantize(out[i], lp2), lp2) == out[i]);
}

namespace {
// The same model with the straight-through mask always applied by output_backward, never fused
// into the ReLU's backward by the engine.
class UnfusedQuantModel : public quant::QuantModel {
 public:
  using quant::QuantModel::QuantModel;
  const uint8_t* ste_mask(size_t /*node*/) const override { return nullptr; }
};
}  // namespace

TEST_CASE("quant model: the STE mask fused into the ReLU backward gives the unfused gradients") {
  recipe::Recipe r = recipe::parse_recipe(kBnModel, "q.yaml");
  nn::Graph g = nn::build_graph(r.model);
  auto params = random_params(g, 21);
  data::Dataset ds = testing::tiny_dataset(16);
  auto x = batch_of(ds, 16);
  quant::QuantModel fused(g, quant::make_plan(g, r.quant), params, 16, true);
  UnfusedQuantModel unfused(g, quant::make_plan(g, r.quant), params, 16, true);
  std::vector<float> dlogits(48);
  for (size_t i = 0; i < dlogits.size(); ++i) dlogits[i] = 0.1f * static_cast<float>(static_cast<int>(i % 7) - 3);
  for (int step = 0; step < 3; ++step) {
    // The first step initializes the observers; brighter inputs later put activations outside
    // the observed range, so the mask blocks some gradient.
    std::vector<float> xs(x);
    for (float& v : xs) v *= static_cast<float>(1 + 2 * step);
    for (quant::QuantModel* m : {&fused, static_cast<quant::QuantModel*>(&unfused)}) {
      std::fill(m->grads().begin(), m->grads().end(), 0.0f);
      m->before_step(step);
      m->forward(xs.data(), 16, nn::Mode::train, static_cast<uint64_t>(step));
      m->backward(dlogits.data());
    }
    const size_t relu = g.nodes.size() - 3;
    const uint8_t* mask = fused.ste_mask(relu);
    REQUIRE(mask != nullptr);  // the relu's output is fake-quantized
    if (step > 0) {
      int64_t blocked = 0;
      for (int64_t i = 0; i < 16 * numel(g.nodes[relu].shape); ++i) blocked += mask[i] == 0;
      CHECK(blocked > 0);
    }
    CHECK(fused.grads() == unfused.grads());
    double norm = 0;
    for (float v : fused.grads()) norm += std::fabs(v);
    CHECK(norm > 0.0);
  }
}
