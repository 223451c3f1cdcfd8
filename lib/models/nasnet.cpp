// NASNet-A Mobile as keras.applications.NASNetMobile builds it (penultimate_filters 1056,
// num_blocks 4, stem 32 filters, filter_multiplier 2, skip_reduction false).
#include <cmath>

#include "core/error.h"
#include "models/builder.h"

namespace qatc::models {
namespace {

const BnArgs kBn{0.9997, 1e-3};
constexpr auto kHe = recipe::Initializer::he_normal;

struct Tensor {
  std::string name;
  int64_t size = 0;      // spatial height = width (NASNet keeps maps square)
  int64_t channels = 0;
};

class NasNet {
 public:
  NasNet(const recipe::PresetSpec& p) : L(p.origin.where) {}
  LayerList L;

  std::string id(const std::string& base) { return base + "_" + std::to_string(++counter_); }

  // relu, [correct_pad], separable k (stride), BN, relu, separable k, BN.
  Tensor sep_block(const Tensor& in, int64_t filters, int64_t k, int64_t stride, const std::string& block) {
    L.relu(id("relu_" + block), in.name);
    int64_t size = in.size;
    if (stride == 2) {
      const Pad4 cp = correct_pad(in.size, in.size, k);
      L.pad("separable_conv_1_pad_" + block, cp.top, cp.bottom, cp.left, cp.right);
      size = (in.size + 1) / 2;
    }
    L.separable("separable_conv_1_" + block, filters, k, stride, stride == 1, false);
    L.bn("separable_conv_1_bn_" + block, kBn);
    L.relu(id("relu_" + block));
    L.separable("separable_conv_2_" + block, filters, k, 1, true, false);
    return {L.bn("separable_conv_2_bn_" + block, kBn), size, filters};
  }

  // Makes the previous cell's output p match ip's size and `filters` channels.
  Tensor adjust(const Tensor* p, const Tensor& ip, int64_t filters, const std::string& block) {
    if (!p) return ip;
    if (p->size != ip.size) {
      const std::string r = L.relu("adjust_relu_1_" + block, p->name);
      L.avgpool("adjust_avg_pool_1_" + block, 1, 2, false, r);
      const std::string p1 = L.conv("adjust_conv_1_" + block, filters / 2, 1, 1, true, false, "", kHe);
      L.pad(id("adjust_pad_" + block), 0, 1, 0, 1, r);
      L.crop(id("adjust_crop_" + block), 1, 0, 1, 0);
      L.avgpool("adjust_avg_pool_2_" + block, 1, 2, false);
      const std::string p2 = L.conv("adjust_conv_2_" + block, filters / 2, 1, 1, true, false, "", kHe);
      L.concat(id("adjust_concat_" + block), {p1, p2});
      return {L.bn("adjust_bn_" + block, kBn), (p->size - 1) / 2 + 1, 2 * (filters / 2)};
    }
    if (p->channels != filters) {
      L.relu(id("adjust_relu_" + block), p->name);
      L.conv("adjust_conv_projection_" + block, filters, 1, 1, true, false, "", kHe);
      return {L.bn("adjust_bn_" + block, kBn), p->size, filters};
    }
    return *p;
  }

  // relu, 1x1 conv, BN: the cell's own input projected to `filters`.
  Tensor squeeze(const Tensor& ip, int64_t filters, const std::string& kind, const std::string& block) {
    L.relu(id("relu_" + kind + "_" + block), ip.name);
    L.conv(kind + "_conv_1_" + block, filters, 1, 1, true, false, "", kHe);
    return {L.bn(kind + "_bn_1_" + block, kBn), ip.size, filters};
  }

  std::pair<Tensor, Tensor> normal(const Tensor& ip, const Tensor* prev, int64_t f, const std::string& b) {
    const Tensor p = adjust(prev, ip, f, b);
    const Tensor h = squeeze(ip, f, "normal", b);
    const Tensor x1_1 = sep_block(h, f, 5, 1, "normal_left1_" + b);
    const Tensor x1_2 = sep_block(p, f, 3, 1, "normal_right1_" + b);
    const std::string x1 = L.add("normal_add_1_" + b, {x1_1.name, x1_2.name});
    const Tensor x2_1 = sep_block(p, f, 5, 1, "normal_left2_" + b);
    const Tensor x2_2 = sep_block(p, f, 3, 1, "normal_right2_" + b);
    const std::string x2 = L.add("normal_add_2_" + b, {x2_1.name, x2_2.name});
    const std::string x3_1 = L.avgpool("normal_left3_" + b, 3, 1, true, h.name);
    const std::string x3 = L.add("normal_add_3_" + b, {x3_1, p.name});
    const std::string x4_1 = L.avgpool("normal_left4_" + b, 3, 1, true, p.name);
    const std::string x4_2 = L.avgpool("normal_right4_" + b, 3, 1, true, p.name);
    const std::string x4 = L.add("normal_add_4_" + b, {x4_1, x4_2});
    const Tensor x5_1 = sep_block(h, f, 3, 1, "normal_left5_" + b);
    const std::string x5 = L.add("normal_add_5_" + b, {x5_1.name, h.name});
    const std::string x = L.concat("normal_concat_" + b, {p.name, x1, x2, x3, x4, x5});
    return {Tensor{x, ip.size, p.channels + 5 * f}, ip};
  }

  std::pair<Tensor, Tensor> reduction(const Tensor& ip, const Tensor* prev, int64_t f, const std::string& b) {
    const Tensor p = adjust(prev, ip, f, b);
    const Tensor h = squeeze(ip, f, "reduction", b);
    const Pad4 cp = correct_pad(h.size, h.size, 3);
    const std::string h3 = L.pad("reduction_pad_1_" + b, cp.top, cp.bottom, cp.left, cp.right, h.name);
    const int64_t half = (h.size + 1) / 2;
    const Tensor x1_1 = sep_block(h, f, 5, 2, "reduction_left1_" + b);
    const Tensor x1_2 = sep_block(p, f, 7, 2, "reduction_right1_" + b);
    const std::string x1 = L.add("reduction_add_1_" + b, {x1_1.name, x1_2.name});
    const std::string x2_1 = L.maxpool("reduction_left2_" + b, 3, 2, false, h3);
    const Tensor x2_2 = sep_block(p, f, 7, 2, "reduction_right2_" + b);
    const std::string x2 = L.add("reduction_add_2_" + b, {x2_1, x2_2.name});
    const std::string x3_1 = L.avgpool("reduction_left3_" + b, 3, 2, false, h3);
    const Tensor x3_2 = sep_block(p, f, 5, 2, "reduction_right3_" + b);
    const std::string x3 = L.add("reduction_add3_" + b, {x3_1, x3_2.name});
    const std::string x4_1 = L.avgpool("reduction_left4_" + b, 3, 1, true, x1);
    const std::string x4 = L.add(id("reduction_add_4_" + b), {x2, x4_1});
    const Tensor x5_1 = sep_block({x1, half, f}, f, 3, 1, "reduction_left4_" + b);
    const std::string x5_2 = L.maxpool("reduction_right5_" + b, 3, 2, false, h3);
    const std::string x5 = L.add("reduction_add4_" + b, {x5_1.name, x5_2});
    const std::string x = L.concat("reduction_concat_" + b, {x2, x3, x4, x5});
    return {Tensor{x, half, 4 * f}, ip};
  }

 private:
  int counter_ = 0;
};

}  // namespace

std::vector<recipe::LayerSpec> nasnet_mobile(const recipe::PresetSpec& p, const std::vector<int64_t>& in) {
  if (p.blocks.size() > 1) fail("{}: preset nasnet_mobile: 'blocks' is one number, the normal cells per stage (4)",
                                p.origin.where);
  const int64_t num_blocks = p.blocks.empty() ? 4 : p.blocks[0];
  if (in[0] != in[1]) fail("{}: preset nasnet_mobile needs a square input, got {}x{}", p.origin.where, in[0], in[1]);
  // filters = penultimate_filters / 24 = 44 at alpha 1; kept a multiple of 4 (filter_multiplier^2).
  const int64_t filters = 4 * static_cast<int64_t>(std::lround(11.0 * p.alpha));
  if (filters < 4) fail("{}: preset nasnet_mobile: alpha {} is too small; use alpha >= 0.05", p.origin.where, p.alpha);
  const int64_t stem_filters = std::max<int64_t>(1, std::lround(32.0 * p.alpha));
  NasNet n(p);
  if (in[0] < 3) fail("{}: preset nasnet_mobile needs an input of at least 3x3 (its stem is a 3x3 valid convolution)", p.origin.where);
  n.L.conv("stem_conv1", stem_filters, 3, 2, false, false, "", kHe);
  Tensor x{n.L.bn("stem_bn1", kBn), (in[0] - 3) / 2 + 1, stem_filters};
  Tensor p_prev;
  bool have_p = false;
  auto step = [&](std::pair<Tensor, Tensor> r) {
    x = r.first;
    p_prev = r.second;
    have_p = true;
  };
  step(n.reduction(x, nullptr, filters / 4, "stem_1"));
  step(n.reduction(x, &p_prev, filters / 2, "stem_2"));
  for (int64_t i = 0; i < num_blocks; ++i) step(n.normal(x, &p_prev, filters, std::to_string(i)));
  step(n.reduction(x, &p_prev, filters * 2, "reduce_" + std::to_string(num_blocks)));
  for (int64_t i = 0; i < num_blocks; ++i) step(n.normal(x, &p_prev, filters * 2, std::to_string(num_blocks + i + 1)));
  step(n.reduction(x, &p_prev, filters * 4, "reduce_" + std::to_string(2 * num_blocks)));
  for (int64_t i = 0; i < num_blocks; ++i)
    step(n.normal(x, &p_prev, filters * 4, std::to_string(2 * num_blocks + i + 1)));
  (void)have_p;
  n.L.relu("relu_final", x.name);
  n.L.global_avgpool("global_average_pooling2d");
  n.L.dense("predictions", p.classes);
  return n.L.take();
}

}  // namespace qatc::models
