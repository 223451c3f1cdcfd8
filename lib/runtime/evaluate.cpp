// Int8 evaluation, agreement and latency.
#include "runtime/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "data/loader.h"
#include "nn/loss.h"
#include "quant/qparams.h"
#include "runtime/executor.h"

namespace qatc::runtime {
namespace {

int64_t argmax(const int8_t* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// Up to `images` timed runs after a warm-up, stopping early (after at least 5) once 3 seconds
// are spent, so large models are timed in bounded time.
template <typename F>
Latency time_per_image(int64_t images, F&& run_one) {
  std::vector<double> ms;
  run_one(0);  // warm-up
  double total_ms = 0;
  for (int64_t i = 0; i < images && (i < 5 || total_ms < 3000.0); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run_one(i);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    total_ms += ms.back();
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)]};
}


// One batch of model inputs for both engines: the raw pixels when the source has them (the
// integer model then quantizes them exactly), and the model-input floats.
class InputBatch {
 public:
  InputBatch(const data::Source& src, int64_t batch) : src_(src) {
    const auto per = static_cast<size_t>(src.example_floats());
    xf_.resize(static_cast<size_t>(batch) * per);
    y_.resize(static_cast<size_t>(batch));
    if (src.pixels()) px_.resize(static_cast<size_t>(batch) * per);
  }
  void load(const int32_t* idx, int64_t n) {
    src_.gather(idx, n, xf_.data(), y_.data(), false, 0);
    if (const data::Dataset* ds = src_.pixels()) data::gather_pixels(*ds, idx, n, px_.data(), y_.data());
  }
  const int8_t* run(Executor& ex, int64_t n) const {
    return px_.empty() ? ex.run_float(xf_.data(), n) : ex.run(px_.data(), n);
  }
  const float* floats() const { return xf_.data(); }
  const int32_t* labels() const { return y_.data(); }

 private:
  const data::Source& src_;
  std::vector<float> xf_;
  std::vector<uint8_t> px_;
  std::vector<int32_t> y_;
};

}  // namespace

train::EvalResult evaluate_int(Executor& ex, const data::Source& src, const std::vector<int32_t>& indices,
                               int64_t batch_size) {
  const auto t0 = std::chrono::steady_clock::now();
  const IntModel& m = ex.model();
  const int64_t classes = m.classes();
  const QTensor& out = m.tensors[static_cast<size_t>(m.output)];
  const quant::QParams oq{static_cast<float>(out.scale), out.zero_point, -128, 127};
  InputBatch in(src, batch_size);
  std::vector<float> logits(static_cast<size_t>(batch_size * classes));
  train::EvalResult r;
  double loss = 0;
  const auto total = static_cast<int64_t>(indices.size());
  for (int64_t b = 0; b < total; b += batch_size) {
    const int64_t n = std::min(batch_size, total - b);
    in.load(indices.data() + b, n);
    const int8_t* q = in.run(ex, n);
    for (int64_t k = 0; k < n * classes; ++k) logits[static_cast<size_t>(k)] = quant::dequantize(q[k], oq);
    nn::LossResult lr = nn::softmax_xent(nullptr, logits.data(), in.labels(), n, classes);
    loss += lr.loss_sum;
    // Top-1 on the integer logits (the dequantization is monotone, ties resolve the same way).
    for (int64_t i = 0; i < n; ++i) r.correct += argmax(q + i * classes, classes) == in.labels()[i];
  }
  r.examples = total;
  r.accuracy = total ? static_cast<double>(r.correct) / static_cast<double>(total) : 0.0;
  r.loss = total ? loss / static_cast<double>(total) : 0.0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Agreement compare_with_fakequant(const IntModel& m, train::Trainable& fakequant, const data::Source& src,
                                 const std::vector<int32_t>& indices, int64_t batch_size) {
  Executor ex(m, batch_size);
  const int64_t classes = m.classes();
  const QTensor& out = m.tensors[static_cast<size_t>(m.output)];
  const quant::QParams oq{static_cast<float>(out.scale), out.zero_point, -128, 127};
  InputBatch in(src, batch_size);
  Agreement a;
  int64_t same = 0, close = 0;
  const auto total = static_cast<int64_t>(indices.size());
  for (int64_t b = 0; b < total; b += batch_size) {
    const int64_t n = std::min(batch_size, total - b);
    in.load(indices.data() + b, n);
    const int8_t* qi = in.run(ex, n);
    const float* fl = fakequant.forward(in.floats(), n, nn::Mode::eval, 0);
    for (int64_t i = 0; i < n; ++i) {
      same += argmax(qi + i * classes, classes) == argmax(fl + i * classes, classes);
      for (int64_t k = 0; k < classes; ++k) {
        const int32_t d = std::abs(qi[i * classes + k] - quant::quantize(fl[i * classes + k], oq));
        close += d <= 1;
        a.max_step_diff = std::max(a.max_step_diff, d);
      }
    }
  }
  a.examples = total;
  a.top1 = total ? static_cast<double>(same) / static_cast<double>(total) : 0.0;
  a.within_one_step = total ? static_cast<double>(close) / static_cast<double>(total * classes) : 0.0;
  return a;
}

Latency int_latency(const IntModel& m, const data::Source& src, int64_t images) {
  Executor ex(m, 1);
  InputBatch in(src, 1);
  const int32_t first = 0;
  in.load(&first, 1);  // outside the timing: decoding an image folder's file is not inference
  return time_per_image(images, [&](int64_t) { in.run(ex, 1); });
}

Latency float_latency(train::Trainable& model, const data::Source& src, int64_t images) {
  InputBatch in(src, 1);
  const int32_t first = 0;
  in.load(&first, 1);
  const std::unique_ptr<train::Predictor> predictor = model.predictor(1);
  return time_per_image(images, [&](int64_t) { predictor->predict(in.floats(), 1); });
}

}  // namespace qatc::runtime
