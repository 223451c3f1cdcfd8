// `qatc bench`: inference latency, throughput and peak memory of one model in its float,
// fake-quant and int8 forms. A recipe needs no training: its model is built with random
// weights (the recipe's seed) and quantized with a quick calibration on random inputs in the
// range of the recipe's preprocessing; a checkpoint or an int8 model file is timed as it is.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/int_model.h"

namespace qatc::pipeline {

struct BenchOptions {
  int64_t batch = 1;
  int64_t max_runs = 100;     // timed runs after two warm-up runs...
  double max_seconds = 10.0;  // ...stopping earlier (after at least 5) once this much time is spent
  std::vector<std::string> sets;  // --set overrides of a recipe
  bool profile = false;  // int8: also time every layer (result key "layers")
};

// The forms `file` can be timed as: a recipe or float checkpoint: float, fakequant, int8; a
// quantized checkpoint: fakequant, int8; an int8 model: int8. Raises qatc::Error for a file
// that is none of these.
std::vector<std::string> bench_forms(const std::filesystem::path& file);

// Times form `form` of the model in `file` at batch o.batch with the current thread count:
// {"model": form, "batch", "threads", "latency_ms_median", "latency_ms_p90", "latency_ms_min"
//  (the fastest run: on a shared machine the least disturbed), "images_per_s",
//  "runs", "peak_rss_bytes", "peak_rss_above_start_bytes"} (peak_rss_bytes: this process's
// peak resident memory so far, so call it in a fresh process per form for a per-form figure, as
// `qatc bench` does; peak_rss_above_start_bytes: that peak minus the resident memory before the
// model was read, i.e. without the binary and its libraries; the binary's own code is made
// resident first, so that code first run by the model's kernels does not count either). An
// int8 result adds
// "largest_activation_pair_bytes", "activation_arena_bytes" (the executor's) and, for an int8
// model file, "model_file_bytes" and "memory_bound_bytes" = 1.5 * (file + pair), the bound of
// docs/performance.md. With o.profile, an int8 result adds "layers": per layer of the model,
// in order (the input's quantization first), {"name", "op", "output" (shape), "macs",
// "ms_median" (the median over the timed runs of the layer's time in a run), "share" (of the
// sum of the medians), "gmacs_per_s", "fused" (a layer a neighbour's kernel computes, an Add
// written by the conv before it or a Pad read through by the conv after it: its time is that
// conv's)}.
nlohmann::json bench_form(const std::filesystem::path& file, const std::string& form, const BenchOptions& o);

// The int8 model bench times for `file` (a recipe's: random weights, quick calibration), e.g. to
// write it to a file and time that.
runtime::IntModel bench_int_model(const std::filesystem::path& file, const BenchOptions& o);

}  // namespace qatc::pipeline
