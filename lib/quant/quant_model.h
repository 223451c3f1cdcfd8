// The fake-quantized model: the float engine with the quantization plan's hooks. It is what
// QAT trains, what PTQ calibrates, and what `qatc eval` runs on a quantized checkpoint.
//
// Weights: w_q = fq(w * s) / s, where s = gamma / sqrt(moving_var + eps) of the BatchNorm folded
// into the layer (s = 1 without one), so the quantized values are exactly the folded integer
// weights; the BatchNorm after the layer then normalizes with batch statistics while live and
// with its moving statistics once frozen (docs/quantization.md). Activations: observers learn
// ranges; fake quantization after each group's end, from quant_delay_steps on.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/engine.h"
#include "quant/calibration.h"
#include "quant/observer.h"
#include "quant/plan.h"
#include "train/model.h"

namespace qatc::quant {

struct QatSchedule {
  int64_t quant_delay_steps = 0;
  int64_t freeze_bn_after_steps = -1;         // -1: never; 0: from the start (PTQ)
  int64_t freeze_observers_after_steps = -1;  // -1: never
};

enum class WeightRange { minmax, mse };

// The quantization parameters of one layer's weights after folding, as the converter needs.
struct FoldedWeights {
  std::vector<float> folded;   // w * s, the kernel layout of the graph
  std::vector<QParams> qparams;  // per output channel (one entry when per tensor)
  std::vector<float> bn_scale;   // s per output channel (empty without BatchNorm)
};

class QuantModel : public train::Trainable, public nn::EngineHooks {
 public:
  QuantModel(const nn::Graph& g, QuantPlan plan, std::vector<float> params, int64_t max_batch, bool with_grads,
             QatSchedule schedule = {}, WeightRange weight_range = WeightRange::minmax);

  // Trainable
  const nn::Graph& graph() const override { return g_; }
  const float* forward(const float* x, int64_t n, nn::Mode mode, uint64_t step_seed) override;
  void backward(const float* dlogits) override;
  void before_step(int64_t global_step) override { step_ = global_step; }
  std::string save_state() const override;
  void load_state(const std::string& bytes, const std::string& what) override;

  // EngineHooks
  const float* weights(size_t node, const float* w, nn::Mode mode) override;
  void weights_backward(size_t node, float* dw, int64_t count) override;
  bool transforms_output(size_t node) const override { return plan_.act_of[node] >= 0; }
  void output(size_t node, float* out, int64_t count, nn::Mode mode) override;
  void output_backward(size_t node, float* dout, int64_t count) override;
  const uint8_t* ste_mask(size_t node) const override { return a_applied_[node] ? a_mask_[node].data() : nullptr; }
  bool batchnorm_frozen(size_t node) const override;

  // PTQ: while calibrating, eval-mode forwards feed histograms instead of quantizing.
  void begin_calibration();
  void end_calibration(recipe::RangeMethod method, double percentile);

  const QuantPlan& plan() const { return plan_; }
  // Output of graph node i in the last forward (after its fake quantization).
  const float* activation(size_t node) const { return engine_.activation(node); }
  const Observer& observer(size_t act) const { return observers_[act]; }
  QParams act_qparams(size_t act) const;
  FoldedWeights folded_weights(size_t wq) const;

 private:
  void compute_weights(size_t wq, const float* w);
  // Adds to the pre-activation output of a conv/depthwise/dense group (or of a BatchNorm that
  // follows no convolution) the error the integer model's int32 bias makes: per channel,
  // round(b / (s_in * s_w)) * s_in * s_w - b (docs/quantization.md, "The integer bias").
  void apply_bias_rounding(size_t node, float* out, int64_t count);
  // Eval mode: rounds the pre-activation output of a conv/depthwise/dense group (or of a lone
  // BatchNorm) onto its output grid the way the integer kernel does: the accumulator
  // acc = out / (s_in * s_w) (an integer once the bias rounding is added) through the same
  // fixed-point multiplier and its two roundings (docs/int8.md, "The rounding rule"). Needs
  // apply_bias_rounding's per-channel scales of the same call.
  void apply_integer_requant(size_t node, float* out, int64_t count);
  // Eval mode, an average pool on its input's grid: the integer kernel's mean of the raw q over
  // the non-padded taps, rounded half away from zero (recovered from the float mean).
  void apply_integer_avgpool(size_t node, float* out, int64_t count);
  // Eval mode, a two-input add: the integer Add (kernels::AddParams, TFLite's scheme) of the
  // inputs' quantized values, on the output grid of its group.
  void apply_integer_add(size_t node, float* out, int64_t count);
  void fold_into(size_t wq, FoldedWeights& f) const;
  bool observers_frozen() const {
    return schedule_.freeze_observers_after_steps >= 0 && step_ >= schedule_.freeze_observers_after_steps;
  }

  const nn::Graph& g_;
  QuantPlan plan_;
  nn::FloatEngine engine_;
  QatSchedule schedule_;
  WeightRange weight_range_;
  int64_t step_ = 0;
  bool calibrating_ = false;
  std::vector<Observer> observers_;
  std::vector<std::unique_ptr<HistogramCollector>> collectors_;
  std::vector<std::vector<float>> w_eff_;     // per weight quantizer
  std::vector<FoldedWeights> fold_;          // per weight quantizer: scratch of compute_weights
  std::vector<std::vector<uint8_t>> w_mask_;  // per weight quantizer
  std::vector<std::vector<uint8_t>> a_mask_;  // per node with an output transform
  std::vector<bool> a_applied_;               // per node: fq applied in the last forward
  std::vector<int> bias_wq_;    // per node: the weight quantizer whose bias rounding it adds, or -1
  std::vector<bool> bias_bn_;   // per node: a BatchNorm the integer model runs as a 1x1 depthwise
  std::vector<bool> lone_act_;  // per node: a ReLU/ReLU6 the integer model runs as a 1x1 depthwise
  std::vector<double> bias_fix_, unit_, w_scale_;  // scratch: per channel
  double in_scale_ = 0;                            // scratch: s_in of the last bias rounding
};

}  // namespace qatc::quant
