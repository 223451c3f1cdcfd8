// Add, concat and pad: memory-bound copies, split across threads by rows.
#include "nn/merge.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"

namespace qatc::nn {
namespace {
constexpr int64_t kGrain = int64_t{1} << 16;  // floats per thread task, as the activations
}  // namespace

void add_forward(float* out, const float* const* inputs, int64_t count, int64_t n, Activation act) {
  QATC_CHECK_GE(count, 2);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = inputs[0][i] + inputs[1][i];
    for (int64_t k = 2; k < count; ++k)
      for (int64_t i = b; i < e; ++i) out[i] += inputs[k][i];
    activate(out + b, e - b, act);
  });
}

void add_backward(float* const* dinputs, int64_t count, const float* dout, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t k = 0; k < count; ++k) {
      float* d = dinputs[k];
      if (!d) continue;
      for (int64_t i = b; i < e; ++i) d[i] += dout[i];
    }
  });
}

void concat_forward(float* out, const float* const* inputs, const int64_t* channels, int64_t count,
                    int64_t outer) {
  int64_t total = 0;
  for (int64_t k = 0; k < count; ++k) total += channels[k];
  parallel_for(outer, std::max<int64_t>(1, kGrain / total), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* o = out + r * total;
      for (int64_t k = 0; k < count; ++k) {
        std::memcpy(o, inputs[k] + r * channels[k], static_cast<size_t>(channels[k]) * sizeof(float));
        o += channels[k];
      }
    }
  });
}

void concat_backward(float* const* dinputs, const int64_t* channels, int64_t count, const float* dout,
                     int64_t outer) {
  int64_t total = 0;
  for (int64_t k = 0; k < count; ++k) total += channels[k];
  parallel_for(outer, std::max<int64_t>(1, kGrain / total), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* d = dout + r * total;
      for (int64_t k = 0; k < count; ++k) {
        if (float* di = dinputs[k]) {
          di += r * channels[k];
          for (int64_t ch = 0; ch < channels[k]; ++ch) di[ch] += d[ch];
        }
        d += channels[k];
      }
    }
  });
}

PadGeom2D pad_geom2d(int64_t n, int64_t h, int64_t w, int64_t c, int64_t top, int64_t bottom, int64_t left,
                     int64_t right) {
  PadGeom2D g{n, h, w, c, top, bottom, left, right, h + top + bottom, w + left + right};
  if (g.oh < 1 || g.ow < 1)
    fail("padding ({}, {}, {}, {}) of a {}x{} map leaves nothing", top, bottom, left, right, h, w);
  return g;
}

void pad_forward(float* out, const float* in, const PadGeom2D& g) {
  // Output columns [x0, x1) come from input columns [x0 - left, x1 - left).
  const int64_t x0 = std::max<int64_t>(0, g.left), x1 = std::min(g.ow, g.w + g.left);
  parallel_for(g.n * g.oh, std::max<int64_t>(1, kGrain / (g.ow * g.c)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t i = r / g.oh, y = r % g.oh, iy = y - g.top;
      float* o = out + r * g.ow * g.c;
      if (iy < 0 || iy >= g.h || x1 <= x0) {
        std::memset(o, 0, static_cast<size_t>(g.ow * g.c) * sizeof(float));
        continue;
      }
      std::memset(o, 0, static_cast<size_t>(x0 * g.c) * sizeof(float));
      std::memcpy(o + x0 * g.c, in + ((i * g.h + iy) * g.w + (x0 - g.left)) * g.c,
                  static_cast<size_t>((x1 - x0) * g.c) * sizeof(float));
      std::memset(o + x1 * g.c, 0, static_cast<size_t>((g.ow - x1) * g.c) * sizeof(float));
    }
  });
}

void pad_backward(float* din, const float* dout, const PadGeom2D& g) {
  if (!din) return;
  const int64_t x0 = std::max<int64_t>(0, g.left), x1 = std::min(g.ow, g.w + g.left);
  if (x1 <= x0) return;
  parallel_for(g.n * g.h, std::max<int64_t>(1, kGrain / (g.w * g.c)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t i = r / g.h, iy = r % g.h, y = iy + g.top;
      if (y < 0 || y >= g.oh) continue;
      float* d = din + (r * g.w + (x0 - g.left)) * g.c;
      const float* s = dout + ((i * g.oh + y) * g.ow + x0) * g.c;
      for (int64_t k = 0; k < (x1 - x0) * g.c; ++k) d[k] += s[k];
    }
  });
}

}  // namespace qatc::nn
