// Conversion: the int8 model agrees with the fake-quant model it came from, layer by layer.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "convert/convert.h"
#include "core/threads.h"
#include "kernels/opt/isa.h"
#include "data/loader.h"
#include "data/source.h"
#include "fixtures/tiny.h"
#include "nn/graph.h"
#include "quant/quant_model.h"
#include "runtime/evaluate.h"
#include "runtime/executor.h"
#include "train/trainer.h"

using namespace qatc;

namespace {

const char* kModel = R"(name: c
seed: 2
data: {dataset: mnist, validation_split: 0.25}
model:
  input: [8, 8, 1]
  layers:
    - {type: conv2d, name: conv1, filters: 6, kernel: 3, padding: same, use_bias: false}
    - {type: batchnorm, name: bn1}
    - {type: relu, name: relu1}
    - {type: maxpool, name: pool, pool: 2}
    - {type: conv2d, name: conv2, filters: 8, kernel: 3, strides: 2, padding: same, activation: relu6}
    - {type: flatten, name: flat}
    - {type: dense, name: fc, units: 12, activation: relu}
    - {type: dense, name: logits, units: 3}
train: {epochs: 2, batch_size: 8, optimizer: {type: adam, lr: 0.01}}
qat: {epochs: 2, batch_size: 8, freeze_bn_after_steps: 10}
)";

// Every DAG op on the int8 side: depthwise (stride 2, multiplier 2), separable, zero padding
// and cropping, residual add with a fused ReLU, a three-way concat, BatchNorm and ReLU/ReLU6
// that follow no convolution (run as 1x1 depthwise), a 'same' average pool.
const char* kDagModel = R"(name: dag
seed: 3
data: {dataset: mnist, validation_split: 0.25}
model:
  input: [8, 8, 1]
  layers:
    - {type: conv2d, name: stem, filters: 4, kernel: 3, padding: same, use_bias: false}
    - {type: batchnorm, name: stem_bn}
    - {type: relu6, name: stem_relu}
    - {type: zero_padding2d, name: pad, padding: [0, 1, 0, 1]}
    - {type: depthwise_conv2d, name: dw, kernel: 3, strides: 2, depth_multiplier: 2, use_bias: false}
    - {type: batchnorm, name: dw_bn}
    - {type: relu, name: dw_relu}
    - {type: conv2d, name: pw, filters: 8, kernel: 1, use_bias: false}
    - {type: batchnorm, name: pw_bn}
    - {type: add, name: res, inputs: [pw_bn, dw_relu], activation: relu}
    - {type: separable_conv2d, name: sep, filters: 4, kernel: 3, padding: same, activation: relu}
    - {type: avgpool, name: avg, pool: 3, strides: 1, padding: same, inputs: res}
    - {type: relu6, name: avg_relu}
    - {type: zero_padding2d, name: pad2, padding: [0, 1, 0, 1], inputs: res}
    - {type: cropping2d, name: crop2, cropping: [1, 0, 1, 0]}
    - {type: concat, name: cat, inputs: [sep, avg_relu, crop2]}
    - {type: batchnorm, name: lone_bn}
    - {type: relu, name: lone_relu}
    - {type: global_avgpool, name: gap}
    - {type: dense, name: logits, units: 3}
train: {epochs: 2, batch_size: 8, optimizer: {type: adam, lr: 0.01}}
qat: {epochs: 2, batch_size: 8, freeze_bn_after_steps: 10}
)";

struct Trained {
  recipe::Recipe r;
  std::unique_ptr<nn::Graph> g;
  std::unique_ptr<quant::QuantModel> q;
  data::Dataset ds;
};

// Float training then QAT on the tiny task, all in memory.
Trained train_qat(const char* yaml = kModel, const std::vector<std::string>& sets = {}) {
  Trained t;
  t.r = recipe::parse_recipe(yaml, "c.yaml", sets);
  t.g = std::make_unique<nn::Graph>(nn::build_graph(t.r.model));
  t.ds = testing::tiny_dataset(200);
  data::Split s = data::make_split(t.ds.n, t.r.data);
  data::MemorySource src(t.ds, t.r.data);
  std::vector<float> p(static_cast<size_t>(t.g->param_floats));
  nn::init_params(*t.g, p.data(), t.r.seed);
  auto dir = std::filesystem::temp_directory_path() / ("qatc_convert_test_" + std::to_string(::getpid()));
  train::LoopConfig c;
  c.epochs = 2;
  c.batch_size = 8;
  c.optimizer = t.r.train.optimizer;
  c.data = t.r.data;
  c.state_path = dir / "s.ckpt";
  train::FloatModel f(*t.g, p, 8, true);
  train::train_loop(f, src, s.train, s.validation, c, dir);
  quant::QatSchedule sched{0, t.r.qat.freeze_bn_after_steps, -1};
  t.q = std::make_unique<quant::QuantModel>(*t.g, quant::make_plan(*t.g, t.r.quant), f.params(), 8, true, sched);
  c.stage = "qat";
  train::train_loop(*t.q, src, s.train, s.validation, c, dir);
  std::filesystem::remove_all(dir);
  return t;
}

}  // namespace

void check_tensors_close(const char* yaml) {
  Trained t = train_qat(yaml);
  runtime::IntModel m = convert::to_int_model(*t.q, t.r, "qat");
  const int64_t n = 16;
  std::vector<int32_t> idx = data::all_indices(t.ds);
  std::vector<uint8_t> px(static_cast<size_t>(n * 64));
  std::vector<float> xf(static_cast<size_t>(n * 64));
  std::vector<int32_t> y(static_cast<size_t>(n));
  data::gather_pixels(t.ds, idx.data(), n, px.data(), y.data());
  data::gather_batch(t.ds, idx.data(), n, t.r.data, xf.data(), y.data());
  runtime::Executor ex(m, n, /*keep_all_tensors=*/true);
  ex.run(px.data(), n);
  t.q->forward(xf.data(), n, nn::Mode::eval, 0);
  for (size_t ti = 0; ti < m.tensors.size(); ++ti) {
    const runtime::QTensor& qt = m.tensors[ti];
    const int node = t.g->find(qt.name);
    REQUIRE(node >= 0);
    // The fake-quant model's value of that node, re-read through the engine.
    const float* fq = t.q->activation(static_cast<size_t>(node));
    const quant::QParams qp{static_cast<float>(qt.scale), qt.zero_point, -128, 127};
    const int8_t* qi = ex.tensor(ti);
    int64_t worst = 0, count = n * numel(qt.shape), close = 0;
    for (int64_t k = 0; k < count; ++k) {
      const int64_t d = std::abs(qi[k] - quant::quantize(fq[k], qp));
      worst = std::max(worst, d);
      close += d <= 1;
    }
    CAPTURE(qt.name);
    CHECK(worst <= 2);
    CHECK(static_cast<double>(close) / static_cast<double>(count) >= 0.99);
  }
}

TEST_CASE("convert: every int8 tensor is within one step of the fake-quant model") { check_tensors_close(kModel); }

// Each int8 layer alone, fed the fake-quant model's own (quantized) inputs, gives the
// fake-quant model's output to within one step: differences do not come from any layer's
// integer arithmetic, only from rounding that propagates (the whole-model tests above).
void check_layers_exact(const char* yaml) {
  Trained t = train_qat(yaml);
  runtime::IntModel m = convert::to_int_model(*t.q, t.r, "qat");
  const int64_t n = 16;
  std::vector<int32_t> idx = data::all_indices(t.ds);
  std::vector<float> xf(static_cast<size_t>(n * 64));
  std::vector<int32_t> y(static_cast<size_t>(n));
  data::gather_batch(t.ds, idx.data(), n, t.r.data, xf.data(), y.data());
  t.q->forward(xf.data(), n, nn::Mode::eval, 0);
  runtime::Executor ex(m, n);
  // The fake-quant value of tensor ti, on that tensor's integer grid.
  auto sim_q = [&](size_t ti) {
    const runtime::QTensor& qt = m.tensors[ti];
    const int node = t.g->find(qt.name);
    REQUIRE(node >= 0);
    const float* fq = t.q->activation(static_cast<size_t>(node));
    const quant::QParams qp{static_cast<float>(qt.scale), qt.zero_point, -128, 127};
    std::vector<int8_t> q(static_cast<size_t>(n * numel(qt.shape)));
    for (size_t k = 0; k < q.size(); ++k) q[k] = static_cast<int8_t>(quant::quantize(fq[k], qp));
    return q;
  };
  for (size_t li = 0; li < m.layers.size(); ++li) {
    const runtime::IntLayer& l = m.layers[li];
    std::vector<std::vector<int8_t>> ins;
    std::vector<const int8_t*> ptrs;
    for (int32_t ti : l.inputs) ins.push_back(sim_q(static_cast<size_t>(ti)));
    for (const auto& v : ins) ptrs.push_back(v.data());
    const std::vector<int8_t> want = sim_q(static_cast<size_t>(l.output));
    std::vector<int8_t> got(want.size());
    ex.run_layer(li, ptrs.data(), got.data(), n);
    int64_t worst = 0;
    for (size_t k = 0; k < got.size(); ++k) worst = std::max<int64_t>(worst, std::abs(got[k] - want[k]));
    CAPTURE(l.name);
    CAPTURE(runtime::layer_kind(l));
    CHECK(worst == 0);
  }
}

TEST_CASE("convert: each int8 layer given the fake-quant inputs is within one step of its output") {
  check_layers_exact(kModel);
}

TEST_CASE("convert: DAG ops (depthwise, separable, pad, crop, add, concat, lone BN/ReLU) per layer") {
  check_layers_exact(kDagModel);
}

TEST_CASE("convert: the memory plan gives the same logits as one buffer per tensor") {
  Trained t = train_qat(kDagModel);
  runtime::IntModel m = convert::to_int_model(*t.q, t.r, "qat");
  std::vector<int32_t> idx = data::all_indices(t.ds);
  std::vector<uint8_t> px(static_cast<size_t>(40 * 64));
  std::vector<int32_t> y(40);
  data::gather_pixels(t.ds, idx.data(), 40, px.data(), y.data());
  runtime::Executor planned(m, 40), separate(m, 40, true);
  const int8_t* a = planned.run(px.data(), 40);
  const int8_t* b = separate.run(px.data(), 40);
  for (int64_t k = 0; k < 40 * 3; ++k) REQUIRE(a[k] == b[k]);
  CHECK(planned.arena_bytes() < separate.arena_bytes());
}

TEST_CASE("convert: simulated equals integer on the whole tiny set") {
  for (const char* yaml : {kModel, kDagModel}) {
  Trained t = train_qat(yaml);
  runtime::IntModel m = convert::to_int_model(*t.q, t.r, "qat");
  runtime::Agreement a = runtime::compare_with_fakequant(m, *t.q, data::MemorySource(t.ds, t.r.data), data::all_indices(t.ds), 32);
  CHECK(a.examples == 200);
  // The fake-quant model in eval mode rounds as the integer kernels do: equal logits.
  CHECK(a.top1 == 1.0);
  CHECK(a.max_step_diff == 0);
  }
}

TEST_CASE("convert: the optimized kernels equal the reference ones on whole models, every ISA, 1 and 2 threads") {
  for (const char* yaml : {kModel, kDagModel}) {
    Trained t = train_qat(yaml);
    runtime::IntModel m = convert::to_int_model(*t.q, t.r, "qat");
    std::vector<int32_t> idx = data::all_indices(t.ds);
    const int64_t n = 40;
    std::vector<uint8_t> px(static_cast<size_t>(n * 64));
    std::vector<int32_t> y(static_cast<size_t>(n));
    data::gather_pixels(t.ds, idx.data(), n, px.data(), y.data());
    runtime::set_kernels("ref");
    runtime::Executor want(m, n, true);
    want.run(px.data(), n);
    opt::set_min_parallel_macs(0);  // split every layer, however small
    for (opt::Isa isa : opt::supported_isas()) {
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        runtime::set_kernels(opt::to_string(isa));
        runtime::Executor got(m, n, true);
        got.run(px.data(), n);
        for (size_t ti = 0; ti < m.tensors.size(); ++ti) {
          CAPTURE(m.tensors[ti].name);
          CAPTURE(opt::to_string(isa));
          const int64_t count = n * numel(m.tensors[ti].shape);
          CHECK(std::memcmp(want.tensor(ti), got.tensor(ti), static_cast<size_t>(count)) == 0);
        }
        // An executor that owns its copy keeps only the packed arrays, and runs the same, in
        // passes of 3 images (the last one of 1).
        const int64_t image_bytes = runtime::Executor(m, 1).arena_bytes();
        runtime::set_pass_activation_bytes(3 * image_bytes);
        runtime::Executor owner(runtime::IntModel(m), n);
        runtime::set_pass_activation_bytes(runtime::kPassActivationBytes);
        CHECK(owner.arena_bytes() == 3 * image_bytes);
        for (const auto& l : owner.model().layers)
          if (const auto* c = std::get_if<runtime::ConvLayer>(&l.params))
            CHECK((c->weights.empty() && c->bias.empty() && c->multiplier.empty() && c->shift.empty() &&
                   c->weight_scales.empty()));
        const int8_t* logits = owner.run(px.data(), n);
        CHECK(std::memcmp(want.tensor(static_cast<size_t>(m.output)), logits,
                          static_cast<size_t>(n * m.classes())) == 0);
      }
    }
    set_num_threads(0);
    runtime::set_kernels("opt");
    opt::set_min_parallel_macs(opt::kDefaultMinParallelMacs);
  }
}
