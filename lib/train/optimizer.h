// Optimizers over the flat parameter buffer: one loop over all trainable floats.
#pragma once

#include <cstdint>
#include <vector>

#include "core/bytes.h"
#include "nn/graph.h"
#include "recipe/recipe.h"

namespace qatc::train {

class Optimizer {
 public:
  Optimizer(const recipe::OptimizerSpec& spec, const nn::Graph& g);

  // One update with learning rate lr. Only trainable parameters change.
  //  sgd:   v = momentum*v + (g + wd*p); p -= lr*v  (nesterov: p -= lr*(g + wd*p + momentum*v))
  //  adam:  g' = g + wd*p; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2;
  //         p -= lr_t * m / (sqrt(v) + eps), lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t): Keras' form
  //         ("epsilon hat"); torch.optim.Adam adds eps to sqrt(v_hat) instead, which acts like a
  //         smaller epsilon early on (bench/crosscheck_train.py compares the two)
  //  adamw: as adam with g' = g, then p -= lr*wd*p (decoupled decay, Loshchilov & Hutter)
  void step(float* params, const float* grads, double lr);

  int64_t steps() const { return t_; }
  void save(ByteWriter& w) const;
  void load(ByteReader& r);  // raises qatc::Error when the state does not fit this model

 private:
  recipe::OptimizerSpec spec_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;  // [offset, end) of trainable tensors
  int64_t size_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// Learning rate at a global step (0-based): linear warm-up over warmup_steps, then the
// schedule over the remaining steps (cosine decays from lr to min_lr over total_steps).
double learning_rate(const recipe::OptimizerSpec& opt, const recipe::ScheduleSpec& s, int64_t step,
                     int64_t total_steps, int64_t steps_per_epoch);

}  // namespace qatc::train
