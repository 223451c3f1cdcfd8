// A small int8 model with every op kind, made as `qatc bench` makes one from a recipe: random
// weights and a quick calibration on random inputs (no training, no data).
#pragma once

#include <fstream>
#include <string>

#include "fixtures/temp_dir.h"
#include "pipeline/bench.h"
#include "runtime/int_model.h"

namespace qatc::testing {

// The int8 model `qatc bench` would time for this recipe text.
inline runtime::IntModel int_model_from_recipe(const std::string& recipe) {
  TempDir dir("qatc_runtime_model");
  std::ofstream(dir / "model.yaml") << recipe;
  return pipeline::bench_int_model(dir / "model.yaml", {});
}

inline runtime::IntModel small_int_model() {
  return int_model_from_recipe(R"(name: small
seed: 7
data: {dataset: mnist}
model:
  input: [9, 9, 2]
  layers:
    - {type: conv2d, name: c1, filters: 8, kernel: 3, strides: 2, padding: same, use_bias: false}
    - {type: batchnorm, name: c1_bn}
    - {type: relu6, name: c1_relu}
    - {type: depthwise_conv2d, name: dw, kernel: 3, padding: same, depth_multiplier: 2, activation: relu}
    - {type: conv2d, name: pw, filters: 8, kernel: 1, use_bias: false}
    - {type: add, name: sum, inputs: [pw, c1_relu]}
    - {type: zero_padding2d, name: pad, padding: [0, 1, 0, 1]}
    - {type: maxpool, name: pool, pool: 2}
    - {type: cropping2d, name: crop, cropping: 1, inputs: sum}
    - {type: avgpool, name: avg, pool: 3, strides: 1, padding: same}
    - {type: concat, name: cat, inputs: [pool, avg]}
    - {type: batchnorm, name: lone_bn}
    - {type: flatten, name: flat}
    - {type: dense, name: fc, units: 6, activation: relu}
    - {type: dense, name: logits, units: 4}
)");
}

}  // namespace qatc::testing
