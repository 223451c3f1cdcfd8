// Model files: detect the kind, rebuild the graph from the embedded recipe, evaluate.
#include "pipeline/model_file.h"

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "data/catalog.h"
#include "data/loader.h"
#include "nn/graph.h"
#include "recipe/load.h"
#include "train/checkpoint.h"

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

ModelEval evaluate_model_file(const std::filesystem::path& file, const DataChoice& choice, int64_t batch_size) {
  train::Checkpoint ck = train::load_checkpoint(file);
  ModelEval out;
  out.recipe = recipe::parse_recipe(ck.recipe_yaml, file.string() + " (embedded recipe)");
  nn::Graph g = nn::build_graph(out.recipe.model);
  train::check_matches(ck, g, file.string());
  recipe::DataSpec norm = out.recipe.data;
  const std::string dataset = choice.dataset.empty() ? norm.dataset : choice.dataset;
  const std::string path = !choice.path.empty() ? choice.path : (dataset == norm.dataset ? norm.path : "");
  data::Dataset ds = data::load_dataset(dataset, choice.split, path);
  data::check_fits(ds, out.recipe.model.input, g.classes(), file.string());
  train::FloatModel model(g, std::move(ck.params), batch_size, false);
  out.kind = "float";
  out.result = train::evaluate(model, ds, data::all_indices(ds), norm, batch_size);
  out.size_bytes = static_cast<int64_t>(std::filesystem::file_size(file));
  out.dataset = dataset + "/" + choice.split;
  return out;
}

}  // namespace qatc::pipeline
