// The float executor: runs a Graph forward (train or eval mode) and backward over a batch,
// reading and writing the flat parameter buffer. Buffers are allocated once for max_batch.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/graph.h"

namespace qatc::nn {

enum class Mode { train, eval };

class FloatEngine {
 public:
  // with_grads=false allocates no gradient buffers (inference only).
  FloatEngine(const Graph& g, int64_t max_batch, bool with_grads);

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
  int64_t n_ = 0;
  Mode mode_ = Mode::eval;
  std::vector<std::vector<float>> act_buf_, grad_buf_;
  std::vector<const float*> out_;  // per node: output of the last forward
  std::vector<float*> grad_;       // per node: gradient w.r.t. its output (nullptr: not needed)
  std::vector<std::vector<int32_t>> argmax_;
  std::vector<std::vector<uint8_t>> mask_;
  std::vector<std::vector<float>> bn_mean_, bn_var_;
  std::vector<float> workspace_;
};

}  // namespace qatc::nn
