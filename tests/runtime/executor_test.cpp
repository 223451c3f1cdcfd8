// The executor that owns its model: one copy of the weights, the same logits.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <string>

#include "core/rng.h"
#include "kernels/opt/isa.h"
#include "runtime/executor.h"
#include "runtime/small_model.h"

using namespace qatc;

namespace {

int64_t unpacked_weight_bytes(const runtime::IntModel& m) {
  int64_t bytes = 0;
  for (const auto& l : m.layers)
    if (const auto* c = std::get_if<runtime::ConvLayer>(&l.params))
      bytes += static_cast<int64_t>(c->weights.capacity());
  return bytes;
}

std::vector<uint8_t> random_pixels(const runtime::IntModel& m, int64_t n) {
  Rng rng(11);
  std::vector<uint8_t> px(static_cast<size_t>(n * numel(m.tensors[0].shape)));
  for (auto& p : px) p = static_cast<uint8_t>(rng.below(256));
  return px;
}

// The logits of the reference kernels on px (the executor keeps the kernels it was made with).
std::vector<int8_t> reference_logits(const runtime::IntModel& m, const std::vector<uint8_t>& px, int64_t n) {
  runtime::set_kernels("ref");
  runtime::Executor want(m, n);
  const int8_t* w = want.run(px.data(), n);
  return {w, w + n * m.classes()};
}

// For every instruction set this CPU has: an executor of m on the optimized kernels, which
// `checks` inspects, then its logits on random pixels against the reference kernels'.
void for_every_isa(const runtime::IntModel& m, int64_t n,
                   const std::function<void(runtime::Executor&, opt::Isa)>& checks) {
  const std::vector<uint8_t> px = random_pixels(m, n);
  const std::vector<int8_t> expected = reference_logits(m, px, n);
  for (opt::Isa isa : opt::supported_isas()) {
    const std::string name = opt::to_string(isa);
    CAPTURE(name);
    runtime::set_kernels(name);
    runtime::Executor got(m, n);
    checks(got, isa);
    CHECK(std::memcmp(got.run(px.data(), n), expected.data(), expected.size()) == 0);
  }
  runtime::set_kernels("opt");
}

size_t layer_index(const runtime::IntModel& m, const std::string& name) {
  for (size_t i = 0; i < m.layers.size(); ++i)
    if (m.layers[i].name == name) return i;
  FAIL("no layer " << name);
  return 0;
}

}  // namespace

TEST_CASE("executor: owning its model, it frees the unpacked weights and equals the reference kernels") {
  const runtime::IntModel m = testing::small_int_model();
  REQUIRE(unpacked_weight_bytes(m) > 0);
  const int64_t n = 3;
  const std::vector<uint8_t> px = random_pixels(m, n);
  const std::vector<int8_t> expected = reference_logits(m, px, n);
  const size_t logits = expected.size();
  for (opt::Isa isa : opt::supported_isas()) {
    CAPTURE(opt::to_string(isa));
    runtime::set_kernels(opt::to_string(isa));
    runtime::IntModel copy = m;
    runtime::Executor got(std::move(copy), n);
    CHECK(unpacked_weight_bytes(got.model()) == 0);
    CHECK(got.model().layers.size() == m.layers.size());
    CHECK(std::memcmp(got.run(px.data(), n), expected.data(), logits) == 0);
  }
  // The reference kernels read the unpacked weights: an owning executor keeps them.
  runtime::set_kernels("ref");
  runtime::IntModel copy = m;
  runtime::Executor ref(std::move(copy), n);
  CHECK(unpacked_weight_bytes(ref.model()) == unpacked_weight_bytes(m));
  CHECK(std::memcmp(ref.run(px.data(), n), expected.data(), logits) == 0);
  runtime::set_kernels("opt");
}

TEST_CASE("executor: owning layers of many pages and panels, released as they are packed, equals the reference") {
  // conv 3x3 of 24 -> 200 channels (43 KB) and dense 1800 -> 150 (270 KB): 4 and 3 panels of
  // 64 channels, each panel's rows spanning whole pages, which leave memory as it is packed.
  const runtime::IntModel m = testing::int_model_from_recipe(R"(name: wide
seed: 3
data: {dataset: mnist}
model:
  input: [6, 6, 24]
  layers:
    - {type: conv2d, name: c, filters: 200, kernel: 3, padding: same, activation: relu}
    - {type: maxpool, name: pool, pool: 2}
    - {type: flatten, name: flat}
    - {type: dense, name: fc, units: 150}
)");
  const int64_t n = 2;
  const std::vector<uint8_t> px = random_pixels(m, n);
  const std::vector<int8_t> expected = reference_logits(m, px, n);
  for (opt::Isa isa : opt::supported_isas()) {
    CAPTURE(opt::to_string(isa));
    runtime::set_kernels(opt::to_string(isa));
    runtime::IntModel copy = m;
    runtime::Executor got(std::move(copy), n);
    CHECK(std::memcmp(got.run(px.data(), n), expected.data(), expected.size()) == 0);
  }
  runtime::set_kernels("opt");
}

TEST_CASE("executor: the largest activation pair counts a layer's inputs and output, not views") {
  // [2,2,1] -conv 1x1-> [2,2,16] -flatten-> [64] -dense-> [3], and an add of the conv output with
  // itself: the add's 3 * 64 is the largest; the flatten (a view, 128 if counted) is not.
  runtime::IntModel m;
  for (const Shape& s : {Shape{2, 2, 1}, Shape{2, 2, 16}, Shape{64}, Shape{3}, Shape{2, 2, 16}})
    m.tensors.push_back({"t", s});
  m.layers.push_back({"conv", {0}, 1, runtime::ConvLayer{}});
  m.layers.push_back({"flat", {1}, 2, runtime::ReshapeLayer{}});
  m.layers.push_back({"fc", {2}, 3, runtime::ConvLayer{runtime::ConvKind::dense}});
  CHECK(runtime::largest_activation_pair_bytes(m, 1) == 4 + 64);
  CHECK(runtime::largest_activation_pair_bytes(m, 5) == 5 * 68);
  m.layers.push_back({"sum", {1, 1}, 4, runtime::AddLayer{}});
  CHECK(runtime::largest_activation_pair_bytes(m, 2) == 2 * 192);
}

TEST_CASE("executor: the activation arena of a chain is its largest pair") {
  // [8,8,16] -pool-> [4,4,16] -pad-> [6,6,16] -pool-> [3,3,16] -add itself-> [3,3,16]: the
  // first pool's 1024 + 256 bytes; a tensor of 144 takes 192 (64-byte aligned).
  runtime::IntModel m;
  for (const Shape& s : {Shape{8, 8, 16}, Shape{4, 4, 16}, Shape{6, 6, 16}, Shape{3, 3, 16}, Shape{3, 3, 16}})
    m.tensors.push_back({"t", s});
  m.layers.push_back({"pool1", {0}, 1, runtime::PoolLayer{}});
  m.layers.push_back({"pad", {1}, 2, runtime::PadLayer{1, 1, 1, 1}});
  m.layers.push_back({"pool2", {2}, 3, runtime::PoolLayer{}});
  m.layers.push_back({"sum", {3, 3}, 4, runtime::AddLayer{}});
  m.output = 4;
  CHECK(runtime::largest_activation_pair_bytes(m, 1) == 1280);
  CHECK(runtime::Executor(m, 1).arena_bytes() == 1280);
  CHECK(runtime::Executor(m, 3).arena_bytes() == 3 * 1280);
  CHECK(runtime::Executor(m, 1, /*keep_all_tensors=*/true).arena_bytes() == 1024 + 256 + 576 + 192 + 192);
}

TEST_CASE("executor: convs read through the Pads before them and a narrow 1x1 expansion runs on vpdpbusd; logits equal the reference") {
  // e: 1x1 of 16 -> 64 channels (under amx, packed for avx512_vnni: opt::gemm_isa). p1, p2,
  // p3: Pads only a conv or depthwise conv reads, fused into it (p3's 2 rows on top of a
  // 3-row kernel); p4's 3 rows are not less than its 1x1 conv's kernel, so it runs itself.
  const runtime::IntModel m = testing::int_model_from_recipe(R"(name: pads
seed: 5
data: {dataset: mnist}
model:
  input: [10, 10, 16]
  layers:
    - {type: conv2d, name: e, filters: 64, kernel: 1, activation: relu6}
    - {type: zero_padding2d, name: p1, padding: [0, 1, 0, 1]}
    - {type: depthwise_conv2d, name: dw, kernel: 3, strides: 2, padding: valid, activation: relu6}
    - {type: zero_padding2d, name: p2, padding: [1, 1, 1, 1]}
    - {type: conv2d, name: c, filters: 24, kernel: 3, strides: 2, padding: valid}
    - {type: zero_padding2d, name: p3, padding: [2, 0, 0, 2]}
    - {type: depthwise_conv2d, name: dw2, kernel: 3, padding: valid}
    - {type: zero_padding2d, name: p4, padding: [3, 0, 0, 0]}
    - {type: conv2d, name: c2, filters: 8, kernel: 1}
    - {type: flatten, name: flat}
    - {type: dense, name: logits, units: 5}
)");
  auto layer = [&](const std::string& name) { return layer_index(m, name); };
  for_every_isa(m, 3, [&](runtime::Executor& got, opt::Isa) {
    CHECK(got.done_by(layer("p1")) == static_cast<int>(layer("dw")));
    CHECK(got.done_by(layer("p2")) == static_cast<int>(layer("c")));
    CHECK(got.done_by(layer("p3")) == static_cast<int>(layer("dw2")));
    CHECK(got.done_by(layer("p4")) == -1);
    // Timed per layer (then run again by for_every_isa); a fused Pad takes no time of its own.
    got.set_profile(true);
    std::vector<uint8_t> px(static_cast<size_t>(numel(m.tensors[0].shape)), 77);
    got.run(px.data(), 1);
    CHECK(got.layer_ms()[layer("p1")] == 0.0);
    CHECK(got.layer_ms()[layer("dw")] > 0.0);
  });
  CHECK(opt::gemm_isa(16, 1, 1, 64) == (opt::active_isa() == opt::Isa::amx ? opt::Isa::avx512_vnni : opt::active_isa()));
  CHECK(opt::gemm_isa(16, 1, 1, 48) == opt::active_isa());
  CHECK(opt::gemm_isa(16, 3, 3, 64) == opt::active_isa());
}

TEST_CASE("executor: a fused Add writes over its other input when nothing reads it later; logits equal the reference") {
  // s1 = b2 + a: a is read last by s1, which takes a's memory (where Adds are fused: amx).
  // s2 = c + s1: c reads s1 itself, so s2 has memory of its own; s3 = d2 + s2: e reads s2
  // after s3, likewise.
  const runtime::IntModel m = testing::int_model_from_recipe(R"(name: inplace
seed: 9
data: {dataset: mnist}
model:
  input: [8, 8, 64]
  layers:
    - {type: conv2d, name: a, filters: 64, kernel: 3, padding: same, activation: relu}
    - {type: conv2d, name: b, filters: 48, kernel: 1, activation: relu}
    - {type: conv2d, name: b2, filters: 64, kernel: 3, padding: same}
    - {type: add, name: s1, inputs: [b2, a]}
    - {type: conv2d, name: c, filters: 64, kernel: 1}
    - {type: add, name: s2, inputs: [s1, c]}
    - {type: conv2d, name: d, filters: 48, kernel: 3, padding: same, inputs: s2}
    - {type: conv2d, name: d2, filters: 64, kernel: 1}
    - {type: add, name: s3, inputs: [d2, s2]}
    - {type: conv2d, name: e, filters: 64, kernel: 1, inputs: s2}
    - {type: concat, name: cat, inputs: [s3, e]}
    - {type: flatten, name: flat}
    - {type: dense, name: logits, units: 5}
)");
  auto index = [&](const std::string& name) { return layer_index(m, name); };
  auto out = [&](const std::string& name) { return static_cast<size_t>(m.layers[index(name)].output); };
  for_every_isa(m, 2, [&](runtime::Executor& got, opt::Isa isa) {
    const bool fused = isa == opt::Isa::amx;
    for (const char* add : {"s1", "s2", "s3"})
      CHECK(got.done_by(index(add)) == (fused ? static_cast<int>(index(add)) - 1 : -1));
    CHECK((got.tensor(out("s1")) == got.tensor(out("a"))) == fused);
    CHECK(got.tensor(out("s2")) != got.tensor(out("s1")));
    CHECK(got.tensor(out("s3")) != got.tensor(out("s2")));
  });
}
