// The float executor: runs a Graph forward (train or eval mode) and backward over a batch,
// reading and writing the flat parameter buffer. Buffers are allocated once for max_batch.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/graph.h"

namespace qatc::nn {

enum class Mode { train, eval };

// Points where a pass (fake quantization) changes what the float engine computes. The
// default does nothing: the plain float model.
class EngineHooks {
 public:
  virtual ~EngineHooks() = default;
  // The weights a conv2d/dense node computes with (e.g. BN-folded and fake-quantized).
  virtual const float* weights(size_t /*node*/, const float* w, Mode /*mode*/) { return w; }
  // Turns the gradient w.r.t. those effective weights into the stored weights' gradient, in place.
  virtual void weights_backward(size_t /*node*/, float* /*dw*/, int64_t /*count*/) {}
  // Whether output() changes node's output (the engine then gives that node its own buffer).
  virtual bool transforms_output(size_t /*node*/) const { return false; }
  // Transforms node's freshly computed output in place (fake quantization).
  virtual void output(size_t /*node*/, float* /*out*/, int64_t /*count*/, Mode /*mode*/) {}
  // Back-propagates through output(), in place on the gradient of node's output.
  virtual void output_backward(size_t /*node*/, float* /*dout*/, int64_t /*count*/) {}
  // When output_backward(node) is exactly "dout = mask ? dout : 0" (a straight-through
  // estimator), the mask [count of the last forward], else nullptr. The engine then applies it
  // inside a ReLU/ReLU6 node's own backward instead of calling output_backward (one memory pass
  // instead of two).
  virtual const uint8_t* ste_mask(size_t /*node*/) const { return nullptr; }
  // A BatchNorm that uses its moving statistics even in train mode.
  virtual bool batchnorm_frozen(size_t /*node*/) const { return false; }
};

class FloatEngine {
 public:
  // with_grads=false allocates no gradient buffers (inference only).
  FloatEngine(const Graph& g, int64_t max_batch, bool with_grads, EngineHooks* hooks = nullptr);

  // Runs n <= max_batch examples of input [n, h, w, c]. Train mode normalizes with batch
  // statistics (updating the moving statistics in `params`) and applies dropout seeded by
  // `step_seed`. Returns the logits [n, classes], valid until the next call.
  const float* forward(const float* input, int64_t n, Mode mode, float* params, uint64_t step_seed = 0);

  // Back-propagates dlogits [n, classes] through the last train-mode forward and
  // accumulates parameter gradients into `grads` (same layout as params; caller zeroes).
  void backward(const float* dlogits, const float* params, float* grads);

  // Grows the buffers to hold batches of n (forward does this on demand).
  void reserve(int64_t n);

  // Output of node i from the last forward (n rows).
  const float* activation(size_t node) const { return out_[node]; }
  int64_t batch() const { return n_; }

 private:
  const Graph& g_;
  int64_t max_batch_;
  bool with_grads_;
  EngineHooks* hooks_;
  EngineHooks no_hooks_;
  int64_t n_ = 0;
  Mode mode_ = Mode::eval;
  std::vector<std::vector<float>> act_buf_, grad_buf_;
  std::vector<const float*> out_;  // per node: output of the last forward
  std::vector<const float*> weights_;  // per node: the weights the last forward used
  std::vector<float*> grad_;       // per node: gradient w.r.t. its output (nullptr: not needed)
  std::vector<std::vector<int32_t>> argmax_;
  std::vector<std::vector<uint8_t>> mask_;
  std::vector<std::vector<float>> bn_mean_, bn_var_;
  std::vector<float> workspace_;
};

}  // namespace qatc::nn
