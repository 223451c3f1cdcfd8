// Checkpoints: the model's flat parameter buffer with its name/shape table and the recipe
// that made it, plus (for resumable training state) optimizer state and progress.
// Stored in the shared container format (lib/core/container.h), written atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/shape.h"
#include "nn/graph.h"

namespace qatc::train {

enum class CheckpointKind : uint32_t {
  float_model = 1,  // final float weights: what `size_bytes` of the float row measures
  train_state = 2,  // weights + optimizer + progress, for `qatc train --resume`
  quant_model = 3,  // float weights + every quantizer's state (PTQ or QAT result)
};

struct Progress {
  int64_t epoch = 0;          // epochs fully done
  int64_t step_in_epoch = 0;  // steps done in the current epoch
  int64_t global_step = 0;
};

struct Checkpoint {
  CheckpointKind kind = CheckpointKind::float_model;
  std::string recipe_yaml;
  std::vector<std::pair<std::string, Shape>> table;  // parameter names and shapes, in buffer order
  std::vector<float> params;
  std::string optimizer;    // Optimizer::save bytes (train_state only)
  std::string quant_state;  // QuantModel::save_state bytes (quant_model, QAT train_state)
  Progress progress;
};

Checkpoint make_checkpoint(const nn::Graph& g, CheckpointKind kind, const std::string& recipe_yaml,
                           std::vector<float> params);
void save_checkpoint(const std::filesystem::path& path, const Checkpoint& ck);
Checkpoint load_checkpoint(const std::filesystem::path& path);
// The same from bytes in memory; `what` names the source in messages.
Checkpoint parse_checkpoint(std::string_view bytes, const std::string& what);

// Raises qatc::Error when the checkpoint's parameter table differs from the graph's,
// naming the first differing parameter.
void check_matches(const Checkpoint& ck, const nn::Graph& g, const std::string& what);

}  // namespace qatc::train
