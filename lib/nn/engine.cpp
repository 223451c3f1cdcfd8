// Float forward and backward over the graph.
#include "nn/engine.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "nn/activation.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/dense.h"
#include "nn/depthwise.h"
#include "nn/dropout.h"
#include "nn/merge.h"
#include "nn/node_geom.h"
#include "nn/pool.h"

namespace qatc::nn {
namespace {

// Nodes whose output is their input, bit for bit, share its buffers.
bool is_alias(const Node& n, Mode mode) {
  return n.op == Op::flatten || n.op == Op::input || (n.op == Op::dropout && mode == Mode::eval);
}

}  // namespace

FloatEngine::FloatEngine(const Graph& g, int64_t max_batch, bool with_grads, EngineHooks* hooks)
    : g_(g), max_batch_(0), with_grads_(with_grads), hooks_(hooks ? hooks : &no_hooks_) {
  QATC_CHECK_GE(max_batch, 1);
  reserve(max_batch);
}

void FloatEngine::reserve(int64_t max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const Graph& g = g_;
  const bool with_grads = with_grads_;
  const size_t nn = g.nodes.size();
  act_buf_.resize(nn);
  grad_buf_.resize(nn);
  out_.assign(nn, nullptr);
  weights_.assign(nn, nullptr);
  grad_.assign(nn, nullptr);
  argmax_.resize(nn);
  mask_.resize(nn);
  bn_mean_.resize(nn);
  bn_var_.resize(nn);
  int64_t ws = 0;
  for (size_t i = 0; i < nn; ++i) {
    const Node& n = g.nodes[i];
    const auto size = static_cast<size_t>(max_batch * numel(n.shape));
    if ((n.op != Op::flatten && n.op != Op::input) || hooks_->transforms_output(i)) act_buf_[i].resize(size);
    if (with_grads && i > 0 && n.op != Op::flatten) grad_buf_[i].resize(size);
    if (n.op == Op::maxpool) argmax_[i].resize(size);
    if (n.op == Op::dropout) mask_[i].resize(size);
    if (n.op == Op::batchnorm) {
      bn_mean_[i].resize(static_cast<size_t>(n.shape.back()));
      bn_var_[i].resize(static_cast<size_t>(n.shape.back()));
    }
    if (n.op == Op::conv2d) ws = std::max(ws, conv2d_workspace_floats(conv_geom(g, n, max_batch)));
  }
  workspace_.resize(static_cast<size_t>(ws));
  // Gradient pointers: flatten shares its input's gradient; node 0 (the data) needs none.
  for (size_t i = 1; i < nn; ++i) {
    const Node& n = g.nodes[i];
    if (!with_grads) break;
    grad_[i] = n.op == Op::flatten ? grad_[static_cast<size_t>(n.inputs[0])] : grad_buf_[i].data();
  }
}

const float* FloatEngine::forward(const float* input, int64_t n, Mode mode, float* params, uint64_t step_seed) {
  QATC_CHECK_GE(n, 1);
  reserve(n);
  n_ = n;
  mode_ = mode;
  out_[0] = input;
  if (hooks_->transforms_output(0)) {
    const int64_t count = n * numel(g_.nodes[0].shape);
    std::memcpy(act_buf_[0].data(), input, static_cast<size_t>(count) * sizeof(float));
    hooks_->output(0, act_buf_[0].data(), count, mode);
    out_[0] = act_buf_[0].data();
  }
  for (size_t i = 1; i < g_.nodes.size(); ++i) {
    const Node& node = g_.nodes[i];
    const size_t src = static_cast<size_t>(node.inputs[0]);
    const float* in = out_[src];
    if (is_alias(node, mode) && !hooks_->transforms_output(i)) {
      out_[i] = in;
      continue;
    }
    float* out = act_buf_[i].data();
    const int64_t count = n * numel(node.shape);
    auto P = [&](size_t k) { return params + g_.param(node, k).offset; };
    switch (node.op) {
      case Op::conv2d: {
        const auto& a = std::get<Conv2DAttrs>(node.attrs);
        weights_[i] = hooks_->weights(i, P(0), mode);
        conv2d_forward(out, in, weights_[i], a.use_bias ? P(1) : nullptr, conv_geom(g_, node, n),
                       workspace_.data());
        break;
      }
      case Op::dense: {
        const auto& a = std::get<DenseAttrs>(node.attrs);
        const int64_t in_f = numel(g_.nodes[src].shape);
        weights_[i] = hooks_->weights(i, P(0), mode);
        dense_forward(out, in, weights_[i], a.use_bias ? P(1) : nullptr, n, in_f, node.shape[0]);
        break;
      }
      case Op::depthwise_conv2d: {
        const auto& a = std::get<DepthwiseAttrs>(node.attrs);
        weights_[i] = hooks_->weights(i, P(0), mode);
        depthwise_forward(out, in, weights_[i], a.use_bias ? P(1) : nullptr, dw_geom(g_, node, n));
        break;
      }
      case Op::pad: pad_forward(out, in, pad_geom_of(g_, node, n)); break;
      case Op::add:
      case Op::concat: {
        std::vector<const float*> ins;
        for (int k : node.inputs) ins.push_back(out_[static_cast<size_t>(k)]);
        const auto count_in = static_cast<int64_t>(ins.size());
        if (node.op == Op::add) {
          add_forward(out, ins.data(), count_in, count);
        } else {
          const auto ch = concat_channels(g_, node);
          concat_forward(out, ins.data(), ch.data(), count_in, count / node.shape.back());
        }
        break;
      }
      case Op::relu: relu_forward(out, in, count); break;
      case Op::relu6: relu6_forward(out, in, count); break;
      case Op::maxpool: maxpool2d_forward(out, argmax_[i].data(), in, pool_geom(g_, node, n)); break;
      case Op::avgpool: avgpool2d_forward(out, in, pool_geom(g_, node, n)); break;
      case Op::global_avgpool: {
        const Shape& s = g_.nodes[src].shape;
        global_avgpool_forward(out, in, n, s[0] * s[1], s[2]);
        break;
      }
      case Op::batchnorm: {
        const auto& a = std::get<BatchNormAttrs>(node.attrs);
        const int64_t c = node.shape.back();
        const int64_t rows = count / c;
        if (mode == Mode::train && !hooks_->batchnorm_frozen(i)) {
          batchnorm_forward_train(out, bn_mean_[i].data(), bn_var_[i].data(), in, P(0), P(1), a.epsilon, rows, c);
          batchnorm_update_moving(params + g_.param(node, 2).offset, params + g_.param(node, 3).offset,
                                  bn_mean_[i].data(), bn_var_[i].data(), a.momentum, c);
        } else {
          batchnorm_forward_eval(out, in, P(0), P(1), P(2), P(3), a.epsilon, rows, c);
        }
        break;
      }
      case Op::dropout: {
        const auto& a = std::get<DropoutAttrs>(node.attrs);
        if (mode == Mode::train) dropout_forward(out, mask_[i].data(), in, count, a.rate, derive_seed(step_seed, 0xD50, i));
        else std::memcpy(out, in, static_cast<size_t>(count) * sizeof(float));
        break;
      }
      case Op::input:
      case Op::flatten:
        std::memcpy(out, in, static_cast<size_t>(count) * sizeof(float));
        break;
    }
    hooks_->output(i, out, count, mode);
    out_[i] = out;
  }
  return out_.back();
}

void FloatEngine::backward(const float* dlogits, const float* params, float* grads) {
  QATC_CHECK(with_grads_);
  const int64_t n = n_;
  for (size_t i = 1; i < g_.nodes.size(); ++i)
    if (!grad_buf_[i].empty())
      std::memset(grad_buf_[i].data(), 0, static_cast<size_t>(n * numel(g_.nodes[i].shape)) * sizeof(float));
  const size_t last = g_.nodes.size() - 1;
  std::memcpy(grad_[last], dlogits, static_cast<size_t>(n * numel(g_.output().shape)) * sizeof(float));

  for (size_t i = last; i >= 1; --i) {
    const Node& node = g_.nodes[i];
    if (node.op == Op::flatten) continue;  // shares its input's gradient buffer
    const size_t src = static_cast<size_t>(node.inputs[0]);
    const float* in = out_[src];
    // A ReLU takes a straight-through mask of its output's fake quantization in its own pass.
    const uint8_t* pass = node.op == Op::relu || node.op == Op::relu6 ? hooks_->ste_mask(i) : nullptr;
    if (!pass) hooks_->output_backward(i, grad_[i], n * numel(node.shape));
    const float* dout = grad_[i];
    float* din = grad_[src];  // nullptr for the data input
    const int64_t count = n * numel(node.shape);
    auto P = [&](size_t k) { return params + g_.param(node, k).offset; };
    auto G = [&](size_t k) { return grads + g_.param(node, k).offset; };
    switch (node.op) {
      case Op::conv2d: {
        const auto& a = std::get<Conv2DAttrs>(node.attrs);
        conv2d_backward(din, G(0), a.use_bias ? G(1) : nullptr, dout, in, weights_[i], conv_geom(g_, node, n),
                        workspace_.data());
        hooks_->weights_backward(i, G(0), numel(g_.param(node, 0).shape));
        break;
      }
      case Op::dense: {
        const auto& a = std::get<DenseAttrs>(node.attrs);
        dense_backward(din, G(0), a.use_bias ? G(1) : nullptr, dout, in, weights_[i], n, numel(g_.nodes[src].shape),
                       node.shape[0]);
        hooks_->weights_backward(i, G(0), numel(g_.param(node, 0).shape));
        break;
      }
      case Op::depthwise_conv2d: {
        const auto& a = std::get<DepthwiseAttrs>(node.attrs);
        depthwise_backward(din, G(0), a.use_bias ? G(1) : nullptr, dout, in, weights_[i], dw_geom(g_, node, n));
        hooks_->weights_backward(i, G(0), numel(g_.param(node, 0).shape));
        break;
      }
      case Op::pad: pad_backward(din, dout, pad_geom_of(g_, node, n)); break;
      case Op::add:
      case Op::concat: {
        std::vector<float*> dins;
        for (int k : node.inputs) dins.push_back(grad_[static_cast<size_t>(k)]);
        const auto count_in = static_cast<int64_t>(dins.size());
        if (node.op == Op::add) {
          add_backward(dins.data(), count_in, dout, count);
        } else {
          const auto ch = concat_channels(g_, node);
          concat_backward(dins.data(), ch.data(), count_in, dout, count / node.shape.back());
        }
        break;
      }
      case Op::relu:
        if (din) relu_backward(din, dout, out_[i], count, pass);
        break;
      case Op::relu6:
        if (din) relu6_backward(din, dout, out_[i], count, pass);
        break;
      case Op::maxpool:
        if (din) maxpool2d_backward(din, dout, argmax_[i].data(), pool_geom(g_, node, n));
        break;
      case Op::avgpool:
        if (din) avgpool2d_backward(din, dout, pool_geom(g_, node, n));
        break;
      case Op::global_avgpool: {
        const Shape& s = g_.nodes[src].shape;
        if (din) global_avgpool_backward(din, dout, n, s[0] * s[1], s[2]);
        break;
      }
      case Op::batchnorm: {
        const auto& a = std::get<BatchNormAttrs>(node.attrs);
        const int64_t c = node.shape.back();
        if (mode_ == Mode::train && !hooks_->batchnorm_frozen(i))
          batchnorm_backward(din, G(0), G(1), dout, in, P(0), bn_mean_[i].data(), bn_var_[i].data(), a.epsilon,
                             count / c, c);
        else
          batchnorm_backward_eval(din, G(0), G(1), dout, in, P(0), P(2), P(3), a.epsilon, count / c, c);
        break;
      }
      case Op::dropout: {
        const auto& a = std::get<DropoutAttrs>(node.attrs);
        if (din) {
          if (mode_ == Mode::train) dropout_backward(din, dout, mask_[i].data(), count, a.rate);
          else
            for (int64_t k = 0; k < count; ++k) din[k] += dout[k];
        }
        break;
      }
      case Op::input:
      case Op::flatten: break;
    }
  }
}

}  // namespace qatc::nn
