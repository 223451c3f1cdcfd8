// Quantized checkpoint -> integer-only model.
#include "convert/convert.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/params.h"
#include "pipeline/model_file.h"
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
    const int32_t in_t = tensor_at[static_cast<size_t>(node.inputs[0])];
    QATC_CHECK_GE(in_t, 0);
    const QTensor in_tensor = m.tensors[static_cast<size_t>(in_t)];
    IntLayer layer;
    layer.name = node.name;
    layer.input = in_t;
    switch (node.op) {
      case nn::Op::conv2d:
      case nn::Op::dense: {
        const bool dense = node.op == nn::Op::dense;
        const auto wq = static_cast<size_t>(plan.weight_of[i]);
        const quant::WeightQuantizer& wqz = plan.weights[wq];
        const quant::FoldedWeights fw = model.folded_weights(wq);
        const nn::ParamInfo& kp = g.param(node, 0);
        const int64_t oc = kp.shape.back();
        const int64_t rows = numel(kp.shape) / oc;
        // Folded float bias: b*s + beta - mean*s (s = 1 without BatchNorm).
        std::vector<double> bias(static_cast<size_t>(oc), 0.0);
        const bool has_bias = dense ? std::get<nn::DenseAttrs>(node.attrs).use_bias
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
        ActBounds bounds;
        const nn::Op last = g.nodes[end].op;
        if (last == nn::Op::relu) bounds.lo = 0;
        if (last == nn::Op::relu6) bounds.lo = 0, bounds.hi = 6;
        const auto [out_q, out_bits] = act_q(end);
        const int32_t out_t = new_tensor(end, out_q, out_bits);
        layer.output = out_t;
        int64_t kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0;
        if (!dense) {
          const auto& a = std::get<nn::Conv2DAttrs>(node.attrs);
          const Shape& ins = in_tensor.shape;
          kh = a.kh, kw = a.kw, sh = a.stride_h, sw = a.stride_w;
          pt = nn::pad_geom(ins[0], kh, sh, a.padding).pad_before;
          pl = nn::pad_geom(ins[1], kw, sw, a.padding).pad_before;
        }
        if (plan.skipped[i]) {
          runtime::FloatLayer f;
          f.dense = dense, f.kh = kh, f.kw = kw, f.stride_h = sh, f.stride_w = sw, f.pad_top = pt, f.pad_left = pl;
          f.weights = fw.folded;
          for (double b : bias) f.bias.push_back(static_cast<float>(b));
          f.activation = last == nn::Op::relu    ? runtime::FloatActivation::relu
                         : last == nn::Op::relu6 ? runtime::FloatActivation::relu6
                                                 : runtime::FloatActivation::none;
          layer.params = std::move(f);
        } else {
          runtime::ConvLayer cv;
          cv.dense = dense, cv.kh = kh, cv.kw = kw, cv.stride_h = sh, cv.stride_w = sw, cv.pad_top = pt, cv.pad_left = pl;
          cv.weight_bits = static_cast<int32_t>(wqz.spec.bits);
          cv.weights.resize(static_cast<size_t>(rows * oc));
          // Graph layouts: conv [kh, kw, ic, oc] = [rows, oc]; dense [in, out]. Kernels: [oc, rows].
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < oc; ++c) {
              const quant::QParams& q = fw.qparams[wqz.per_channel ? static_cast<size_t>(c) : 0];
              cv.weights[static_cast<size_t>(c * rows + r)] =
                  static_cast<int8_t>(quant::quantize(fw.folded[static_cast<size_t>(r * oc + c)], q));
            }
          for (int64_t c = 0; c < oc; ++c)
            cv.weight_scales.push_back(fw.qparams[wqz.per_channel ? static_cast<size_t>(c) : 0].scale);
          kernels::ChannelMultipliers cm =
              kernels::make_channel_multipliers(in_tensor.scale, cv.weight_scales, out_q.scale);
          cv.multiplier = std::move(cm.multiplier);
          cv.shift = std::move(cm.shift);
          for (int64_t c = 0; c < oc; ++c) {
            const double q = std::round(bias[static_cast<size_t>(c)] / (in_tensor.scale * cv.weight_scales[static_cast<size_t>(c)]));
            cv.bias.push_back(static_cast<int32_t>(std::clamp(q, -2147483648.0, 2147483647.0)));
          }
          kernels::Clamp cl = kernels::make_clamp(out_q.scale, out_q.zero_point, bounds.lo, bounds.hi);
          cv.qmin = std::max(cl.qmin, out_q.qmin);
          cv.qmax = std::min(cl.qmax, out_q.qmax);
          layer.params = std::move(cv);
        }
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
        layer.output = new_tensor(i, {static_cast<float>(in_tensor.scale), in_tensor.zero_point, -128, 127}, in_tensor.bits);
        layer.params = p;
        break;
      }
      case nn::Op::flatten:
      case nn::Op::dropout:
        layer.output = new_tensor(i, {static_cast<float>(in_tensor.scale), in_tensor.zero_point, -128, 127}, in_tensor.bits);
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
      default:
        fail("{}: layer '{}' ({}) has no integer kernel on its own; place it directly after a conv2d (batchnorm, "
             "relu, relu6) or a dense (relu, relu6) so it is folded into that layer",
             node.origin, node.name, nn::to_string(node.op));
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
