// The typed recipe: every YAML key maps to exactly one field here. docs/recipes.md documents
// each key; lib/recipe/load.cpp is the only code that reads YAML into these structs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace qatc::recipe {

// Where a value came from, for error messages: "recipe.yaml:12:5" or "--set train.epochs".
struct Origin {
  std::string where;
};

enum class Activation { none, relu, relu6 };
enum class PaddingKind { valid, same };
enum class Initializer { glorot_uniform, glorot_normal, he_uniform, he_normal, zeros, ones };

struct Conv2DSpec {
  int64_t filters = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  PaddingKind padding = PaddingKind::valid;
  bool use_bias = true;
  Activation activation = Activation::none;
  Initializer kernel_initializer = Initializer::glorot_uniform;
  Initializer bias_initializer = Initializer::zeros;
};
struct DenseSpec {
  int64_t units = 0;
  bool use_bias = true;
  Activation activation = Activation::none;
  Initializer kernel_initializer = Initializer::glorot_uniform;
  Initializer bias_initializer = Initializer::zeros;
};
struct Pool2DSpec {
  int64_t pool_h = 2, pool_w = 2;
  int64_t stride_h = 0, stride_w = 0;  // 0: equal to the pool size (Keras default)
  PaddingKind padding = PaddingKind::valid;
};
struct BatchNormSpec {
  double momentum = 0.99;  // Keras defaults
  double epsilon = 1e-3;
};
struct DropoutSpec {
  double rate = 0.5;
};
// depthwise_conv2d, and separable_conv2d (a depthwise followed by a 1x1 conv2d of `filters`).
struct DepthwiseSpec {
  int64_t filters = 0;  // separable_conv2d only: the pointwise convolution's output channels
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t depth_multiplier = 1;
  PaddingKind padding = PaddingKind::valid;
  bool use_bias = true;
  Activation activation = Activation::none;
  Initializer kernel_initializer = Initializer::glorot_uniform;  // depthwise and pointwise kernels
  Initializer bias_initializer = Initializer::zeros;
};
// zero_padding2d (amounts >= 0) and cropping2d (amounts >= 0, removed): one spatial pad op.
struct PadSpec {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
};
// add (elementwise sum of >= 2 inputs of one shape) and concat (along the last axis).
struct MergeSpec {
  Activation activation = Activation::none;  // add only
};
struct NoAttrs {};

enum class LayerType {
  conv2d, dense, relu, relu6, maxpool, avgpool, global_avgpool, batchnorm, flatten, dropout,
  depthwise_conv2d, separable_conv2d, zero_padding2d, cropping2d, add, concat
};

struct LayerSpec {
  LayerType type;
  std::string name;                 // unique; generated as <type>_<index> when not given
  std::vector<std::string> inputs;  // empty: the previous layer (or the model input)
  std::variant<NoAttrs, Conv2DSpec, DenseSpec, Pool2DSpec, BatchNormSpec, DropoutSpec, DepthwiseSpec, PadSpec,
               MergeSpec>
      attrs;
  Origin origin;
};

// A named architecture (lib/models) instead of a layer list:
//   model: {preset: mobilenet_v2, alpha: 1.0, input: [224, 224, 3], classes: 1000}
struct PresetSpec {
  std::string name;        // "" = no preset: the model is `layers`
  double alpha = 1.0;      // width multiplier of every layer's filters (lib/models/presets.h)
  int64_t classes = 1000;  // as Keras applications
  double dropout = 1e-3;   // MobileNet v1 head dropout (Keras default); 0 = none
  // Blocks per stage: ResNets [3, 4, 6, 3] (four stages), NASNet [4] (normal cells per
  // stage); empty = the published depth. MobileNets take none.
  std::vector<int64_t> blocks;
  // BatchNorm moving-average momentum of every layer; unset = the architecture's own (0.99,
  // MobileNetV2 0.999, NASNet 0.9997). Short runs want a faster average.
  std::optional<double> bn_momentum;
  Origin origin;
};

struct ModelSpec {
  std::vector<int64_t> input;  // [h, w, c]
  PresetSpec preset;
  std::vector<LayerSpec> layers;  // filled from the preset when one is given
};

struct DataSpec {
  std::string dataset;          // mnist | fashion_mnist | image_folder
  std::string path;             // "" = standard location (fetched on first use)
  double validation_split = 0;  // last fraction of the training split, as Keras does
  int64_t train_subset = 0;     // 0 = all training images
  // Input scaling: x = (pixel / 255 - mean) / std.
  double mean = 0.0, std = 1.0;
  // Zero pixels added on every side of each image (e.g. 2: 28x28 Fashion-MNIST as 32x32).
  int64_t pad = 0;
  // image_folder only (lib/data/image_folder.h, preprocess.h): `path` holds train/<wnid>/ and
  // val_dir (class folders, or flat with labels_file).
  std::string preprocess = "tf";      // tf | caffe | torch
  bool augment = true;                // training: random-resized-crop + horizontal flip
  std::string val_dir = "val";
  std::string labels_file;            // flat val folder: "<file> <index>" lines
  bool background_class = false;      // class 0 = background, 1001 classes (TF-slim)
  std::string on_bad_image = "skip";  // skip (warn, use the next image) | fail
};

enum class OptimizerKind { sgd, adam, adamw };
struct OptimizerSpec {
  OptimizerKind type = OptimizerKind::adam;
  double lr = 1e-3;
  double momentum = 0.0;  // sgd
  bool nesterov = false;  // sgd
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7;  // adam/adamw (Keras epsilon)
  double weight_decay = 0.0;  // L2 added to the gradient (sgd/adam) or decoupled (adamw)
};

enum class ScheduleKind { constant, step, cosine };
struct ScheduleSpec {
  ScheduleKind type = ScheduleKind::constant;
  int64_t warmup_steps = 0;  // linear warm-up from 0 to lr
  int64_t step_size = 0;     // step: decay every step_size steps (0: every epoch)
  double gamma = 0.1;        // step: factor
  double min_lr = 0.0;       // cosine: floor
};

struct TrainSpec {
  int64_t epochs = 1;
  int64_t batch_size = 32;
  OptimizerSpec optimizer;
  ScheduleSpec schedule;
  bool shuffle = true;
  int64_t checkpoint_every_steps = 0;  // 0: at the end of every epoch only
};

struct EvalSpec {
  int64_t batch_size = 256;
  int64_t latency_images = 200;  // batch-1 latency: at most this many timed images (and 3 s)
  // Gate: `qatc run` exits 1 (after writing the report) when an int8 model's accuracy is more
  // than this below the float model's (a fraction: 0.005 = half a point). Negative: no gate.
  double max_accuracy_drop = -1;
};

// ---- quantization (docs/quantization.md) ----

enum class Granularity { per_tensor, per_channel };
enum class ObserverKind { ema_minmax, minmax };
enum class ObserverInit { first_batch, fixed };

struct WeightQuantSpec {
  int64_t bits = 8;
  bool symmetric = true;
  // Unset: per_channel for conv2d (and depthwise), per_tensor for dense, as the reference toolkit.
  std::optional<Granularity> granularity;
  bool narrow_range = true;  // [-127, 127] for 8 bits
};

struct ActivationQuantSpec {
  int64_t bits = 8;
  bool symmetric = false;
  ObserverKind observer = ObserverKind::ema_minmax;
  double ema_decay = 0.999;
  // first_batch (default): the first batch sets the range, then EMA. fixed: start from
  // [init_min, init_max] = [-6, 6] as the reference toolkit does.
  ObserverInit init = ObserverInit::first_batch;
};

struct QuantOverride {
  std::string match;  // layer name or glob (fnmatch: * ? [...])
  std::optional<WeightQuantSpec> weights;
  std::optional<ActivationQuantSpec> activations;
  bool skip = false;  // keep the layer in float
  Origin origin;
};

struct QuantSpec {
  WeightQuantSpec weights;
  ActivationQuantSpec activations;
  std::vector<QuantOverride> overrides;
};

enum class RangeMethod { minmax, percentile, mse };

struct PtqSpec {
  int64_t batches = 16;       // calibration batches from the training split
  int64_t batch_size = 128;
  RangeMethod method = RangeMethod::minmax;  // activations
  double percentile = 99.99;  // method percentile
  RangeMethod weight_method = RangeMethod::minmax;  // minmax or mse
};

struct QatSpec {
  int64_t epochs = 1;  // used when steps == 0
  int64_t steps = 0;   // > 0: train exactly this many steps instead of epochs
  int64_t subset = 0;  // first N training images (0: all), before the validation split
  int64_t batch_size = 32;
  OptimizerSpec optimizer;
  ScheduleSpec schedule;
  int64_t quant_delay_steps = 0;               // activations fake-quantized from this step on
  int64_t freeze_bn_after_steps = -1;          // -1: never; BN uses moving statistics after
  int64_t freeze_observers_after_steps = -1;   // -1: never; ranges stop moving after
  int64_t checkpoint_every_steps = 0;
};

enum class Stage { train, ptq, qat, convert, eval, report };

struct Recipe {
  std::string file;  // where it was loaded from
  std::string name;
  uint64_t seed = 0;
  std::vector<Stage> stages;
  ModelSpec model;
  DataSpec data;
  TrainSpec train;
  QuantSpec quant;
  PtqSpec ptq;
  QatSpec qat;
  EvalSpec eval;
  std::string resolved_yaml;  // the recipe after --set overrides, embedded in checkpoints
};

const char* to_string(LayerType t);
const char* to_string(Stage s);
const char* to_string(Activation a);

}  // namespace qatc::recipe
