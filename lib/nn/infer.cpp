// Float inference: the plan (folding, fusion, in-place steps, buffer sharing) and the forward.
#include "nn/infer.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <iterator>
#include <variant>

#include "core/buffer_plan.h"
#include "core/error.h"
#include "core/threads.h"
#include "nn/batchnorm.h"
#include "nn/dense.h"
#include "nn/gemm_packed.h"
#include "nn/node_geom.h"
#include "quant/bn_fold.h"

namespace qatc::nn {
namespace {

// Nodes whose output is their input, bit for bit: no step, the same value.
bool is_view(Op op) { return op == Op::input || op == Op::flatten || op == Op::dropout; }

bool has_weights(Op op) { return op == Op::conv2d || op == Op::depthwise_conv2d || op == Op::dense; }

// Steps that may overwrite their input (elementwise); an add its first or second input.
bool may_run_in_place(Op op) { return op == Op::batchnorm || op == Op::relu || op == Op::relu6 || op == Op::add; }

// A zero padding (no cropping) that only a convolution (or a max pool, see plan) reads becomes
// its padding.
bool foldable_pad(const Node& n) {
  const auto& a = std::get<PadAttrs>(n.attrs);
  return a.top >= 0 && a.bottom >= 0 && a.left >= 0 && a.right >= 0;
}

// Geometry of a convolution (or pooling) that reads the input of a folded zero padding instead of
// its output: a smaller input, more padding before it, the same output.
template <class Geom>
Geom with_pad(Geom geo, const Node* pad) {
  if (!pad) return geo;
  const auto& a = std::get<PadAttrs>(pad->attrs);
  geo.h -= a.top + a.bottom;
  geo.w -= a.left + a.right;
  geo.pad_top += a.top;
  geo.pad_left += a.left;
  return geo;
}

// Whether every window of a pooling holds at least one tap inside the input.
bool every_window_real(const Pool2DGeom& p) {
  return p.pad_top < p.kh && p.pad_left < p.kw && (p.oh - 1) * p.stride_h - p.pad_top < p.h &&
         (p.ow - 1) * p.stride_w - p.pad_left < p.w;
}

}  // namespace

InferenceEngine::InferenceEngine(const Graph& g, const float* params, int64_t max_batch)
    : g_(g), pack_(packed_gemm_enabled()) {
  QATC_CHECK_GE(max_batch, 1);
  assign_buffers(form_steps(params));
  reserve(max_batch);
}

std::vector<std::vector<int>> InferenceEngine::form_steps(const float* params) {
  const size_t count = g_.nodes.size();
  std::vector<std::vector<int>> consumers(count);
  for (size_t i = 0; i < count; ++i)
    for (int in : g_.nodes[i].inputs) consumers[static_cast<size_t>(in)].push_back(static_cast<int>(i));
  // Node i's single consumer when it has one and its op is `op`, else -1.
  auto only_consumer = [&](int i, Op op) {
    const auto& c = consumers[static_cast<size_t>(i)];
    return c.size() == 1 && g_.nodes[static_cast<size_t>(c[0])].op == op ? c[0] : -1;
  };

  // One step per node, except views, and nodes folded into the step of an earlier node (a
  // BatchNorm into its conv/dense, an add into its conv, an activation into its producer) or of a
  // later one (a zero padding into its convolution or max pool).
  std::vector<bool> folded(count, false);
  std::vector<std::vector<int>> in_nodes;
  for (size_t i = 1; i < count; ++i) {
    const Node& node = g_.nodes[i];
    if (folded[i] || is_view(node.op)) continue;
    if (node.op == Op::pad && foldable_pad(node) && consumers[i].size() == 1) {
      const Node& user = g_.nodes[static_cast<size_t>(consumers[i][0])];
      // A max pool may take the padding only where the padded zeros never win: over a ReLU's
      // output (>= 0), with a real tap in every window.
      const Op src = g_.nodes[static_cast<size_t>(node.inputs[0])].op;
      const bool pool = user.op == Op::maxpool && (src == Op::relu || src == Op::relu6) &&
                        every_window_real(with_pad(pool_geom(g_, user, 1), &node));
      if (user.op == Op::conv2d || user.op == Op::depthwise_conv2d || pool) {
        folded[i] = true;
        continue;
      }
    }
    Step s{node.op, static_cast<int>(i), static_cast<int>(i)};
    std::vector<int> reads = node.inputs;
    if (g_.nodes[static_cast<size_t>(reads[0])].op == Op::pad && folded[static_cast<size_t>(reads[0])]) {
      s.pad = reads[0];
      reads[0] = g_.nodes[static_cast<size_t>(s.pad)].inputs[0];
    }
    if (has_weights(node.op)) {
      const int bn = only_consumer(s.last, Op::batchnorm);
      if (bn >= 0) {
        folded[static_cast<size_t>(bn)] = true;
        s.last = bn;
      }
      fold(s, bn, params);
      // A two-input add of this conv2d and a node computed before it: the conv adds it.
      const int add = node.op == Op::conv2d ? only_consumer(s.last, Op::add) : -1;
      if (add >= 0 && g_.nodes[static_cast<size_t>(add)].inputs.size() == 2) {
        const auto& ab = g_.nodes[static_cast<size_t>(add)].inputs;
        const int other = ab[0] == s.last ? ab[1] : ab[0];
        if (other < s.node) {
          folded[static_cast<size_t>(add)] = true;
          s.last = add;
          reads.push_back(other);
        }
      }
    } else if (node.op == Op::batchnorm) {
      fold(s, s.node, params);
    }
    if (has_weights(node.op) || node.op == Op::batchnorm || node.op == Op::add) {  // the activation after it
      for (Op act : {Op::relu, Op::relu6}) {
        const int a = only_consumer(s.last, act);
        if (a < 0) continue;
        folded[static_cast<size_t>(a)] = true;
        s.last = a;
        s.act = act == Op::relu ? Activation::relu : Activation::relu6;
        break;
      }
    }
    steps_.push_back(std::move(s));
    in_nodes.push_back(std::move(reads));
  }
  return in_nodes;
}

// Values, their lifetimes and buffers. A value is what a step writes; value 0 is the caller's
// input. An elementwise step (or a conv on its residual) overwrites an input value that no later
// step reads, so the value lives on; values whose lifetimes do not overlap share a buffer.
void InferenceEngine::assign_buffers(const std::vector<std::vector<int>>& in_nodes) {
  const size_t count = g_.nodes.size();
  // The last step reading each node, a view's readers counting for its source.
  const int end = static_cast<int>(steps_.size());
  std::vector<int> last_read(count, -1);
  for (size_t k = 0; k < steps_.size(); ++k)
    for (int in : in_nodes[k]) last_read[static_cast<size_t>(in)] = static_cast<int>(k);
  last_read[count - 1] = end;  // the logits are read after the last step
  std::vector<int> source(count);  // the node that computes each node's value
  for (size_t i = 0; i < count; ++i) {
    const Node& node = g_.nodes[i];
    source[i] = i > 0 && is_view(node.op) ? source[static_cast<size_t>(node.inputs[0])] : static_cast<int>(i);
  }
  for (size_t i = count; i-- > 1;) {
    const auto src = static_cast<size_t>(source[i]);
    last_read[src] = std::max(last_read[src], last_read[i]);
  }

  std::vector<int> value_of(count, -1);
  value_of[0] = 0;
  std::vector<ValueLife> lives{{numel(g_.nodes[0].shape), -1, end}};
  for (size_t k = 0; k < steps_.size(); ++k) {
    Step& s = steps_[k];
    for (int in : in_nodes[k]) s.in.push_back(value_of[static_cast<size_t>(source[static_cast<size_t>(in)])]);
    const int reads_of_last = last_read[static_cast<size_t>(s.last)];
    // In place on an input no later step reads (never the caller's input): elementwise steps on
    // their first (an add also its second) input, unless an add of three or more reads it again
    // later; a convolution on its residual, unless it convolves that value too.
    auto dies_here = [&](size_t j) {
      const int v = s.in[j];
      return v > 0 && lives[static_cast<size_t>(v)].last == static_cast<int>(k);
    };
    if (may_run_in_place(s.op))
      for (size_t j = 0; j < std::min<size_t>(s.in.size(), 2) && s.out < 0; ++j)
        if (dies_here(j) && std::count(s.in.begin() + std::min<std::ptrdiff_t>(2, std::ssize(s.in)), s.in.end(), s.in[j]) == 0)
          s.out = s.in[j];
    if (s.op == Op::conv2d && s.in.size() == 2 && dies_here(1) && s.in[0] != s.in[1]) s.out = s.in[1];
    if (s.out < 0) {
      s.out = static_cast<int>(lives.size());
      lives.push_back({numel(g_.nodes[static_cast<size_t>(s.last)].shape), static_cast<int>(k), reads_of_last});
    }
    auto& life = lives[static_cast<size_t>(s.out)];
    life.last = std::max(life.last, reads_of_last);
    value_of[static_cast<size_t>(s.last)] = s.out;
  }
  output_ = value_of[static_cast<size_t>(source[count - 1])];

  // The caller's input needs no buffer.
  const BufferPlan bp = plan_buffers(std::vector<ValueLife>(lives.begin() + 1, lives.end()));
  slot_.assign(lives.size(), -1);
  for (size_t v = 1; v < lives.size(); ++v) slot_[v] = bp.slot[v - 1];
  slot_elems_ = bp.slot_elems;
  buffers_.resize(slot_elems_.size());
  value_ptr_.assign(lives.size(), nullptr);
}

// Copies (without bn: s.node's own weights and bias) or folds (bn: the BatchNorm after s.node)
// the parameters s needs into consts_. A lone BatchNorm (bn == s.node) keeps its scale, beta
// and mean: out = (in - mean) * scale + beta, as the training engine computes it.
void InferenceEngine::fold(Step& s, int bn, const float* params) {
  const Node& node = g_.nodes[static_cast<size_t>(s.node)];
  // New floats at the end of consts_, starting on a 64-byte boundary.
  auto take = [&](int64_t n) {
    const auto at = static_cast<int64_t>((consts_.size() + 15) / 16 * 16);
    consts_.resize(static_cast<size_t>(at + n));
    return at;
  };
  auto C = [&](int64_t at) { return consts_.data() + at; };
  const int64_t channels = node.shape.back();
  if (bn == s.node) {
    const auto eps = std::get<BatchNormAttrs>(node.attrs).epsilon;
    auto P = [&](size_t k) { return params + g_.param(node, k).offset; };
    s.w = take(channels), s.b = take(channels), s.mean = take(channels);
    quant::bn_scale(C(s.w), P(0), P(3), eps, channels);
    std::copy(P(1), P(1) + channels, C(s.b));
    std::copy(P(2), P(2) + channels, C(s.mean));
    return;
  }
  const int64_t weights = numel(g_.param(node, 0).shape);
  const float* w = params + g_.param(node, 0).offset;
  const float* b = node.params.size() > 1 ? params + g_.param(node, 1).offset : nullptr;
  // Packed weights are folded into a staging copy first, then packed into consts_.
  s.packed = pack_ && node.op == Op::conv2d;
  std::vector<float> staged(s.packed ? static_cast<size_t>(weights) : 0);
  if (!s.packed) s.w = take(weights);
  if (bn >= 0 || b) s.b = take(channels);
  float* wd = s.packed ? staged.data() : C(s.w);
  if (bn < 0) {
    std::copy(w, w + weights, wd);
    if (b) std::copy(b, b + channels, C(s.b));
  } else {
    const Node& bnode = g_.nodes[static_cast<size_t>(bn)];
    auto P = [&](size_t k) { return params + g_.param(bnode, k).offset; };
    // The weights are [rows, channels] with the output channel last (HWIO; depthwise [kh,kw,c*M]).
    quant::fold_batchnorm(wd, C(s.b), w, b, P(0), P(1), P(2), P(3), std::get<BatchNormAttrs>(bnode.attrs).epsilon,
                          weights / channels, channels);
  }
  if (s.packed) {
    s.w = take(packed_floats(weights / channels, channels));
    pack_weights(C(s.w), staged.data(), weights / channels, channels);
  }
}

void InferenceEngine::reserve(int64_t n) {
  if (n > max_batch_) {
    max_batch_ = n;
    for (size_t s = 0; s < buffers_.size(); ++s) buffers_[s].resize(static_cast<size_t>(n * slot_elems_[s]));
  }
  // The convolutions' scratch depends on the batch and the thread count (one slot per thread),
  // so it is checked on every forward.
  const int threads = num_threads();
  int64_t ws = 0;
  for (const Step& s : steps_)
    if (s.op == Op::conv2d) {
      const Node* pad = s.pad >= 0 ? &g_.nodes[static_cast<size_t>(s.pad)] : nullptr;
      ws = std::max(ws, conv2d_infer_workspace_floats(with_pad(conv_geom(g_, g_.nodes[static_cast<size_t>(s.node)], n), pad), threads, s.packed));
    }
  if (ws > static_cast<int64_t>(workspace_.size())) workspace_.resize(static_cast<size_t>(ws));
}

const float* InferenceEngine::forward(const float* input, int64_t n, std::vector<double>* step_seconds) {
  QATC_CHECK_GE(n, 1);
  reserve(n);
  value_ptr_[0] = const_cast<float*>(input);  // read only: no step writes value 0
  for (size_t v = 1; v < value_ptr_.size(); ++v) value_ptr_[v] = buffers_[static_cast<size_t>(slot_[v])].data();
  if (step_seconds) step_seconds->clear();
  for (const Step& s : steps_) {
    const auto t0 = std::chrono::steady_clock::now();
    run(s, n);
    if (step_seconds)
      step_seconds->push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return value_ptr_[static_cast<size_t>(output_)];
}

void InferenceEngine::run(const Step& s, int64_t n) {
  const Node& node = g_.nodes[static_cast<size_t>(s.node)];
  const Node* pad = s.pad >= 0 ? &g_.nodes[static_cast<size_t>(s.pad)] : nullptr;
  float* out = value_ptr_[static_cast<size_t>(s.out)];
  const float* in = value_ptr_[static_cast<size_t>(s.in[0])];
  const int64_t count = n * numel(node.shape);
  auto C = [&](int64_t at) { return at >= 0 ? consts_.data() + at : nullptr; };
  switch (s.op) {
    case Op::conv2d: {
      const float* residual = s.in.size() > 1 ? value_ptr_[static_cast<size_t>(s.in[1])] : nullptr;
      conv2d_infer(out, in, C(s.w), s.packed, C(s.b), residual, with_pad(conv_geom(g_, node, n), pad), s.act, workspace_.data());
      break;
    }
    case Op::depthwise_conv2d:
      depthwise_forward(out, in, C(s.w), C(s.b), with_pad(dw_geom(g_, node, n), pad), s.act);
      break;
    case Op::dense:
      dense_forward(out, in, C(s.w), C(s.b), n, numel(g_.nodes[static_cast<size_t>(node.inputs[0])].shape),
                    node.shape[0], s.act);
      break;
    case Op::batchnorm:
      batchnorm_apply(out, in, C(s.w), C(s.b), C(s.mean), count / node.shape.back(), node.shape.back(), s.act);
      break;
    case Op::relu: relu_forward(out, in, count); break;
    case Op::relu6: relu6_forward(out, in, count); break;
    case Op::add:
    case Op::concat:
      ins_.clear();
      for (int v : s.in) ins_.push_back(value_ptr_[static_cast<size_t>(v)]);
      if (node.op == Op::add) {
        add_forward(out, ins_.data(), static_cast<int64_t>(ins_.size()), count, s.act);
      } else {
        const auto ch = concat_channels(g_, node);
        concat_forward(out, ins_.data(), ch.data(), static_cast<int64_t>(ins_.size()), count / node.shape.back());
      }
      break;
    case Op::pad: pad_forward(out, in, pad_geom_of(g_, node, n)); break;
    case Op::maxpool: maxpool2d_forward(out, nullptr, in, with_pad(pool_geom(g_, node, n), pad)); break;
    case Op::avgpool: avgpool2d_forward(out, in, pool_geom(g_, node, n)); break;
    case Op::global_avgpool: {
      const Shape& s_in = g_.nodes[static_cast<size_t>(node.inputs[0])].shape;
      global_avgpool_forward(out, in, n, s_in[0] * s_in[1], s_in[2]);
      break;
    }
    case Op::input:
    case Op::flatten:
    case Op::dropout: QATC_CHECK(false); break;  // views: no step
  }
}

std::vector<int> InferenceEngine::step_kernels() const {
  std::vector<int> nodes;
  for (const Step& s : steps_) nodes.push_back(s.node);
  return nodes;
}

std::vector<int> InferenceEngine::step_nodes() const {
  std::vector<int> nodes;
  for (const Step& s : steps_) nodes.push_back(s.last);
  return nodes;
}

int64_t InferenceEngine::arena_bytes() const {
  int64_t b = 0;
  for (const auto& buf : buffers_) b += static_cast<int64_t>(buf.size() * sizeof(float));
  return b;
}

}  // namespace qatc::nn
