// Model inspection.
#include "pipeline/inspect.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "nn/graph.h"
#include "pipeline/model_file.h"
#include "quant/quant_model.h"
#include "recipe/load.h"
#include "runtime/int_model.h"

namespace qatc::pipeline {
namespace {

nlohmann::json shape_json(const Shape& s) { return nlohmann::json(s); }

int64_t node_params(const nn::Graph& g, const nn::Node& n) {
  int64_t p = 0;
  for (int pi : n.params) p += numel(g.params[static_cast<size_t>(pi)].shape);
  return p;
}

nlohmann::json inspect_graph(const nn::Graph& g, const quant::QuantModel* q) {
  nlohmann::json layers = nlohmann::json::array();
  int64_t params = 0, macs = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const nn::Node& n = g.nodes[i];
    nlohmann::json l = {{"name", n.name},
                        {"op", nn::to_string(n.op)},
                        {"output", shape_json(n.shape)},
                        {"params", node_params(g, n)},
                        {"macs", nn::node_macs(g, n)}};
    if (!n.inputs.empty()) {
      std::vector<std::string> ins;
      for (int k : n.inputs) ins.push_back(g.nodes[static_cast<size_t>(k)].name);
      l["inputs"] = ins;
    }
    if (q) {
      const auto& plan = q->plan();
      if (plan.skipped[i]) l["float"] = true;
      const int wq = plan.weight_of[i];
      if (wq >= 0 && !plan.skipped[i]) {
        const auto& w = plan.weights[static_cast<size_t>(wq)];
        const quant::FoldedWeights f = q->folded_weights(static_cast<size_t>(wq));
        float lo = f.qparams[0].scale, hi = lo;
        for (const auto& qp : f.qparams) lo = std::min(lo, qp.scale), hi = std::max(hi, qp.scale);
        l["weights"] = {{"bits", w.spec.bits},
                        {"granularity", w.per_channel ? "per_channel" : "per_tensor"},
                        {"scale_min", lo},
                        {"scale_max", hi},
                        {"zero_point", 0}};
        if (w.bn_node >= 0) l["folds"] = g.nodes[static_cast<size_t>(w.bn_node)].name;
      }
      const int a = plan.act_of[i];
      if (a >= 0 && plan.acts[static_cast<size_t>(a)].node == static_cast<int>(i)) {
        const quant::QParams qp = q->act_qparams(static_cast<size_t>(a));
        l["activations"] = {{"bits", plan.acts[static_cast<size_t>(a)].spec.bits},
                            {"scale", qp.scale},
                            {"zero_point", qp.zero_point},
                            {"min", q->observer(static_cast<size_t>(a)).min()},
                            {"max", q->observer(static_cast<size_t>(a)).max()}};
      }
    }
    params += node_params(g, n);
    macs += nn::node_macs(g, n);
    layers.push_back(l);
  }
  return {{"params", params}, {"macs", macs}, {"layers", layers}};
}

nlohmann::json inspect_int(const runtime::IntModel& m) {
  nlohmann::json layers = nlohmann::json::array();
  int64_t params = 0, macs = 0;
  const auto& in0 = m.tensors[0];
  layers.push_back({{"name", "input"},
                    {"op", "quantize (uint8 -> int8)"},
                    {"output", shape_json(in0.shape)},
                    {"activations", {{"bits", in0.bits}, {"scale", in0.scale}, {"zero_point", in0.zero_point}}},
                    {"params", 0},
                    {"macs", 0}});
  for (const auto& l : m.layers) {
    const auto& ti = m.tensors[static_cast<size_t>(l.input())];
    const auto& to = m.tensors[static_cast<size_t>(l.output)];
    nlohmann::json j = {{"name", l.name},
                        {"op", runtime::layer_kind(l)},
                        {"input", shape_json(ti.shape)},
                        {"output", shape_json(to.shape)},
                        {"activations", {{"bits", to.bits}, {"scale", to.scale}, {"zero_point", to.zero_point}}}};
    int64_t p = 0;
    const int64_t mac = runtime::layer_macs(m, l);
    if (const auto* c = std::get_if<runtime::ConvLayer>(&l.params)) {
      p = static_cast<int64_t>(c->weights.size() + c->bias.size());
      const auto [lo, hi] = std::minmax_element(c->weight_scales.begin(), c->weight_scales.end());
      j["weights"] = {{"bits", c->weight_bits}, {"scale_min", *lo}, {"scale_max", *hi}, {"zero_point", 0},
                      {"per_channel", *lo != *hi}};
      j["clamp"] = {c->qmin, c->qmax};
    } else if (const auto* f = std::get_if<runtime::FloatLayer>(&l.params)) {
      p = static_cast<int64_t>(f->weights.size() + f->bias.size());
      j["float"] = true;
    }
    j["params"] = p;
    j["macs"] = mac;
    params += p;
    macs += mac;
    layers.push_back(j);
  }
  return {{"params", params}, {"macs", macs}, {"layers", layers}};
}

}  // namespace

nlohmann::json inspect_file(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) fail("{}: file not found", file.string());
  nlohmann::json j;
  if (runtime::is_int_model_file(file)) {
    j = inspect_int(runtime::load_int_model(file));
    j["kind"] = "int8";
  } else if (file.extension() == ".yaml" || file.extension() == ".yml") {
    recipe::Recipe rc = recipe::load_recipe(file);
    nn::Graph g = nn::build_graph(rc.model);
    j = inspect_graph(g, nullptr);
    j["kind"] = "recipe";
  } else {
    LoadedModel m = open_checkpoint(file, 1);
    j = inspect_graph(*m.graph, dynamic_cast<const quant::QuantModel*>(m.model.get()));
    j["kind"] = m.kind == "float" ? "float checkpoint" : "quantized checkpoint";
  }
  j["file"] = file.string();
  return j;
}

std::string inspect_text(const nlohmann::json& j) {
  std::string o = fmt::format("{} ({}): {} parameters, {} multiply-accumulates per image\n\n", j["file"].get<std::string>(),
                              j["kind"].get<std::string>(), j["params"].get<int64_t>(), j["macs"].get<int64_t>());
  o += fmt::format("{:<22} {:<26} {:<16} {:>10} {:>12}  {}\n", "layer", "op", "output", "params", "MACs",
                   "quantization");
  for (const auto& l : j["layers"]) {
    std::string q;
    if (l.contains("weights")) {
      const auto& w = l["weights"];
      q += fmt::format("w {}b scale {:.3g}", w["bits"].get<int64_t>(), w["scale_min"].get<double>());
      if (w["scale_min"] != w["scale_max"]) q += fmt::format("..{:.3g}", w["scale_max"].get<double>());
      q += "; ";
    }
    if (l.contains("activations")) {
      const auto& a = l["activations"];
      q += fmt::format("a {}b scale {:.4g} zp {}", a["bits"].get<int64_t>(), a["scale"].get<double>(),
                       a["zero_point"].get<int64_t>());
    }
    if (l.value("float", false)) q += " (float: skipped)";
    o += fmt::format("{:<22} {:<26} {:<16} {:>10} {:>12}  {}\n", l["name"].get<std::string>(), l["op"].get<std::string>(),
                     l["output"].dump(), l["params"].get<int64_t>(), l["macs"].get<int64_t>(), q);
  }
  return o;
}

}  // namespace qatc::pipeline
