// Image preprocessing presets and training augmentation (the math is in preprocess.h).
#include "data/preprocess.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace qatc::data {
namespace {

// Where output index i of one axis reads: source indices lo/hi (absolute) and the weight of hi.
struct Axis {
  std::vector<int64_t> lo, hi;
  std::vector<float> t;
};

// Samples [off, off + n) of the region [start, start + len) resized to `full` samples (TF's
// half-pixel bilinear weights, float32). With flip the samples come in reverse order.
Axis make_axis(int64_t start, int64_t len, int64_t full, int64_t off, int64_t n, bool flip) {
  Axis a;
  a.lo.resize(static_cast<size_t>(n));
  a.hi.resize(static_cast<size_t>(n));
  a.t.resize(static_cast<size_t>(n));
  const float scale = static_cast<float>(len) / static_cast<float>(full);
  for (int64_t i = 0; i < n; ++i) {
    const float s = (static_cast<float>(off + i) + 0.5f) * scale - 0.5f;
    const float fl = std::floor(s);
    const int64_t lo = std::max(static_cast<int64_t>(fl), int64_t{0});
    const int64_t hi = std::min(static_cast<int64_t>(std::ceil(s)), len - 1);
    const auto k = static_cast<size_t>(flip ? n - 1 - i : i);
    a.lo[k] = start + std::min(lo, len - 1);
    a.hi[k] = start + std::max(hi, int64_t{0});
    a.t[k] = s - fl;
  }
  return a;
}

// The value mapping of a preset: v = table[pixel] before the interpolation, then
// out[perm[c]] = (v - sub[c]) / div[c] for source channel c (R, G, B).
struct Values {
  float table[256];
  std::array<float, 3> sub, div;
  std::array<int, 3> perm;
};

Values values_of(Preprocess p) {
  Values v{};
  switch (p) {
    case Preprocess::tf: {
      // tf.image.convert_image_dtype(uint8 -> float32) multiplies by the float32 of 1/255;
      // then (v - 0.5) * 2, and dividing by 0.5 is exactly multiplying by 2.
      const auto scale = static_cast<float>(1.0 / 255.0);
      for (int i = 0; i < 256; ++i) v.table[i] = static_cast<float>(i) * scale;
      v.sub = {0.5f, 0.5f, 0.5f};
      v.div = {0.5f, 0.5f, 0.5f};
      v.perm = {0, 1, 2};
      break;
    }
    case Preprocess::caffe:
      for (int i = 0; i < 256; ++i) v.table[i] = static_cast<float>(i);
      v.sub = {123.68f, 116.779f, 103.939f};  // R, G, B means (Keras lists them as B, G, R)
      v.div = {1.0f, 1.0f, 1.0f};
      v.perm = {2, 1, 0};  // RGB -> BGR
      break;
    case Preprocess::torch:
      // torchvision ToTensor divides by 255, Normalize subtracts the mean and divides by std.
      for (int i = 0; i < 256; ++i) v.table[i] = static_cast<float>(i) / 255.0f;
      v.sub = {0.485f, 0.456f, 0.406f};
      v.div = {0.229f, 0.224f, 0.225f};
      v.perm = {0, 1, 2};
      break;
  }
  return v;
}

// out[i, j, :] = the preset values of bilinear samples at (ys[i], xs[j]) of the h x w x 3 image.
void sample(const uint8_t* rgb, int64_t w, const Axis& ys, const Axis& xs, const Values& val, float* out) {
  const int64_t oh = static_cast<int64_t>(ys.lo.size()), ow = static_cast<int64_t>(xs.lo.size());
  const float* tab = val.table;
  for (int64_t i = 0; i < oh; ++i) {
    const uint8_t* r0 = rgb + ys.lo[static_cast<size_t>(i)] * w * 3;
    const uint8_t* r1 = rgb + ys.hi[static_cast<size_t>(i)] * w * 3;
    const float ty = ys.t[static_cast<size_t>(i)];
    float* o = out + i * ow * 3;
    for (int64_t j = 0; j < ow; ++j) {
      const int64_t x0 = xs.lo[static_cast<size_t>(j)] * 3, x1 = xs.hi[static_cast<size_t>(j)] * 3;
      const float tx = xs.t[static_cast<size_t>(j)];
      for (int c = 0; c < 3; ++c) {
        const float a = tab[r0[x0 + c]], b = tab[r0[x1 + c]];
        const float d0 = tab[r1[x0 + c]], d1 = tab[r1[x1 + c]];
        const float top = a + (b - a) * tx;
        const float bottom = d0 + (d1 - d0) * tx;
        const float v = top + (bottom - top) * ty;
        o[j * 3 + val.perm[static_cast<size_t>(c)]] =
            (v - val.sub[static_cast<size_t>(c)]) / val.div[static_cast<size_t>(c)];
      }
    }
  }
}

// Python's int(round(x)) for the non-negative values used here: ties go to the even integer.
int64_t round_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

void check_sizes(int64_t h, int64_t w, int64_t out_h, int64_t out_w) {
  QATC_CHECK_GT(h, 0);
  QATC_CHECK_GT(w, 0);
  QATC_CHECK_GT(out_h, 0);
  QATC_CHECK_GT(out_w, 0);
}

}  // namespace

Preprocess parse_preprocess(const std::string& name, const std::string& where) {
  if (name == "tf") return Preprocess::tf;
  if (name == "caffe") return Preprocess::caffe;
  if (name == "torch") return Preprocess::torch;
  fail("{}: unknown preprocessing '{}'; use tf (Inception/MobileNet: [-1, 1]), caffe (ResNet50/VGG: BGR minus "
       "mean) or torch (torchvision: mean/std)",
       where, name);
}

const char* preprocess_name(Preprocess p) {
  switch (p) {
    case Preprocess::tf: return "tf";
    case Preprocess::caffe: return "caffe";
    case Preprocess::torch: return "torch";
  }
  return "?";
}

CropBox central_crop_tf(int64_t h, int64_t w) {
  // TF computes int((h - h * 0.875) / 2) in float64, which is exactly floor(h / 16).
  CropBox b;
  b.top = static_cast<int64_t>((static_cast<double>(h) - static_cast<double>(h) * 0.875) / 2);
  b.left = static_cast<int64_t>((static_cast<double>(w) - static_cast<double>(w) * 0.875) / 2);
  b.height = h - 2 * b.top;
  b.width = w - 2 * b.left;
  return b;
}

int64_t resize_shorter_side(int64_t out_h, int64_t out_w) {
  // max * 256 / 224 = max * 8 / 7 is never halfway between two integers.
  return std::llround(static_cast<double>(std::max(out_h, out_w)) * 256.0 / 224.0);
}

void shorter_side_size(int64_t h, int64_t w, int64_t s, int64_t* new_h, int64_t* new_w) {
  // torchvision: new_short = s, new_long = int(s * long / short).
  if (h <= w) {
    *new_h = s;
    *new_w = s * w / h;
  } else {
    *new_w = s;
    *new_h = s * h / w;
  }
}

CropBox random_resized_crop(int64_t h, int64_t w, Rng& rng) {
  const double area = static_cast<double>(h) * static_cast<double>(w);
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (0.08 + (1.0 - 0.08) * static_cast<double>(rng.uniform()));
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * static_cast<double>(rng.uniform()));
    const int64_t cw = round_even(std::sqrt(target * ratio));
    const int64_t ch = round_even(std::sqrt(target / ratio));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      CropBox b;
      b.height = ch;
      b.width = cw;
      b.top = rng.below(static_cast<uint32_t>(h - ch + 1));
      b.left = rng.below(static_cast<uint32_t>(w - cw + 1));
      return b;
    }
  }
  // Central fallback: the whole image, clamped to the ratio range.
  CropBox b;
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  if (in_ratio < 3.0 / 4.0) {
    b.width = w;
    b.height = std::min(h, round_even(static_cast<double>(w) / (3.0 / 4.0)));
  } else if (in_ratio > 4.0 / 3.0) {
    b.height = h;
    b.width = std::min(w, round_even(static_cast<double>(h) * (4.0 / 3.0)));
  } else {
    b.height = h;
    b.width = w;
  }
  b.height = std::max<int64_t>(b.height, 1);
  b.width = std::max<int64_t>(b.width, 1);
  b.top = (h - b.height) / 2;
  b.left = (w - b.width) / 2;
  return b;
}

void preprocess_image(const uint8_t* rgb, int64_t h, int64_t w, Preprocess p, int64_t out_h, int64_t out_w,
                      float* out) {
  check_sizes(h, w, out_h, out_w);
  const Values val = values_of(p);
  if (p == Preprocess::tf) {
    const CropBox b = central_crop_tf(h, w);
    sample(rgb, w, make_axis(b.top, b.height, out_h, 0, out_h, false),
           make_axis(b.left, b.width, out_w, 0, out_w, false), val, out);
    return;
  }
  int64_t nh = 0, nw = 0;
  shorter_side_size(h, w, resize_shorter_side(out_h, out_w), &nh, &nw);
  // torchvision CenterCrop: int(round((new - out) / 2.0)), Python's round (ties to even).
  const int64_t top = round_even(static_cast<double>(nh - out_h) / 2.0);
  const int64_t left = round_even(static_cast<double>(nw - out_w) / 2.0);
  sample(rgb, w, make_axis(0, h, nh, top, out_h, false), make_axis(0, w, nw, left, out_w, false), val, out);
}

void augment_image(const uint8_t* rgb, int64_t h, int64_t w, Preprocess p, int64_t out_h, int64_t out_w, Rng& rng,
                   float* out) {
  check_sizes(h, w, out_h, out_w);
  const CropBox b = random_resized_crop(h, w, rng);
  const bool flip = rng.uniform() < 0.5f;
  sample(rgb, w, make_axis(b.top, b.height, out_h, 0, out_h, false),
         make_axis(b.left, b.width, out_w, 0, out_w, flip), values_of(p), out);
}

}  // namespace qatc::data
