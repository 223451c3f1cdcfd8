// Per-layer quantization error of a quantized model, for the report: weight SQNR (folded
// weights against their fake-quantized values), activation SQNR and the share of clipped
// values (the float model's activations at each quantization point against the quantizer's
// grid), measured on a sample of test images.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/source.h"
#include "quant/quant_model.h"
#include "recipe/recipe.h"

namespace qatc::report {

struct LayerStats {
  std::string layer;
  bool skipped = false;
  int weight_bits = 0;  // 0: no weights
  double weight_sqnr_db = 0;
  int act_bits = 0;
  double act_sqnr_db = 0;
  double act_clipped = 0;  // share of values outside the quantizer's range
};

std::vector<LayerStats> layer_stats(const quant::QuantModel& q, const data::Source& src,
                                    int64_t images);

nlohmann::json to_json(const std::vector<LayerStats>& s);

}  // namespace qatc::report
