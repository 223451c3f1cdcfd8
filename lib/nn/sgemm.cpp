// Row-major sgemm over OpenBLAS, and the column sums that bias gradients need.
#include "nn/sgemm.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

namespace qatc::nn {

namespace {

void blas(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kParallelMacs = int64_t{1} << 21;

// OpenBLAS (0.3.17 and later, built with SMALL_MATRIX_OPT as Debian's is) multiplies products
// of at most 1e6 multiply-adds with kernels that read A and B in place; larger ones first copy
// ("pack") both operands. For the narrow products of convolutions (32-64 output channels, a few
// hundred patch floats) the in-place kernels ran 25-40% faster on AVX-512 (bench/
// bench_float_layers.cpp), so sgemm_single_thread cuts a product into pieces of that size when
// the pieces stay big enough. With fewer rows per piece the packed product won.
constexpr int64_t kSmallMacs = 1000000;
constexpr int64_t kMinPieceRows = 96;   // rows of C per piece (NN, NT)
constexpr int64_t kMinPieceDepth = 32;  // reduction depth per piece (TN)

// Checks the sizes and handles the cases OpenBLAS should not see; false when nothing is left to do.
bool prepare(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, float beta, float* c, int64_t ldc) {
  QATC_CHECK_GE(m, 0);
  QATC_CHECK_GE(n, 0);
  QATC_CHECK_GE(k, 0);
  if (m == 0 || n == 0) return false;
  // OpenBLAS built without ILP64 takes 32-bit sizes; a silent wrap would corrupt memory.
  for (int64_t v : {m, n, k, lda, ldb, ldc}) QATC_CHECK_LE(v, static_cast<int64_t>(INT_MAX));
  if (k == 0) {
    // Some BLAS builds return early for k == 0 without applying beta.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return false;
  }
  return true;
}

}  // namespace

void sgemm_single_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                         int64_t ldc) {
  if (!prepare(m, n, k, lda, ldb, beta, c, ldc)) return;
  if (!trans_a) {
    // Pieces of rows of C: each an independent product over the whole K.
    const int64_t rows = kSmallMacs / (n * k);
    if (rows >= kMinPieceRows && m > rows) {
      for (int64_t i0 = 0; i0 < m; i0 += rows)
        blas(false, trans_b, std::min(rows, m - i0), n, k, alpha, a + i0 * lda, lda, b, ldb, beta, c + i0 * ldc, ldc);
      return;
    }
  } else if (!trans_b) {
    // Pieces of the reduction (the rows of A and B), added into C in order.
    const int64_t depth = kSmallMacs / (m * n);
    if (depth >= kMinPieceDepth && k > depth) {
      for (int64_t p0 = 0; p0 < k; p0 += depth)
        blas(true, false, m, n, std::min(depth, k - p0), alpha, a + p0 * lda, lda, b + p0 * ldb, ldb,
             p0 == 0 ? beta : 1.0f, c, ldc);
      return;
    }
  }
  blas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (!prepare(m, n, k, lda, ldb, beta, c, ldc)) return;
  // OpenBLAS runs single-threaded (its own threads spin in sched_yield and fight qatc's pool);
  // qatc splits C into blocks of rows (or columns when C is wide) across its pool instead.
  // Each element of C is still one OpenBLAS dot product over the same K blocking, so the
  // result does not depend on the number of threads.
  if (num_threads() == 1 || m * n * k < kParallelMacs) {
    blas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  if (m >= n) {
    parallel_for(m, 16, [&](int64_t i0, int64_t i1) {
      const float* ai = trans_a ? a + i0 : a + i0 * lda;
      blas(trans_a, trans_b, i1 - i0, n, k, alpha, ai, lda, b, ldb, beta, c + i0 * ldc, ldc);
    });
  } else {
    parallel_for(n, 16, [&](int64_t j0, int64_t j1) {
      const float* bj = trans_b ? b + j0 * ldb : b + j0;
      blas(trans_a, trans_b, m, j1 - j0, k, alpha, a, lda, bj, ldb, beta, c + j0, ldc);
    });
  }
}

void add_column_sums(float* acc, const float* x, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  // Fixed block size (not derived from the thread count) keeps the summation order fixed.
  constexpr int64_t kBlockRows = 512;
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  std::vector<double> partial(static_cast<size_t>(blocks * cols), 0.0);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> run(static_cast<size_t>(cols));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * kBlockRows, r1 = std::min(rows, r0 + kBlockRows);
      // Float running sums over at most 512 rows vectorize well; blocks combine in double.
      std::fill(run.begin(), run.end(), 0.0f);
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * cols;
        for (int64_t j = 0; j < cols; ++j) run[static_cast<size_t>(j)] += xr[j];
      }
      double* p = partial.data() + blk * cols;
      for (int64_t j = 0; j < cols; ++j) p[j] = run[static_cast<size_t>(j)];
    }
  });
  for (int64_t j = 0; j < cols; ++j) {
    double s = 0.0;
    for (int64_t blk = 0; blk < blocks; ++blk) s += partial[static_cast<size_t>(blk * cols + j)];
    acc[j] += static_cast<float>(s);
  }
}

}  // namespace qatc::nn
