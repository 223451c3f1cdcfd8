// Softmax cross-entropy: log-sum-exp in double, one row at a time.
#include "nn/loss.h"

#include <cmath>

#include "core/error.h"

namespace qatc::nn {

LossResult softmax_xent(float* dlogits, const float* logits, const int32_t* labels, int64_t n,
                        int64_t classes) {
  LossResult res{0.0, 0};
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const float* l = logits + i * classes;
    const int32_t label = labels[i];
    if (label < 0 || label >= classes)
      fail("label {} of example {} is outside [0, {}): the data set and the model's number of "
           "classes disagree",
           label, i, classes);
    int64_t best = 0;
    for (int64_t j = 1; j < classes; ++j)
      if (l[j] > l[best]) best = j;
    const double mx = l[best];
    double sum = 0.0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(static_cast<double>(l[j]) - mx);
    res.loss_sum += std::log(sum) - (static_cast<double>(l[label]) - mx);
    if (best == label) ++res.correct;
    if (dlogits) {
      float* d = dlogits + i * classes;
      const double inv_sum = 1.0 / sum;
      for (int64_t j = 0; j < classes; ++j) {
        const double p = std::exp(static_cast<double>(l[j]) - mx) * inv_sum;
        d[j] = static_cast<float>((p - (j == label ? 1.0 : 0.0)) * inv_n);
      }
    }
  }
  return res;
}

}  // namespace qatc::nn
