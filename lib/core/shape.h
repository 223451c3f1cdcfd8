// Tensor shapes (NHWC for images) and a small owning float tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qatc {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string to_string(const Shape& s);  // "[28, 28, 1]"

// An owning float tensor. Layout is row-major over `shape` (NHWC for images).
struct Tensor {
  Shape shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), data(static_cast<size_t>(numel(shape)), 0.0f) {}
  int64_t size() const { return static_cast<int64_t>(data.size()); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
};

}  // namespace qatc
