// Named architectures, built as recipe layer lists: the Keras applications models of the
// published float-vs-int8 ImageNet table (MobileNet, MobileNetV2, ResNet50, ResNet50V2,
// NASNetMobile), with width (alpha) and input size free. The layer names follow Keras', so
// parameters line up with Keras checkpoints tensor by tensor.
#pragma once

#include <string>
#include <vector>

#include "recipe/recipe.h"

namespace qatc::models {

// The preset names, in a fixed order.
std::vector<std::string> preset_names();

// The layers of preset `p.name` for an input [h, w, c]. Raises qatc::Error (naming
// p.origin) when the preset does not exist or cannot take this alpha or input size.
std::vector<recipe::LayerSpec> preset_layers(const recipe::PresetSpec& p, const std::vector<int64_t>& input);

}  // namespace qatc::models
