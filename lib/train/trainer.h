// The training loop shared by float training and QAT: shuffled mini-batches, LR schedule,
// optimizer, per-epoch validation, metrics, checkpoints, resume and divergence stop.
// Every random choice is a function of (seed, epoch, step), so a resumed run continues
// exactly as the uninterrupted run would have.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "data/source.h"
#include "recipe/recipe.h"
#include "train/checkpoint.h"
#include "train/model.h"

namespace qatc::train {

struct LoopConfig {
  std::string stage = "train";  // names metrics lines and progress
  int64_t epochs = 1;
  int64_t max_steps = 0;  // > 0: stop after exactly this many steps (epochs then follow from it)
  int64_t batch_size = 32;
  uint64_t seed = 0;
  bool shuffle = true;
  int64_t checkpoint_every_steps = 0;
  recipe::OptimizerSpec optimizer;
  recipe::ScheduleSpec schedule;
  recipe::DataSpec data;          // normalization and split
  std::string recipe_yaml;        // embedded in checkpoints
  std::filesystem::path state_path;  // resumable checkpoint (train_state)
  bool resume = false;
};

struct EpochSummary {
  int64_t epoch;
  double loss, accuracy, val_loss, val_accuracy, seconds, images_per_s;
};

struct LoopResult {
  std::vector<EpochSummary> epochs;
  int64_t steps = 0;
  double seconds = 0;
};

// Trains `model` on examples `train` of `src` (augmented, when the source augments);
// validation on examples `val` of it (may be empty).
// Appends one metrics line per epoch into run_dir/metrics.jsonl.
// Raises JobFailed on a non-finite loss (the last good checkpoint stays in place).
LoopResult train_loop(Trainable& model, const data::Source& src, const std::vector<int32_t>& train,
                      const std::vector<int32_t>& val, const LoopConfig& cfg, const std::filesystem::path& run_dir);

}  // namespace qatc::train
