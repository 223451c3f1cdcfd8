// Per-layer SQNR and clipping.
#include "report/layer_stats.h"

#include <cmath>

#include "data/loader.h"
#include "quant/fake_quant.h"
#include "nn/engine.h"

namespace qatc::report {
namespace {

double sqnr_db(double signal, double noise) {
  if (noise <= 0) return 200.0;  // exact: report a large finite number (JSON has no infinity)
  if (signal <= 0) return 0.0;
  return 10.0 * std::log10(signal / noise);
}

}  // namespace

std::vector<LayerStats> layer_stats(const quant::QuantModel& q, const data::Source& src, int64_t images) {
  const nn::Graph& g = q.graph();
  const quant::QuantPlan& plan = q.plan();
  const int64_t n = std::min<int64_t>(images, src.size());
  std::vector<int32_t> idx = data::all_indices(src);
  std::vector<float> x(static_cast<size_t>(n * src.example_floats()));
  std::vector<int32_t> y(static_cast<size_t>(n));
  src.gather(idx.data(), n, x.data(), y.data(), false, 0);
  // The float model with the same weights: activations before any quantization.
  nn::FloatEngine engine(g, n, false);
  std::vector<float> params = q.params();
  engine.forward(x.data(), n, nn::Mode::eval, params.data());

  std::vector<LayerStats> out;
  for (size_t a = 0; a < plan.acts.size(); ++a) {
    const auto node = static_cast<size_t>(plan.acts[a].node);
    LayerStats s;
    const auto head = static_cast<size_t>(plan.group_start[node]);
    s.layer = g.nodes[head].name;
    s.skipped = plan.skipped[node];
    const int wq = plan.weight_of[head];
    if (wq >= 0 && !s.skipped) {
      const quant::FoldedWeights fw = q.folded_weights(static_cast<size_t>(wq));
      const auto& wz = plan.weights[static_cast<size_t>(wq)];
      const int64_t channels = g.nodes[head].shape.back();
      std::vector<float> fq(fw.folded.size());
      if (wz.per_channel)
        quant::fake_quant_forward_per_channel(fq.data(), nullptr, fw.folded.data(),
                                              static_cast<int64_t>(fw.folded.size()) / channels, channels,
                                              fw.qparams.data());
      else
        quant::fake_quant_forward(fq.data(), nullptr, fw.folded.data(), static_cast<int64_t>(fw.folded.size()),
                                  fw.qparams[0]);
      double sig = 0, noise = 0;
      for (size_t i = 0; i < fq.size(); ++i) {
        sig += static_cast<double>(fw.folded[i]) * fw.folded[i];
        noise += static_cast<double>(fw.folded[i] - fq[i]) * (fw.folded[i] - fq[i]);
      }
      s.weight_bits = static_cast<int>(wz.spec.bits);
      s.weight_sqnr_db = sqnr_db(sig, noise);
    }
    const quant::QParams qp = q.act_qparams(a);
    const float* act = engine.activation(node);
    const int64_t count = n * numel(g.nodes[node].shape);
    const double lo = quant::dequantize(qp.qmin, qp) - 0.5 * qp.scale;
    const double hi = quant::dequantize(qp.qmax, qp) + 0.5 * qp.scale;
    double sig = 0, noise = 0;
    int64_t clipped = 0;
    for (int64_t i = 0; i < count; ++i) {
      const double v = act[i];
      const double e = v - quant::dequantize(quant::quantize(act[i], qp), qp);
      sig += v * v;
      noise += e * e;
      clipped += v < lo || v > hi;
    }
    s.act_bits = plan.acts[a].range.qmax >= 127 ? 8 : static_cast<int>(std::log2(plan.acts[a].range.qmax + 1)) + 1;
    s.act_sqnr_db = sqnr_db(sig, noise);
    s.act_clipped = count ? static_cast<double>(clipped) / static_cast<double>(count) : 0.0;
    out.push_back(s);
  }
  return out;
}

nlohmann::json to_json(const std::vector<LayerStats>& stats) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& s : stats) {
    nlohmann::json r = {{"layer", s.layer},
                        {"skipped", s.skipped},
                        {"activation_bits", s.act_bits},
                        {"activation_sqnr_db", s.act_sqnr_db},
                        {"activation_clipped", s.act_clipped}};
    if (s.weight_bits) {
      r["weight_bits"] = s.weight_bits;
      r["weight_sqnr_db"] = s.weight_sqnr_db;
    }
    j.push_back(r);
  }
  return j;
}

}  // namespace qatc::report
