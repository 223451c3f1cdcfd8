// The single GEMM entry point of qatc's float layers (row-major, backed by OpenBLAS).
#pragma once

#include <cstdint>

namespace qatc::nn {

// C[m,n] = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is [m,k] (A stored [k,m] when trans_a), op(B) is [k,n] (B stored [n,k] when trans_b).
// Threaded by splitting C across qatc's pool; OpenBLAS itself runs single-threaded.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The same product on the calling thread only, for callers that split work across the pool
// themselves. Narrow products are cut into pieces that OpenBLAS multiplies without packing
// (rows of C; for trans_a && !trans_b, runs of the reduction added in order). The pieces and
// the path through OpenBLAS depend on (trans_a, trans_b, m, n, k) only, so a caller whose split
// does not depend on the thread count gets results that do not either.
void sgemm_single_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                         int64_t ldc);

// acc[cols] += sum over rows of x[rows, cols] (bias gradients). Rows are summed in float within
// fixed 512-row blocks and the blocks are combined in double, so the result is accurate and
// does not depend on the thread count.
void add_column_sums(float* acc, const float* x, int64_t rows, int64_t cols);

}  // namespace qatc::nn
