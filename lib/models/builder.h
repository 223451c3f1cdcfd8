// A small helper for writing architectures as recipe layer lists: each call appends one layer
// and returns its name, which later calls pass as inputs. An empty input means "the layer just
// added". Used by the presets only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "recipe/recipe.h"

namespace qatc::models {

struct BnArgs {
  double momentum = 0.99, epsilon = 1e-3;  // Keras defaults
};

class LayerList {
 public:
  explicit LayerList(std::string origin) : origin_(std::move(origin)) {}

  std::string conv(const std::string& name, int64_t filters, int64_t k, int64_t stride, bool same, bool bias,
                   const std::string& in = "", recipe::Initializer init = recipe::Initializer::glorot_uniform);
  std::string depthwise(const std::string& name, int64_t k, int64_t stride, bool same, bool bias,
                        const std::string& in = "");
  std::string separable(const std::string& name, int64_t filters, int64_t k, int64_t stride, bool same, bool bias,
                        const std::string& in = "");
  std::string bn(const std::string& name, BnArgs a, const std::string& in = "");
  std::string relu(const std::string& name, const std::string& in = "");
  std::string relu6(const std::string& name, const std::string& in = "");
  std::string pad(const std::string& name, int64_t top, int64_t bottom, int64_t left, int64_t right,
                  const std::string& in = "");
  std::string crop(const std::string& name, int64_t top, int64_t bottom, int64_t left, int64_t right,
                   const std::string& in = "");
  std::string maxpool(const std::string& name, int64_t k, int64_t stride, bool same, const std::string& in = "");
  std::string avgpool(const std::string& name, int64_t k, int64_t stride, bool same, const std::string& in = "");
  std::string add(const std::string& name, const std::vector<std::string>& ins);
  std::string concat(const std::string& name, const std::vector<std::string>& ins);
  std::string global_avgpool(const std::string& name, const std::string& in = "");
  std::string dropout(const std::string& name, double rate, const std::string& in = "");
  std::string dense(const std::string& name, int64_t units, const std::string& in = "");

  const std::string& last() const { return layers_.back().name; }
  std::vector<recipe::LayerSpec> take() { return std::move(layers_); }

 private:
  std::string push(recipe::LayerType t, const std::string& name, std::vector<std::string> ins,
                   decltype(recipe::LayerSpec::attrs) attrs);
  std::string origin_;
  std::vector<recipe::LayerSpec> layers_;
};

// Keras imagenet_utils.correct_pad for a stride-2 'valid' convolution of kernel k on an
// h x w map: ((k/2 - (1 - h%2), k/2), (k/2 - (1 - w%2), k/2)) as {top, bottom, left, right}.
struct Pad4 {
  int64_t top, bottom, left, right;
};
Pad4 correct_pad(int64_t h, int64_t w, int64_t k);

// Keras' _make_divisible(v, divisor): the nearest multiple of divisor, at least divisor, and
// not below 90% of v.
int64_t make_divisible(double v, int64_t divisor);

// Per-architecture builders (lib/models/<family>.cpp). `in` is [h, w, c].
std::vector<recipe::LayerSpec> mobilenet_v1(const recipe::PresetSpec& p, const std::vector<int64_t>& in);
std::vector<recipe::LayerSpec> mobilenet_v2(const recipe::PresetSpec& p, const std::vector<int64_t>& in);
std::vector<recipe::LayerSpec> resnet50_v1(const recipe::PresetSpec& p, const std::vector<int64_t>& in);
std::vector<recipe::LayerSpec> resnet50_v2(const recipe::PresetSpec& p, const std::vector<int64_t>& in);
std::vector<recipe::LayerSpec> nasnet_mobile(const recipe::PresetSpec& p, const std::vector<int64_t>& in);

}  // namespace qatc::models
