// Batch assembly.
#include "data/loader.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"

namespace qatc::data {

Split make_split(int64_t total, const recipe::DataSpec& spec) {
  int64_t n = total;
  if (spec.train_subset > 0) n = std::min<int64_t>(n, spec.train_subset);
  // Keras: split_at = int(n * (1 - validation_split)); the tail is validation.
  const auto split_at = static_cast<int64_t>(static_cast<double>(n) * (1.0 - spec.validation_split));
  Split s;
  for (int64_t i = 0; i < split_at; ++i) s.train.push_back(static_cast<int32_t>(i));
  for (int64_t i = split_at; i < n; ++i) s.validation.push_back(static_cast<int32_t>(i));
  if (s.train.empty())
    fail("data: no training images left after train_subset={} and validation_split={} of {} images", spec.train_subset,
         spec.validation_split, total);
  return s;
}

std::vector<int32_t> all_indices(const Dataset& ds) {
  std::vector<int32_t> v(static_cast<size_t>(ds.n));
  for (int64_t i = 0; i < ds.n; ++i) v[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  return v;
}

void gather_batch(const Dataset& ds, const int32_t* idx, int64_t n, const recipe::DataSpec& spec, float* x,
                  int32_t* y) {
  const int64_t per = ds.h * ds.w * ds.c;
  // One table lookup per pixel; the table is exact for every uint8 value.
  float table[256];
  for (int v = 0; v < 256; ++v)
    table[v] = static_cast<float>((static_cast<double>(v) / 255.0 - spec.mean) / spec.std);
  parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint8_t* src = ds.images.data() + static_cast<int64_t>(idx[i]) * per;
      float* dst = x + i * per;
      for (int64_t k = 0; k < per; ++k) dst[k] = table[src[k]];
      y[i] = ds.labels[static_cast<size_t>(idx[i])];
    }
  });
}

void gather_pixels(const Dataset& ds, const int32_t* idx, int64_t n, uint8_t* x, int32_t* y) {
  const int64_t per = ds.h * ds.w * ds.c;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(x + i * per, ds.images.data() + static_cast<int64_t>(idx[i]) * per, static_cast<size_t>(per));
    y[i] = ds.labels[static_cast<size_t>(idx[i])];
  }
}

}  // namespace qatc::data
