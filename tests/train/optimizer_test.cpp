// Optimizer updates against hand-computed values, and the learning-rate schedules.
#include <doctest/doctest.h>

#include <cmath>

#include "fixtures/tiny.h"
#include "nn/graph.h"
#include "train/optimizer.h"

using namespace qatc;

namespace {

// A graph with one trainable tensor (dense kernel 1x2 + bias 2) and BN state that must not move.
nn::Graph one_dense() {
  recipe::Recipe r = recipe::parse_recipe(R"(name: o
data: {dataset: mnist}
model:
  input: [1, 1, 1]
  layers:
    - {type: flatten}
    - {type: dense, units: 2}
)", "o.yaml");
  return nn::build_graph(r.model);
}

}  // namespace

TEST_CASE("optimizer: sgd with momentum and nesterov follow the formulas") {
  nn::Graph g = one_dense();
  REQUIRE(g.param_floats == 4);
  recipe::OptimizerSpec s;
  s.type = recipe::OptimizerKind::sgd;
  s.momentum = 0.9;
  std::vector<float> p = {1, 2, 3, 4}, grad = {0.5f, -1, 0, 2};
  train::Optimizer o(s, g);
  o.step(p.data(), grad.data(), 0.1);  // v = g; p -= 0.1 g
  CHECK(p[0] == doctest::Approx(0.95));
  o.step(p.data(), grad.data(), 0.1);  // v = 0.9*0.5 + 0.5 = 0.95
  CHECK(p[0] == doctest::Approx(0.95 - 0.095));
  s.nesterov = true;
  train::Optimizer on(s, g);
  std::vector<float> q = {1, 2, 3, 4};
  on.step(q.data(), grad.data(), 0.1);  // v = g = 0.5; p -= 0.1 * (g + 0.9 v) = 0.095
  CHECK(q[0] == doctest::Approx(1 - 0.095));
}

TEST_CASE("optimizer: adam first step moves every weight by lr") {
  nn::Graph g = one_dense();
  recipe::OptimizerSpec s;  // adam
  std::vector<float> p = {1, 2, 3, 4}, grad = {0.5f, -1, 1e-3f, 2};
  train::Optimizer o(s, g);
  o.step(p.data(), grad.data(), 0.01);
  // m_hat = g, v_hat = g^2 -> step = lr * g / (|g| + eps)
  CHECK(p[0] == doctest::Approx(1 - 0.01).epsilon(1e-5));
  CHECK(p[1] == doctest::Approx(2 + 0.01).epsilon(1e-5));
  CHECK(p[2] == doctest::Approx(3 - 0.01).epsilon(1e-4));
  // Second step with the same gradient: still lr per step.
  o.step(p.data(), grad.data(), 0.01);
  CHECK(p[0] == doctest::Approx(1 - 0.02).epsilon(1e-5));
}

TEST_CASE("optimizer: adamw decays decoupled and adam adds L2 to the gradient") {
  nn::Graph g = one_dense();
  recipe::OptimizerSpec s;
  s.type = recipe::OptimizerKind::adamw;
  s.weight_decay = 0.1;
  std::vector<float> p = {1, 2, 3, 4}, zero = {0, 0, 0, 0};
  train::Optimizer o(s, g);
  o.step(p.data(), zero.data(), 0.5);  // no gradient: only decay p -= lr*wd*p
  CHECK(p[1] == doctest::Approx(2 * (1 - 0.05)));
  s.type = recipe::OptimizerKind::adam;
  std::vector<float> q = {1, 2, 3, 4};
  train::Optimizer oa(s, g);
  oa.step(q.data(), zero.data(), 0.5);  // g' = wd*p > 0: adam step of lr in the -sign direction
  CHECK(q[1] == doctest::Approx(2 - 0.5).epsilon(1e-4));
}

TEST_CASE("optimizer: batchnorm moving statistics are never updated") {
  nn::Graph g = nn::build_graph(testing::tiny_recipe().model);
  std::vector<float> p(static_cast<size_t>(g.param_floats), 1.0f), grad(p.size(), 1.0f);
  train::Optimizer o(recipe::OptimizerSpec{}, g);
  o.step(p.data(), grad.data(), 0.1);
  for (const auto& info : g.params) {
    CAPTURE(info.name);
    CHECK((p[static_cast<size_t>(info.offset)] == 1.0f) == !info.trainable);
  }
}

TEST_CASE("optimizer: state round-trips and rejects another model") {
  nn::Graph g = one_dense();
  train::Optimizer o(recipe::OptimizerSpec{}, g);
  std::vector<float> p = {1, 2, 3, 4}, grad = {1, 1, 1, 1};
  o.step(p.data(), grad.data(), 0.1);
  ByteWriter w;
  o.save(w);
  train::Optimizer o2(recipe::OptimizerSpec{}, g);
  ByteReader r(w.bytes(), "state");
  o2.load(r);
  CHECK(o2.steps() == 1);
  nn::Graph big = nn::build_graph(testing::tiny_recipe().model);
  train::Optimizer o3(recipe::OptimizerSpec{}, big);
  ByteReader r2(w.bytes(), "state");
  CHECK_THROWS_AS(o3.load(r2), Error);
}

TEST_CASE("schedule: warm-up, step and cosine") {
  recipe::OptimizerSpec o;
  o.lr = 1.0;
  recipe::ScheduleSpec s;
  s.warmup_steps = 4;
  CHECK(train::learning_rate(o, s, 0, 100, 10) == doctest::Approx(0.25));
  CHECK(train::learning_rate(o, s, 3, 100, 10) == doctest::Approx(1.0));
  CHECK(train::learning_rate(o, s, 50, 100, 10) == doctest::Approx(1.0));
  s.type = recipe::ScheduleKind::step;
  s.warmup_steps = 0;
  s.gamma = 0.5;
  CHECK(train::learning_rate(o, s, 9, 100, 10) == doctest::Approx(1.0));
  CHECK(train::learning_rate(o, s, 10, 100, 10) == doctest::Approx(0.5));
  CHECK(train::learning_rate(o, s, 25, 100, 10) == doctest::Approx(0.25));
  s.type = recipe::ScheduleKind::cosine;
  s.min_lr = 0.1;
  CHECK(train::learning_rate(o, s, 0, 100, 10) == doctest::Approx(1.0));
  CHECK(train::learning_rate(o, s, 50, 100, 10) == doctest::Approx(0.55));
  CHECK(train::learning_rate(o, s, 100, 100, 10) == doctest::Approx(0.1));
}
