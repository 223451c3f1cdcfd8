// Accuracy of the int8 model on a dataset, its latency at batch 1, and its agreement with the
// fake-quant model it came from (the "simulated == integer" check).
#pragma once

#include <cstdint>
#include <vector>

#include "data/source.h"
#include "runtime/int_model.h"
#include "train/evaluate.h"
#include "train/model.h"

namespace qatc::runtime {

class Executor;

// Accuracy and loss of the executor's model on `indices` of src, in batches of batch_size.
train::EvalResult evaluate_int(Executor& ex, const data::Source& src, const std::vector<int32_t>& indices,
                               int64_t batch_size);

struct Agreement {
  int64_t examples = 0;
  double top1 = 0;             // share of images where both models pick the same class
  double within_one_step = 0;  // share of logits with |q_int - quantize(fake-quant logit)| <= 1
  int32_t max_step_diff = 0;
};

// Runs both models on the same images: the fake-quant model on the model-input floats, the
// int8 model on the raw pixels (or on those floats when the source has no pixels); logits
// compared on the int8 output grid.
Agreement compare_with_fakequant(const IntModel& m, train::Trainable& fakequant, const data::Source& src,
                                 const std::vector<int32_t>& indices, int64_t batch_size);

// Median and 90th-percentile milliseconds per image at batch 1 over `images` images (fewer,
// but at least 5, when they take more than 3 seconds).
struct Latency {
  double median_ms = 0, p90_ms = 0;
};
Latency int_latency(const IntModel& m, const data::Source& src, int64_t images);
Latency float_latency(train::Trainable& model, const data::Source& src, int64_t images);

}  // namespace qatc::runtime
