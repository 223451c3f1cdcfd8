// The float Trainable.
#include "train/model.h"

namespace qatc::train {

FloatModel::FloatModel(const nn::Graph& g, std::vector<float> params, int64_t max_batch, bool with_grads)
    : g_(g), engine_(g, max_batch, with_grads) {
  params_ = std::move(params);
  if (with_grads) grads_.assign(params_.size(), 0.0f);
}

const float* FloatModel::forward(const float* x, int64_t n, nn::Mode mode, uint64_t step_seed) {
  return engine_.forward(x, n, mode, params_.data(), step_seed);
}

void FloatModel::backward(const float* dlogits) { engine_.backward(dlogits, params_.data(), grads_.data()); }

}  // namespace qatc::train
