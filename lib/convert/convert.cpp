// Quantized checkpoint -> integer-only model.
#include "convert/convert.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/params.h"
#include "pipeline/model_file.h"
#include "quant/bn_fold.h"
#include "train/checkpoint.h"

namespace qatc::convert {
namespace {

using runtime::IntLayer;
using runtime::QTensor;

QTensor tensor_of(const std::string& name, const Shape& shape, const quant::QParams& q, int32_t bits) {
  return QTensor{name, shape, static_cast<double>(q.scale), q.zero_point, bits};
}

int32_t bits_of(const quant::QRange& r) {
  int32_t b = 1;
  while ((1 << (b - 1)) - 1 < r.qmax) ++b;
  return b;
}

struct ActBounds {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
};

}  // namespace

runtime::IntModel to_int_model(const quant::QuantModel& model, const recipe::Recipe& rc, const std::string& source) {
  const nn::Graph& g = model.graph();
  const quant::QuantPlan& plan = model.plan();
  const std::vector<float>& params = model.params();
  runtime::IntModel m;
  m.recipe_yaml = rc.resolved_yaml;
  m.source = source;

  // Input: raw uint8 pixels, real = pixel_scale * (pixel - pixel_zero_point) = (p/255 - mean)/std.
  const double pixel_zp = rc.data.mean * 255.0;
  if (std::fabs(pixel_zp - std::round(pixel_zp)) > 1e-6 || pixel_zp < 0 || pixel_zp > 255)
    fail("{}: data.mean * 255 must be an integer in [0, 255] so the integer model can take raw uint8 pixels; "
         "got {}",
         rc.file, pixel_zp);
  m.pixel_scale = 1.0 / (255.0 * rc.data.std);
  m.pixel_zero_point = static_cast<int32_t>(std::lround(pixel_zp));
  const auto& in_act = plan.acts[static_cast<size_t>(plan.act_of[0])];
  const quant::QParams in_q = model.act_qparams(static_cast<size_t>(plan.act_of[0]));
  m.tensors.push_back(tensor_of("input", g.nodes[0].shape, in_q, bits_of(in_act.range)));
  m.input_quant = kernels::make_quantize_params(m.pixel_scale, m.pixel_zero_point, in_q.scale, in_q.zero_point);
  m.input_quant.qmin = std::max(m.input_quant.qmin, in_q.qmin);
  m.input_quant.qmax = std::min(m.input_quant.qmax, in_q.qmax);

  std::vector<int32_t> tensor_at(g.nodes.size(), -1);  // node -> tensor holding its output
  tensor_at[0] = 0;
  auto new_tensor = [&](size_t node, const quant::QParams& q, int32_t bits) {
    m.tensors.push_back(tensor_of(g.nodes[node].name, g.nodes[node].shape, q, bits));
    tensor_at[node] = static_cast<int32_t>(m.tensors.size()) - 1;
    return tensor_at[node];
  };
  auto act_q = [&](size_t node) {
    const int a = plan.act_of[node];
    QATC_CHECK_GE(a, 0);
    return std::make_pair(model.act_qparams(static_cast<size_t>(a)), bits_of(plan.acts[static_cast<size_t>(a)].range));
  };

  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const nn::Node& node = g.nodes[i];
    if (plan.group_start[i] != static_cast<int>(i)) continue;  // fused into its group's head
    const auto end = static_cast<size_t>(plan.group_end[i]);
    IntLayer layer;
    layer.name = node.name;
    for (int src : node.inputs) {
      const int32_t t = tensor_at[static_cast<size_t>(src)];
      QATC_CHECK_GE(t, 0);
      layer.inputs.push_back(t);
    }
    const QTensor in_tensor = m.tensors[static_cast<size_t>(layer.inputs[0])];
    const nn::Op last = g.nodes[end].op;
    ActBounds bounds;  // the group's fused activation
    if (last == nn::Op::relu) bounds.lo = 0;
    if (last == nn::Op::relu6) bounds.lo = 0, bounds.hi = 6;
    auto clamp_of = [&](const quant::QParams& q) {
      kernels::Clamp cl = kernels::make_clamp(q.scale, q.zero_point, bounds.lo, bounds.hi);
      return kernels::Clamp{std::max(cl.qmin, q.qmin), std::min(cl.qmax, q.qmax)};
    };
    // int32 bias, multipliers and clamp of a convolution whose weight scales are set.
    auto finish_conv = [&](runtime::ConvLayer& cv, const std::vector<double>& bias, const quant::QParams& out_q) {
      kernels::ChannelMultipliers cm = kernels::make_channel_multipliers(in_tensor.scale, cv.weight_scales, out_q.scale);
      cv.multiplier = std::move(cm.multiplier);
      cv.shift = std::move(cm.shift);
      cv.bias.clear();
      for (size_t c = 0; c < bias.size(); ++c) {
        const double q = std::round(bias[c] / (in_tensor.scale * cv.weight_scales[c]));
        cv.bias.push_back(static_cast<int32_t>(std::clamp(q, -2147483648.0, 2147483647.0)));
      }
      const kernels::Clamp cl = clamp_of(out_q);
      cv.qmin = cl.qmin;
      cv.qmax = cl.qmax;
    };
    auto same_grid_output = [&]() {
      return new_tensor(i, {static_cast<float>(in_tensor.scale), in_tensor.zero_point, -128, 127}, in_tensor.bits);
    };
    switch (node.op) {
      case nn::Op::conv2d:
      case nn::Op::depthwise_conv2d:
      case nn::Op::dense: {
        const bool dense = node.op == nn::Op::dense, dw = node.op == nn::Op::depthwise_conv2d;
        const auto wq = static_cast<size_t>(plan.weight_of[i]);
        const quant::WeightQuantizer& wqz = plan.weights[wq];
        const quant::FoldedWeights fw = model.folded_weights(wq);
        const int64_t oc = node.shape.back();
        const int64_t rows = static_cast<int64_t>(fw.folded.size()) / oc;
        // Folded float bias: b*s + beta - mean*s (s = 1 without BatchNorm).
        std::vector<double> bias(static_cast<size_t>(oc), 0.0);
        const bool has_bias = dense ? std::get<nn::DenseAttrs>(node.attrs).use_bias
                              : dw  ? std::get<nn::DepthwiseAttrs>(node.attrs).use_bias
                                    : std::get<nn::Conv2DAttrs>(node.attrs).use_bias;
        for (int64_t c = 0; c < oc; ++c) {
          const double s = fw.bn_scale.empty() ? 1.0 : fw.bn_scale[static_cast<size_t>(c)];
          double b = has_bias ? params[static_cast<size_t>(g.param(node, 1).offset + c)] * s : 0.0;
          if (wqz.bn_node >= 0) {
            const nn::Node& bn = g.nodes[static_cast<size_t>(wqz.bn_node)];
            b += params[static_cast<size_t>(g.param(bn, 1).offset + c)] -
                 params[static_cast<size_t>(g.param(bn, 2).offset + c)] * s;
          }
          bias[static_cast<size_t>(c)] = b;
        }
        const auto [out_q, out_bits] = act_q(end);
        layer.output = new_tensor(end, out_q, out_bits);
        int64_t kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0, mult = 1;
        if (!dense) {
          nn::Padding pad = nn::Padding::valid;
          if (dw) {
            const auto& a = std::get<nn::DepthwiseAttrs>(node.attrs);
            kh = a.kh, kw = a.kw, sh = a.stride_h, sw = a.stride_w, mult = a.multiplier, pad = a.padding;
          } else {
            const auto& a = std::get<nn::Conv2DAttrs>(node.attrs);
            kh = a.kh, kw = a.kw, sh = a.stride_h, sw = a.stride_w, pad = a.padding;
          }
          pt = nn::pad_geom(in_tensor.shape[0], kh, sh, pad).pad_before;
          pl = nn::pad_geom(in_tensor.shape[1], kw, sw, pad).pad_before;
        }
        if (plan.skipped[i]) {
          QATC_CHECK(!dw);
          runtime::FloatLayer f;
          f.dense = dense, f.kh = kh, f.kw = kw, f.stride_h = sh, f.stride_w = sw, f.pad_top = pt, f.pad_left = pl;
          f.weights = fw.folded;
          for (double b : bias) f.bias.push_back(static_cast<float>(b));
          f.activation = last == nn::Op::relu    ? runtime::FloatActivation::relu
                         : last == nn::Op::relu6 ? runtime::FloatActivation::relu6
                                                 : runtime::FloatActivation::none;
          layer.params = std::move(f);
          break;
        }
        runtime::ConvLayer cv;
        cv.kind = dense ? runtime::ConvKind::dense : dw ? runtime::ConvKind::depthwise : runtime::ConvKind::conv;
        cv.kh = kh, cv.kw = kw, cv.stride_h = sh, cv.stride_w = sw, cv.pad_top = pt, cv.pad_left = pl;
        cv.depth_multiplier = mult;
        cv.weight_bits = static_cast<int32_t>(wqz.spec.bits);
        cv.weights.resize(static_cast<size_t>(rows * oc));
        // Graph layouts: conv [kh, kw, ic, oc] = [rows, oc]; dense [in, out]; depthwise
        // [kh, kw, ic, m] = [rows, oc]. Kernels: conv and dense [oc, rows]; depthwise [rows, oc].
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < oc; ++c) {
            const quant::QParams& q = fw.qparams[wqz.per_channel ? static_cast<size_t>(c) : 0];
            const auto k = static_cast<size_t>(dw ? r * oc + c : c * rows + r);
            cv.weights[k] = static_cast<int8_t>(quant::quantize(fw.folded[static_cast<size_t>(r * oc + c)], q));
          }
        for (int64_t c = 0; c < oc; ++c)
          cv.weight_scales.push_back(fw.qparams[wqz.per_channel ? static_cast<size_t>(c) : 0].scale);
        finish_conv(cv, bias, out_q);
        layer.params = std::move(cv);
        break;
      }
      case nn::Op::batchnorm:
      case nn::Op::relu:
      case nn::Op::relu6: {
        // A BatchNorm or activation after no convolution: y = s[c] * x + b[c] per channel, run
        // as a 1x1 depthwise convolution whose weight is s[c] on a per-channel grid of its own
        // (q = +-127, scale |s[c]| / 127: exact, so nothing the fake-quant model did not do).
        const int64_t oc = node.shape.back();
        if (node.shape.size() != 3)
          fail("{}: layer '{}' ({}) on a flat tensor has no integer kernel; place it after a dense layer so it is "
               "folded into it",
               node.origin, node.name, nn::to_string(node.op));
        std::vector<double> scale(static_cast<size_t>(oc), 1.0), bias(static_cast<size_t>(oc), 0.0);
        if (node.op == nn::Op::batchnorm) {
          const float eps = std::get<nn::BatchNormAttrs>(node.attrs).epsilon;
          for (int64_t c = 0; c < oc; ++c) {
            auto P = [&](size_t k) { return static_cast<double>(params[static_cast<size_t>(g.param(node, k).offset + c)]); };
            const quant::ChannelAffine a = quant::lone_batchnorm(P(0), P(1), P(2), P(3), eps);
            scale[static_cast<size_t>(c)] = a.scale;
            bias[static_cast<size_t>(c)] = a.bias;
          }
        }
        const auto [out_q, out_bits] = act_q(end);
        layer.output = new_tensor(end, out_q, out_bits);
        runtime::ConvLayer cv;
        cv.kind = runtime::ConvKind::depthwise;
        for (double sc : scale) {
          cv.weights.push_back(static_cast<int8_t>(sc > 0 ? 127 : sc < 0 ? -127 : 0));
          cv.weight_scales.push_back(quant::lone_weight_scale(sc));
        }
        finish_conv(cv, bias, out_q);
        layer.params = std::move(cv);
        break;
      }
      case nn::Op::add: {
        if (layer.inputs.size() != 2)
          fail("{}: layer '{}' adds {} inputs; the integer add takes two, so chain two-input add layers", node.origin,
               node.name, layer.inputs.size());
        const QTensor t2 = m.tensors[static_cast<size_t>(layer.inputs[1])];  // a copy: new_tensor may grow m.tensors
        const auto [out_q, out_bits] = act_q(end);
        layer.output = new_tensor(end, out_q, out_bits);
        const kernels::Clamp cl = clamp_of(out_q);
        const kernels::AddParams ap = kernels::make_add_params(in_tensor.scale, in_tensor.zero_point, t2.scale,
                                                               t2.zero_point, out_q.scale, out_q.zero_point, cl.qmin,
                                                               cl.qmax, 1);
        layer.params = runtime::AddLayer{ap.left_shift,      ap.input1_multiplier, ap.input1_shift,
                                         ap.input2_multiplier, ap.input2_shift,    ap.output_multiplier,
                                         ap.output_shift,      ap.qmin,            ap.qmax};
        break;
      }
      case nn::Op::concat: {
        const auto [out_q, out_bits] = act_q(i);
        layer.output = new_tensor(i, out_q, out_bits);
        std::vector<kernels::ConcatInputSpec> specs;
        for (int32_t t : layer.inputs) {
          const QTensor& ti = m.tensors[static_cast<size_t>(t)];
          specs.push_back({ti.shape.back(), ti.scale, ti.zero_point});
        }
        layer.params = runtime::ConcatLayer{kernels::make_concat_params(1, specs, out_q.scale, out_q.zero_point).inputs};
        break;
      }
      case nn::Op::pad: {
        const auto& a = std::get<nn::PadAttrs>(node.attrs);
        layer.output = same_grid_output();
        layer.params = runtime::PadLayer{a.top, a.bottom, a.left, a.right};
        break;
      }
      case nn::Op::maxpool:
      case nn::Op::avgpool: {
        const auto& a = std::get<nn::PoolAttrs>(node.attrs);
        runtime::PoolLayer p;
        p.max = node.op == nn::Op::maxpool;
        p.kh = a.kh, p.kw = a.kw, p.stride_h = a.stride_h, p.stride_w = a.stride_w;
        p.pad_top = nn::pad_geom(in_tensor.shape[0], a.kh, a.stride_h, a.padding).pad_before;
        p.pad_left = nn::pad_geom(in_tensor.shape[1], a.kw, a.stride_w, a.padding).pad_before;
        layer.output = same_grid_output();
        layer.params = p;
        break;
      }
      case nn::Op::flatten:
      case nn::Op::dropout:
        layer.output = same_grid_output();
        layer.params = runtime::ReshapeLayer{};
        break;
      case nn::Op::global_avgpool: {
        const auto [out_q, out_bits] = act_q(i);
        layer.output = new_tensor(i, out_q, out_bits);
        kernels::GlobalAvgPoolParams gp = kernels::make_global_avgpool_params(
            1, in_tensor.shape[0] * in_tensor.shape[1], in_tensor.shape[2], in_tensor.scale, in_tensor.zero_point,
            out_q.scale, out_q.zero_point);
        layer.params = runtime::GlobalPoolLayer{gp.left_shift, gp.multiplier, gp.shift};
        break;
      }
      case nn::Op::input:
        QATC_CHECK(false);
    }
    m.layers.push_back(std::move(layer));
  }
  m.output = tensor_at[g.nodes.size() - 1];
  QATC_CHECK_GE(m.output, 0);
  return m;
}

runtime::IntModel convert_checkpoint(const std::filesystem::path& ckpt) {
  pipeline::LoadedModel lm = pipeline::open_checkpoint(ckpt, 1);
  if (lm.kind != "fakequant")
    fail("{}: not a quantized checkpoint; convert takes the ptq.ckpt or qat.ckpt that `qatc ptq` or `qatc qat` "
         "writes",
         ckpt.string());
  const auto* q = dynamic_cast<const quant::QuantModel*>(lm.model.get());
  QATC_CHECK(q != nullptr);
  std::string source = ckpt.stem().string();
  return to_int_model(*q, lm.recipe, source);
}

}  // namespace qatc::convert
