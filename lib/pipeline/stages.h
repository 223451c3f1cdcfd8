// The stages of a recipe (train, eval, report), each reading and writing the run folder.
// The CLI subcommands are thin wrappers over these functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/run_folder.h"
#include "recipe/recipe.h"

namespace qatc::pipeline {

struct StageOptions {
  bool resume = false;  // train, qat: continue from the stage's resumable state
  std::string from;     // ptq, qat: the float checkpoint to start from (default: the run's float.ckpt)
  double max_accuracy_drop = -1;  // run: the gate from the CLI (overrides eval.max_accuracy_drop)
};

// The int8 rows of a report that lose more than max_drop (a fraction) against the float row;
// empty when all pass. One line per failing row.
std::vector<std::string> gate_failures(const nlohmann::json& report, double max_drop);

// Trains the float model and writes float.ckpt. Returns the metrics summary.
nlohmann::json train_stage(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt);

// Calibrates the quantizers of the float model (post-training quantization); writes ptq.ckpt.
nlohmann::json ptq_stage(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt);

// Fine-tunes the fake-quantized model (quantization-aware training); writes qat.ckpt.
nlohmann::json qat_stage(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt);

// Converts ptq.ckpt and qat.ckpt (those present) into ptq.int8 and qat.int8.
nlohmann::json convert_stage(const recipe::Recipe& rc, const RunFolder& run);

// Evaluates every model the run folder holds on the recipe's test split; writes results/<row>.json.
nlohmann::json eval_stage(const recipe::Recipe& rc, const RunFolder& run);

// Writes report.json and report.md from the run folder; returns report.json's content.
nlohmann::json report_stage(const RunFolder& run);

// The accuracy table of a report as markdown (what `qatc run` prints at the end).
std::string report_table(const nlohmann::json& report);

// Runs the recipe's stages in order.
nlohmann::json run_stages(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt);

}  // namespace qatc::pipeline
