// Image preprocessing: from a decoded RGB uint8 image (h x w x 3, row-major, as stbi_load with
// req_comp = 3 gives it; grayscale and RGBA files are converted to 3 channels by the decoder) to
// the float input of a model, [out_h, out_w, 3] (NHWC, one image).
//
// Bilinear resize (every preset, eval and training): as tf.image.resize(method="bilinear",
// antialias=False), i.e. TF's ResizeBilinear with half_pixel_centers=True, computed in float32
// in the same order. Resizing a region of `len` source pixels to `n` samples, output index i
// reads source coordinate
//     s = (i + 0.5f) * (len / n) - 0.5f,  lo = max(floor(s), 0),  hi = min(ceil(s), len - 1),
//     t = s - floor(s),
// and per channel  top = a + (b - a) * tx,  bottom = c + (d - c) * tx,  v = top + (bottom - top) * ty
// with a, b the (lo, hi) columns of row lo and c, d those of row hi. Samples never leave the
// region (a crop reads no pixels outside its box, as crop-then-resize does). There is no
// antialiasing: downscaling by more than 2x skips pixels (torchvision's PIL path and
// antialias=True filter them; the difference is small for ImageNet-sized photos at 224).
// Pixel values are mapped to floats (see the presets) before the interpolation, which is linear,
// so this equals resizing first up to float rounding.
//
// Evaluation presets (S = round(max(out_h, out_w) * 256 / 224): 256 for 224, so reduced input
// sizes keep the 256/224 ratio, e.g. 183 for 160, 146 for 128):
//   tf     TF-slim inception_preprocessing eval (Inception, MobileNet, EfficientNet-lite from slim):
//          x = pixel * (1/255) as tf.image.convert_image_dtype; tf.image.central_crop(x, 0.875):
//          offset = int((h - 0.875 h) / 2) = floor(h / 16), size h - 2 offset (the same for w);
//          bilinear resize of the crop to out_h x out_w; then (v - 0.5) * 2, in [-1, 1]. RGB.
//   caffe  Keras applications mode "caffe" (ResNet50, VGG): resize so the shorter side is S
//          (the other side int(S * long / short), as torchvision.transforms.Resize(S)), bilinear;
//          centre crop out_h x out_w (top = round((new_h - out_h) / 2), ties to even, as
//          torchvision.transforms.CenterCrop); channels reordered RGB -> BGR; v = pixel - mean with
//          mean (B, G, R) = (103.939, 116.779, 123.68). No scaling: values in [-123.68, 151.061].
//   torch  torchvision ImageNet eval: the same resize and centre crop as caffe; x = pixel / 255;
//          (x - mean) / std per channel, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225). RGB.
//
// Training augmentation (augment_image), for every preset: torchvision RandomResizedCrop with
// scale [0.08, 1] and ratio [3/4, 4/3]: up to 10 attempts of
//     area = h * w * U(0.08, 1),  ratio = exp(U(log 3/4, log 4/3)),
//     cw = round(sqrt(area * ratio)),  ch = round(sqrt(area / ratio))   (round: ties to even)
// accepting the first with 0 < cw <= w and 0 < ch <= h, at top = below(h - ch + 1),
// left = below(w - cw + 1); else the central fallback (the whole image, clamped to the ratio
// range: a wider image keeps its height and gets width round(h * 4/3), a taller one keeps its
// width and gets height round(w * 4/3), centred with floor division). The box is resized to
// out_h x out_w (bilinear as above), flipped left-right when U(0, 1) < 0.5, and mapped to values
// exactly as the preset's eval path (tf: (x/255 - 0.5) * 2, caffe: BGR minus mean, torch: mean/std).
// The draws come from the Rng passed in, in this order: per attempt the scale then the ratio
// (then top and left on success), then the flip; the same Rng state gives the same output.
#pragma once

#include <cstdint>
#include <string>

#include "core/rng.h"

namespace qatc::data {

enum class Preprocess { tf, caffe, torch };

// "tf", "caffe" or "torch"; anything else raises qatc::Error naming `where` (e.g. the recipe key).
Preprocess parse_preprocess(const std::string& name, const std::string& where = "preprocess");
const char* preprocess_name(Preprocess p);

// A box of source pixels: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// tf.image.central_crop(image, 0.875) of an h x w image.
CropBox central_crop_tf(int64_t h, int64_t w);

// S: the shorter side the caffe and torch presets resize to before their centre crop.
int64_t resize_shorter_side(int64_t out_h, int64_t out_w);

// The size (new_h, new_w) that resizing an h x w image to shorter side s gives (torchvision).
void shorter_side_size(int64_t h, int64_t w, int64_t s, int64_t* new_h, int64_t* new_w);

// torchvision RandomResizedCrop.get_params(scale = [0.08, 1], ratio = [3/4, 4/3]) with draws from rng.
CropBox random_resized_crop(int64_t h, int64_t w, Rng& rng);

// The evaluation transform of preset p: rgb is h x w x 3, out is out_h x out_w x 3.
void preprocess_image(const uint8_t* rgb, int64_t h, int64_t w, Preprocess p, int64_t out_h, int64_t out_w,
                      float* out);

// The training transform: random-resized-crop, resize, random horizontal flip, preset values.
void augment_image(const uint8_t* rgb, int64_t h, int64_t w, Preprocess p, int64_t out_h, int64_t out_w, Rng& rng,
                   float* out);

}  // namespace qatc::data
