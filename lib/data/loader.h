// From a uint8 dataset to float batches: split selection (subset, validation split) and
// normalization x = (pixel / 255 - mean) / std.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "recipe/recipe.h"

namespace qatc::data {

struct Split {
  std::vector<int32_t> train;       // indices into the dataset
  std::vector<int32_t> validation;  // the last validation_split fraction, as Keras takes it
};

// First train_subset images (0: all), then the last validation_split fraction of those
// is held out for validation. Raises qatc::Error when nothing is left to train on.
Split make_split(int64_t n, const recipe::DataSpec& spec);

// All indices 0..n-1.
std::vector<int32_t> all_indices(const Dataset& ds);

// Writes n examples (by index) as floats [n, h, w, c] and their labels.
void gather_batch(const Dataset& ds, const int32_t* idx, int64_t n, const recipe::DataSpec& spec, float* x,
                  int32_t* y);

// Copies n examples' raw uint8 pixels [n, h, w, c] and their labels (the int8 model's input).
void gather_pixels(const Dataset& ds, const int32_t* idx, int64_t n, uint8_t* x, int32_t* y);

}  // namespace qatc::data
