// Tests for strict recipe loading: every key typed, every mistake located.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "recipe/load.h"

using namespace qatc;
using namespace qatc::recipe;

namespace {

const char* kGood = R"(name: tiny
seed: 3
data:
  dataset: mnist
  validation_split: 0.1
model:
  input: [28, 28, 1]
  layers:
    - {type: conv2d, name: conv, filters: 4, kernel: 3, activation: relu}
    - {type: maxpool, pool: 2}
    - {type: flatten}
    - {type: dense, name: logits, units: 10}
train:
  epochs: 2
  batch_size: 16
  optimizer: {type: sgd, lr: 0.1, momentum: 0.9, nesterov: true}
  schedule: {type: cosine, warmup_steps: 10}
)";

std::string error_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    parse_recipe(text, "r.yaml", sets);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto p = s.find(from);
  REQUIRE(p != std::string::npos);
  return s.replace(p, from.size(), to);
}

}  // namespace

TEST_CASE("recipe: a good recipe loads into typed fields") {
  Recipe r = parse_recipe(kGood, "r.yaml");
  CHECK(r.name == "tiny");
  CHECK(r.seed == 3);
  CHECK(r.data.dataset == "mnist");
  CHECK(r.data.validation_split == doctest::Approx(0.1));
  REQUIRE(r.model.layers.size() == 4);
  const auto& conv = std::get<Conv2DSpec>(r.model.layers[0].attrs);
  CHECK(conv.filters == 4);
  CHECK(conv.kernel_h == 3);
  CHECK(conv.kernel_w == 3);
  CHECK(conv.activation == Activation::relu);
  CHECK(conv.padding == PaddingKind::valid);
  CHECK(r.model.layers[1].name == "maxpool_1");
  const auto& pool = std::get<Pool2DSpec>(r.model.layers[1].attrs);
  CHECK(pool.stride_h == 2);  // Keras: strides default to the pool size
  CHECK(r.train.epochs == 2);
  CHECK(r.train.optimizer.type == OptimizerKind::sgd);
  CHECK(r.train.optimizer.nesterov);
  CHECK(r.train.schedule.type == ScheduleKind::cosine);
  CHECK(r.train.schedule.warmup_steps == 10);
  CHECK(r.stages.size() == 3);
}

TEST_CASE("recipe: unknown key reports file line column and a suggestion") {
  std::string e = error_of(replace(kGood, "  epochs: 2", "  epocs: 2"));
  CHECK(e.find("r.yaml:14:3: unknown key 'epocs' in 'train'") == 0);
  CHECK(e.find("did you mean 'epochs'") != std::string::npos);
}

TEST_CASE("recipe: wrong type is located") {
  std::string e = error_of(replace(kGood, "batch_size: 16", "batch_size: many"));
  CHECK(e.find("r.yaml:15:15:") == 0);
  CHECK(e.find("must be an integer") != std::string::npos);
  e = error_of(replace(kGood, "batch_size: 16", "batch_size: 1.5"));
  CHECK(e.find("must be an integer") != std::string::npos);
}

TEST_CASE("recipe: out of range values are rejected") {
  CHECK(error_of(replace(kGood, "epochs: 2", "epochs: -1")).find("'train.epochs' is -1, must be in [1, 100000]") !=
        std::string::npos);
  CHECK(error_of(replace(kGood, "batch_size: 16", "batch_size: 0")).find("train.batch_size") != std::string::npos);
  CHECK(error_of(replace(kGood, "validation_split: 0.1", "validation_split: 1.5")).find("validation_split") !=
        std::string::npos);
}

TEST_CASE("recipe: unknown layer type lists the known ones") {
  std::string e = error_of(replace(kGood, "type: flatten", "type: flaten"));
  CHECK(e.find("r.yaml:11:14:") == 0);
  CHECK(e.find("unknown value 'flaten'") != std::string::npos);
  CHECK(e.find("flatten") != std::string::npos);
}

TEST_CASE("recipe: yaml syntax errors are located") {
  std::string e = error_of("name: x\nmodel: [1, 2\n");
  CHECK(e.find("r.yaml:") == 0);
  CHECK(e.find("YAML syntax error") != std::string::npos);
}

TEST_CASE("recipe: missing sections and keys are named") {
  CHECK(error_of("name: x\n").find("missing required key 'model'") != std::string::npos);
  CHECK(error_of(replace(kGood, "  dataset: mnist\n", "")).find("'data.dataset'") != std::string::npos);
  CHECK(error_of(replace(kGood, "filters: 4, ", "")).find("'model.layers.0.filters'") != std::string::npos);
}

TEST_CASE("recipe: --set overrides any key and is type checked") {
  Recipe r = parse_recipe(kGood, "r.yaml", {"train.epochs=5", "model.layers.0.filters=8", "train.optimizer.lr=0.5"});
  CHECK(r.train.epochs == 5);
  CHECK(std::get<Conv2DSpec>(r.model.layers[0].attrs).filters == 8);
  CHECK(r.train.optimizer.lr == doctest::Approx(0.5));
  CHECK(r.resolved_yaml.find("epochs: 5") != std::string::npos);
  // A new section can be created from the command line.
  Recipe r2 = parse_recipe(kGood, "r.yaml", {"eval.batch_size=64"});
  CHECK(r2.eval.batch_size == 64);
  CHECK(error_of(kGood, {"train.epochs=abc"}).find("--set train.epochs:") == 0);
  CHECK(error_of(kGood, {"train.epocs=3"}).find("--set train.epocs: unknown key 'epocs'") == 0);
  CHECK(error_of(kGood, {"train.epochs"}).find("expected KEY=VALUE") != std::string::npos);
  CHECK(error_of(kGood, {"model.layers.9.filters=3"}).find("past the end") != std::string::npos);
}

TEST_CASE("recipe: duplicate layer names and bad names are rejected") {
  CHECK(error_of(replace(kGood, "name: logits", "name: conv")).find("duplicate layer name 'conv'") != std::string::npos);
  CHECK(error_of(replace(kGood, "name: tiny", "name: a/b")).find("'name' must be") != std::string::npos);
}

TEST_CASE("recipe: momentum is rejected for adam") {
  std::string e = error_of(replace(kGood, "type: sgd, lr: 0.1, momentum: 0.9, nesterov: true", "type: adam, momentum: 0.9"));
  CHECK(e.find("apply to optimizer type sgd only") != std::string::npos);
}

TEST_CASE("recipe: missing file says where recipes are") {
  try {
    load_recipe("/nonexistent/recipe.yaml");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("/nonexistent/recipe.yaml: recipe file not found") == 0);
  }
}

TEST_CASE("recipe: every shipped recipe loads") {
  int count = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(QATC_SOURCE_DIR) + "/recipes")) {
    if (e.path().extension() != ".yaml") continue;
    CAPTURE(e.path().string());
    Recipe r = load_recipe(e.path());
    CHECK(!r.name.empty());
    ++count;
  }
  CHECK(count >= 4);
}
