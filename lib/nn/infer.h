// The float inference executor: a Graph with fixed parameters, compiled once into a list of
// steps. Each inference-mode BatchNorm that is the only consumer of a conv2d, depthwise_conv2d
// or dense is folded into its weights (w' = w * s per output channel, b' = (b - mean) * s + beta,
// s = gamma / sqrt(var + eps)); a two-input add that is the only consumer of a conv2d (after its
// BatchNorm) becomes the conv's starting value (bias + the other input, computed earlier); a
// ReLU/ReLU6 that is the only consumer of a conv, dense, add or BatchNorm is applied in the same
// pass; a zero padding that only a convolution reads becomes that convolution's padding (also a
// max pool's, over a ReLU's output, where a zero never beats a real tap). A
// BatchNorm that follows no such layer stays an affine pass. Elementwise steps (and a conv on its
// residual) write over an input that dies with them. Flatten and dropout are views. Activations
// share buffers by liveness (core/buffer_plan.h). On CPUs with AVX-512F the convolutions' weights
// are packed here, once, for gemm_packed (unless set_packed_gemm(false) was called before).
//
// The results equal the training engine's eval-mode forward up to float rounding (folding
// changes the order of the operations); they do not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "core/aligned.h"
#include "nn/activation.h"
#include "nn/graph.h"

namespace qatc::nn {

class InferenceEngine {
 public:
  // Reads `params` (the graph's flat buffer) here only: the engine keeps its own folded copy.
  // The graph must outlive the engine.
  InferenceEngine(const Graph& g, const float* params, int64_t max_batch);

  // Logits [n, classes] of input [n, h, w, c] (n >= 1; buffers grow past max_batch on demand),
  // valid until the next call. With step_seconds, also the wall time of each step (benchmarks).
  const float* forward(const float* input, int64_t n, std::vector<double>* step_seconds = nullptr);

  // Per step of a forward, in order: the graph node whose kernel it runs (the first node of its
  // fused group) and the last node it computes. For tests and benchmarks.
  std::vector<int> step_kernels() const;
  std::vector<int> step_nodes() const;
  // Bytes of activation buffers at the current batch size.
  int64_t arena_bytes() const;

 private:
  struct Step {
    Op op;                // the kernel: the op of graph node `node`
    int node;             // whose attributes and input shapes it runs with
    int last;             // the last graph node it computes (after a folded BN, add, activation)
    int pad = -1;         // a pad node folded into this convolution or max pool, or -1
    Activation act = Activation::none;
    std::vector<int> in;  // values read (a conv2d with a fused add: its input, the residual)
    int out = -1;         // value written (may be in[0]: in place)
    int64_t w = -1, b = -1, mean = -1;  // offsets into consts_ (-1: none)
    bool packed = false;  // a conv2d's weights laid out for gemm_packed (nn/gemm_packed.h)
  };

  std::vector<std::vector<int>> form_steps(const float* params);  // -> the graph nodes each step reads
  void assign_buffers(const std::vector<std::vector<int>>& in_nodes);
  void fold(Step& s, int bn, const float* params);
  void reserve(int64_t n);
  void run(const Step& s, int64_t n);

  const Graph& g_;
  std::vector<Step> steps_;
  AlignedVector<float> consts_;     // weights and biases (folded), BatchNorm scale, beta, mean
  bool pack_;                       // conv2d weights packed for gemm_packed (packed_gemm_enabled())
  std::vector<int> slot_;           // per value: buffer (value 0 is the caller's input)
  std::vector<int64_t> slot_elems_; // per buffer: floats per example
  std::vector<std::vector<float>> buffers_;
  std::vector<float*> value_ptr_;   // per value, during a forward
  std::vector<const float*> ins_;   // the current step's inputs
  std::vector<float> workspace_;
  int64_t max_batch_ = 0;
  int output_ = 0;                  // value of the logits
};

}  // namespace qatc::nn
