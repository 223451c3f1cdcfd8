// Softmax cross-entropy loss over class logits, with accuracy counting.
#pragma once

#include <cstdint>

namespace qatc::nn {

struct LossResult {
  double loss_sum;  // sum over the batch of -log softmax(logits)[label]
  int64_t correct;  // rows whose argmax (first on ties) equals the label
};

// logits [n,classes], labels [n] in [0, classes) -> dlogits [n,classes] (nullable), LossResult
// p = softmax(logits[i]) computed as exp(l - max l) / sum exp(l - max l) so huge logits are safe;
// loss_i = -log p[label_i]; dlogits = (p - onehot(label)) / n, the gradient of the MEAN loss.
// dlogits is overwritten, not accumulated: the loss starts the backward pass.
// Throws qatc::Error for a label outside [0, classes).
LossResult softmax_xent(float* dlogits, const float* logits, const int32_t* labels, int64_t n,
                        int64_t classes);

}  // namespace qatc::nn
