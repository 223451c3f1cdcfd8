// Int8 executor and its memory plan.
#include "runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/buffer_plan.h"
#include "core/error.h"
#include "core/pages.h"
#include "kernels/check.h"
#include "kernels/ref/kernels.h"
#include "nn/activation.h"
#include "nn/conv2d.h"
#include "nn/dense.h"
#include "quant/qparams.h"

namespace qatc::runtime {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

kernels::Conv2DParams conv_params(const ConvLayer& c, const Shape& in, const Shape& out, int64_t n, const QTensor& ti,
                                  const QTensor& to) {
  kernels::Conv2DParams p{};
  p.n = n, p.h = in[0], p.w = in[1], p.c = in[2];
  p.kh = c.kh, p.kw = c.kw, p.oc = out[2];
  p.stride_h = c.stride_h, p.stride_w = c.stride_w, p.pad_top = c.pad_top, p.pad_left = c.pad_left;
  p.oh = out[0], p.ow = out[1];
  p.input_zero_point = ti.zero_point, p.output_zero_point = to.zero_point;
  p.weights = c.weights.data(), p.bias = c.bias.data(), p.multiplier = c.multiplier.data(), p.shift = c.shift.data();
  p.qmin = c.qmin, p.qmax = c.qmax;
  return p;
}

kernels::DepthwiseConv2DParams dw_params(const ConvLayer& c, const QTensor& ti, const QTensor& to, int64_t n) {
  kernels::DepthwiseConv2DParams p{};
  p.n = n, p.h = ti.shape[0], p.w = ti.shape[1], p.c = ti.shape[2];
  p.kh = c.kh, p.kw = c.kw, p.depth_multiplier = c.depth_multiplier;
  p.stride_h = c.stride_h, p.stride_w = c.stride_w, p.pad_top = c.pad_top, p.pad_left = c.pad_left;
  p.oh = to.shape[0], p.ow = to.shape[1];
  p.input_zero_point = ti.zero_point, p.output_zero_point = to.zero_point;
  p.weights = c.weights.data(), p.bias = c.bias.data(), p.multiplier = c.multiplier.data(), p.shift = c.shift.data();
  p.qmin = c.qmin, p.qmax = c.qmax;
  return p;
}

kernels::AddParams add_params(const AddLayer& a, const QTensor& t1, const QTensor& t2, const QTensor& to, int64_t n) {
  kernels::AddParams p{};
  p.size = n * numel(to.shape);
  p.input1_zero_point = t1.zero_point, p.input2_zero_point = t2.zero_point, p.output_zero_point = to.zero_point;
  p.left_shift = a.left_shift;
  p.input1_multiplier = a.input1_multiplier, p.input1_shift = a.input1_shift;
  p.input2_multiplier = a.input2_multiplier, p.input2_shift = a.input2_shift;
  p.output_multiplier = a.output_multiplier, p.output_shift = a.output_shift;
  p.qmin = a.qmin, p.qmax = a.qmax;
  return p;
}

kernels::ConcatParams concat_params(const ConcatLayer& c, const QTensor& to, int64_t n) {
  kernels::ConcatParams p;
  p.outer = n * numel(to.shape) / to.shape.back();
  p.inputs = c.inputs;
  p.output_zero_point = to.zero_point;
  return p;
}

// The input of a two-input Add other than the tensor `conv_out` (the conv fused into it).
int32_t add_other(const IntLayer& add, int32_t conv_out) { return add.inputs[add.inputs[0] == conv_out ? 1 : 0]; }

kernels::PadParams pad_params(const PadLayer& pl, const QTensor& ti, const QTensor& to, int64_t n) {
  kernels::PadParams p{};
  p.n = n, p.h = ti.shape[0], p.w = ti.shape[1], p.c = ti.shape[2];
  p.top = pl.top, p.bottom = pl.bottom, p.left = pl.left, p.right = pl.right;
  p.oh = to.shape[0], p.ow = to.shape[1], p.zero_point = ti.zero_point;
  return p;
}

kernels::DenseParams dense_params(const ConvLayer& c, const QTensor& ti, const QTensor& to, int64_t n) {
  kernels::DenseParams p{};
  p.n = n, p.in_features = numel(ti.shape), p.out_features = to.shape[0];
  p.input_zero_point = ti.zero_point, p.output_zero_point = to.zero_point;
  p.weights = c.weights.data(), p.bias = c.bias.data(), p.multiplier = c.multiplier.data();
  p.shift = c.shift.data(), p.qmin = c.qmin, p.qmax = c.qmax;
  return p;
}

kernels::Pool2DParams pool_params(const PoolLayer& pl, const QTensor& ti, const QTensor& to, int64_t n) {
  kernels::Pool2DParams p{};
  p.n = n, p.h = ti.shape[0], p.w = ti.shape[1], p.c = ti.shape[2], p.kh = pl.kh, p.kw = pl.kw;
  p.stride_h = pl.stride_h, p.stride_w = pl.stride_w, p.pad_top = pl.pad_top, p.pad_left = pl.pad_left;
  p.oh = to.shape[0], p.ow = to.shape[1], p.qmin = -128, p.qmax = 127;
  return p;
}

kernels::GlobalAvgPoolParams gpool_params(const GlobalPoolLayer& gp, const QTensor& ti, const QTensor& to, int64_t n) {
  kernels::GlobalAvgPoolParams p{};
  p.n = n, p.hw = ti.shape[0] * ti.shape[1], p.c = ti.shape[2];
  p.input_zero_point = ti.zero_point, p.output_zero_point = to.zero_point;
  p.left_shift = gp.left_shift, p.multiplier = gp.multiplier, p.shift = gp.shift;
  p.qmin = -128, p.qmax = 127;
  return p;
}

bool g_use_ref = false;

}  // namespace

void set_kernels(const std::string& name) {
  if (name == "ref") {
    g_use_ref = true;
    return;
  }
  g_use_ref = false;
  if (name == "opt") {
    opt::set_isa(opt::detect_isa());
    return;
  }
  opt::Isa isa{};
  try {
    isa = opt::parse_isa(name);
  } catch (const Error&) {
    fail("--kernels {}: unknown; expected one of: opt, ref, portable, avx2, avx_vnni, avx512_vnni, amx", name);
  }
  opt::set_isa(isa);  // raises when this CPU lacks it
}

namespace {
int64_t g_pass_bytes = kPassActivationBytes;
}  // namespace

void set_pass_activation_bytes(int64_t bytes) {
  QATC_CHECK_GE(bytes, 1);
  g_pass_bytes = bytes;
}

std::string kernels_in_use() { return g_use_ref ? "ref" : opt::to_string(opt::active_isa()); }

void check_kernels(const IntModel& m, const std::string& what) {
  // The kernels' own argument checks at batch 1 with stand-in pointers: a model that passes
  // them can be executed at any batch size.
  static const int8_t dummy_q[1] = {0};
  static const uint8_t dummy_px[1] = {0};
  int8_t* out = const_cast<int8_t*>(dummy_q);
  const std::string* layer = nullptr;
  try {
    const std::string input = "input";
    layer = &input;
    kernels::check(m.input_quant, out, dummy_px, numel(m.tensors[0].shape));
    std::vector<const int8_t*> dummies;
    for (const auto& l : m.layers) {
      layer = &l.name;
      const QTensor& ti = m.tensors[static_cast<size_t>(l.input())];
      const QTensor& to = m.tensors[static_cast<size_t>(l.output)];
      if (const auto* c = std::get_if<ConvLayer>(&l.params)) {
        if (c->kind == ConvKind::dense) kernels::check(dense_params(*c, ti, to, 1), out, dummy_q);
        else if (c->kind == ConvKind::depthwise) kernels::check(dw_params(*c, ti, to, 1), out, dummy_q);
        else kernels::check(conv_params(*c, ti.shape, to.shape, 1, ti, to), out, dummy_q);
      } else if (const auto* a = std::get_if<AddLayer>(&l.params)) {
        const QTensor& t2 = m.tensors[static_cast<size_t>(l.inputs.at(1))];
        kernels::check(add_params(*a, ti, t2, to, 1), out, dummy_q, dummy_q);
      } else if (const auto* cc = std::get_if<ConcatLayer>(&l.params)) {
        dummies.assign(cc->inputs.size(), dummy_q);
        kernels::check(concat_params(*cc, to, 1), out, dummies.data());
      } else if (const auto* pd = std::get_if<PadLayer>(&l.params)) {
        kernels::check(pad_params(*pd, ti, to, 1), out, dummy_q);
      } else if (const auto* pl = std::get_if<PoolLayer>(&l.params)) {
        kernels::check(pool_params(*pl, ti, to, 1), out, dummy_q);
      } else if (const auto* gp = std::get_if<GlobalPoolLayer>(&l.params)) {
        kernels::check(gpool_params(*gp, ti, to, 1), out, dummy_q);
      }
    }
  } catch (const InternalError& e) {
    fail("{}: layer '{}': parameters the integer kernels reject ({}); the int8 model file is damaged, convert it again",
         what, layer ? *layer : std::string("?"), e.what());
  }
}

int64_t largest_activation_pair_bytes(const IntModel& m, int64_t n) {
  int64_t largest = 0;
  for (const auto& l : m.layers) {
    if (std::holds_alternative<ReshapeLayer>(l.params)) continue;
    int64_t elems = numel(m.tensors[static_cast<size_t>(l.output)].shape);
    for (int32_t t : l.inputs) elems += numel(m.tensors[static_cast<size_t>(t)].shape);
    largest = std::max(largest, n * elems);
  }
  return largest;
}

Executor::Executor(const IntModel& m, int64_t max_batch, bool keep_all_tensors) : m_(m) {
  init(max_batch, keep_all_tensors);
}

Executor::Executor(IntModel&& m, int64_t max_batch) : owned_(std::make_unique<IntModel>(std::move(m))), m_(*owned_) {
  init(max_batch, false);
}

void Executor::init(int64_t max_batch, bool keep_all_tensors) {
  const IntModel& m = m_;
  // Liveness: the last layer reading each tensor (the output lives to the end).
  const size_t nt = m.tensors.size();
  std::vector<int> last_use(nt, -1);
  std::vector<int> alias_of(nt, -1);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const auto& l = m.layers[i];
    for (int32_t t : l.inputs) last_use[static_cast<size_t>(t)] = static_cast<int>(i);
    if (std::holds_alternative<ReshapeLayer>(l.params)) alias_of[static_cast<size_t>(l.output)] = l.input();
  }
  last_use[static_cast<size_t>(m.output)] = static_cast<int>(m.layers.size());
  if (keep_all_tensors) std::fill(last_use.begin(), last_use.end(), static_cast<int>(m.layers.size()));
  // A view keeps its source alive as long as itself.
  for (size_t i = m.layers.size(); i-- > 0;) {
    const auto& l = m.layers[i];
    if (alias_of[static_cast<size_t>(l.output)] >= 0)
      last_use[static_cast<size_t>(l.input())] = std::max(last_use[static_cast<size_t>(l.input())],
                                                           last_use[static_cast<size_t>(l.output)]);
  }
  // The layer writing each tensor (-1: the model input); a tensor lives from then to its last
  // use, at least through its own layer, so an output never shares memory with that layer's
  // inputs.
  std::vector<int> first(nt, -2);
  first[0] = -1;
  for (size_t i = 0; i < m.layers.size(); ++i) first[static_cast<size_t>(m.layers[i].output)] = static_cast<int>(i);
  // A conv whose output only the next layer, an Add, reads writes that Add's output itself
  // when the kernels can (opt::conv2d_add_qs8): the Add's output then lives from the conv on,
  // so that it never shares memory with the conv's input.
  fused_add_.assign(m.layers.size(), -1);
  fused_pad_.assign(m.layers.size(), -1);
  if (!g_use_ref) pack_adds();
  if (!keep_all_tensors && !g_use_ref) {
    std::vector<int> readers(nt, 0);
    for (const auto& l : m.layers)
      for (int32_t t : l.inputs) ++readers[static_cast<size_t>(t)];
    for (size_t i = 0; i + 1 < m.layers.size(); ++i) {
      const auto* c = std::get_if<ConvLayer>(&m.layers[i].params);
      const auto* a = std::get_if<AddLayer>(&m.layers[i + 1].params);
      const IntLayer& add = m.layers[i + 1];
      const int32_t t = m.layers[i].output;
      if (c == nullptr || c->kind != ConvKind::conv || a == nullptr || t == m.output ||
          readers[static_cast<size_t>(t)] != 1 || add.inputs.size() != 2)
        continue;
      const auto& ts = m.tensors;
      const auto ap = add_params(*a, ts[static_cast<size_t>(add.inputs[0])], ts[static_cast<size_t>(add.inputs[1])],
                                 ts[static_cast<size_t>(add.output)], 1);
      const int64_t ic = ts[static_cast<size_t>(m.layers[i].input())].shape[2];
      if (!opt::supports_conv2d_add(opt::gemm_isa(ic, c->kh, c->kw, ts[static_cast<size_t>(t)].shape[2]), ap,
                                    packed_add_[i + 1].get()))
        continue;
      fused_add_[i] = static_cast<int>(i + 1);
      first[static_cast<size_t>(add.output)] = static_cast<int>(i);
    }
    // A Pad whose output only the next layer, a conv or depthwise conv, reads: the conv reads
    // the Pad's input with the padding added to its own (its kernels read every position
    // outside the input as the input's zero point, the value the Pad writes), and the Pad's
    // output gets no memory: MobileNets' stride-2 ZeroPadding2D before a valid convolution.
    for (size_t i = 0; i + 1 < m.layers.size(); ++i) {
      const auto* pd = std::get_if<PadLayer>(&m.layers[i].params);
      const auto* c = std::get_if<ConvLayer>(&m.layers[i + 1].params);
      const int32_t t = m.layers[i].output, src = pd ? m.layers[i].input() : 0;
      if (pd == nullptr || c == nullptr || c->kind == ConvKind::dense || m.layers[i + 1].input() != t ||
          t == m.output || readers[static_cast<size_t>(t)] != 1)
        continue;
      const QTensor &ti = m.tensors[static_cast<size_t>(src)], &tp = m.tensors[static_cast<size_t>(t)];
      const Shape& out = m.tensors[static_cast<size_t>(m.layers[i + 1].output)].shape;
      const int64_t top = c->pad_top + pd->top, left = c->pad_left + pd->left;
      if (ti.zero_point != tp.zero_point || ti.scale != tp.scale || ti.bits != tp.bits || top >= c->kh ||
          left >= c->kw || (out[0] - 1) * c->stride_h - top > ti.shape[0] - 1 ||
          (out[1] - 1) * c->stride_w - left > ti.shape[1] - 1)
        continue;
      fused_pad_[i + 1] = static_cast<int>(i);
      first[static_cast<size_t>(t)] = -2;  // no memory
      last_use[static_cast<size_t>(src)] = std::max(last_use[static_cast<size_t>(src)], static_cast<int>(i + 1));
    }
    // A fused Add writes over its other input where nothing reads that input after it (a
    // ResNet block's shortcut): each output byte is computed from the other input's byte at
    // the same position, read just before, and the block's working set loses a tensor (at
    // batch 1 a 56x56x256 one is 0.8 MB). Not when the conv reads that tensor itself, nor
    // when the tensor is a view of another.
    for (size_t i = 0; i + 1 < m.layers.size(); ++i) {
      if (fused_add_[i] < 0) continue;
      const IntLayer& add = m.layers[i + 1];
      const int32_t out = add.output, other = add_other(add, m.layers[i].output);
      if (other == conv_source(i) || alias_of[static_cast<size_t>(other)] >= 0 ||
          last_use[static_cast<size_t>(other)] != static_cast<int>(i + 1))
        continue;
      alias_of[static_cast<size_t>(out)] = other;
      last_use[static_cast<size_t>(other)] = std::max(last_use[static_cast<size_t>(other)], last_use[static_cast<size_t>(out)]);
    }
  }
  std::vector<ValueLife> values;  // the tensors with memory of their own
  std::vector<size_t> value_tensor;
  for (size_t t = 0; t < nt; ++t) {
    last_use[t] = std::max(last_use[t], first[t]);
    if (first[t] > -2 && alias_of[t] < 0) {
      values.push_back({numel(m.tensors[t].shape), first[t], last_use[t]});
      value_tensor.push_back(t);
    }
  }
  const ArenaPlan plan = plan_arena(values, 64);  // 64-byte aligned tensors
  offset_.assign(nt, 0);
  for (size_t v = 0; v < values.size(); ++v) offset_[value_tensor[v]] = plan.offset[v];
  arena_elems_ = plan.elems;
  if (!keep_all_tensors) pass_ = std::max<int64_t>(1, g_pass_bytes / std::max<int64_t>(1, arena_elems_));
  for (const auto& l : m.layers) {  // views and in-place Adds, in order (a view of a view)
    const auto out = static_cast<size_t>(l.output);
    if (alias_of[out] >= 0) offset_[out] = offset_[static_cast<size_t>(alias_of[out])];
  }
  // Packing first: its transient (a layer's weights held twice) then never meets the arena.
  pack();
  reserve(max_batch);
}

// The optimized kernels' weights are packed once, in the layout of the active ISA; an owning
// executor frees each layer's int8 weights right after packing them.
void Executor::pack_adds() {
  packed_add_.clear();
  packed_add_.resize(m_.layers.size());
  if (!opt::add_table_used(opt::active_isa())) return;
  for (size_t i = 0; i < m_.layers.size(); ++i) {
    const IntLayer& l = m_.layers[i];
    const auto* a = std::get_if<AddLayer>(&l.params);
    if (a == nullptr || l.inputs.size() != 2) continue;
    const auto& ts = m_.tensors;
    auto t = std::make_unique<opt::PackedAdd>(opt::pack_add(add_params(
        *a, ts[static_cast<size_t>(l.inputs[0])], ts[static_cast<size_t>(l.inputs[1])], ts[static_cast<size_t>(l.output)], 1)));
    if (t->exact) packed_add_[i] = std::move(t);
  }
}

void Executor::pack() {
  // What the packed copy replaces (the kernels read only the packed arrays), and the weight
  // scales, which only reports read: on NASNet 1.2 MB of per-channel arrays besides the weights.
  const auto release_unpacked = [](ConvLayer& c) {
    std::vector<int8_t>().swap(c.weights);
    for (auto* v : {&c.bias, &c.multiplier, &c.shift}) std::vector<int32_t>().swap(*v);
    std::vector<double>().swap(c.weight_scales);
  };
  const IntModel& m = m_;
  opt_ = !g_use_ref;
  packed_.resize(m.layers.size());
  if (!opt_) return;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const IntLayer& l = m.layers[i];
    const auto* c = std::get_if<ConvLayer>(&l.params);
    if (!c) continue;
    const QTensor& ti = m.tensors[static_cast<size_t>(l.input())];
    const QTensor& to = m.tensors[static_cast<size_t>(l.output)];
    // An owned layer's weight rows leave memory as their panels are packed (a large dense
    // layer, 84% of cnn_bn's file, was otherwise held twice at the peak).
    opt::RowsPacked drop;
    if (owned_) {
      auto& w = std::get<ConvLayer>(owned_->layers[i].params).weights;
      const auto oc = static_cast<int64_t>(c->multiplier.size());
      drop = [&w, oc](int64_t rows) {
        release_pages(w.data(), w.size() / static_cast<size_t>(oc) * static_cast<size_t>(rows));
      };
    }
    if (c->kind == ConvKind::dense)
      packed_[i] = std::make_unique<opt::PackedConv>(opt::pack_dense(dense_params(*c, ti, to, 1), drop));
    else if (c->kind == ConvKind::depthwise)
      packed_[i] = std::make_unique<opt::PackedConv>(opt::pack_depthwise(dw_params(*c, ti, to, 1)));
    else
      packed_[i] = std::make_unique<opt::PackedConv>(opt::pack_conv2d(conv_params(*c, ti.shape, to.shape, 1, ti, to), drop));
    if (owned_) release_unpacked(std::get<ConvLayer>(owned_->layers[i].params));
  }
#if defined(__GLIBC__)
  // The released arrays were small heap blocks among the packed ones: hand their free pages
  // back to the system (NASNet: 0.3 MB of resident memory).
  if (owned_ && opt_) malloc_trim(0);
#endif
}

void Executor::reserve(int64_t n) {
  if (pass_ > 0) n = std::min(n, pass_);
  if (n <= max_batch_) return;
  max_batch_ = n;
  arena_ = opt::AlignedVector<int8_t>(static_cast<size_t>(n * arena_elems_));
}

const int8_t* Executor::run(const uint8_t* pixels, int64_t n) {
  const int64_t per = numel(m_.tensors[0].shape);
  return run_passes(n, [&](int8_t* q, int64_t b0, int64_t c) {
    if (opt_) opt::quantize_u8_to_qs8(q, pixels + b0 * per, c * per, m_.input_quant);
    else ref::quantize_u8_to_qs8(q, pixels + b0 * per, c * per, m_.input_quant);
  });
}

const int8_t* Executor::run_float(const float* x, int64_t n) {
  const QTensor& t = m_.tensors[0];
  const quant::QParams q{static_cast<float>(t.scale), t.zero_point, -(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1};
  const int64_t per = numel(t.shape);
  return run_passes(n, [&](int8_t* out, int64_t b0, int64_t c) {
    const float* xs = x + b0 * per;
    if (opt_) opt::quantize_f32_to_qs8(out, xs, c * per, q.scale, q.zero_point, q.qmin, q.qmax);
    else for (int64_t k = 0; k < c * per; ++k) out[k] = static_cast<int8_t>(quant::quantize(xs[k], q));
  });
}

const int8_t* Executor::run_passes(int64_t n, const std::function<void(int8_t*, int64_t, int64_t)>& quantize) {
  QATC_CHECK_GE(n, 1);
  const int64_t step = pass_ > 0 ? std::min(n, pass_) : n;
  reserve(step);
  const int64_t per = numel(m_.tensors[static_cast<size_t>(m_.output)].shape);
  if (profile_) {
    layer_ms_.assign(m_.layers.size(), 0.0);
    input_ms_ = 0;
  }
  for (int64_t b0 = 0; b0 < n; b0 += step) {
    const int64_t c = std::min(step, n - b0);
    const auto t0 = profile_ ? Clock::now() : Clock::time_point{};
    quantize(data(0), b0, c);
    if (profile_) input_ms_ += ms_since(t0);
    const int8_t* logits = run_layers(c);
    if (step == n) return logits;  // one pass: the logits stay in the arena
    out_.resize(static_cast<size_t>(n * per));
    std::memcpy(out_.data() + b0 * per, logits, static_cast<size_t>(c * per));
  }
  return out_.data();
}

void Executor::set_profile(bool on) {
  profile_ = on;
  layer_ms_.assign(on ? m_.layers.size() : 0, 0.0);
  input_ms_ = 0;
}

const int8_t* Executor::run_layers(int64_t n) {
  for (size_t li = 0; li < m_.layers.size(); ++li) {
    if (pad_read_through(li)) continue;  // the next conv pads
    if (!profile_) {
      li = run_step(li, n);
      continue;
    }
    const auto t0 = Clock::now();
    const size_t first = li;
    li = run_step(li, n);
    layer_ms_[first] += ms_since(t0);
  }
  return data(static_cast<size_t>(m_.output));
}

size_t Executor::run_step(size_t li, int64_t n) {
  auto buf = [&](int32_t t) { return data(static_cast<size_t>(t)); };
  const IntLayer& l = m_.layers[li];
  if (fused_pad_[li] < 0 && fused_add_[li] < 0) {
    ins_.clear();
    for (int32_t t : l.inputs) ins_.push_back(buf(t));
    // A reshape is a view: the planner gave its input and output the same buffer.
    if (!std::holds_alternative<ReshapeLayer>(l.params)) run_layer(li, ins_.data(), buf(l.output), n);
    return li;
  }
  // A conv reading through a fused Pad (the Pad's input, padded by its padding too) and/or
  // writing the Add after it.
  const auto& ts = m_.tensors;
  const ConvLayer& c = std::get<ConvLayer>(l.params);
  const IntLayer* pad = fused_pad_[li] >= 0 ? &m_.layers[static_cast<size_t>(fused_pad_[li])] : nullptr;
  const int32_t src = conv_source(li);
  const int64_t top = pad ? std::get<PadLayer>(pad->params).top : 0, left = pad ? std::get<PadLayer>(pad->params).left : 0;
  const QTensor &ti = ts[static_cast<size_t>(src)], &to = ts[static_cast<size_t>(l.output)];
  if (c.kind == ConvKind::depthwise) {
    auto p = dw_params(c, ti, to, n);
    p.pad_top += top, p.pad_left += left;
    opt::depthwise_conv2d_qs8(buf(l.output), buf(src), p, *packed_[li]);
    return li;
  }
  auto p = conv_params(c, ti.shape, to.shape, n, ti, to);
  p.pad_top += top, p.pad_left += left;
  if (fused_add_[li] < 0) {
    opt::conv2d_qs8(buf(l.output), buf(src), p, *packed_[li]);
    return li;
  }
  const IntLayer& add = m_.layers[static_cast<size_t>(fused_add_[li])];
  const bool conv_first = add.inputs[0] == l.output;
  const int32_t other = add_other(add, l.output);
  const auto a = add_params(std::get<AddLayer>(add.params), ts[static_cast<size_t>(add.inputs[0])],
                            ts[static_cast<size_t>(add.inputs[1])], ts[static_cast<size_t>(add.output)], n);
  opt::conv2d_add_qs8(buf(add.output), buf(src), p, *packed_[li], buf(other), a, conv_first,
                      packed_add_[static_cast<size_t>(fused_add_[li])].get());
  return li + 1;  // the Add is done
}

int Executor::done_by(size_t i) const {
  if (i > 0 && fused_add_.at(i - 1) == static_cast<int>(i)) return static_cast<int>(i - 1);
  return pad_read_through(i) ? static_cast<int>(i + 1) : -1;
}

bool Executor::pad_read_through(size_t i) const {
  return i + 1 < fused_pad_.size() && fused_pad_[i + 1] == static_cast<int>(i);
}

int32_t Executor::conv_source(size_t i) const {
  return fused_pad_[i] >= 0 ? m_.layers[static_cast<size_t>(fused_pad_[i])].input() : m_.layers[i].input();
}

void Executor::run_layer(size_t layer, const int8_t* const* inputs, int8_t* out, int64_t n) {
  const IntLayer& l = m_.layers.at(layer);
  const QTensor& ti = m_.tensors[static_cast<size_t>(l.input())];
  const QTensor& to = m_.tensors[static_cast<size_t>(l.output)];
  const int8_t* in = inputs[0];
  const bool o = opt_;
  if (const auto* c = std::get_if<ConvLayer>(&l.params)) {
    const opt::PackedConv* w = packed_[layer].get();
    if (c->kind == ConvKind::dense) {
      const auto p = dense_params(*c, ti, to, n);
      o ? opt::dense_qs8(out, in, p, *w) : ref::dense_qs8(out, in, p);
    } else if (c->kind == ConvKind::depthwise) {
      const auto p = dw_params(*c, ti, to, n);
      o ? opt::depthwise_conv2d_qs8(out, in, p, *w) : ref::depthwise_conv2d_qs8(out, in, p);
    } else {
      const auto p = conv_params(*c, ti.shape, to.shape, n, ti, to);
      o ? opt::conv2d_qs8(out, in, p, *w) : ref::conv2d_qs8(out, in, p);
    }
  } else if (const auto* a = std::get_if<AddLayer>(&l.params)) {
    const QTensor& t2 = m_.tensors[static_cast<size_t>(l.inputs[1])];
    const auto p = add_params(*a, ti, t2, to, n);
    if (!o)
      ref::add_qs8(out, in, inputs[1], p);
    else if (packed_add_[layer])
      opt::add_qs8(out, in, inputs[1], p, *packed_add_[layer]);
    else
      opt::add_qs8(out, in, inputs[1], p);
  } else if (const auto* cc = std::get_if<ConcatLayer>(&l.params)) {
    const auto p = concat_params(*cc, to, n);
    o ? opt::concat_qs8(out, inputs, p) : ref::concat_qs8(out, inputs, p);
  } else if (const auto* pd = std::get_if<PadLayer>(&l.params)) {
    const auto p = pad_params(*pd, ti, to, n);
    o ? opt::pad_qs8(out, in, p) : ref::pad_qs8(out, in, p);
  } else if (const auto* pl = std::get_if<PoolLayer>(&l.params)) {
    const kernels::Pool2DParams p = pool_params(*pl, ti, to, n);
    if (pl->max) o ? opt::maxpool2d_qs8(out, in, p) : ref::maxpool2d_qs8(out, in, p);
    else o ? opt::avgpool2d_qs8(out, in, p) : ref::avgpool2d_qs8(out, in, p);
  } else if (const auto* gp = std::get_if<GlobalPoolLayer>(&l.params)) {
    const auto p = gpool_params(*gp, ti, to, n);
    o ? opt::global_avgpool_qs8(out, in, p) : ref::global_avgpool_qs8(out, in, p);
  } else if (std::holds_alternative<ReshapeLayer>(l.params)) {
    if (out != in) std::memcpy(out, in, static_cast<size_t>(n * numel(to.shape)));
  } else {
    const auto& f = std::get<FloatLayer>(l.params);
    const int64_t in_count = n * numel(ti.shape), out_count = n * numel(to.shape);
    fin_.resize(static_cast<size_t>(in_count));
    fout_.resize(static_cast<size_t>(out_count));
    const quant::QParams qi{static_cast<float>(ti.scale), ti.zero_point, -128, 127};
    const quant::QParams qo{static_cast<float>(to.scale), to.zero_point, -(1 << (to.bits - 1)), (1 << (to.bits - 1)) - 1};
    for (int64_t k = 0; k < in_count; ++k) fin_[static_cast<size_t>(k)] = quant::dequantize(in[k], qi);
    if (f.dense) {
      nn::dense_forward(fout_.data(), fin_.data(), f.weights.data(), f.bias.data(), n, numel(ti.shape), to.shape[0]);
    } else {
      nn::Conv2DGeom g{n, ti.shape[0], ti.shape[1], ti.shape[2], f.kh, f.kw, to.shape[2], f.stride_h, f.stride_w,
                       f.pad_top, f.pad_left, to.shape[0], to.shape[1]};
      fwork_.resize(static_cast<size_t>(nn::conv2d_workspace_floats(g)));
      nn::conv2d_forward(fout_.data(), fin_.data(), f.weights.data(), f.bias.data(), g, fwork_.data());
    }
    if (f.activation == FloatActivation::relu) nn::relu_forward(fout_.data(), fout_.data(), out_count);
    if (f.activation == FloatActivation::relu6) nn::relu6_forward(fout_.data(), fout_.data(), out_count);
    for (int64_t k = 0; k < out_count; ++k)
      out[k] = static_cast<int8_t>(quant::quantize(fout_[static_cast<size_t>(k)], qo));
  }
}

}  // namespace qatc::runtime
