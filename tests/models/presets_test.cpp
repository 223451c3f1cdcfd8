// Tests for the model presets: the published architectures at 224x224x3 and 1000 classes must
// have Keras' exact parameter counts (BatchNorm moving statistics included, as Keras'
// model.count_params()) and the multiply-accumulates `qatc inspect` reports; small variants
// must build and run; bad settings must be rejected with a message naming the preset and key;
// and a recipe can name a preset instead of listing layers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "models/presets.h"
#include "nn/engine.h"
#include "nn/graph.h"
#include "recipe/load.h"
#include "recipe/recipe.h"

using namespace qatc;

namespace {

recipe::PresetSpec preset(const std::string& name, double alpha = 1.0, int64_t classes = 1000,
                          std::vector<int64_t> blocks = {}) {
  recipe::PresetSpec p;
  p.name = name;
  p.alpha = alpha;
  p.classes = classes;
  p.blocks = std::move(blocks);
  p.origin.where = "r.yaml:7:11";
  return p;
}

recipe::ModelSpec model(const recipe::PresetSpec& p, std::vector<int64_t> input) {
  recipe::ModelSpec m;
  m.input = std::move(input);
  m.preset = p;
  m.layers = models::preset_layers(p, m.input);
  return m;
}

std::string preset_error(const recipe::PresetSpec& p, const std::vector<int64_t>& input) {
  try {
    const recipe::ModelSpec m = model(p, input);
    nn::build_graph(m);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const char* kKnown = "mobilenet_v1, mobilenet_v2, resnet50_v1, resnet50_v2, nasnet_mobile";

std::string recipe_with_model(const std::string& model_yaml) {
  return "name: preset\nseed: 1\ndata: {dataset: mnist}\nmodel:\n" + model_yaml;
}

std::string recipe_error(const std::string& text) {
  try {
    recipe::parse_recipe(text, "p.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("presets: the names, in order") {
  CHECK(models::preset_names() ==
        std::vector<std::string>{"mobilenet_v1", "mobilenet_v2", "resnet50_v1", "resnet50_v2", "nasnet_mobile"});
}

TEST_CASE("presets: Keras parameter counts and MACs at 224x224x3, 1000 classes") {
  struct Expected {
    const char* name;
    int64_t params, macs;
    const char* first, *last;
  };
  // Parameters: Keras applications' count_params(); MACs: as measured by `qatc inspect --json`.
  const Expected cases[] = {
      {"mobilenet_v1", 4253864, 568740352, "conv1", "conv_preds"},
      {"mobilenet_v2", 3538984, 300774272, "Conv1", "predictions"},
      {"resnet50_v1", 25636712, 3857973248, "conv1_pad", "predictions"},
      {"resnet50_v2", 25613800, 3482255360, "conv1_pad", "predictions"},
      {"nasnet_mobile", 5326716, 563638816, "stem_conv1", "predictions"},
  };
  for (const Expected& e : cases) {
    INFO("preset ", e.name);
    const recipe::ModelSpec m = model(preset(e.name), {224, 224, 3});
    REQUIRE(!m.layers.empty());
    CHECK(m.layers.front().name == e.first);
    CHECK(m.layers.back().name == e.last);
    const nn::Graph g = nn::build_graph(m);
    int64_t params = 0;
    for (const auto& p : g.params) params += numel(p.shape);
    CHECK(params == e.params);
    CHECK(g.param_floats == e.params);
    CHECK(nn::macs_per_example(g) == e.macs);
    CHECK(g.classes() == 1000);
    CHECK(g.output().shape == Shape{1000});
  }
}

TEST_CASE("presets: layer names and shapes follow Keras") {
  SUBCASE("mobilenet_v1") {
    const nn::Graph g = nn::build_graph(model(preset("mobilenet_v1"), {224, 224, 3}));
    // Stride-2 blocks pad ((0, 1), (0, 1)) and run 'valid': 112 -> 113 -> 56.
    const auto& pad = g.nodes[static_cast<size_t>(g.find("conv_pad_2"))];
    CHECK(pad.shape == Shape{113, 113, 64});
    CHECK(g.nodes[static_cast<size_t>(g.find("conv_dw_2"))].shape == Shape{56, 56, 64});
    CHECK(g.params[static_cast<size_t>(g.find_param("conv_dw_2/kernel"))].shape == Shape{3, 3, 64, 1});
    CHECK(g.nodes[static_cast<size_t>(g.find("conv_pw_13_relu"))].shape == Shape{7, 7, 1024});
    CHECK(g.params[static_cast<size_t>(g.find_param("conv_preds/kernel"))].shape == Shape{1024, 1000});
  }
  SUBCASE("mobilenet_v2") {
    const nn::Graph g = nn::build_graph(model(preset("mobilenet_v2"), {224, 224, 3}));
    CHECK(g.nodes[static_cast<size_t>(g.find("block_1_pad"))].shape == Shape{113, 113, 96});
    CHECK(g.nodes[static_cast<size_t>(g.find("block_2_add"))].shape == Shape{56, 56, 24});
    CHECK(g.find("block_1_add") < 0);  // stride 2: no residual
    CHECK(g.nodes[static_cast<size_t>(g.find("out_relu"))].shape == Shape{7, 7, 1280});
  }
  SUBCASE("resnet50_v1") {
    const nn::Graph g = nn::build_graph(model(preset("resnet50_v1"), {224, 224, 3}));
    CHECK(g.nodes[static_cast<size_t>(g.find("conv1_pad"))].shape == Shape{230, 230, 3});
    CHECK(g.nodes[static_cast<size_t>(g.find("pool1_pool"))].shape == Shape{56, 56, 64});
    CHECK(g.nodes[static_cast<size_t>(g.find("conv5_block3_out"))].shape == Shape{7, 7, 2048});
  }
  SUBCASE("nasnet_mobile") {
    const nn::Graph g = nn::build_graph(model(preset("nasnet_mobile"), {224, 224, 3}));
    CHECK(g.nodes[static_cast<size_t>(g.find("stem_conv1"))].shape == Shape{111, 111, 32});
    CHECK(g.nodes[static_cast<size_t>(g.find("separable_conv_1_normal_left1_0/depthwise"))].op ==
          nn::Op::depthwise_conv2d);
    CHECK(g.nodes.back().name == "predictions");
    CHECK(g.params[static_cast<size_t>(g.find_param("predictions/kernel"))].shape == Shape{1056, 1000});
  }
}

TEST_CASE("presets: small variants build and run a forward pass") {
  struct Small {
    const char* what;
    recipe::PresetSpec p;
  };
  const Small cases[] = {
      {"mobilenet_v1 alpha 0.25", preset("mobilenet_v1", 0.25, 10)},
      {"mobilenet_v1 alpha 0.5", preset("mobilenet_v1", 0.5, 10)},
      {"mobilenet_v2 alpha 0.35", preset("mobilenet_v2", 0.35, 10)},
      {"mobilenet_v2 alpha 0.5", preset("mobilenet_v2", 0.5, 10)},
      {"resnet50_v1 [1, 1, 1, 1] alpha 0.25", preset("resnet50_v1", 0.25, 10, {1, 1, 1, 1})},
      {"resnet50_v2 [1, 1, 1, 1] alpha 0.25", preset("resnet50_v2", 0.25, 10, {1, 1, 1, 1})},
      {"nasnet_mobile [1] alpha 0.5", preset("nasnet_mobile", 0.5, 10, {1})},
  };
  for (const Small& s : cases) {
    INFO(s.what);
    const recipe::ModelSpec m = model(s.p, {32, 32, 1});
    const nn::Graph g = nn::build_graph(m);
    CHECK(g.output().shape == Shape{10});
    std::vector<float> params(static_cast<size_t>(g.param_floats));
    nn::init_params(g, params.data(), 7);
    Rng rng(8);
    std::vector<float> input(2 * 32 * 32);
    for (auto& x : input) x = rng.uniform(-1.0f, 1.0f);
    nn::FloatEngine engine(g, 2, false);
    for (nn::Mode mode : {nn::Mode::eval, nn::Mode::train}) {
      INFO((mode == nn::Mode::eval ? "eval" : "train"));
      const float* logits = engine.forward(input.data(), 2, mode, params.data(), 1);
      bool finite = true, varied = false;
      for (int i = 0; i < 20; ++i) {
        finite = finite && std::isfinite(logits[i]);
        varied = varied || logits[i] != logits[0];
      }
      CHECK(finite);
      CHECK(varied);
    }
  }
}

TEST_CASE("presets: fewer blocks give smaller models") {
  // ResNet blocks per stage and NASNet cells per stage are counted exactly.
  const nn::Graph r1 = nn::build_graph(model(preset("resnet50_v1", 0.25, 10, {1, 1, 1, 1}), {32, 32, 3}));
  const nn::Graph r2 = nn::build_graph(model(preset("resnet50_v1", 0.25, 10, {2, 1, 1, 1}), {32, 32, 3}));
  CHECK(r1.find("conv2_block1_add") >= 0);
  CHECK(r1.find("conv2_block2_add") < 0);
  CHECK(r2.find("conv2_block2_add") >= 0);
  CHECK(r2.param_floats > r1.param_floats);
  const nn::Graph n1 = nn::build_graph(model(preset("nasnet_mobile", 1.0, 10, {1}), {32, 32, 3}));
  const nn::Graph n4 = nn::build_graph(model(preset("nasnet_mobile", 1.0, 10), {32, 32, 3}));
  CHECK(n1.find("normal_concat_0") >= 0);
  CHECK(n1.find("normal_concat_1") < 0);
  CHECK(n4.find("normal_concat_3") >= 0);
  CHECK(n4.param_floats > n1.param_floats);
}

TEST_CASE("presets: bad settings are rejected naming the preset and the key") {
  auto expect = [](const recipe::PresetSpec& p, const std::vector<int64_t>& input,
                   const std::vector<std::string>& parts) {
    const std::string e = preset_error(p, input);
    INFO("preset ", p.name, " error: ", e);
    CHECK(!e.empty());
    CHECK(e.rfind("r.yaml:7:11", 0) == 0);
    for (const auto& part : parts) CHECK(contains(e, part));
  };
  SUBCASE("unknown preset name") {
    expect(preset("mobilenet_v3"), {224, 224, 3}, {"'mobilenet_v3'", kKnown});
    CHECK_THROWS_AS(models::preset_layers(preset(""), {224, 224, 3}), qatc::Error);
  }
  SUBCASE("alpha too small") {
    expect(preset("mobilenet_v1", 0.01), {224, 224, 3}, {"mobilenet_v1", "alpha"});
    expect(preset("resnet50_v1", 0.001), {224, 224, 3}, {"resnet50_v1", "alpha"});
    expect(preset("nasnet_mobile", 0.01), {224, 224, 3}, {"nasnet_mobile", "alpha"});
  }
  SUBCASE("mobilenet_v2 rounds tiny widths up to 8 channels, as Keras' _make_divisible") {
    const nn::Graph g = nn::build_graph(model(preset("mobilenet_v2", 0.01, 10), {32, 32, 3}));
    CHECK(g.params[static_cast<size_t>(g.find_param("Conv1/kernel"))].shape == Shape{3, 3, 3, 8});
  }
  SUBCASE("resnet blocks with 3 entries") {
    expect(preset("resnet50_v1", 1.0, 1000, {3, 4, 6}), {224, 224, 3}, {"resnet50_v1", "blocks"});
    expect(preset("resnet50_v2", 1.0, 1000, {3, 4, 6}), {224, 224, 3}, {"resnet50_v2", "blocks"});
  }
  SUBCASE("mobilenets take no blocks") {
    expect(preset("mobilenet_v1", 1.0, 1000, {1}), {224, 224, 3}, {"mobilenet_v1", "blocks"});
    expect(preset("mobilenet_v2", 1.0, 1000, {1}), {224, 224, 3}, {"mobilenet_v2", "blocks"});
  }
  SUBCASE("nasnet blocks with 2 entries") {
    expect(preset("nasnet_mobile", 1.0, 1000, {1, 1}), {224, 224, 3}, {"nasnet_mobile", "blocks"});
  }
  SUBCASE("nasnet non-square input") {
    expect(preset("nasnet_mobile"), {224, 160, 3}, {"nasnet_mobile", "square", "224x160"});
  }
  SUBCASE("inputs too small for the stem") {
    expect(preset("nasnet_mobile", 1.0, 10), {2, 2, 1}, {"nasnet_mobile"});
    // MobileNet v1's stride-2 blocks run 'valid' 3x3 depthwise convolutions: the graph names
    // the first layer that no longer fits.
    expect(preset("mobilenet_v1", 1.0, 10), {16, 16, 1}, {"conv_dw_12", "valid"});
  }
}

TEST_CASE("presets: a recipe names a preset instead of layers") {
  const recipe::Recipe r = recipe::parse_recipe(
      recipe_with_model("  preset: mobilenet_v2\n  alpha: 0.35\n  input: [96, 96, 3]\n  classes: 10\n"), "p.yaml");
  CHECK(r.model.preset.name == "mobilenet_v2");
  CHECK(r.model.preset.alpha == doctest::Approx(0.35));
  CHECK(r.model.preset.classes == 10);
  CHECK(r.model.input == std::vector<int64_t>{96, 96, 3});
  CHECK(r.model.preset.origin.where.rfind("p.yaml:", 0) == 0);
  REQUIRE(!r.model.layers.empty());
  CHECK(r.model.layers.front().name == "Conv1");
  CHECK(r.model.layers.back().name == "predictions");
  const nn::Graph g = nn::build_graph(r.model);
  CHECK(g.classes() == 10);
  // make_divisible(32 * 0.35, 8) = 16 stem filters; below alpha 1 the last conv keeps 1280.
  CHECK(g.params[static_cast<size_t>(g.find_param("Conv1/kernel"))].shape == Shape{3, 3, 3, 16});
  CHECK(g.params[static_cast<size_t>(g.find_param("predictions/kernel"))].shape == Shape{1280, 10});
  CHECK(g.nodes[static_cast<size_t>(g.find("out_relu"))].shape == Shape{3, 3, 1280});
  // The layers are exactly the preset's.
  const auto direct = models::preset_layers(preset("mobilenet_v2", 0.35, 10), {96, 96, 3});
  REQUIRE(direct.size() == r.model.layers.size());
  for (size_t i = 0; i < direct.size(); ++i) CHECK(direct[i].name == r.model.layers[i].name);
}

TEST_CASE("presets: recipe errors") {
  SUBCASE("both preset and layers") {
    const std::string e = recipe_error(recipe_with_model(
        "  preset: mobilenet_v1\n  input: [32, 32, 1]\n  layers:\n    - {type: dense, units: 10}\n"));
    INFO(e);
    CHECK(e.rfind("p.yaml:", 0) == 0);
    CHECK(contains(e, "'preset' or 'layers'"));
  }
  SUBCASE("unknown preset lists the known ones") {
    const std::string e = recipe_error(recipe_with_model("  preset: resnet18\n  input: [32, 32, 3]\n"));
    INFO(e);
    CHECK(e.rfind("p.yaml:5:", 0) == 0);
    CHECK(contains(e, "'resnet18'"));
    CHECK(contains(e, kKnown));
  }
  SUBCASE("a preset key error is located") {
    const std::string e = recipe_error(
        recipe_with_model("  preset: resnet50_v1\n  blocks: [2, 2, 2]\n  input: [32, 32, 3]\n  classes: 10\n"));
    INFO(e);
    CHECK(e.rfind("p.yaml:5:", 0) == 0);  // the preset key's location
    CHECK(contains(e, "resnet50_v1"));
    CHECK(contains(e, "blocks"));
  }
  SUBCASE("nasnet non-square input through a recipe") {
    const std::string e =
        recipe_error(recipe_with_model("  preset: nasnet_mobile\n  input: [64, 48, 3]\n  classes: 10\n"));
    INFO(e);
    CHECK(contains(e, "nasnet_mobile"));
    CHECK(contains(e, "square"));
  }
}

