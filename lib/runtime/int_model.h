// The integer-only model: what `qatc convert` writes and the int8 executor runs. Tensors are
// int8 with a (scale, zero_point) kept for reports and dequantizing the logits; the kernels
// read only the integer parameters (weights, int32 bias, per-channel multiplier and shift,
// clamp bounds), all computed once at conversion.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include "core/shape.h"
#include "kernels/params.h"

namespace qatc::runtime {

struct QTensor {
  std::string name;
  Shape shape;  // one example: [h, w, c] or [features]
  double scale = 1.0;
  int32_t zero_point = 0;
  int32_t bits = 8;
};

enum class FloatActivation : uint32_t { none = 0, relu = 1, relu6 = 2 };

// conv2d, depthwise_conv2d or dense with int8 weights; BatchNorm folded, activation folded
// into qmin/qmax. A BatchNorm or ReLU that follows no convolution runs as a 1x1 depthwise.
enum class ConvKind : uint32_t { conv = 0, dense = 1, depthwise = 2 };
struct ConvLayer {
  ConvKind kind = ConvKind::conv;
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  int64_t depth_multiplier = 1;  // depthwise only
  // conv [oc, kh, kw, ic] (OHWI); dense [out, in]; depthwise [kh, kw, ic * depth_multiplier]
  std::vector<int8_t> weights;
  std::vector<int32_t> bias, multiplier, shift;  // [oc]
  int32_t qmin = -128, qmax = 127;
  int32_t weight_bits = 8;
  std::vector<double> weight_scales;  // [oc] (for reports; the kernels read multiplier/shift)
};

struct PoolLayer {
  bool max = true;
  int64_t kh = 2, kw = 2, stride_h = 2, stride_w = 2, pad_top = 0, pad_left = 0;
};

struct GlobalPoolLayer {
  int32_t left_shift = 0, multiplier = 0, shift = 0;
};

struct ReshapeLayer {};  // flatten / dropout: the same bytes, a new shape

// Elementwise sum of two tensors of one shape (kernels::AddParams), activation in qmin/qmax.
struct AddLayer {
  int32_t left_shift = 20;
  int32_t input1_multiplier = 0, input1_shift = 0, input2_multiplier = 0, input2_shift = 0;
  int32_t output_multiplier = 0, output_shift = 0;
  int32_t qmin = -128, qmax = 127;
};

// Channel concat (kernels::ConcatParams); one entry per input, channels from the tensors.
struct ConcatLayer {
  std::vector<kernels::ConcatInput> inputs;
};

// Spatial zero padding (amounts >= 0) or cropping (< 0); the output keeps the input's scale and
// zero point, and padded positions hold the zero point (real 0).
struct PadLayer {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
};

// A layer kept in float (quant.overrides skip): dequantize, float conv/dense, quantize.
struct FloatLayer {
  bool dense = false;
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  std::vector<float> weights;  // graph layout: conv [kh, kw, ic, oc], dense [in, out], BN folded
  std::vector<float> bias;     // [oc]
  FloatActivation activation = FloatActivation::none;
};

using LayerParams =
    std::variant<ConvLayer, PoolLayer, GlobalPoolLayer, ReshapeLayer, FloatLayer, AddLayer, ConcatLayer, PadLayer>;

struct IntLayer {
  std::string name;
  std::vector<int32_t> inputs;  // tensor indices: one, or two (add) or more (concat)
  int32_t output = 0;           // tensor index
  LayerParams params;

  int32_t input() const { return inputs.at(0); }
};

struct IntModel {
  std::string recipe_yaml;  // the recipe the model came from (data and normalization)
  std::string source;       // "qat" or "ptq"
  std::vector<QTensor> tensors;  // tensors[0]: the quantized model input
  kernels::QuantizeParams input_quant{};  // uint8 pixels -> tensors[0]
  double pixel_scale = 1.0 / 255.0;
  int32_t pixel_zero_point = 0;
  std::vector<IntLayer> layers;  // in execution order
  int32_t output = 0;            // tensor index of the logits

  int64_t classes() const { return numel(tensors[static_cast<size_t>(output)].shape); }
};

const char* layer_kind(const IntLayer& l);  // "conv2d", "dense", "depthwise_conv2d", "maxpool", ...
// Multiply-accumulates of layer l per example: every weight of a conv, depthwise or float conv is
// used once per output position, a dense layer's once; 0 for layers without weights (and for a
// layer whose weights an executor has released).
int64_t layer_macs(const IntModel& m, const IntLayer& l);

void save_int_model(const std::filesystem::path& path, const IntModel& m);
// The bytes save_int_model writes.
std::string encode_int_model(const IntModel& m);
// Checks every size, index and shape before anything is used, and runs each layer's kernel
// argument checks at batch 1, so a loaded model can always be executed; raises qatc::Error.
// The file is never held whole: the checksum is verified in a streaming pass, then each
// section is parsed from the file, weights read straight into the model.
IntModel load_int_model(const std::filesystem::path& path);
// The same from bytes in memory; `what` names the source in messages.
IntModel parse_int_model(std::string_view bytes, const std::string& what);
// True when the file starts with the int8 model magic.
bool is_int_model_file(const std::filesystem::path& path);

}  // namespace qatc::runtime
