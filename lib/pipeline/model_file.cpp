// Model files: detect the kind, rebuild the graph from the embedded recipe, evaluate.
#include "pipeline/model_file.h"

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "data/catalog.h"
#include "data/source.h"
#include "data/loader.h"
#include "quant/plan.h"
#include "quant/quant_model.h"
#include "recipe/load.h"
#include "runtime/evaluate.h"
#include "runtime/executor.h"
#include "runtime/int_model.h"

namespace qatc::pipeline {

DataChoice parse_data_spec(const std::string& spec) {
  DataChoice d;
  auto colon = spec.find(':');
  d.dataset = spec.substr(0, colon);
  if (colon != std::string::npos) d.split = spec.substr(colon + 1);
  if (d.dataset.empty()) fail("--data {}: expected DATASET[:SPLIT], for example --data mnist:test", spec);
  if (d.split != "train" && d.split != "test")
    fail("--data {}: unknown split '{}'; expected train or test", spec, d.split);
  return d;
}

LoadedModel open_checkpoint(const std::filesystem::path& file, int64_t batch_size, bool with_grads) {
  train::Checkpoint ck = train::load_checkpoint(file);
  if (ck.kind == train::CheckpointKind::train_state)
    fail("{}: is a resumable training state, not a model; use float.ckpt (or the ptq/qat checkpoint) instead",
         file.string());
  LoadedModel m;
  m.recipe = recipe::parse_recipe(ck.recipe_yaml, file.string() + " (embedded recipe)");
  m.graph = std::make_unique<nn::Graph>(nn::build_graph(m.recipe.model));
  train::check_matches(ck, *m.graph, file.string());
  if (ck.kind == train::CheckpointKind::quant_model) {
    quant::QatSchedule frozen;
    frozen.freeze_bn_after_steps = 0;
    frozen.freeze_observers_after_steps = 0;
    auto q = std::make_unique<quant::QuantModel>(*m.graph, quant::make_plan(*m.graph, m.recipe.quant),
                                                 std::move(ck.params), batch_size, with_grads, frozen);
    q->load_state(ck.quant_state, file.string());
    m.model = std::move(q);
    m.kind = "fakequant";
  } else {
    m.model = std::make_unique<train::FloatModel>(*m.graph, std::move(ck.params), batch_size, with_grads);
    m.kind = "float";
  }
  return m;
}

ModelEval evaluate_model_file(const std::filesystem::path& file, const DataChoice& choice, int64_t batch_size) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) fail("{}: model file not found", file.string());
  ModelEval out;
  if (runtime::is_int_model_file(file)) {
    runtime::IntModel im = runtime::load_int_model(file);
    out.recipe = recipe::parse_recipe(im.recipe_yaml, file.string() + " (embedded recipe)");
    const std::string dataset = choice.dataset.empty() ? out.recipe.data.dataset : choice.dataset;
    const std::string path = !choice.path.empty() ? choice.path : (dataset == out.recipe.data.dataset ? out.recipe.data.path : "");
    recipe::DataSpec spec = out.recipe.data;
    spec.dataset = dataset;
    spec.path = path;
    const std::vector<int64_t> input(im.tensors[0].shape.begin(), im.tensors[0].shape.end());
    std::unique_ptr<data::Source> ds = data::open_source(spec, choice.split, input);
    data::check_fits(*ds, input, im.classes(),
                     file.string());
    out.kind = "int8";
    runtime::Executor ex(std::move(im), batch_size);  // only run: it keeps the packed weights alone
    out.result = runtime::evaluate_int(ex, *ds, data::all_indices(*ds), batch_size);
    out.size_bytes = static_cast<int64_t>(std::filesystem::file_size(file));
    out.dataset = dataset + "/" + choice.split;
    return out;
  }
  LoadedModel m = open_checkpoint(file, batch_size);
  const recipe::DataSpec& norm = m.recipe.data;
  const std::string dataset = choice.dataset.empty() ? norm.dataset : choice.dataset;
  const std::string path = !choice.path.empty() ? choice.path : (dataset == norm.dataset ? norm.path : "");
  recipe::DataSpec spec = norm;
  spec.dataset = dataset;
  spec.path = path;
  std::unique_ptr<data::Source> ds = data::open_source(spec, choice.split, m.recipe.model.input);
  data::check_fits(*ds, m.recipe.model.input, m.graph->classes(), file.string());
  out.kind = m.kind;
  out.result = train::evaluate(*m.model, *ds, data::all_indices(*ds), batch_size);
  out.size_bytes = static_cast<int64_t>(std::filesystem::file_size(file));
  out.dataset = dataset + "/" + choice.split;
  out.recipe = std::move(m.recipe);
  return out;
}

}  // namespace qatc::pipeline
