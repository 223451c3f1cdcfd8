// Inverted dropout forward and backward.
// The mask is drawn in fixed-size chunks, each from its own derived seed, so threads can
// draw chunks in any order and the mask never depends on how the work was split.
#include "nn/dropout.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"

namespace qatc::nn {
namespace {

// Part of the mask's definition: changing it changes every mask drawn from a given seed.
constexpr int64_t kChunk = 4096;

void check_rate(float rate) {
  if (!(rate >= 0.0f && rate < 1.0f))
    fail("dropout rate must be in [0, 1), got {}; use rate 0 to disable dropout", rate);
}

}  // namespace

void dropout_forward(float* out, uint8_t* mask, const float* in, int64_t n, float rate,
                     uint64_t seed) {
  check_rate(rate);
  const float scale = 1.0f / (1.0f - rate);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, 4, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      Rng rng(derive_seed(seed, static_cast<uint64_t>(ch)));
      const int64_t e = std::min(n, (ch + 1) * kChunk);
      for (int64_t i = ch * kChunk; i < e; ++i) {
        const bool keep = rng.uniform() >= rate;
        mask[i] = keep ? 1 : 0;
        out[i] = keep ? in[i] * scale : 0.0f;
      }
    }
  });
}

void dropout_backward(float* din, const float* dout, const uint8_t* mask, int64_t n, float rate) {
  if (!din) return;
  check_rate(rate);
  const float scale = 1.0f / (1.0f - rate);
  parallel_for(n, int64_t{1} << 16, [&](int64_t b, int64_t e) {
    // dout is read unconditionally so that the loop vectorizes instead of branching.
    for (int64_t i = b; i < e; ++i) {
      const float d = dout[i] * scale;
      din[i] += mask[i] ? d : 0.0f;
    }
  });
}

}  // namespace qatc::nn
