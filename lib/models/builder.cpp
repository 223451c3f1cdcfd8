// LayerList: appending recipe layers in code.
#include "models/builder.h"

#include <cmath>

namespace qatc::models {

using recipe::LayerType;

std::string LayerList::push(LayerType t, const std::string& name, std::vector<std::string> ins,
                            decltype(recipe::LayerSpec::attrs) attrs) {
  recipe::LayerSpec l;
  l.type = t;
  l.name = name;
  for (auto& i : ins)
    if (!i.empty()) l.inputs.push_back(std::move(i));
  l.attrs = std::move(attrs);
  l.origin.where = origin_;
  layers_.push_back(std::move(l));
  return name;
}

std::string LayerList::conv(const std::string& name, int64_t filters, int64_t k, int64_t stride, bool same, bool bias,
                            const std::string& in, recipe::Initializer init) {
  recipe::Conv2DSpec s;
  s.filters = filters;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.padding = same ? recipe::PaddingKind::same : recipe::PaddingKind::valid;
  s.use_bias = bias;
  s.kernel_initializer = init;
  return push(LayerType::conv2d, name, {in}, s);
}

std::string LayerList::depthwise(const std::string& name, int64_t k, int64_t stride, bool same, bool bias,
                                 const std::string& in) {
  recipe::DepthwiseSpec s;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.padding = same ? recipe::PaddingKind::same : recipe::PaddingKind::valid;
  s.use_bias = bias;
  return push(LayerType::depthwise_conv2d, name, {in}, s);
}

std::string LayerList::separable(const std::string& name, int64_t filters, int64_t k, int64_t stride, bool same,
                                 bool bias, const std::string& in) {
  recipe::DepthwiseSpec s;
  s.filters = filters;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.padding = same ? recipe::PaddingKind::same : recipe::PaddingKind::valid;
  s.use_bias = bias;
  return push(LayerType::separable_conv2d, name, {in}, s);
}

std::string LayerList::bn(const std::string& name, BnArgs a, const std::string& in) {
  return push(LayerType::batchnorm, name, {in}, recipe::BatchNormSpec{a.momentum, a.epsilon});
}

std::string LayerList::relu(const std::string& name, const std::string& in) {
  return push(LayerType::relu, name, {in}, recipe::NoAttrs{});
}

std::string LayerList::relu6(const std::string& name, const std::string& in) {
  return push(LayerType::relu6, name, {in}, recipe::NoAttrs{});
}

std::string LayerList::pad(const std::string& name, int64_t top, int64_t bottom, int64_t left, int64_t right,
                           const std::string& in) {
  return push(LayerType::zero_padding2d, name, {in}, recipe::PadSpec{top, bottom, left, right});
}

std::string LayerList::crop(const std::string& name, int64_t top, int64_t bottom, int64_t left, int64_t right,
                            const std::string& in) {
  return push(LayerType::cropping2d, name, {in}, recipe::PadSpec{top, bottom, left, right});
}

std::string LayerList::maxpool(const std::string& name, int64_t k, int64_t stride, bool same, const std::string& in) {
  recipe::Pool2DSpec s;
  s.pool_h = s.pool_w = k;
  s.stride_h = s.stride_w = stride;
  s.padding = same ? recipe::PaddingKind::same : recipe::PaddingKind::valid;
  return push(LayerType::maxpool, name, {in}, s);
}

std::string LayerList::avgpool(const std::string& name, int64_t k, int64_t stride, bool same, const std::string& in) {
  recipe::Pool2DSpec s;
  s.pool_h = s.pool_w = k;
  s.stride_h = s.stride_w = stride;
  s.padding = same ? recipe::PaddingKind::same : recipe::PaddingKind::valid;
  return push(LayerType::avgpool, name, {in}, s);
}

std::string LayerList::add(const std::string& name, const std::vector<std::string>& ins) {
  return push(LayerType::add, name, ins, recipe::MergeSpec{});
}

std::string LayerList::concat(const std::string& name, const std::vector<std::string>& ins) {
  return push(LayerType::concat, name, ins, recipe::MergeSpec{});
}

std::string LayerList::global_avgpool(const std::string& name, const std::string& in) {
  return push(LayerType::global_avgpool, name, {in}, recipe::NoAttrs{});
}

std::string LayerList::dropout(const std::string& name, double rate, const std::string& in) {
  return push(LayerType::dropout, name, {in}, recipe::DropoutSpec{rate});
}

std::string LayerList::dense(const std::string& name, int64_t units, const std::string& in) {
  recipe::DenseSpec s;
  s.units = units;
  return push(LayerType::dense, name, {in}, s);
}

Pad4 correct_pad(int64_t h, int64_t w, int64_t k) {
  const int64_t c = k / 2;
  return {c - (1 - h % 2), c, c - (1 - w % 2), c};
}

int64_t make_divisible(double v, int64_t divisor) {
  int64_t nv = static_cast<int64_t>(v + static_cast<double>(divisor) / 2) / divisor * divisor;
  if (nv < divisor) nv = divisor;
  if (static_cast<double>(nv) < 0.9 * v) nv += divisor;
  return nv;
}

}  // namespace qatc::models
