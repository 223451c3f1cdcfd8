// The cost of a QAT training step against a float training step on the same model and batch.
//
//   bench_qat_step RECIPE [--threads N] [--steps S] [--batch B] [--warmup W]
//
// Builds the recipe's model with its initializers, then times S training steps of the float
// model and S of the QAT model (fake-quantized weights with BatchNorm folding, activation
// observers and fake quantization, straight-through backward: exactly what `qatc qat` runs),
// alternating one float step and one QAT step so that load from other work hits both alike.
// A step is what the trainer does per batch: zero the gradients, forward, softmax
// cross-entropy, backward, Adam update. The batch is random pixels (the cost does not depend on
// the values). Prints the median step time of each and their ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "stats.h"
#include "core/blas_env.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "nn/graph.h"
#include "nn/loss.h"
#include "quant/plan.h"
#include "quant/quant_model.h"
#include "recipe/load.h"
#include "train/model.h"
#include "train/optimizer.h"

using namespace qatc;

namespace {

struct Stepper {
  train::Trainable& model;
  train::Optimizer opt;
  std::vector<float> dlogits;
  int64_t step = 0;

  // One training step; returns its wall time in milliseconds.
  double run(const float* x, const int32_t* y, int64_t n, int64_t classes) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memset(model.grads().data(), 0, model.grads().size() * sizeof(float));
    model.before_step(step);
    const float* logits = model.forward(x, n, nn::Mode::train, derive_seed(1, 2, static_cast<uint64_t>(step)));
    nn::softmax_xent(dlogits.data(), logits, y, n, classes);
    model.backward(dlogits.data());
    opt.step(model.params().data(), model.grads().data(), 1e-4);
    ++step;
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
};

int usage() {
  std::fprintf(stderr, "usage: bench_qat_step RECIPE [--threads N] [--steps S] [--batch B] [--warmup W]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  maybe_reexec_for_blas(argv);
  if (argc < 2) return usage();
  const std::string path = argv[1];
  int threads = 0;
  int64_t steps = 30, batch = 0, warmup = 3;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const long long v = std::atoll(argv[++i]);
    if (v < 1 && a != "--warmup") return usage();
    if (a == "--threads") threads = static_cast<int>(v);
    else if (a == "--steps") steps = v;
    else if (a == "--batch") batch = v;
    else if (a == "--warmup") warmup = v;
    else return usage();
  }
  try {
    set_num_threads(threads);
    const recipe::Recipe rc = recipe::load_recipe(path);
    if (batch == 0) batch = rc.qat.batch_size;
    const nn::Graph g = nn::build_graph(rc.model);
    std::vector<float> params(static_cast<size_t>(g.param_floats));
    nn::init_params(g, params.data(), rc.seed);

    const int64_t in_floats = numel(g.nodes[0].shape), classes = g.output().shape[0];
    Rng rng(7);
    std::vector<float> x(static_cast<size_t>(batch * in_floats));
    for (auto& v : x) v = rng.uniform(0.0f, 1.0f);
    std::vector<int32_t> y(static_cast<size_t>(batch));
    for (auto& v : y) v = static_cast<int32_t>(rng.below(static_cast<uint32_t>(classes)));

    train::FloatModel fm(g, params, batch, true);
    // The QAT schedule as `qatc qat` runs it before BN and observers freeze (the costlier phase:
    // batch statistics and observer updates every step).
    quant::QuantModel qm(g, quant::make_plan(g, rc.quant), params, batch, true, quant::QatSchedule{});
    const recipe::OptimizerSpec adam;  // Adam, the recipes' optimizer
    Stepper f{fm, train::Optimizer(adam, g), std::vector<float>(static_cast<size_t>(batch * classes))};
    Stepper q{qm, train::Optimizer(adam, g), std::vector<float>(static_cast<size_t>(batch * classes))};

    std::vector<double> tf, tq;
    for (int64_t s = 0; s < warmup + steps; ++s) {
      const double a = f.run(x.data(), y.data(), batch, classes);
      const double b = q.run(x.data(), y.data(), batch, classes);
      if (s >= warmup) {
        tf.push_back(a);
        tq.push_back(b);
      }
    }
    const double mf = bench::median(tf), mq = bench::median(tq);
    std::printf("%s: batch %lld, %d threads, %lld steps each (after %lld warm-up), alternating\n", rc.name.c_str(),
                static_cast<long long>(batch), num_threads(), static_cast<long long>(steps),
                static_cast<long long>(warmup));
    std::printf("  float step  median %8.2f ms\n  QAT step    median %8.2f ms\n  QAT / float  %.3f\n", mf, mq, mq / mf);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
