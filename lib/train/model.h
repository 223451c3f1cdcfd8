// What the training loop trains: a forward/backward pair over one flat parameter buffer.
// The float engine implements it now; the fake-quant (QAT) engine implements it too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/engine.h"
#include "nn/graph.h"

namespace qatc::train {

// Eval-mode logits of a model whose parameters stay as they were when the predictor was made
// (make a new one after changing them).
class Predictor {
 public:
  virtual ~Predictor() = default;
  // Logits [n, classes] for input [n, h, w, c], valid until the next call.
  virtual const float* predict(const float* x, int64_t n) = 0;
};

class Trainable {
 public:
  virtual ~Trainable() = default;
  virtual const nn::Graph& graph() const = 0;
  // Logits [n, classes] for input [n, h, w, c].
  virtual const float* forward(const float* x, int64_t n, nn::Mode mode, uint64_t step_seed) = 0;
  // Accumulates gradients of the last train-mode forward into grads().
  virtual void backward(const float* dlogits) = 0;
  // Called before each training step with the global step (schedules such as BN freezing).
  virtual void before_step(int64_t /*global_step*/) {}
  // State beyond the parameters (quantizer ranges) saved in checkpoints; empty for float.
  virtual std::string save_state() const { return {}; }
  virtual void load_state(const std::string& /*bytes*/, const std::string& /*what*/) {}
  // What every evaluation runs, for batches of up to max_batch (more grow it): by default this
  // model's eval-mode forward.
  virtual std::unique_ptr<Predictor> predictor(int64_t max_batch);
  std::vector<float>& params() { return params_; }
  const std::vector<float>& params() const { return params_; }
  std::vector<float>& grads() { return grads_; }

 protected:
  std::vector<float> params_, grads_;
};

// The plain float model. Its engine (and the engine's buffers) is made on the first forward.
class FloatModel : public Trainable {
 public:
  FloatModel(const nn::Graph& g, std::vector<float> params, int64_t max_batch, bool with_grads);
  const nn::Graph& graph() const override { return g_; }
  const float* forward(const float* x, int64_t n, nn::Mode mode, uint64_t step_seed) override;
  void backward(const float* dlogits) override;
  // The inference executor (nn/infer.h) over the current parameters, BatchNorm folded once.
  std::unique_ptr<Predictor> predictor(int64_t max_batch) override;

 private:
  const nn::Graph& g_;
  int64_t max_batch_;
  bool with_grads_;
  std::unique_ptr<nn::FloatEngine> engine_;
};

}  // namespace qatc::train
