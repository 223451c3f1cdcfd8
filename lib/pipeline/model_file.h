// Opening any model file qatc writes (float checkpoints now; quantized checkpoints and int8
// models share the entry point) and evaluating it on a dataset.
#pragma once

#include <filesystem>
#include <string>

#include "recipe/recipe.h"
#include "train/evaluate.h"

namespace qatc::pipeline {

struct DataChoice {
  std::string dataset;  // "" = the dataset of the model's recipe
  std::string split = "test";
  std::string path;     // "" = the recipe's data.path or the standard location
};

// Parses "--data" as DATASET[:SPLIT] (e.g. "mnist", "fashion_mnist:train").
DataChoice parse_data_spec(const std::string& spec);

struct ModelEval {
  std::string kind;  // "float"
  train::EvalResult result;
  int64_t size_bytes = 0;
  std::string dataset;  // "mnist/test"
  recipe::Recipe recipe;
};

ModelEval evaluate_model_file(const std::filesystem::path& file, const DataChoice& data, int64_t batch_size);

}  // namespace qatc::pipeline
