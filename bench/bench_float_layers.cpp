// Times forward and backward of the float training layers of recipes/mnist/cnn_bn.yaml at batch 128,
// the float inference executor on a preset network, and the register peak of vfmadd231ps.
//
//   bench_float_layers [--threads N] [--repeats R] [--batch B] [--only NAME] [--stat median|min]
//                      [--model PRESET] [--gemm packed|blas] [--peak-only]
//
// Every row of kLayers is one layer of that model with the shapes it sees in training. Each
// repeat runs forward then backward once; the median over repeats (or the minimum, which a busy
// machine disturbs least) of wall and CPU time (all threads) is printed, with GFLOP/s for
// the convolutions and dense layers (2 flops per multiply-add; backward counts the products it
// computes: dw, plus din except for the first layer, whose input gradient training skips).
//
// --model PRESET (mobilenet_v1, mobilenet_v2, resnet50_v1, resnet50_v2, nasnet_mobile; 224x224x3,
// 1000 classes, random weights) times nn::InferenceEngine instead: every step of its forward (a
// layer with its folded BatchNorm and fused activation) at batch B (default 1 here), then the
// whole forward, in GMAC/s (1 multiply-add = 1 MAC) and, per CPU-second, as a share of the peak.
// --gemm blas makes the convolutions use OpenBLAS instead of the packed-weights product
// (nn/gemm_packed.h), which the engine uses by default on AVX-512F CPUs.
//
// The peak (--peak-only, and before --model): 24 independent vfmadd231ps zmm accumulator chains
// (16 MACs each; 12 ymm chains of 8 without AVX-512) held in registers, enough to cover the FMA
// latency times its throughput (`objdump -d` of peak_fma_zmm shows 24 vfmadd231ps with register
// operands only in the loop), run on each thread at once; reported by wall time and per
// CPU-second of each thread.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <immintrin.h>

#include "peak.h"
#include "stats.h"
#include "core/blas_env.h"
#include "core/rng.h"
#include "core/threads.h"
#include "nn/gemm_packed.h"
#include "models/presets.h"
#include "nn/activation.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/dense.h"
#include "nn/graph.h"
#include "nn/infer.h"
#include "nn/pool.h"

using namespace qatc;
using namespace qatc::nn;

namespace {

enum class Kind { conv, batchnorm, relu, maxpool, dense };

// h, w, c: the layer's input; out: filters / units (0 where the layer keeps c).
struct LayerCase {
  const char* name;
  Kind kind;
  int64_t h, w, c, out;
  bool first;  // no input gradient (the layer reads the data)
};

// The one shape table: recipes/mnist/cnn_bn.yaml, in model order.
const LayerCase kLayers[] = {
    {"conv1", Kind::conv, 28, 28, 1, 32, true},         {"bn1", Kind::batchnorm, 28, 28, 32, 0, false},
    {"relu1", Kind::relu, 28, 28, 32, 0, false},        {"conv2", Kind::conv, 28, 28, 32, 32, false},
    {"bn2", Kind::batchnorm, 28, 28, 32, 0, false},     {"relu2", Kind::relu, 28, 28, 32, 0, false},
    {"pool1", Kind::maxpool, 28, 28, 32, 0, false},     {"conv3", Kind::conv, 14, 14, 32, 64, false},
    {"bn3", Kind::batchnorm, 14, 14, 64, 0, false},     {"relu3", Kind::relu, 14, 14, 64, 0, false},
    {"conv4", Kind::conv, 14, 14, 64, 64, false},       {"bn4", Kind::batchnorm, 14, 14, 64, 0, false},
    {"relu4", Kind::relu, 14, 14, 64, 0, false},        {"pool2", Kind::maxpool, 14, 14, 64, 0, false},
    {"fc1", Kind::dense, 1, 1, 7 * 7 * 64, 128, false}, {"logits", Kind::dense, 1, 1, 128, 10, false},
};

std::vector<float> random_floats(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

// Wall time of f; adds the CPU time of all threads to *cpu.
double seconds_of(const std::function<void()>& f, double* cpu) {
  const double c0 = bench::process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  *cpu += bench::process_cpu_seconds() - c0;
  return wall;
}

// The median, or with use_min the fastest repeat (the least disturbed one on a busy machine).
double summary(const std::vector<double>& v, bool use_min) {
  return use_min ? *std::min_element(v.begin(), v.end()) : bench::median(v);
}

// The forward and backward of one row, over buffers it owns.
struct Runner {
  std::function<void()> forward, backward;
  double fwd_flops = 0, bwd_flops = 0;
  std::deque<std::vector<float>> buffers;  // a deque: growing it keeps earlier buffers in place
  std::vector<int32_t> argmax;
};

Runner make_runner(const LayerCase& l, int64_t batch, Rng& rng) {
  Runner r;
  auto buf = [&](int64_t n) -> float* {
    r.buffers.push_back(random_floats(rng, n));
    return r.buffers.back().data();
  };
  const int64_t in_count = batch * l.h * l.w * l.c;
  switch (l.kind) {
    case Kind::conv: {
      const Conv2DGeom g = conv2d_geom(batch, l.h, l.w, l.c, 3, 3, l.out, 1, 1, Padding::same);
      const int64_t out_count = batch * g.oh * g.ow * g.oc, w_count = 9 * g.c * g.oc;
      float *in = buf(in_count), *w = buf(w_count), *out = buf(out_count), *dout = buf(out_count);
      float *din = l.first ? nullptr : buf(in_count), *dw = buf(w_count);
      float* ws = buf(std::max<int64_t>(1, conv2d_workspace_floats(g)));
      r.forward = [=] { conv2d_forward(out, in, w, nullptr, g, ws); };
      r.backward = [=] { conv2d_backward(din, dw, nullptr, dout, in, w, g, ws); };
      r.fwd_flops = 2.0 * static_cast<double>(batch * g.oh * g.ow) * static_cast<double>(w_count);
      r.bwd_flops = r.fwd_flops * (l.first ? 1 : 2);
      break;
    }
    case Kind::dense: {
      float *in = buf(batch * l.c), *w = buf(l.c * l.out), *b = buf(l.out), *out = buf(batch * l.out);
      float *dout = buf(batch * l.out), *din = buf(batch * l.c), *dw = buf(l.c * l.out), *db = buf(l.out);
      const int64_t n = batch, fi = l.c, fo = l.out;
      r.forward = [=] { dense_forward(out, in, w, b, n, fi, fo); };
      r.backward = [=] { dense_backward(din, dw, db, dout, in, w, n, fi, fo); };
      r.fwd_flops = 2.0 * static_cast<double>(batch * l.c * l.out);
      r.bwd_flops = 2 * r.fwd_flops;
      break;
    }
    case Kind::batchnorm: {
      const int64_t rows = batch * l.h * l.w, c = l.c;
      float *in = buf(in_count), *out = buf(in_count), *dout = buf(in_count), *din = buf(in_count);
      float *gamma = buf(c), *beta = buf(c), *mean = buf(c), *var = buf(c), *dg = buf(c), *dbeta = buf(c);
      r.forward = [=] { batchnorm_forward_train(out, mean, var, in, gamma, beta, 1e-3f, rows, c); };
      r.backward = [=] { batchnorm_backward(din, dg, dbeta, dout, in, gamma, mean, var, 1e-3f, rows, c); };
      break;
    }
    case Kind::relu: {
      float *in = buf(in_count), *out = buf(in_count), *dout = buf(in_count), *din = buf(in_count);
      r.forward = [=] { relu_forward(out, in, in_count); };
      r.backward = [=] { relu_backward(din, dout, out, in_count); };
      break;
    }
    case Kind::maxpool: {
      const Pool2DGeom g = pool2d_geom(batch, l.h, l.w, l.c, 2, 2, 2, 2, Padding::valid);
      const int64_t out_count = batch * g.oh * g.ow * g.c;
      float *in = buf(in_count), *out = buf(out_count), *dout = buf(out_count), *din = buf(in_count);
      r.argmax.resize(static_cast<size_t>(out_count));
      int32_t* am = r.argmax.data();
      r.forward = [=] { maxpool2d_forward(out, am, in, g); };
      r.backward = [=] { maxpool2d_backward(din, dout, am, g); };
      break;
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------
// vfmadd231ps register peak.

constexpr int64_t kPeakIters = 1 << 19;  // ~2.5 ms of the zmm loop

// 24 chains x 16 MACs per iteration (bench/peak.h: the chains and why they are opaque). The
// sums stay far from overflow (2^19 steps of 1e-7).
__attribute__((target("avx512f"), noinline)) float peak_fma_zmm(int64_t iters, int32_t seed) {
  const __m512 a = _mm512_set1_ps(0.5f), b = _mm512_set1_ps(2e-7f);
#define QATC_INIT(i) __m512 c##i = _mm512_set1_ps(static_cast<float>(seed + i));
  QATC_CHAINS24(QATC_INIT)
#undef QATC_INIT
  for (int64_t i = 0; i < iters; ++i) {
#define QATC_FMA(i) c##i = _mm512_fmadd_ps(a, b, c##i);
    QATC_CHAINS24(QATC_FMA)
#undef QATC_FMA
    QATC_OPAQUE24("v");
  }
  __m512 s = _mm512_setzero_ps();
#define QATC_SUM(i) s = _mm512_add_ps(s, c##i);
  QATC_CHAINS24(QATC_SUM)
#undef QATC_SUM
  alignas(64) float v[16];
  _mm512_store_ps(v, s);
  float r = 0;
  for (float x : v) r += x;
  return r;
}

// 12 chains of ymm (AVX2 FMA) x 8 MACs per iteration, for CPUs without AVX-512.
__attribute__((target("avx2,fma"), noinline)) float peak_fma_ymm(int64_t iters, int32_t seed) {
  const __m256 a = _mm256_set1_ps(0.5f), b = _mm256_set1_ps(2e-7f);
#define QATC_INIT(i) __m256 c##i = _mm256_set1_ps(static_cast<float>(seed + i));
  QATC_CHAINS12(QATC_INIT)
#undef QATC_INIT
  for (int64_t i = 0; i < iters; ++i) {
#define QATC_FMA(i) c##i = _mm256_fmadd_ps(a, b, c##i);
    QATC_CHAINS12(QATC_FMA)
#undef QATC_FMA
    QATC_OPAQUE12("x");
  }
  __m256 s = _mm256_setzero_ps();
#define QATC_SUM(i) s = _mm256_add_ps(s, c##i);
  QATC_CHAINS12(QATC_SUM)
#undef QATC_SUM
  alignas(32) float v[8];
  _mm256_store_ps(v, s);
  float r = 0;
  for (float x : v) r += x;
  return r;
}

bool has_avx512() { return __builtin_cpu_supports("avx512f"); }
bool has_avx2_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// The FMA peak on `threads` threads at once: zmm, or ymm without AVX-512.
bench::Peak fma_peak(bool zmm, int threads, int repeats, bool use_max) {
  const double macs = (zmm ? 24.0 * 16.0 : 12.0 * 8.0) * static_cast<double>(kPeakIters);
  return bench::peak_gmacs(
      [&](int32_t seed) { return zmm ? peak_fma_zmm(kPeakIters, seed) : peak_fma_ymm(kPeakIters, seed); }, macs,
      threads, repeats, use_max);
}

// Prints the peak on 1 and 2 threads; returns the per-core rate (per CPU-second), 0 without FMA.
double print_fma_peak(bool use_max) {
  if (!has_avx2_fma()) {
    std::printf("no FMA on this CPU: no peak\n");
    return 0;
  }
  const bool zmm = has_avx512();
  const bench::Peak p1 = fma_peak(zmm, 1, 21, use_max), p2 = fma_peak(zmm, 2, 21, use_max);
  std::printf("vfmadd231ps %s register peak: 1 thread %.1f GMAC/s (%.1f per CPU-second), "
              "2 threads %.1f GMAC/s (%.1f per CPU-second per thread)\n",
              zmm ? "zmm" : "ymm (AVX2)", p1.wall, p1.per_cpu, p2.wall, p2.per_cpu);
  return std::max(p1.per_cpu, p2.per_cpu);
}

// ---------------------------------------------------------------------------------------
// The inference executor on a preset network.

int run_model(const std::string& preset, int64_t batch, int repeats, bool use_min, double peak_core) {
  recipe::ModelSpec spec;
  spec.input = {224, 224, 3};
  spec.preset.name = preset;
  spec.preset.origin.where = "--model";
  spec.layers = models::preset_layers(spec.preset, spec.input);
  const nn::Graph g = nn::build_graph(spec);
  std::vector<float> params(static_cast<size_t>(g.param_floats));
  nn::init_params(g, params.data(), 1);
  nn::InferenceEngine engine(g, params.data(), batch);
  Rng rng(3);
  const std::vector<float> x = random_floats(rng, batch * numel(g.nodes[0].shape));
  engine.forward(x.data(), batch);  // warm up: buffers, OpenBLAS, thread pool
  const std::vector<int> kernels = engine.step_kernels(), lasts = engine.step_nodes();
  std::vector<std::vector<double>> step_s(kernels.size());
  std::vector<double> wall, cpu, times;
  for (int r = 0; r < repeats; ++r) {
    const double c0 = bench::process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    engine.forward(x.data(), batch, &times);
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    cpu.push_back(bench::process_cpu_seconds() - c0);
    for (size_t k = 0; k < times.size(); ++k) step_s[k].push_back(times[k]);
  }
  std::printf("%-44s %-16s %9s %9s %8s\n", "step (kernel node -> last node)", "op", "MMAC", "ms", "GMAC/s");
  std::map<std::string, double> by_op;
  for (size_t k = 0; k < kernels.size(); ++k) {
    const nn::Node& node = g.nodes[static_cast<size_t>(kernels[k])];
    const double macs = static_cast<double>(nn::node_macs(g, node) * batch);
    const double t = summary(step_s[k], use_min);
    by_op[nn::to_string(node.op)] += t;
    const std::string name = kernels[k] == lasts[k] ? node.name : node.name + " -> " + g.nodes[static_cast<size_t>(lasts[k])].name;
    std::printf("%-44s %-16s %9.1f %9.3f", name.c_str(), nn::to_string(node.op), macs * 1e-6, t * 1e3);
    if (macs > 0) std::printf(" %8.1f", macs / t * 1e-9);
    std::printf("\n");
  }
  for (const auto& [op, t] : by_op) std::printf("  all %-16s %9.3f ms\n", op.c_str(), t * 1e3);
  const double macs = static_cast<double>(nn::macs_per_example(g) * batch);
  const double w = summary(wall, use_min), c = summary(cpu, use_min);
  std::printf("%s forward, batch %lld, %d thread(s): %.3f ms, %.1f GMAC/s by wall time, %.1f per CPU-second",
              preset.c_str(), static_cast<long long>(batch), num_threads(), w * 1e3, macs / w * 1e-9, macs / c * 1e-9);
  if (peak_core > 0)
    std::printf(" (%.1f%% of the peak times %d thread(s) by wall time, %.1f%% per CPU-second)",
                100.0 * macs / w * 1e-9 / (peak_core * num_threads()), num_threads(), 100.0 * macs / c * 1e-9 / peak_core);
  std::printf("\n");
  return 0;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_float_layers [--threads N] [--repeats R] [--batch B] [--only NAME] "
               "[--stat median|min] [--model PRESET] [--gemm packed|blas] [--peak-only]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  maybe_reexec_for_blas(argv);
  int threads = 2, repeats = 21;
  int64_t batch = 0;  // 0: 128 for the training layers, 1 for --model
  std::string only, model;
  std::string gemm = nn::packed_gemm_supported() ? "packed" : "blas";
  bool use_min = false, peak_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--peak-only") {
      peak_only = true;
      continue;
    }
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (a == "--threads") threads = std::atoi(v);
    else if (a == "--repeats") repeats = std::max(1, std::atoi(v));
    else if (a == "--batch") batch = std::max(1, std::atoi(v));
    else if (a == "--only") only = v;
    else if (a == "--model") model = v;
    else if (a == "--gemm" && (std::string(v) == "packed" || std::string(v) == "blas")) gemm = v;
    else if (a == "--stat" && std::string(v) == "min") use_min = true;
    else if (a == "--stat" && std::string(v) == "median") use_min = false;
    else usage();
  }
  set_num_threads(threads);
  if (peak_only || !model.empty()) {
    nn::set_packed_gemm(gemm == "packed");
    std::printf("float inference: %d thread(s), convolutions by %s, OpenBLAS core %s, %s of %d repeats\n",
                num_threads(), gemm == "packed" ? "gemm_packed" : "OpenBLAS", blas_corename().c_str(),
                use_min ? "best" : "median", repeats);
    const double peak_core = print_fma_peak(use_min);
    if (peak_only) return 0;
    return run_model(model, batch > 0 ? batch : 1, repeats, use_min, peak_core);
  }
  if (batch == 0) batch = 128;
  std::printf("float layers of mnist/cnn_bn: batch %lld, %d threads, OpenBLAS core %s, %s of %d\n",
              static_cast<long long>(batch), num_threads(), blas_corename().c_str(), use_min ? "min" : "median",
              repeats);
  std::printf("%-7s %10s %9s %10s %9s %10s %10s\n", "layer", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s", "total ms",
              "cpu ms");
  Rng rng(1);
  double fwd_sum = 0, bwd_sum = 0, cpu_sum = 0;
  for (const LayerCase& l : kLayers) {
    if (!only.empty() && only != l.name) continue;
    Runner r = make_runner(l, batch, rng);
    r.forward();  // warm up: first touch of buffers, OpenBLAS buffers, thread pool
    r.backward();
    std::vector<double> tf, tb, tc;
    for (int k = 0; k < repeats; ++k) {
      double cpu = 0;
      tf.push_back(seconds_of(r.forward, &cpu));
      tb.push_back(seconds_of(r.backward, &cpu));
      tc.push_back(cpu);
    }
    const double f = summary(tf, use_min), b = summary(tb, use_min), c = summary(tc, use_min);
    cpu_sum += c;
    fwd_sum += f;
    bwd_sum += b;
    if (r.fwd_flops > 0)
      std::printf("%-7s %10.3f %9.1f %10.3f %9.1f %10.3f %10.3f\n", l.name, f * 1e3, r.fwd_flops / f * 1e-9,
                  b * 1e3, r.bwd_flops / b * 1e-9, (f + b) * 1e3, c * 1e3);
    else
      std::printf("%-7s %10.3f %9s %10.3f %9s %10.3f %10.3f\n", l.name, f * 1e3, "-", b * 1e3, "-", (f + b) * 1e3,
                  c * 1e3);
  }
  std::printf("%-7s %10.3f %9s %10.3f %9s %10.3f %10.3f\n", "sum", fwd_sum * 1e3, "", bwd_sum * 1e3, "",
              (fwd_sum + bwd_sum) * 1e3, cpu_sum * 1e3);
  return 0;
}
