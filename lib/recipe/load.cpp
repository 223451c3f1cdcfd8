// Recipe loading: the one place that maps YAML keys to Recipe fields.
#include "recipe/load.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <set>

#include "core/file.h"
#include "models/presets.h"
#include "recipe/yaml_reader.h"

namespace qatc::recipe {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

const std::vector<std::pair<std::string, Activation>> kActivations = {
    {"none", Activation::none}, {"relu", Activation::relu}, {"relu6", Activation::relu6}};
const std::vector<std::pair<std::string, PaddingKind>> kPaddings = {{"valid", PaddingKind::valid},
                                                                    {"same", PaddingKind::same}};
const std::vector<std::pair<std::string, Initializer>> kInitializers = {
    {"glorot_uniform", Initializer::glorot_uniform}, {"glorot_normal", Initializer::glorot_normal},
    {"he_uniform", Initializer::he_uniform},         {"he_normal", Initializer::he_normal},
    {"zeros", Initializer::zeros},                   {"ones", Initializer::ones}};
const std::vector<std::pair<std::string, LayerType>> kLayerTypes = {
    {"conv2d", LayerType::conv2d},   {"dense", LayerType::dense},
    {"relu", LayerType::relu},       {"relu6", LayerType::relu6},
    {"maxpool", LayerType::maxpool}, {"avgpool", LayerType::avgpool},
    {"global_avgpool", LayerType::global_avgpool}, {"batchnorm", LayerType::batchnorm},
    {"flatten", LayerType::flatten}, {"dropout", LayerType::dropout},
    {"depthwise_conv2d", LayerType::depthwise_conv2d}, {"separable_conv2d", LayerType::separable_conv2d},
    {"zero_padding2d", LayerType::zero_padding2d}, {"cropping2d", LayerType::cropping2d},
    {"add", LayerType::add}, {"concat", LayerType::concat}};
const std::vector<std::pair<std::string, Stage>> kStages = {
    {"train", Stage::train}, {"ptq", Stage::ptq},   {"qat", Stage::qat},
    {"convert", Stage::convert}, {"eval", Stage::eval}, {"report", Stage::report}};
const std::vector<std::pair<std::string, Granularity>> kGranularities = {{"per_tensor", Granularity::per_tensor},
                                                                         {"per_channel", Granularity::per_channel}};
const std::vector<std::pair<std::string, ObserverKind>> kObservers = {{"ema_minmax", ObserverKind::ema_minmax},
                                                                      {"minmax", ObserverKind::minmax}};
const std::vector<std::pair<std::string, ObserverInit>> kInits = {{"first_batch", ObserverInit::first_batch},
                                                                  {"fixed", ObserverInit::fixed}};
const std::vector<std::pair<std::string, RangeMethod>> kRangeMethods = {
    {"minmax", RangeMethod::minmax}, {"percentile", RangeMethod::percentile}, {"mse", RangeMethod::mse}};
const std::vector<std::pair<std::string, OptimizerKind>> kOptimizers = {
    {"sgd", OptimizerKind::sgd}, {"adam", OptimizerKind::adam}, {"adamw", OptimizerKind::adamw}};
const std::vector<std::pair<std::string, ScheduleKind>> kSchedules = {
    {"constant", ScheduleKind::constant}, {"step", ScheduleKind::step}, {"cosine", ScheduleKind::cosine}};

template <typename E>
const char* name_of(const std::vector<std::pair<std::string, E>>& names, E v) {
  for (const auto& [n, e] : names)
    if (e == v) return n.c_str();
  return "?";
}

void read_positive_pair(MapReader& r, const std::string& key, int64_t& a, int64_t& b) {
  r.read_pair(key, a, b);
  r.check_range(key, static_cast<double>(std::min(a, b)), 1, kInf);
}

Conv2DSpec read_conv2d(MapReader& r) {
  Conv2DSpec s;
  r.require("filters");
  r.read("filters", s.filters);
  r.check_range("filters", static_cast<double>(s.filters), 1, 1 << 16);
  r.require("kernel");
  read_positive_pair(r, "kernel", s.kernel_h, s.kernel_w);
  read_positive_pair(r, "strides", s.stride_h, s.stride_w);
  r.read_enum("padding", s.padding, kPaddings);
  r.read("use_bias", s.use_bias);
  r.read_enum("activation", s.activation, kActivations);
  r.read_enum("kernel_initializer", s.kernel_initializer, kInitializers);
  r.read_enum("bias_initializer", s.bias_initializer, kInitializers);
  return s;
}

DenseSpec read_dense(MapReader& r) {
  DenseSpec s;
  r.require("units");
  r.read("units", s.units);
  r.check_range("units", static_cast<double>(s.units), 1, 1 << 24);
  r.read("use_bias", s.use_bias);
  r.read_enum("activation", s.activation, kActivations);
  r.read_enum("kernel_initializer", s.kernel_initializer, kInitializers);
  r.read_enum("bias_initializer", s.bias_initializer, kInitializers);
  return s;
}

Pool2DSpec read_pool(MapReader& r) {
  Pool2DSpec s;
  read_positive_pair(r, "pool", s.pool_h, s.pool_w);
  s.stride_h = s.pool_h;
  s.stride_w = s.pool_w;
  read_positive_pair(r, "strides", s.stride_h, s.stride_w);
  r.read_enum("padding", s.padding, kPaddings);
  return s;
}

DepthwiseSpec read_depthwise(MapReader& r, bool separable) {
  DepthwiseSpec s;
  if (separable) {
    r.require("filters");
    r.read("filters", s.filters);
    r.check_range("filters", static_cast<double>(s.filters), 1, 1 << 16);
  }
  r.require("kernel");
  read_positive_pair(r, "kernel", s.kernel_h, s.kernel_w);
  read_positive_pair(r, "strides", s.stride_h, s.stride_w);
  r.read("depth_multiplier", s.depth_multiplier);
  r.check_range("depth_multiplier", static_cast<double>(s.depth_multiplier), 1, 64);
  r.read_enum("padding", s.padding, kPaddings);
  r.read("use_bias", s.use_bias);
  r.read_enum("activation", s.activation, kActivations);
  r.read_enum("kernel_initializer", s.kernel_initializer, kInitializers);
  r.read_enum("bias_initializer", s.bias_initializer, kInitializers);
  return s;
}

// padding / cropping: an int p (all sides), [ph, pw] (top = bottom = ph, left = right = pw)
// or [top, bottom, left, right]; Keras' ((top, bottom), (left, right)) written flat.
PadSpec read_pad(MapReader& r, const std::string& key) {
  PadSpec s;
  r.require(key);
  std::vector<int64_t> v;
  if (r.node(key).IsScalar()) {
    int64_t p = 0;
    r.read(key, p);
    v = {p};
  } else {
    r.read_int_list(key, v);
  }
  if (v.size() == 1) v = {v[0], v[0], v[0], v[0]};
  else if (v.size() == 2) v = {v[0], v[0], v[1], v[1]};
  else if (v.size() != 4)
    r.error(key, "'" + key + "' must be an int, [height, width] or [top, bottom, left, right]");
  for (int64_t x : v)
    if (x < 0 || x > 4096) r.error(key, "'" + key + "' amounts must be in [0, 4096]");
  s = {v[0], v[1], v[2], v[3]};
  return s;
}

LayerSpec read_layer(const YAML::Node& node, size_t index, ReadContext& ctx) {
  std::string path = "model.layers." + std::to_string(index);
  MapReader r(node, path, ctx);
  if (!node.IsMap()) r.error_here("each layer must be a map with a 'type' key");
  LayerSpec l;
  l.origin.where = where_of(ctx, node, path);
  r.require("type");
  l.type = LayerType::conv2d;
  r.read_enum("type", l.type, kLayerTypes);
  r.read("name", l.name);
  if (r.has("inputs")) {
    YAML::Node in = r.node("inputs");
    if (in.IsScalar()) {
      l.inputs.push_back(in.Scalar());
    } else if (in.IsSequence()) {
      for (const auto& i : in) {
        if (!i.IsScalar()) throw Error(where_of(ctx, i, path + ".inputs") + ": 'inputs' must be layer names");
        l.inputs.push_back(i.Scalar());
      }
    } else {
      r.error("inputs", "'inputs' must be a layer name or a list of layer names");
    }
  } else {
    r.node("inputs");
  }
  switch (l.type) {
    case LayerType::conv2d: l.attrs = read_conv2d(r); break;
    case LayerType::dense: l.attrs = read_dense(r); break;
    case LayerType::maxpool:
    case LayerType::avgpool: l.attrs = read_pool(r); break;
    case LayerType::batchnorm: {
      BatchNormSpec s;
      r.read("momentum", s.momentum);
      r.check_range("momentum", s.momentum, 0, 1);
      r.read("epsilon", s.epsilon);
      r.check_range("epsilon", s.epsilon, 1e-12, 1);
      l.attrs = s;
      break;
    }
    case LayerType::dropout: {
      DropoutSpec s;
      r.read("rate", s.rate);
      r.check_range("rate", s.rate, 0, 0.99);
      l.attrs = s;
      break;
    }
    case LayerType::depthwise_conv2d:
    case LayerType::separable_conv2d: l.attrs = read_depthwise(r, l.type == LayerType::separable_conv2d); break;
    case LayerType::zero_padding2d: l.attrs = read_pad(r, "padding"); break;
    case LayerType::cropping2d: l.attrs = read_pad(r, "cropping"); break;
    case LayerType::add:
    case LayerType::concat: {
      MergeSpec s;
      if (l.type == LayerType::add) r.read_enum("activation", s.activation, kActivations);
      else {
        int64_t axis = -1;
        r.read("axis", axis);
        if (axis != -1 && axis != 3)
          r.error("axis", "concat joins along the channel axis only: 'axis' must be -1 (or 3 for images)");
      }
      if (l.inputs.size() < 2) r.error_here(std::string("a ") + name_of(kLayerTypes, l.type) + " layer needs 'inputs' naming at least two layers");
      l.attrs = s;
      break;
    }
    default: l.attrs = NoAttrs{};
  }
  if (l.name.empty()) l.name = std::string(name_of(kLayerTypes, l.type)) + "_" + std::to_string(index);
  r.finish();
  return l;
}

ModelSpec read_model(MapReader& r) {
  ModelSpec m;
  r.require("input");
  r.read_int_list("input", m.input);
  if (m.input.size() != 3) r.error("input", "'model.input' must be [height, width, channels]");
  for (int64_t d : m.input)
    if (d < 1 || d > 65536) r.error("input", "'model.input' dimensions must be in [1, 65536]");
  if (r.has("preset")) {
    m.preset.origin.where = where_of(r.context(), r.node("preset"), r.key_path("preset"));
    r.read("preset", m.preset.name);
    const auto known = models::preset_names();
    if (std::find(known.begin(), known.end(), m.preset.name) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      r.error("preset", "unknown preset '" + m.preset.name + "'; expected one of: " + list);
    }
    r.read("alpha", m.preset.alpha);
    r.check_range("alpha", m.preset.alpha, 0.01, 16);
    r.read("classes", m.preset.classes);
    r.check_range("classes", static_cast<double>(m.preset.classes), 2, 1 << 20);
    r.read("dropout", m.preset.dropout);
    r.check_range("dropout", m.preset.dropout, 0, 0.99);
    if (r.has("bn_momentum")) {
      double mom = 0;
      r.read("bn_momentum", mom);
      r.check_range("bn_momentum", mom, 0, 1);
      m.preset.bn_momentum = mom;
    } else {
      r.node("bn_momentum");
    }
    r.read_int_list("blocks", m.preset.blocks);
    for (int64_t b : m.preset.blocks)
      if (b < 1 || b > 64) r.error("blocks", "'model.blocks' entries must be in [1, 64]");
    if (r.has("layers")) r.error("layers", "give either 'preset' or 'layers', not both");
    r.finish();
    m.layers = models::preset_layers(m.preset, m.input);
    return m;
  }
  r.require("layers");
  YAML::Node layers = r.node("layers");
  if (!layers.IsSequence() || layers.size() == 0) r.error("layers", "'model.layers' must be a non-empty list of layers");
  std::set<std::string> names;
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerSpec l = read_layer(layers[i], i, r.context());
    if (!names.insert(l.name).second)
      throw Error(l.origin.where + ": duplicate layer name '" + l.name + "'; layer names must be unique");
    m.layers.push_back(std::move(l));
  }
  r.finish();
  return m;
}

DataSpec read_data(MapReader& r) {
  DataSpec d;
  r.require("dataset");
  r.read("dataset", d.dataset);
  r.read("path", d.path);
  r.read("validation_split", d.validation_split);
  r.check_range("validation_split", d.validation_split, 0, 0.9);
  r.read("train_subset", d.train_subset);
  r.check_range("train_subset", static_cast<double>(d.train_subset), 0, kInf);
  r.read("mean", d.mean);
  r.read("std", d.std);
  r.check_range("std", d.std, 1e-6, kInf);
  r.read("pad", d.pad);
  r.check_range("pad", static_cast<double>(d.pad), 0, 1024);
  const bool folder = d.dataset == "image_folder";
  for (const char* k : {"preprocess", "augment", "val_dir", "labels_file", "background_class", "on_bad_image"})
    if (!folder && r.has(k)) r.error(k, std::string("'") + k + "' applies to dataset image_folder only");
  r.read("preprocess", d.preprocess);
  if (d.preprocess != "tf" && d.preprocess != "caffe" && d.preprocess != "torch")
    r.error("preprocess", "unknown value '" + d.preprocess + "' for 'preprocess'; expected one of: tf, caffe, torch");
  r.read("augment", d.augment);
  r.read("val_dir", d.val_dir);
  r.read("labels_file", d.labels_file);
  r.read("background_class", d.background_class);
  r.read("on_bad_image", d.on_bad_image);
  if (d.on_bad_image != "skip" && d.on_bad_image != "fail")
    r.error("on_bad_image", "unknown value '" + d.on_bad_image + "' for 'on_bad_image'; expected one of: skip, fail");
  if (folder && (r.has("mean") || r.has("std") || r.has("pad")))
    r.error(r.has("mean") ? "mean" : r.has("std") ? "std" : "pad",
            "image_folder normalizes with its 'preprocess' preset (tf, caffe, torch), not mean/std/pad");
  r.finish();
  return d;
}

OptimizerSpec read_optimizer(MapReader& r) {
  OptimizerSpec o;
  r.read_enum("type", o.type, kOptimizers);
  r.read("lr", o.lr);
  r.check_range("lr", o.lr, 0, 10);
  r.read("momentum", o.momentum);
  r.check_range("momentum", o.momentum, 0, 0.9999);
  r.read("nesterov", o.nesterov);
  r.read("beta1", o.beta1);
  r.check_range("beta1", o.beta1, 0, 0.9999999);
  r.read("beta2", o.beta2);
  r.check_range("beta2", o.beta2, 0, 0.9999999);
  r.read("epsilon", o.epsilon);
  r.check_range("epsilon", o.epsilon, 1e-12, 1);
  r.read("weight_decay", o.weight_decay);
  r.check_range("weight_decay", o.weight_decay, 0, 1);
  if (o.type != OptimizerKind::sgd && (r.has("momentum") || r.has("nesterov")))
    r.error(r.has("momentum") ? "momentum" : "nesterov", "'momentum' and 'nesterov' apply to optimizer type sgd only");
  if (o.nesterov && o.momentum == 0.0) r.error("nesterov", "'nesterov: true' needs a momentum > 0");
  r.finish();
  return o;
}

ScheduleSpec read_schedule(MapReader& r) {
  ScheduleSpec s;
  r.read_enum("type", s.type, kSchedules);
  r.read("warmup_steps", s.warmup_steps);
  r.check_range("warmup_steps", static_cast<double>(s.warmup_steps), 0, kInf);
  r.read("step_size", s.step_size);
  r.check_range("step_size", static_cast<double>(s.step_size), 0, kInf);
  r.read("gamma", s.gamma);
  r.check_range("gamma", s.gamma, 0, 1);
  r.read("min_lr", s.min_lr);
  r.check_range("min_lr", s.min_lr, 0, 10);
  r.finish();
  return s;
}

void read_bits(MapReader& r, int64_t& bits) {
  r.read("bits", bits);
  r.check_range("bits", static_cast<double>(bits), 2, 8);
}

WeightQuantSpec read_weight_quant(MapReader& r, WeightQuantSpec w) {
  read_bits(r, w.bits);
  r.read("symmetric", w.symmetric);
  if (r.has("granularity")) {
    Granularity g = Granularity::per_channel;
    r.read_enum("granularity", g, kGranularities);
    w.granularity = g;
  } else {
    r.node("granularity");
  }
  r.read("narrow_range", w.narrow_range);
  if (!w.symmetric) r.error("symmetric", "asymmetric weights are not supported: the int8 kernels take symmetric weights (zero point 0)");
  r.finish();
  return w;
}

ActivationQuantSpec read_activation_quant(MapReader& r, ActivationQuantSpec a) {
  read_bits(r, a.bits);
  r.read("symmetric", a.symmetric);
  r.read_enum("observer", a.observer, kObservers);
  r.read("ema_decay", a.ema_decay);
  r.check_range("ema_decay", a.ema_decay, 0, 0.999999);
  r.read_enum("init", a.init, kInits);
  r.finish();
  return a;
}

QuantSpec read_quant(MapReader& r) {
  QuantSpec q;
  {
    MapReader w = r.map("weights");
    q.weights = read_weight_quant(w, q.weights);
  }
  {
    MapReader a = r.map("activations");
    q.activations = read_activation_quant(a, q.activations);
  }
  if (r.has("overrides")) {
    YAML::Node list = r.node("overrides");
    if (!list.IsSequence()) r.error("overrides", "'quant.overrides' must be a list of {match: ..., ...}");
    for (size_t i = 0; i < list.size(); ++i) {
      std::string path = "quant.overrides." + std::to_string(i);
      MapReader o(list[i], path, r.context());
      QuantOverride ov;
      ov.origin.where = where_of(r.context(), list[i], path);
      o.require("match");
      o.read("match", ov.match);
      if (o.has("weights")) {
        MapReader w = o.map("weights");
        ov.weights = read_weight_quant(w, q.weights);
      } else {
        o.node("weights");
      }
      if (o.has("activations")) {
        MapReader a = o.map("activations");
        ov.activations = read_activation_quant(a, q.activations);
      } else {
        o.node("activations");
      }
      o.read("skip", ov.skip);
      o.finish();
      q.overrides.push_back(std::move(ov));
    }
  } else {
    r.node("overrides");
  }
  r.finish();
  return q;
}

PtqSpec read_ptq(MapReader& r) {
  PtqSpec p;
  r.read("batches", p.batches);
  r.check_range("batches", static_cast<double>(p.batches), 1, 1e6);
  r.read("batch_size", p.batch_size);
  r.check_range("batch_size", static_cast<double>(p.batch_size), 1, 1 << 20);
  r.read_enum("method", p.method, kRangeMethods);
  r.read("percentile", p.percentile);
  r.check_range("percentile", p.percentile, 50, 100);
  r.read_enum("weight_method", p.weight_method, kRangeMethods);
  if (p.weight_method == RangeMethod::percentile)
    r.error("weight_method", "'ptq.weight_method' must be minmax or mse");
  r.finish();
  return p;
}

QatSpec read_qat(MapReader& r) {
  QatSpec q;
  r.read("epochs", q.epochs);
  r.check_range("epochs", static_cast<double>(q.epochs), 1, 100000);
  r.read("steps", q.steps);
  r.check_range("steps", static_cast<double>(q.steps), 0, 1e12);
  r.read("subset", q.subset);
  r.check_range("subset", static_cast<double>(q.subset), 0, kInf);
  r.read("batch_size", q.batch_size);
  r.check_range("batch_size", static_cast<double>(q.batch_size), 1, 1 << 20);
  MapReader opt = r.map("optimizer");
  q.optimizer = read_optimizer(opt);
  MapReader sched = r.map("schedule");
  q.schedule = read_schedule(sched);
  r.read("quant_delay_steps", q.quant_delay_steps);
  r.check_range("quant_delay_steps", static_cast<double>(q.quant_delay_steps), 0, kInf);
  r.read("freeze_bn_after_steps", q.freeze_bn_after_steps);
  r.check_range("freeze_bn_after_steps", static_cast<double>(q.freeze_bn_after_steps), -1, kInf);
  r.read("freeze_observers_after_steps", q.freeze_observers_after_steps);
  r.check_range("freeze_observers_after_steps", static_cast<double>(q.freeze_observers_after_steps), -1, kInf);
  r.read("checkpoint_every_steps", q.checkpoint_every_steps);
  r.check_range("checkpoint_every_steps", static_cast<double>(q.checkpoint_every_steps), 0, kInf);
  r.finish();
  return q;
}

TrainSpec read_train(MapReader& r) {
  TrainSpec t;
  r.read("epochs", t.epochs);
  r.check_range("epochs", static_cast<double>(t.epochs), 1, 100000);
  r.read("batch_size", t.batch_size);
  r.check_range("batch_size", static_cast<double>(t.batch_size), 1, 1 << 20);
  MapReader opt = r.map("optimizer");
  t.optimizer = read_optimizer(opt);
  MapReader sched = r.map("schedule");
  t.schedule = read_schedule(sched);
  r.read("shuffle", t.shuffle);
  r.read("checkpoint_every_steps", t.checkpoint_every_steps);
  r.check_range("checkpoint_every_steps", static_cast<double>(t.checkpoint_every_steps), 0, kInf);
  r.finish();
  return t;
}

// Applies one "a.b.c=value" override to the document.
void apply_override(YAML::Node root, const std::string& spec, ReadContext& ctx) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--set {}: expected KEY=VALUE, for example --set train.epochs=3", spec);
  std::string key = spec.substr(0, eq);
  std::string value = spec.substr(eq + 1);
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    fail("--set {}: value is not valid YAML: {}", spec, e.msg);
  }
  std::vector<std::string> parts;
  for (size_t b = 0;;) {
    size_t d = key.find('.', b);
    parts.push_back(key.substr(b, d == std::string::npos ? std::string::npos : d - b));
    if (d == std::string::npos) break;
    b = d + 1;
  }
  for (const auto& p : parts)
    if (p.empty()) fail("--set {}: empty key segment", spec);
  // yaml-cpp nodes are handles: walking with reassignment would rebind, so recurse.
  std::function<void(YAML::Node, size_t)> set_at = [&](YAML::Node node, size_t i) {
    const std::string& p = parts[i];
    bool last = i + 1 == parts.size();
    if (node.IsSequence()) {
      size_t idx = 0;
      try {
        size_t used = 0;
        idx = std::stoul(p, &used);
        if (used != p.size()) throw std::invalid_argument(p);
      } catch (const std::exception&) {
        fail("--set {}: '{}' is a list; address its items by index", spec, p);
      }
      if (idx >= node.size()) fail("--set {}: index {} is past the end of a list of {}", spec, idx, node.size());
      if (last) node[idx] = parsed;
      else set_at(node[idx], i + 1);
      return;
    }
    if (!node.IsMap() && !node.IsNull())
      fail("--set {}: '{}' is a value, not a section", spec, parts[i - 1]);
    if (last) {
      node[p] = parsed;
    } else {
      YAML::Node child = node[p];
      if (!child.IsDefined() || child.IsNull()) node[p] = YAML::Node(YAML::NodeType::Map);
      set_at(node[p], i + 1);
    }
  };
  set_at(root, 0);
  ctx.overridden.insert(key);
}

}  // namespace

const char* to_string(LayerType t) { return name_of(kLayerTypes, t); }
const char* to_string(Stage s) { return name_of(kStages, s); }
const char* to_string(Activation a) { return name_of(kActivations, a); }

Recipe parse_recipe(const std::string& text, const std::string& label, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw Error(fmt::format("{}:{}:{}: YAML syntax error: {}", label, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (!root.IsMap()) throw Error(label + ": a recipe must be a YAML map (name, model, data, train, ...)");
  ReadContext ctx;
  ctx.file = label;
  for (const auto& o : overrides) apply_override(root, o, ctx);

  Recipe rc;
  rc.file = label;
  MapReader r(root, "", ctx);
  r.require("name");
  r.read("name", rc.name);
  if (rc.name.empty() || rc.name.find_first_of("/\\ \t") != std::string::npos || rc.name == "." || rc.name == "..")
    r.error("name", "'name' must be a non-empty word without slashes or spaces (it names the run folder)");
  r.read("seed", rc.seed);
  if (r.has("stages")) {
    YAML::Node st = r.node("stages");
    if (!st.IsSequence() || st.size() == 0) r.error("stages", "'stages' must be a non-empty list");
    for (const auto& s : st) {
      std::string n = s.IsScalar() ? s.Scalar() : "";
      bool found = false;
      for (const auto& [sn, sv] : kStages)
        if (sn == n) {
          rc.stages.push_back(sv);
          found = true;
        }
      if (!found) {
        std::string choices;
        for (const auto& [sn, sv] : kStages) choices += (choices.empty() ? "" : ", ") + sn;
        throw Error(where_of(ctx, s, "stages") + ": unknown stage '" + n + "'; expected one of: " + choices);
      }
    }
  } else {
    r.node("stages");
    rc.stages = {Stage::train, Stage::eval, Stage::report};
  }
  {
    MapReader m = r.map("model");
    if (!r.has("model")) r.error_here("missing required key 'model'");
    rc.model = read_model(m);
  }
  {
    MapReader d = r.map("data");
    if (!r.has("data")) r.error_here("missing required key 'data'");
    rc.data = read_data(d);
  }
  {
    MapReader t = r.map("train");
    rc.train = read_train(t);
  }
  {
    MapReader q = r.map("quant");
    rc.quant = read_quant(q);
  }
  {
    MapReader p = r.map("ptq");
    rc.ptq = read_ptq(p);
  }
  {
    MapReader q = r.map("qat");
    rc.qat = read_qat(q);
  }
  {
    MapReader e = r.map("eval");
    e.read("batch_size", rc.eval.batch_size);
    e.check_range("batch_size", static_cast<double>(rc.eval.batch_size), 1, 1 << 20);
    if (e.read("max_accuracy_drop", rc.eval.max_accuracy_drop))
      e.check_range("max_accuracy_drop", rc.eval.max_accuracy_drop, 0, 1);
    e.read("latency_images", rc.eval.latency_images);
    e.check_range("latency_images", static_cast<double>(rc.eval.latency_images), 5, 1e6);
    e.finish();
  }
  r.finish();

  YAML::Emitter out;
  out << root;
  rc.resolved_yaml = out.c_str();
  if (!ctx.defaults_used.empty()) {
    std::string line;
    for (const auto& d : ctx.defaults_used) line += (line.empty() ? "" : ", ") + d;
    spdlog::debug("{}: defaults used: {}", label, line);
  }
  return rc;
}

Recipe load_recipe(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec))
    fail("{}: recipe file not found (recipes ship under recipes/, e.g. recipes/mnist/tfmot_cnn.yaml)", file.string());
  return parse_recipe(read_file(file), file.string(), overrides);
}

}  // namespace qatc::recipe
