// Accuracy and mean loss of a model over a set of examples (eval mode, batched).
#pragma once

#include <cstdint>
#include <vector>

#include "data/source.h"
#include "train/model.h"

namespace qatc::train {

struct EvalResult {
  double accuracy = 0, loss = 0;
  int64_t examples = 0, correct = 0;
  double seconds = 0;
};

// Runs model.predictor(batch_size): the parameters must not change during the call.
EvalResult evaluate(Trainable& model, const data::Source& src, const std::vector<int32_t>& indices,
                    int64_t batch_size);

}  // namespace qatc::train
