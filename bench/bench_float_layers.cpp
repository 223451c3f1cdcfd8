// Times forward and backward of the float training layers of recipes/mnist/cnn_bn.yaml at batch 128.
//
//   bench_float_layers [--threads N] [--repeats R] [--batch B] [--only NAME] [--stat median|min]
//
// Every row of kLayers is one layer of that model with the shapes it sees in training. Each
// repeat runs forward then backward once; the median over repeats (or the minimum, which a busy
// machine disturbs least) of wall and CPU time (all threads) is printed, with GFLOP/s for
// the convolutions and dense layers (2 flops per multiply-add; backward counts the products it
// computes: dw, plus din except for the first layer, whose input gradient training skips).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include <time.h>

#include "stats.h"
#include "core/blas_env.h"
#include "core/rng.h"
#include "core/threads.h"
#include "nn/activation.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/dense.h"
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

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Wall time of f; adds the CPU time of all threads to *cpu.
double seconds_of(const std::function<void()>& f, double* cpu) {
  const double c0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  *cpu += cpu_seconds() - c0;
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

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_float_layers [--threads N] [--repeats R] [--batch B] [--only NAME] "
               "[--stat median|min]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  maybe_reexec_for_blas(argv);
  int threads = 2, repeats = 21;
  int64_t batch = 128;
  std::string only;
  bool use_min = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (a == "--threads") threads = std::atoi(v);
    else if (a == "--repeats") repeats = std::max(1, std::atoi(v));
    else if (a == "--batch") batch = std::max(1, std::atoi(v));
    else if (a == "--only") only = v;
    else if (a == "--stat" && std::string(v) == "min") use_min = true;
    else if (a == "--stat" && std::string(v) == "median") use_min = false;
    else usage();
  }
  set_num_threads(threads);
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
