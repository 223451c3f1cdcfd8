// Batched evaluation.
#include "train/evaluate.h"

#include <chrono>

#include "nn/loss.h"

namespace qatc::train {

EvalResult evaluate(Trainable& model, const data::Source& src, const std::vector<int32_t>& indices,
                    int64_t batch_size) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t per = src.example_floats();
  const int64_t classes = model.graph().classes();
  std::vector<float> x(static_cast<size_t>(batch_size * per));
  std::vector<int32_t> y(static_cast<size_t>(batch_size));
  EvalResult r;
  double loss_sum = 0;
  const auto total = static_cast<int64_t>(indices.size());
  auto batches = src.stream(indices, batch_size, false, 0);
  const std::unique_ptr<Predictor> predictor = model.predictor(batch_size);
  int64_t n = 0;
  while (batches->next(x.data(), y.data(), &n)) {
    const float* logits = predictor->predict(x.data(), n);
    nn::LossResult lr = nn::softmax_xent(nullptr, logits, y.data(), n, classes);
    loss_sum += lr.loss_sum;
    r.correct += lr.correct;
  }
  r.examples = total;
  r.accuracy = total ? static_cast<double>(r.correct) / static_cast<double>(total) : 0.0;
  r.loss = total ? loss_sum / static_cast<double>(total) : 0.0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace qatc::train
