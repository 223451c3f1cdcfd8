// Opening any model file qatc writes (float checkpoints, quantized checkpoints; int8 models
// join here) and evaluating it on a dataset.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "nn/graph.h"
#include "recipe/recipe.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"

namespace qatc::pipeline {

struct DataChoice {
  std::string dataset;  // "" = the dataset of the model's recipe
  std::string split = "test";
  std::string path;     // "" = the recipe's data.path or the standard location
};

// Parses "--data" as DATASET[:SPLIT] (e.g. "mnist", "fashion_mnist:train").
DataChoice parse_data_spec(const std::string& spec);

// A checkpoint rebuilt into a runnable model: its embedded recipe, graph and engine.
struct LoadedModel {
  std::string kind;  // "float" or "fakequant"
  recipe::Recipe recipe;
  std::unique_ptr<nn::Graph> graph;
  std::unique_ptr<train::Trainable> model;
};

// Opens a float or quantized checkpoint for inference (with_grads false) or further training.
LoadedModel open_checkpoint(const std::filesystem::path& file, int64_t batch_size, bool with_grads = false);

struct ModelEval {
  std::string kind;  // float, fakequant, int8
  train::EvalResult result;
  int64_t size_bytes = 0;
  std::string dataset;  // "mnist/test"
  recipe::Recipe recipe;
};

ModelEval evaluate_model_file(const std::filesystem::path& file, const DataChoice& data, int64_t batch_size);

}  // namespace qatc::pipeline
