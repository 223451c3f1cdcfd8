// Preset lookup.
#include "models/presets.h"

#include "core/error.h"
#include "models/builder.h"

namespace qatc::models {
namespace {

using Builder = std::vector<recipe::LayerSpec> (*)(const recipe::PresetSpec&, const std::vector<int64_t>&);

const std::vector<std::pair<std::string, Builder>>& presets() {
  static const std::vector<std::pair<std::string, Builder>> p = {{"mobilenet_v1", mobilenet_v1},
                                                                 {"mobilenet_v2", mobilenet_v2},
                                                                 {"resnet50_v1", resnet50_v1},
                                                                 {"resnet50_v2", resnet50_v2},
                                                                 {"nasnet_mobile", nasnet_mobile}};
  return p;
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> n;
  for (const auto& [name, b] : presets()) n.push_back(name);
  return n;
}

std::vector<recipe::LayerSpec> preset_layers(const recipe::PresetSpec& p, const std::vector<int64_t>& input) {
  for (const auto& [name, build] : presets()) {
    if (name != p.name) continue;
    std::vector<recipe::LayerSpec> layers = build(p, input);
    if (p.bn_momentum)
      for (auto& l : layers)
        if (auto* bn = std::get_if<recipe::BatchNormSpec>(&l.attrs)) bn->momentum = *p.bn_momentum;
    return layers;
  }
  std::string list;
  for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
  fail("{}: unknown preset '{}'; expected one of: {}", p.origin.where, p.name, list);
}

}  // namespace qatc::models
