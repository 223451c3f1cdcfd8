// BatchNorm folding arithmetic, in double so the folded layer matches conv + BN to float rounding.
#include "quant/bn_fold.h"

#include <cmath>
#include <vector>

namespace qatc::quant {
namespace {

double scale_of(float gamma, float var, float eps) {
  return static_cast<double>(gamma) / std::sqrt(static_cast<double>(var) + static_cast<double>(eps));
}

}  // namespace

void bn_scale(float* s, const float* gamma, const float* var, float eps, int64_t channels) {
  for (int64_t c = 0; c < channels; ++c) s[c] = static_cast<float>(scale_of(gamma[c], var[c], eps));
}

void fold_batchnorm(float* w_folded, float* b_folded, const float* w, const float* b,
                    const float* gamma, const float* beta, const float* mean, const float* var,
                    float eps, int64_t rows, int64_t channels) {
  std::vector<double> s(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) s[static_cast<size_t>(c)] = scale_of(gamma[c], var[c], eps);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < channels; ++c)
      w_folded[r * channels + c] =
          static_cast<float>(static_cast<double>(w[r * channels + c]) * s[static_cast<size_t>(c)]);
  for (int64_t c = 0; c < channels; ++c) {
    const double bias = b ? static_cast<double>(b[c]) : 0.0;
    b_folded[c] = static_cast<float>(static_cast<double>(beta[c]) +
                                     (bias - static_cast<double>(mean[c])) * s[static_cast<size_t>(c)]);
  }
}

}  // namespace qatc::quant
