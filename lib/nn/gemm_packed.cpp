// Packing B into panels, and whether the AVX-512 product (gemm_packed_avx512.cpp) runs here.
#include "nn/gemm_packed.h"

#include <algorithm>
#include <atomic>

#include "core/error.h"

namespace qatc::nn {

namespace {

std::atomic<int> g_enabled{-1};  // -1: not set, follow the CPU

int64_t panels(int64_t n) { return (n + kPanel - 1) / kPanel; }

// Floats per row of panel p's slice: kPanel, or the last panel's columns rounded up to 16.
int64_t panel_width(int64_t n, int64_t p) { return std::min(kPanel, (n - p * kPanel + 15) / 16 * 16); }

}  // namespace

int64_t packed_floats(int64_t k, int64_t n) { return k * ((panels(n) - 1) * kPanel + panel_width(n, panels(n) - 1)); }

void pack_weights(float* packed, const float* b, int64_t k, int64_t n) {
  for (int64_t p = 0; p < panels(n); ++p) {
    const int64_t j0 = p * kPanel, cols = std::min(kPanel, n - j0), width = panel_width(n, p);
    for (int64_t kk = 0; kk < k; ++kk) {
      float* dst = packed + p * k * kPanel + kk * width;
      std::copy(b + kk * n + j0, b + kk * n + j0 + cols, dst);
      std::fill(dst + cols, dst + width, 0.0f);
    }
  }
}

bool packed_gemm_supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

bool packed_gemm_enabled() {
  const int on = g_enabled.load(std::memory_order_relaxed);
  return on < 0 ? packed_gemm_supported() : on == 1;
}

void set_packed_gemm(bool on) {
  if (on && !packed_gemm_supported()) fail("the packed float GEMM needs AVX-512F, which this CPU does not have");
  g_enabled.store(on ? 1 : 0, std::memory_order_relaxed);
}

}  // namespace qatc::nn
