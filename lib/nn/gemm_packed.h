// Float products against weights packed once, for inference: C[m, j0:j1] += A[m, k] * B[k, j0:j1].
//
// OpenBLAS copies ("packs") both operands of every product into its own layout before it
// multiplies. In inference B is a layer's weights, the same on every call, so packing it per
// call is wasted work (about a tenth of ResNet50's float time, docs/performance.md). Here B is
// packed once, when the inference engine is built, into panels of kPanel output channels:
//   packed[p * k * kPanel + kk * width + jj] = B[kk, p * kPanel + jj]
// where width is kPanel, except for a last, narrower panel: its columns rounded up to a multiple
// of 16 (one register), the padding 0.
//
// A is read in place and need not be a matrix: row i starts at its own pointer rows[i], and is
// made of k / seg_len segments of seg_len floats, seg_stride floats apart:
//   A[i, kk] = rows[i][(kk / seg_len) * seg_stride + kk % seg_len]
// A convolution's A is its input itself: row i is output position i's window, a segment one
// kernel row (kw * c floats, contiguous in an NHWC input), the segments one input row apart. So
// no im2col copy is made; a matrix is one segment per row (seg_len = k).
//
// The kernel needs AVX-512F (16 floats per register); packed_gemm_supported() says whether this
// CPU has it. Where it does not, the engine keeps its weights unpacked and uses OpenBLAS.
//
// Each element of C is one chain of fused multiply-adds over kk = 0, 1, ..., k-1 in order,
// starting from its start value (below): the result does not depend on how rows or columns are
// cut into pieces (threads, chunks, column blocks).
#pragma once

#include <cstdint>

#include "nn/activation.h"

namespace qatc::nn {

// Output channels per packed panel: four 16-float registers wide.
constexpr int64_t kPanel = 64;

// Floats of B [k, n] in the packed layout.
int64_t packed_floats(int64_t k, int64_t n);

// b [k, n] (row stride n) -> packed [packed_floats(k, n)].
void pack_weights(float* packed, const float* b, int64_t k, int64_t n);

// Whether this CPU runs gemm_packed (AVX-512F), and whether inference uses it: by default
// where supported; set_packed_gemm(false) makes new inference engines use OpenBLAS instead
// (benchmarks compare the two). Enabling it on a CPU without AVX-512F is an error.
bool packed_gemm_supported();
bool packed_gemm_enabled();
void set_packed_gemm(bool on);

// C[i, j] = act(start[i, j] + sum_kk A[i, kk] * B[kk, j]) for i in [0, m), j in [j0, j1), on the
// calling thread, where start is residual[i, j] + bias[j] (either alone when the other is
// nullptr; 0 without both). residual has C's layout (rows ldc apart) and may be c itself:
// residual = c, bias = nullptr, act none is C += A * B. The activation is nn::activate's
// arithmetic. rows, seg_len, seg_stride: A as above (k a multiple of seg_len); packed: B [k, n]
// packed (fastest when 64-byte aligned); j0 a multiple of kPanel, j1 <= n.
void gemm_packed(int64_t m, int64_t k, int64_t n, int64_t j0, int64_t j1, const float* const* rows, int64_t seg_len,
                 int64_t seg_stride, const float* packed, const float* bias, const float* residual, float* c,
                 int64_t ldc, Activation act);

}  // namespace qatc::nn
