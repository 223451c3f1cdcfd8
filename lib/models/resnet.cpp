// ResNet50 (v1) and ResNet50V2 as keras.applications builds them.
#include <cmath>

#include "core/error.h"
#include "models/builder.h"

namespace qatc::models {
namespace {

const BnArgs kBn{0.99, 1.001e-5};  // Keras ResNets: BatchNormalization(epsilon=1.001e-5)

// Four stages of bottleneck blocks; `blocks` overrides the published [3, 4, 6, 3].
std::vector<int64_t> stage_blocks(const recipe::PresetSpec& p) {
  if (p.blocks.empty()) return {3, 4, 6, 3};
  if (p.blocks.size() != 4)
    fail("{}: preset {}: 'blocks' must list the blocks of the four stages, e.g. [3, 4, 6, 3]", p.origin.where,
         p.name);
  return p.blocks;
}

int64_t width(int64_t filters, const recipe::PresetSpec& p) {
  const auto f = static_cast<int64_t>(std::lround(static_cast<double>(filters) * p.alpha));
  if (f < 1) fail("{}: preset {}: alpha {} leaves layers with no filters; use alpha >= {}", p.origin.where, p.name,
                  p.alpha, 0.5 / static_cast<double>(filters));
  return f;
}

// block1: conv 1x1 (stride) + BN + ReLU, conv 3x3 + BN + ReLU, conv 1x1 (4x) + BN, added to the
// shortcut (a 1x1 conv + BN when conv_shortcut, else the input), then ReLU.
std::string block1(LayerList& L, const std::string& x, int64_t filters, int64_t stride, bool conv_shortcut,
                   const std::string& name) {
  std::string shortcut = x;
  if (conv_shortcut) {
    L.conv(name + "_0_conv", 4 * filters, 1, stride, false, true, x);
    shortcut = L.bn(name + "_0_bn", kBn);
  }
  L.conv(name + "_1_conv", filters, 1, stride, false, true, x);
  L.bn(name + "_1_bn", kBn);
  L.relu(name + "_1_relu");
  L.conv(name + "_2_conv", filters, 3, 1, true, true);
  L.bn(name + "_2_bn", kBn);
  L.relu(name + "_2_relu");
  L.conv(name + "_3_conv", 4 * filters, 1, 1, false, true);
  const std::string y = L.bn(name + "_3_bn", kBn);
  L.add(name + "_add", {shortcut, y});
  return L.relu(name + "_out");
}

// block2 (pre-activation): BN + ReLU first; the shortcut is a 1x1 conv of that (first block),
// a 1x1 stride-2 max pool of the input (last block of a stage) or the input; then conv 1x1 +
// BN + ReLU, pad 1, conv 3x3 (stride, 'valid') + BN + ReLU, conv 1x1 (4x, with bias), add.
std::string block2(LayerList& L, const std::string& x, int64_t filters, int64_t stride, bool conv_shortcut,
                   const std::string& name) {
  L.bn(name + "_preact_bn", kBn, x);
  const std::string preact = L.relu(name + "_preact_relu");
  std::string shortcut = x;
  if (conv_shortcut) shortcut = L.conv(name + "_0_conv", 4 * filters, 1, stride, false, true, preact);
  else if (stride > 1) shortcut = L.maxpool(name + "_0_pool", 1, stride, false, x);
  L.conv(name + "_1_conv", filters, 1, 1, false, false, preact);
  L.bn(name + "_1_bn", kBn);
  L.relu(name + "_1_relu");
  L.pad(name + "_2_pad", 1, 1, 1, 1);
  L.conv(name + "_2_conv", filters, 3, stride, false, false);
  L.bn(name + "_2_bn", kBn);
  L.relu(name + "_2_relu");
  const std::string y = L.conv(name + "_3_conv", 4 * filters, 1, 1, false, true);
  return L.add(name + "_out", {shortcut, y});
}

// The stem shared by both: pad 3, conv 7x7 stride 2 (with bias), [BN + ReLU for v1], pad 1,
// max pool 3x3 stride 2.
void stem(LayerList& L, const recipe::PresetSpec& p, bool preact) {
  L.pad("conv1_pad", 3, 3, 3, 3);
  L.conv("conv1_conv", width(64, p), 7, 2, false, true);
  if (!preact) {
    L.bn("conv1_bn", kBn);
    L.relu("conv1_relu");
  }
  L.pad("pool1_pad", 1, 1, 1, 1);
  L.maxpool("pool1_pool", 3, 2, false);
}

}  // namespace

// keras.applications.ResNet50: stem, stacks of block1 with 64/128/256/512 filters
// (x4 output), stride 2 at the first block of stages 3-5, global average pool, classifier.
// alpha scales every filter count (rounded); 1.0 is the published model.
std::vector<recipe::LayerSpec> resnet50_v1(const recipe::PresetSpec& p, const std::vector<int64_t>& /*in*/) {
  const auto blocks = stage_blocks(p);
  LayerList L(p.origin.where);
  stem(L, p, false);
  std::string x = L.last();
  const int64_t filters[4] = {64, 128, 256, 512};
  for (int s = 0; s < 4; ++s) {
    const std::string name = "conv" + std::to_string(s + 2);
    for (int64_t b = 1; b <= blocks[static_cast<size_t>(s)]; ++b)
      x = block1(L, x, width(filters[s], p), b == 1 && s > 0 ? 2 : 1, b == 1, name + "_block" + std::to_string(b));
  }
  L.global_avgpool("avg_pool");
  L.dense("predictions", p.classes);
  return L.take();
}

// keras.applications.ResNet50V2: stem without BN, stacks of block2 (stride 2 at the last block
// of stages 2-4), post_bn + ReLU, global average pool, classifier.
std::vector<recipe::LayerSpec> resnet50_v2(const recipe::PresetSpec& p, const std::vector<int64_t>& /*in*/) {
  const auto blocks = stage_blocks(p);
  LayerList L(p.origin.where);
  stem(L, p, true);
  std::string x = L.last();
  const int64_t filters[4] = {64, 128, 256, 512};
  for (int s = 0; s < 4; ++s) {
    const std::string name = "conv" + std::to_string(s + 2);
    const int64_t n = blocks[static_cast<size_t>(s)];
    for (int64_t b = 1; b <= n; ++b)
      x = block2(L, x, width(filters[s], p), b == n && s < 3 ? 2 : 1, b == 1, name + "_block" + std::to_string(b));
  }
  L.bn("post_bn", kBn);
  L.relu("post_relu");
  L.global_avgpool("avg_pool");
  L.dense("predictions", p.classes);
  return L.take();
}

}  // namespace qatc::models
