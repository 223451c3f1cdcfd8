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

// Each loop body copies its pointers into locals first: pointers read through the lambda's
// closure could be changed by any store to din as far as the compiler knows, so it would
// reload them per element and not vectorize.
void relu_forward(float* out, const float* in, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    float* o = out;
    const float* x = in;
    for (int64_t i = b; i < e; ++i) o[i] = x[i] > 0.0f ? x[i] : 0.0f;
  });
}

void relu_backward(float* din, const float* dout, const float* out, int64_t n, const uint8_t* pass) {
  if (!din) return;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    float* d = din;
    const float *g = dout, *y = out;
    const uint8_t* m = pass;
    if (m)
      for (int64_t i = b; i < e; ++i) {
        const float gi = g[i];
        d[i] += (y[i] > 0.0f) & (m[i] != 0) ? gi : 0.0f;
      }
    else
      for (int64_t i = b; i < e; ++i) {
        const float gi = g[i];
        d[i] += y[i] > 0.0f ? gi : 0.0f;
      }
  });
}

void relu6_forward(float* out, const float* in, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    float* o = out;
    const float* x = in;
    for (int64_t i = b; i < e; ++i) {
      const float v = x[i] > 0.0f ? x[i] : 0.0f;
      o[i] = v < 6.0f ? v : 6.0f;
    }
  });
}

void relu6_backward(float* din, const float* dout, const float* out, int64_t n, const uint8_t* pass) {
  if (!din) return;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    float* d = din;
    const float *g = dout, *y = out;
    const uint8_t* m = pass;
    if (m)
      for (int64_t i = b; i < e; ++i) {
        const float gi = g[i], yi = y[i];
        d[i] += (yi > 0.0f) & (yi < 6.0f) & (m[i] != 0) ? gi : 0.0f;
      }
    else
      for (int64_t i = b; i < e; ++i) {
        const float gi = g[i], yi = y[i];
        d[i] += (yi > 0.0f) & (yi < 6.0f) ? gi : 0.0f;
      }
  });
}

}  // namespace qatc::nn
