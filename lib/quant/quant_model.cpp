// Fake-quantized model over the float engine.
#include "quant/quant_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/bytes.h"
#include "core/error.h"
#include "kernels/fixed_point.h"
#include "kernels/params.h"
#include "kernels/ref/kernels.h"
#include "nn/padding.h"
#include "quant/bn_fold.h"
#include "quant/fake_quant.h"

namespace qatc::quant {
namespace {

ObserverConfig observer_config(const recipe::ActivationQuantSpec& s) {
  ObserverConfig c;
  c.kind = s.observer == recipe::ObserverKind::minmax ? ObserverKind::minmax : ObserverKind::ema_minmax;
  c.ema_decay = s.ema_decay;
  c.init = s.init == recipe::ObserverInit::fixed ? ObserverInit::fixed : ObserverInit::first_batch;
  return c;
}

}  // namespace

QuantModel::QuantModel(const nn::Graph& g, QuantPlan plan, std::vector<float> params, int64_t max_batch,
                       bool with_grads, QatSchedule schedule, WeightRange weight_range)
    : g_(g), plan_(std::move(plan)), engine_(g, max_batch, with_grads, this), schedule_(schedule),
      weight_range_(weight_range) {
  params_ = std::move(params);
  if (with_grads) grads_.assign(params_.size(), 0.0f);
  for (const auto& a : plan_.acts) observers_.emplace_back(observer_config(a.spec));
  w_eff_.resize(plan_.weights.size());
  fold_.resize(plan_.weights.size());
  w_mask_.resize(plan_.weights.size());
  for (size_t k = 0; k < plan_.weights.size(); ++k) {
    const auto n = static_cast<size_t>(numel(g_.param(g_.nodes[static_cast<size_t>(plan_.weights[k].node)], 0).shape));
    w_eff_[k].resize(n);
    w_mask_[k].resize(n);
  }
  a_mask_.resize(g_.nodes.size());
  a_applied_.assign(g_.nodes.size(), false);
  bias_wq_.assign(g_.nodes.size(), -1);
  bias_bn_.assign(g_.nodes.size(), false);
  for (size_t k = 0; k < plan_.weights.size(); ++k) {
    const WeightQuantizer& w = plan_.weights[k];
    if (!plan_.skipped[static_cast<size_t>(w.node)])
      bias_wq_[static_cast<size_t>(w.bn_node >= 0 ? w.bn_node : w.node)] = static_cast<int>(k);
  }
  lone_act_.assign(g_.nodes.size(), false);
  for (size_t i = 1; i < g_.nodes.size(); ++i) {
    const bool lone = plan_.group_start[i] == static_cast<int>(i) && g_.nodes[i].shape.size() == 3;
    bias_bn_[i] = lone && g_.nodes[i].op == nn::Op::batchnorm;
    lone_act_[i] = lone && (g_.nodes[i].op == nn::Op::relu || g_.nodes[i].op == nn::Op::relu6);
  }
}

const float* QuantModel::forward(const float* x, int64_t n, nn::Mode mode, uint64_t step_seed) {
  if (mode == nn::Mode::train)
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (plan_.act_of[i] >= 0) a_mask_[i].resize(static_cast<size_t>(n * numel(g_.nodes[i].shape)));
  return engine_.forward(x, n, mode, params_.data(), step_seed);
}

void QuantModel::backward(const float* dlogits) { engine_.backward(dlogits, params_.data(), grads_.data()); }

bool QuantModel::batchnorm_frozen(size_t /*node*/) const {
  return schedule_.freeze_bn_after_steps >= 0 && step_ >= schedule_.freeze_bn_after_steps;
}

FoldedWeights QuantModel::folded_weights(size_t wq) const {
  FoldedWeights f;
  fold_into(wq, f);
  return f;
}

void QuantModel::fold_into(size_t wq, FoldedWeights& f) const {
  const WeightQuantizer& q = plan_.weights[wq];
  const nn::Node& node = g_.nodes[static_cast<size_t>(q.node)];
  const nn::ParamInfo& kp = g_.param(node, 0);
  const int64_t channels = node.shape.back();  // output channels: conv, dense, depthwise (c * multiplier)
  const int64_t rows = numel(kp.shape) / channels;
  const float* w = params_.data() + kp.offset;
  f.folded.assign(w, w + rows * channels);
  f.bn_scale.clear();
  f.qparams.clear();
  if (q.bn_node >= 0) {
    const nn::Node& bn = g_.nodes[static_cast<size_t>(q.bn_node)];
    const float eps = std::get<nn::BatchNormAttrs>(bn.attrs).epsilon;
    f.bn_scale.resize(static_cast<size_t>(channels));
    bn_scale(f.bn_scale.data(), params_.data() + g_.param(bn, 0).offset, params_.data() + g_.param(bn, 3).offset, eps,
             channels);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < channels; ++c) f.folded[static_cast<size_t>(r * channels + c)] *= f.bn_scale[static_cast<size_t>(c)];
  }
  const int64_t groups = q.per_channel ? channels : 1;
  std::vector<MinMax> ranges(static_cast<size_t>(groups));
  if (weight_range_ == WeightRange::mse) {
    if (q.per_channel) channel_weight_range_mse(ranges.data(), f.folded.data(), rows, channels, q.range, q.spec.symmetric);
    else ranges[0] = weight_range_mse(f.folded.data(), rows * channels, q.range, q.spec.symmetric);
  } else {
    if (q.per_channel) channel_minmax(ranges.data(), f.folded.data(), rows, channels);
    else ranges[0] = tensor_minmax(f.folded.data(), rows * channels);
  }
  for (const auto& r : ranges) f.qparams.push_back(choose_qparams(r.min, r.max, q.range, q.spec.symmetric));
}

void QuantModel::compute_weights(size_t wq, const float* /*w*/) {
  const WeightQuantizer& q = plan_.weights[wq];
  FoldedWeights& f = fold_[wq];  // reused: its buffers keep their capacity from step to step
  fold_into(wq, f);
  const int64_t channels = g_.nodes[static_cast<size_t>(q.node)].shape.back();
  const int64_t total = static_cast<int64_t>(f.folded.size());
  float* out = w_eff_[wq].data();
  uint8_t* mask = w_mask_[wq].data();
  if (q.per_channel) fake_quant_forward_per_channel(out, mask, f.folded.data(), total / channels, channels, f.qparams.data());
  else fake_quant_forward(out, mask, f.folded.data(), total, f.qparams[0]);
  if (!f.bn_scale.empty())
    for (int64_t i = 0; i < total; ++i) {
      const float s = f.bn_scale[static_cast<size_t>(i % channels)];
      out[i] = s != 0.0f ? out[i] / s : 0.0f;  // gamma = 0: the channel is constant, its kernel irrelevant
    }
}

const float* QuantModel::weights(size_t node, const float* w, nn::Mode /*mode*/) {
  const int wq = plan_.weight_of[node];
  if (wq < 0 || plan_.skipped[node]) return w;
  compute_weights(static_cast<size_t>(wq), w);
  return w_eff_[static_cast<size_t>(wq)].data();
}

void QuantModel::weights_backward(size_t node, float* dw, int64_t count) {
  const int wq = plan_.weight_of[node];
  if (wq < 0 || plan_.skipped[node]) return;
  // d(fq(w*s)/s)/dw is 1 inside the quantization range and 0 outside (straight-through).
  fake_quant_backward(dw, dw, w_mask_[static_cast<size_t>(wq)].data(), count);
}

QParams QuantModel::act_qparams(size_t act) const {
  const ActQuantizer& a = plan_.acts[act];
  const Observer& o = observers_[act];
  return choose_qparams(o.min(), o.max(), a.range, a.spec.symmetric);
}

void QuantModel::apply_bias_rounding(size_t node, float* out, int64_t count) {
  const nn::Node& n = g_.nodes[node];
  const int wq = bias_wq_[node];
  const nn::Node& head = wq >= 0 ? g_.nodes[static_cast<size_t>(plan_.weights[static_cast<size_t>(wq)].node)] : n;
  const int in_act = governing_act(g_, plan_, head.inputs[0]);
  in_scale_ = 0;
  if (in_act < 0 || !observers_[static_cast<size_t>(in_act)].initialized()) return;
  const double s_in = act_qparams(static_cast<size_t>(in_act)).scale;
  const int64_t c = n.shape.back();
  bias_fix_.assign(static_cast<size_t>(c), 0.0);
  unit_.assign(static_cast<size_t>(c), 1.0);
  w_scale_.assign(static_cast<size_t>(c), 1.0);
  in_scale_ = s_in;
  auto P = [&](const nn::Node& x, size_t k, int64_t ch) {
    return static_cast<double>(params_[static_cast<size_t>(g_.param(x, k).offset + ch)]);
  };
  for (int64_t ch = 0; ch < c; ++ch) {
    // The converter's float bias and weight scale of this channel (lib/convert/convert.cpp).
    double b = 0, s_w = 1;
    if (wq >= 0) {
      const WeightQuantizer& w = plan_.weights[static_cast<size_t>(wq)];
      const FoldedWeights& f = fold_[static_cast<size_t>(wq)];
      const double s = f.bn_scale.empty() ? 1.0 : f.bn_scale[static_cast<size_t>(ch)];
      const bool has_bias = head.params.size() > 1;
      if (has_bias) b = P(head, 1, ch) * s;
      if (w.bn_node >= 0) b += P(n, 1, ch) - P(n, 2, ch) * s;
      s_w = f.qparams[w.per_channel ? static_cast<size_t>(ch) : 0].scale;
    } else {  // a lone BatchNorm: a 1x1 depthwise with weight scale |s| / 127
      const float eps = std::get<nn::BatchNormAttrs>(n.attrs).epsilon;
      const ChannelAffine a = lone_batchnorm(P(n, 0, ch), P(n, 1, ch), P(n, 2, ch), P(n, 3, ch), eps);
      b = a.bias;
      s_w = lone_weight_scale(a.scale);
    }
    const double unit = s_in * s_w;
    const double q = std::clamp(std::round(b / unit), -2147483648.0, 2147483647.0);
    bias_fix_[static_cast<size_t>(ch)] = q * unit - b;
    unit_[static_cast<size_t>(ch)] = unit;
    w_scale_[static_cast<size_t>(ch)] = s_w;
  }
  for (int64_t i = 0; i < count; i += c)
    for (int64_t ch = 0; ch < c; ++ch) out[i + ch] += static_cast<float>(bias_fix_[static_cast<size_t>(ch)]);
}

void QuantModel::apply_integer_requant(size_t node, float* out, int64_t count) {
  const int act = plan_.act_of[static_cast<size_t>(plan_.group_end[node])];
  if (act < 0 || !observers_[static_cast<size_t>(act)].initialized() || in_scale_ <= 0) return;
  const QParams qo = act_qparams(static_cast<size_t>(act));
  const int64_t c = g_.nodes[node].shape.back();
  // The converter's per-channel multipliers (lib/convert/convert.cpp: make_channel_multipliers).
  const kernels::ChannelMultipliers cm = kernels::make_channel_multipliers(in_scale_, w_scale_, qo.scale);
  for (int64_t i = 0; i < count; i += c)
    for (int64_t ch = 0; ch < c; ++ch) {
      const auto k = static_cast<size_t>(ch);
      const double acc = std::clamp(std::round(static_cast<double>(out[i + ch]) / unit_[k]), -2147483648.0, 2147483647.0);
      const int64_t q = std::clamp<int64_t>(
          int64_t{qo.zero_point} + fixed::multiply_by_quantized_multiplier(static_cast<int32_t>(acc), cm.multiplier[k], cm.shift[k]),
          qo.qmin, qo.qmax);
      out[i + ch] = static_cast<float>(q - qo.zero_point) * qo.scale;
    }
}

void QuantModel::apply_integer_avgpool(size_t node, float* out, int64_t count) {
  const nn::Node& n = g_.nodes[node];
  const int act = plan_.act_of[node];
  if (act < 0 || !observers_[static_cast<size_t>(act)].initialized()) return;
  const QParams q = act_qparams(static_cast<size_t>(act));
  const Shape& in = g_.nodes[static_cast<size_t>(n.inputs[0])].shape;
  const auto& a = std::get<nn::PoolAttrs>(n.attrs);
  const nn::PadGeom gh = nn::pad_geom(in[0], a.kh, a.stride_h, a.padding), gw = nn::pad_geom(in[1], a.kw, a.stride_w, a.padding);
  const int64_t oh = n.shape[0], ow = n.shape[1], c = n.shape[2];
  for (int64_t i = 0; i < count; ++i) {
    const int64_t x = (i / c) % ow, y = (i / c / ow) % oh;
    const int64_t y0 = std::max<int64_t>(0, y * a.stride_h - gh.pad_before), y1 = std::min(in[0], y * a.stride_h - gh.pad_before + a.kh);
    const int64_t x0 = std::max<int64_t>(0, x * a.stride_w - gw.pad_before), x1 = std::min(in[1], x * a.stride_w - gw.pad_before + a.kw);
    const int64_t taps = (y1 - y0) * (x1 - x0);
    // sum of the taps' q = (mean / scale + zero_point) * taps, an integer up to float error.
    const auto sum = static_cast<int64_t>(std::llround((static_cast<double>(out[i]) / q.scale + q.zero_point) * static_cast<double>(taps)));
    const int64_t avg = sum >= 0 ? (sum + taps / 2) / taps : (sum - taps / 2) / taps;
    out[i] = static_cast<float>(std::clamp<int64_t>(avg, q.qmin, q.qmax) - q.zero_point) * q.scale;
  }
}

void QuantModel::apply_integer_add(size_t node, float* out, int64_t count) {
  const nn::Node& n = g_.nodes[node];
  const int act = plan_.act_of[static_cast<size_t>(plan_.group_end[node])];
  const int a1 = governing_act(g_, plan_, n.inputs[0]), a2 = governing_act(g_, plan_, n.inputs[1]);
  for (int a : {act, a1, a2})
    if (a < 0 || !observers_[static_cast<size_t>(a)].initialized()) return;
  const QParams q1 = act_qparams(static_cast<size_t>(a1)), q2 = act_qparams(static_cast<size_t>(a2));
  const QParams qo = act_qparams(static_cast<size_t>(act));
  std::vector<int8_t> x1(static_cast<size_t>(count)), x2(static_cast<size_t>(count)), y(static_cast<size_t>(count));
  const float* in1 = engine_.activation(static_cast<size_t>(n.inputs[0]));
  const float* in2 = engine_.activation(static_cast<size_t>(n.inputs[1]));
  for (int64_t i = 0; i < count; ++i) {
    x1[static_cast<size_t>(i)] = static_cast<int8_t>(quantize(in1[i], q1));
    x2[static_cast<size_t>(i)] = static_cast<int8_t>(quantize(in2[i], q2));
  }
  const kernels::AddParams p = kernels::make_add_params(q1.scale, q1.zero_point, q2.scale, q2.zero_point, qo.scale,
                                                        qo.zero_point, qo.qmin, qo.qmax, count);
  ref::add_qs8(y.data(), x1.data(), x2.data(), p);
  for (int64_t i = 0; i < count; ++i) out[i] = dequantize(y[static_cast<size_t>(i)], qo);
}

void QuantModel::output(size_t node, float* out, int64_t count, nn::Mode mode) {
  const int act = plan_.act_of[node];
  a_applied_[node] = false;
  // The integer bias's rounding, where the BatchNorm statistics are the folded ones (eval, or
  // frozen BatchNorm) and ranges exist: not while calibrating, not in plain float training.
  if ((bias_wq_[node] >= 0 || bias_bn_[node]) && !calibrating_ &&
      (mode == nn::Mode::eval || batchnorm_frozen(node) || g_.nodes[node].op != nn::Op::batchnorm) &&
      step_ >= schedule_.quant_delay_steps) {
    apply_bias_rounding(node, out, count);
    if (mode == nn::Mode::eval) apply_integer_requant(node, out, count);
  }
  if (mode == nn::Mode::eval && !calibrating_ && lone_act_[node]) {
    // A lone ReLU: a 1x1 depthwise of weight 127 at scale 1/127 and no bias.
    const int in_act = governing_act(g_, plan_, g_.nodes[node].inputs[0]);
    if (in_act >= 0 && observers_[static_cast<size_t>(in_act)].initialized()) {
      const auto c = static_cast<size_t>(g_.nodes[node].shape.back());
      in_scale_ = act_qparams(static_cast<size_t>(in_act)).scale;
      w_scale_.assign(c, 1.0 / 127.0);
      unit_.assign(c, in_scale_ / 127.0);
      apply_integer_requant(node, out, count);
    }
  }
  if (mode == nn::Mode::eval && !calibrating_ && g_.nodes[node].op == nn::Op::avgpool)
    apply_integer_avgpool(node, out, count);
  if (mode == nn::Mode::eval && !calibrating_ && g_.nodes[node].op == nn::Op::add && g_.nodes[node].inputs.size() == 2)
    apply_integer_add(node, out, count);
  if (act < 0) return;
  const auto a = static_cast<size_t>(act);
  const bool owner = plan_.acts[a].node == static_cast<int>(node);
  if (calibrating_) {
    if (owner) collectors_[a]->add(out, count);
    return;
  }
  if (mode == nn::Mode::train) {
    if (owner && !observers_frozen()) observers_[a].update(out, count);
    if (step_ < schedule_.quant_delay_steps || !observers_[a].initialized()) return;
    // The data input (node 0) gets no gradient, so it needs no straight-through mask.
    const bool needs_mask = node != 0;
    fake_quant_forward(out, needs_mask ? a_mask_[node].data() : nullptr, out, count, act_qparams(a));
    a_applied_[node] = needs_mask;
  } else {
    if (!observers_[a].initialized()) return;
    fake_quant_forward(out, nullptr, out, count, act_qparams(a));
  }
}

void QuantModel::output_backward(size_t node, float* dout, int64_t count) {
  if (a_applied_[node]) fake_quant_backward(dout, dout, a_mask_[node].data(), count);
}

void QuantModel::begin_calibration() {
  calibrating_ = true;
  collectors_.clear();
  for (size_t i = 0; i < plan_.acts.size(); ++i) collectors_.push_back(std::make_unique<HistogramCollector>());
}

void QuantModel::end_calibration(recipe::RangeMethod method, double percentile) {
  QATC_CHECK(calibrating_);
  for (size_t a = 0; a < plan_.acts.size(); ++a) {
    const HistogramCollector& h = *collectors_[a];
    MinMax r{};
    switch (method) {
      case recipe::RangeMethod::minmax: r = h.range_minmax(); break;
      case recipe::RangeMethod::percentile: r = h.range_percentile(percentile); break;
      case recipe::RangeMethod::mse: r = h.range_mse(plan_.acts[a].range, plan_.acts[a].spec.symmetric); break;
    }
    observers_[a].set(r.min, r.max);
  }
  collectors_.clear();
  calibrating_ = false;
}

std::string QuantModel::save_state() const {
  ByteWriter w;
  w.put<uint32_t>(static_cast<uint32_t>(weight_range_));
  w.put<uint64_t>(plan_.acts.size());
  for (size_t a = 0; a < plan_.acts.size(); ++a) {
    w.put_string(g_.nodes[static_cast<size_t>(plan_.acts[a].node)].name);
    observers_[a].save(w);
  }
  return w.take();
}

void QuantModel::load_state(const std::string& bytes, const std::string& what) {
  ByteReader r(bytes, what);
  const uint32_t wr = r.get<uint32_t>();
  if (wr > 1) r.corrupt("unknown weight range method");
  weight_range_ = static_cast<WeightRange>(wr);
  const uint64_t n = r.get<uint64_t>();
  if (n != plan_.acts.size())
    fail("{}: holds {} activation quantizers but this recipe's quantization plan has {}; use the recipe that made it",
         what, n, plan_.acts.size());
  for (size_t a = 0; a < n; ++a) {
    std::string name = r.get_string(4096);
    const std::string& mine = g_.nodes[static_cast<size_t>(plan_.acts[a].node)].name;
    if (name != mine)
      fail("{}: activation quantizer {} is on '{}' there but on '{}' in this recipe; use the recipe that made it", what,
           a, name, mine);
    observers_[a].load(r);
  }
  if (r.remaining() != 0) r.corrupt("trailing bytes in quantizer state");
}

}  // namespace qatc::quant
