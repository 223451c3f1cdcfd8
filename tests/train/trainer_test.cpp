// The training loop: learns, is deterministic, resumes exactly, stops on divergence.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "core/threads.h"
#include "data/loader.h"
#include "data/source.h"
#include "fixtures/tiny.h"
#include "nn/graph.h"
#include "train/evaluate.h"
#include "train/trainer.h"

using namespace qatc;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("qatc_trainer_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

train::LoopConfig config_of(const recipe::Recipe& r, const fs::path& dir) {
  train::LoopConfig c;
  c.epochs = r.train.epochs;
  c.batch_size = r.train.batch_size;
  c.seed = r.seed;
  c.optimizer = r.train.optimizer;
  c.schedule = r.train.schedule;
  c.data = r.data;
  c.recipe_yaml = r.resolved_yaml;
  c.state_path = dir / "state.ckpt";
  c.checkpoint_every_steps = r.train.checkpoint_every_steps;
  return c;
}

// A float model that simulates a kill (throws) or a blow-up (NaN weights) at a given step.
class Faulty : public train::FloatModel {
 public:
  Faulty(const nn::Graph& g, std::vector<float> p, int64_t batch, int64_t kill_at, int64_t nan_at)
      : FloatModel(g, std::move(p), batch, true), kill_at_(kill_at), nan_at_(nan_at) {}
  void before_step(int64_t step) override {
    if (step == kill_at_) throw std::runtime_error("killed");
    // Poison the logits layer: no ReLU or max-pool between it and the loss can mask the NaN.
    if (step == nan_at_) params()[static_cast<size_t>(graph().params[static_cast<size_t>(graph().find_param("logits/kernel"))].offset)] = std::nanf("");
  }

 private:
  int64_t kill_at_, nan_at_;
};

struct Trained {
  std::vector<float> params;
  train::LoopResult result;
};

Trained train_tiny(const recipe::Recipe& r, const fs::path& dir, int threads) {
  set_num_threads(threads);
  data::MemorySource ds(testing::tiny_dataset(120), r.data);
  nn::Graph g = nn::build_graph(r.model);
  data::Split s = data::make_split(ds.size(), r.data);
  std::vector<float> p(static_cast<size_t>(g.param_floats));
  nn::init_params(g, p.data(), r.seed);
  train::FloatModel m(g, p, r.train.batch_size, true);
  Trained t;
  t.result = train::train_loop(m, ds, s.train, s.validation, config_of(r, dir), dir);
  t.params = m.params();
  return t;
}

}  // namespace

TEST_CASE("trainer: learns the tiny task and validates") {
  fs::path d = temp_dir("learn");
  Trained t = train_tiny(testing::tiny_recipe(), d, 1);
  REQUIRE(t.result.epochs.size() == 3);
  CHECK(t.result.epochs.back().loss < t.result.epochs.front().loss);
  CHECK(t.result.epochs.back().val_accuracy > 0.9);
  CHECK(fs::exists(d / "metrics.jsonl"));
  CHECK(fs::exists(d / "state.ckpt"));
  fs::remove_all(d);
}

TEST_CASE("trainer: deterministic for a seed and identical across thread counts") {
  fs::path d = temp_dir("det");
  Trained a = train_tiny(testing::tiny_recipe(), d, 1);
  Trained b = train_tiny(testing::tiny_recipe(), d, 1);
  Trained c = train_tiny(testing::tiny_recipe({"seed=6"}), d, 1);
  CHECK(a.params == b.params);
  CHECK(a.params != c.params);
  set_num_threads(0);
  fs::remove_all(d);
}

TEST_CASE("trainer: a killed run resumes to exactly the uninterrupted result") {
  recipe::Recipe r = testing::tiny_recipe({"train.checkpoint_every_steps=4", "train.schedule.type=cosine"});
  fs::path full_dir = temp_dir("full"), kill_dir = temp_dir("kill");
  Trained full = train_tiny(r, full_dir, 1);

  data::MemorySource ds(testing::tiny_dataset(120), r.data);
  nn::Graph g = nn::build_graph(r.model);
  data::Split s = data::make_split(ds.size(), r.data);
  std::vector<float> p(static_cast<size_t>(g.param_floats));
  nn::init_params(g, p.data(), r.seed);
  {
    Faulty m(g, p, r.train.batch_size, /*kill_at=*/18, /*nan_at=*/-1);  // mid epoch 2 (12 steps/epoch)
    CHECK_THROWS_WITH(train::train_loop(m, ds, s.train, s.validation, config_of(r, kill_dir), kill_dir), "killed");
  }
  train::Checkpoint st = train::load_checkpoint(kill_dir / "state.ckpt");
  CHECK(st.progress.global_step == 16);
  train::FloatModel resumed(g, std::vector<float>(p.size(), 0.0f), r.train.batch_size, true);
  train::LoopConfig cfg = config_of(r, kill_dir);
  cfg.resume = true;
  train::train_loop(resumed, ds, s.train, s.validation, cfg, kill_dir);
  CHECK(resumed.params() == full.params);
  fs::remove_all(full_dir);
  fs::remove_all(kill_dir);
}

TEST_CASE("trainer: a NaN loss stops with JobFailed and keeps the last good checkpoint") {
  recipe::Recipe r = testing::tiny_recipe();
  fs::path d = temp_dir("nan");
  data::MemorySource ds(testing::tiny_dataset(120), r.data);
  nn::Graph g = nn::build_graph(r.model);
  data::Split s = data::make_split(ds.size(), r.data);
  std::vector<float> p(static_cast<size_t>(g.param_floats));
  nn::init_params(g, p.data(), r.seed);
  Faulty m(g, p, r.train.batch_size, -1, /*nan_at=*/14);
  try {
    train::train_loop(m, ds, s.train, s.validation, config_of(r, d), d);
    FAIL("expected JobFailed");
  } catch (const JobFailed& e) {
    std::string msg = e.what();
    CHECK(msg.find("loss became nan at epoch 2 step 3") != std::string::npos);
    CHECK(msg.find("state.ckpt") != std::string::npos);
  }
  train::Checkpoint st = train::load_checkpoint(d / "state.ckpt");
  CHECK(st.progress.epoch == 1);
  for (float v : st.params) REQUIRE(std::isfinite(v));
  fs::remove_all(d);
}

TEST_CASE("trainer: resume refuses a state from another model") {
  recipe::Recipe r = testing::tiny_recipe({"train.epochs=1"});
  fs::path d = temp_dir("other");
  train_tiny(r, d, 1);
  recipe::Recipe r2 = testing::tiny_recipe({"model.layers.0.filters=5"});
  nn::Graph g2 = nn::build_graph(r2.model);
  data::MemorySource ds(testing::tiny_dataset(120), r2.data);
  data::Split s = data::make_split(ds.size(), r2.data);
  train::FloatModel m(g2, std::vector<float>(static_cast<size_t>(g2.param_floats)), 8, true);
  train::LoopConfig cfg = config_of(r2, d);
  cfg.resume = true;
  CHECK_THROWS_AS(train::train_loop(m, ds, s.train, s.validation, cfg, d), Error);
  fs::remove_all(d);
}
