// The run folder: where every stage of one recipe reads and writes its files.
//   float.ckpt         final float weights (train)
//   train_state.ckpt   resumable training state (train)
//   ptq.ckpt           float weights + calibrated quantizers (ptq)
//   qat.ckpt           fine-tuned weights + learned quantizers (qat); qat_state.ckpt resumes it
//   ptq.int8, qat.int8 integer-only models (convert)
//   metrics.jsonl      one line per epoch and per stage
//   results/<row>.json one evaluation per model form (eval)
//   recipe.yaml        the recipe as run, after --set overrides
//   report.json, report.md (report)
#pragma once

#include <filesystem>
#include <string>

namespace qatc::pipeline {

struct RunFolder {
  std::filesystem::path root;

  std::filesystem::path float_ckpt() const { return root / "float.ckpt"; }
  std::filesystem::path train_state() const { return root / "train_state.ckpt"; }
  std::filesystem::path ptq_ckpt() const { return root / "ptq.ckpt"; }
  std::filesystem::path qat_ckpt() const { return root / "qat.ckpt"; }
  std::filesystem::path qat_state() const { return root / "qat_state.ckpt"; }
  std::filesystem::path ptq_int8() const { return root / "ptq.int8"; }
  std::filesystem::path qat_int8() const { return root / "qat.int8"; }
  std::filesystem::path result(const std::string& row) const { return root / "results" / (row + ".json"); }
  std::filesystem::path recipe_copy() const { return root / "recipe.yaml"; }
  std::filesystem::path report_json() const { return root / "report.json"; }
  std::filesystem::path report_md() const { return root / "report.md"; }
};

// --out DIR when given, else runs/<recipe name>.
RunFolder run_folder_for(const std::string& recipe_name, const std::string& out_flag);

}  // namespace qatc::pipeline
