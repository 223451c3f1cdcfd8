// MobileNet (v1) and MobileNetV2 as keras.applications builds them.
#include <cmath>

#include "core/error.h"
#include "models/builder.h"

namespace qatc::models {
namespace {

int64_t scaled(int64_t filters, double alpha, const recipe::PresetSpec& p) {
  const auto f = static_cast<int64_t>(static_cast<double>(filters) * alpha);
  if (f < 1) fail("{}: preset {}: alpha {} leaves layers with no filters; use alpha >= {}", p.origin.where, p.name,
                  alpha, 1.0 / static_cast<double>(filters));
  return f;
}

}  // namespace

// keras.applications.MobileNet: a 3x3 stride-2 conv, then 13 depthwise-separable blocks
// (depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6; stride-2 blocks pad
// ((0, 1), (0, 1)) and run 'valid'), global average pool, dropout and the classifier (Keras
// uses a 1x1 conv on the pooled 1x1 map: the same weights as this dense layer).
std::vector<recipe::LayerSpec> mobilenet_v1(const recipe::PresetSpec& p, const std::vector<int64_t>& /*in*/) {
  if (!p.blocks.empty()) fail("{}: preset mobilenet_v1 takes no 'blocks'; remove it", p.origin.where);
  LayerList L(p.origin.where);
  const double a = p.alpha;
  const BnArgs bn;  // Keras defaults: momentum 0.99, epsilon 1e-3
  L.conv("conv1", scaled(32, a, p), 3, 2, true, false);
  L.bn("conv1_bn", bn);
  L.relu6("conv1_relu");
  const int64_t filters[13] = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
  const int64_t strides[13] = {1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1};
  for (int i = 0; i < 13; ++i) {
    const std::string id = std::to_string(i + 1);
    const bool s2 = strides[i] == 2;
    if (s2) L.pad("conv_pad_" + id, 0, 1, 0, 1);
    L.depthwise("conv_dw_" + id, 3, strides[i], !s2, false);
    L.bn("conv_dw_" + id + "_bn", bn);
    L.relu6("conv_dw_" + id + "_relu");
    L.conv("conv_pw_" + id, scaled(filters[i], a, p), 1, 1, true, false);
    L.bn("conv_pw_" + id + "_bn", bn);
    L.relu6("conv_pw_" + id + "_relu");
  }
  L.global_avgpool("global_average_pooling2d");
  if (p.dropout > 0) L.dropout("dropout", p.dropout);
  L.dense("conv_preds", p.classes);
  return L.take();
}

// keras.applications.MobileNetV2: Conv1 (3x3 stride 2), 17 inverted residual blocks
// (expand 1x1 + BN + ReLU6, depthwise 3x3 + BN + ReLU6, project 1x1 + BN, residual add when
// shapes allow; stride-2 depthwise after correct_pad, 'valid'), Conv_1 1x1 to 1280 channels
// (1280 * alpha above alpha 1), global average pool, classifier. BatchNorm momentum 0.999.
std::vector<recipe::LayerSpec> mobilenet_v2(const recipe::PresetSpec& p, const std::vector<int64_t>& in) {
  if (!p.blocks.empty()) fail("{}: preset mobilenet_v2 takes no 'blocks'; remove it", p.origin.where);
  LayerList L(p.origin.where);
  const double a = p.alpha;
  const BnArgs bn{0.999, 1e-3};
  int64_t h = in[0], w = in[1];
  int64_t channels = make_divisible(32 * a, 8);
  L.conv("Conv1", channels, 3, 2, true, false);
  h = (h + 1) / 2, w = (w + 1) / 2;
  L.bn("bn_Conv1", bn);
  std::string x = L.relu6("Conv1_relu");
  struct Block {
    int64_t filters, stride, expansion;
  };
  const Block blocks[17] = {{16, 1, 1},  {24, 2, 6},  {24, 1, 6},  {32, 2, 6},  {32, 1, 6},  {32, 1, 6},
                            {64, 2, 6},  {64, 1, 6},  {64, 1, 6},  {64, 1, 6},  {96, 1, 6},  {96, 1, 6},
                            {96, 1, 6},  {160, 2, 6}, {160, 1, 6}, {160, 1, 6}, {320, 1, 6}};
  for (int id = 0; id < 17; ++id) {
    const Block& b = blocks[id];
    const int64_t out_ch = make_divisible(static_cast<double>(static_cast<int64_t>(static_cast<double>(b.filters) * a)), 8);
    std::string prefix = "block_" + std::to_string(id) + "_";
    const std::string inputs = x;
    if (id > 0) {
      L.conv(prefix + "expand", b.expansion * channels, 1, 1, true, false);
      L.bn(prefix + "expand_BN", bn);
      L.relu6(prefix + "expand_relu");
    } else {
      prefix = "expanded_conv_";
    }
    if (b.stride == 2) {
      const Pad4 cp = correct_pad(h, w, 3);
      L.pad(prefix + "pad", cp.top, cp.bottom, cp.left, cp.right);
      h = (h + 1) / 2, w = (w + 1) / 2;
    }
    L.depthwise(prefix + "depthwise", 3, b.stride, b.stride == 1, false);
    L.bn(prefix + "depthwise_BN", bn);
    L.relu6(prefix + "depthwise_relu");
    L.conv(prefix + "project", out_ch, 1, 1, true, false);
    x = L.bn(prefix + "project_BN", bn);
    if (channels == out_ch && b.stride == 1) x = L.add(prefix + "add", {inputs, x});
    channels = out_ch;
  }
  const int64_t last = a > 1.0 ? make_divisible(1280 * a, 8) : 1280;
  L.conv("Conv_1", last, 1, 1, true, false);
  L.bn("Conv_1_bn", bn);
  L.relu6("out_relu");
  L.global_avgpool("global_average_pooling2d");
  L.dense("predictions", p.classes);
  return L.take();
}

}  // namespace qatc::models
