// The float Trainable, and the predictors.
#include "train/model.h"

#include "core/error.h"
#include "nn/infer.h"

namespace qatc::train {
namespace {

// A Trainable's own eval-mode forward.
class ForwardPredictor : public Predictor {
 public:
  explicit ForwardPredictor(Trainable& m) : m_(m) {}
  const float* predict(const float* x, int64_t n) override { return m_.forward(x, n, nn::Mode::eval, 0); }

 private:
  Trainable& m_;
};

class InferencePredictor : public Predictor {
 public:
  InferencePredictor(const nn::Graph& g, const float* params, int64_t max_batch) : engine_(g, params, max_batch) {}
  const float* predict(const float* x, int64_t n) override { return engine_.forward(x, n); }

 private:
  nn::InferenceEngine engine_;
};

}  // namespace

std::unique_ptr<Predictor> Trainable::predictor(int64_t /*max_batch*/) {
  return std::make_unique<ForwardPredictor>(*this);
}

FloatModel::FloatModel(const nn::Graph& g, std::vector<float> params, int64_t max_batch, bool with_grads)
    : g_(g), max_batch_(max_batch), with_grads_(with_grads) {
  QATC_CHECK_GE(max_batch, 1);
  params_ = std::move(params);
  if (with_grads) grads_.assign(params_.size(), 0.0f);
}

const float* FloatModel::forward(const float* x, int64_t n, nn::Mode mode, uint64_t step_seed) {
  if (!engine_) engine_ = std::make_unique<nn::FloatEngine>(g_, max_batch_, with_grads_);
  return engine_->forward(x, n, mode, params_.data(), step_seed);
}

void FloatModel::backward(const float* dlogits) {
  QATC_CHECK(engine_ != nullptr);  // backward follows a forward
  engine_->backward(dlogits, params_.data(), grads_.data());
}

std::unique_ptr<Predictor> FloatModel::predictor(int64_t max_batch) {
  return std::make_unique<InferencePredictor>(g_, params_.data(), max_batch);
}

}  // namespace qatc::train
