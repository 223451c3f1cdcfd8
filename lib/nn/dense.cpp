// Dense layer forward and backward, each a single sgemm per product.
#include "nn/dense.h"

#include <cstring>

#include "nn/sgemm.h"

namespace qatc::nn {

void dense_forward(float* out, const float* in, const float* w, const float* b, int64_t n,
                   int64_t in_features, int64_t out_features, Activation act) {
  if (b) {
    // Starting from the bias lets sgemm add into it with beta = 1: one pass over out.
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(out + i * out_features, b, static_cast<size_t>(out_features) * sizeof(float));
  }
  sgemm(false, false, n, out_features, in_features, 1.0f, in, in_features, w, out_features,
        b ? 1.0f : 0.0f, out, out_features);
  activate(out, n * out_features, act);
}

void dense_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                    const float* w, int64_t n, int64_t in_features, int64_t out_features) {
  if (dw)
    sgemm(true, false, in_features, out_features, n, 1.0f, in, in_features, dout, out_features,
          1.0f, dw, out_features);
  if (din)
    sgemm(false, true, n, in_features, out_features, 1.0f, dout, out_features, w, out_features,
          1.0f, din, in_features);
  if (db) add_column_sums(db, dout, n, out_features);
}

}  // namespace qatc::nn
