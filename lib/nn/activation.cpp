// ReLU and ReLU6: branch-free loops that the compiler vectorizes, split across threads.
// Backward loads dout unconditionally: a load under the condition would keep the compiler from
// vectorizing (it may not read memory the source does not), leaving a branch that mispredicts
// on every other element.
#include "nn/activation.h"

#include "core/threads.h"

namespace qatc::nn {
namespace {
// Elementwise work is memory bound; below this many floats a thread dispatch costs more.
constexpr int64_t kGrain = int64_t{1} << 16;
}  // namespace

void relu_forward(float* out, const float* in, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
  });
}

void relu_backward(float* din, const float* dout, const float* out, int64_t n, const uint8_t* pass) {
  if (!din) return;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (pass)
      for (int64_t i = b; i < e; ++i) din[i] += (out[i] > 0.0f) & (pass[i] != 0) ? dout[i] : 0.0f;
    else
      for (int64_t i = b; i < e; ++i) din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
  });
}

void relu6_forward(float* out, const float* in, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float v = in[i] > 0.0f ? in[i] : 0.0f;
      out[i] = v < 6.0f ? v : 6.0f;
    }
  });
}

void relu6_backward(float* din, const float* dout, const float* out, int64_t n, const uint8_t* pass) {
  if (!din) return;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (pass)
      for (int64_t i = b; i < e; ++i) {
        const float y = out[i];
        din[i] += (y > 0.0f) & (y < 6.0f) & (pass[i] != 0) ? dout[i] : 0.0f;
      }
    else
      for (int64_t i = b; i < e; ++i) {
        const float y = out[i];
        din[i] += (y > 0.0f) & (y < 6.0f) ? dout[i] : 0.0f;
      }
  });
}

}  // namespace qatc::nn
