// ReLU and ReLU6: branch-free loops that the compiler vectorizes, split across threads.
// Backward loads dout unconditionally: a load under the condition would keep the compiler from
// vectorizing (it may not read memory the source does not), leaving a branch that mispredicts
// on every other element.
#include "nn/activation.h"

#include "core/simd.h"
#include "core/threads.h"

namespace qatc::nn {
namespace {
// Elementwise work is memory bound; below this many floats a thread dispatch costs more.
constexpr int64_t kGrain = int64_t{1} << 16;

// The one definition of each activation's arithmetic (NaN maps to 0, as the comparisons fail).
inline float relu(float x) { return x > 0.0f ? x : 0.0f; }
inline float relu6(float x) {
  const float v = x > 0.0f ? x : 0.0f;
  return v < 6.0f ? v : 6.0f;
}

}  // namespace

QATC_SIMD_CLONES
void activate(float* x, int64_t n, Activation act) {
  if (act == Activation::relu)
    for (int64_t i = 0; i < n; ++i) x[i] = relu(x[i]);
  else if (act == Activation::relu6)
    for (int64_t i = 0; i < n; ++i) x[i] = relu6(x[i]);
}

// Each loop body copies its pointers into locals first: pointers read through the lambda's
// closure could be changed by any store to din as far as the compiler knows, so it would
// reload them per element and not vectorize.
void relu_forward(float* out, const float* in, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    float* o = out;
    const float* x = in;
    for (int64_t i = b; i < e; ++i) o[i] = relu(x[i]);
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
    for (int64_t i = b; i < e; ++i) o[i] = relu6(x[i]);
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
