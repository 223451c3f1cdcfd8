// Tests for the packed-weights float product: the packing, and gemm_packed bit for bit against
// one in-order fused multiply-add chain per element (what it promises).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/aligned.h"
#include "core/rng.h"
#include "nn/activation.h"
#include "nn/gemm_packed.h"
#include "nn/gradcheck.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::random_floats;

namespace {

AlignedVector<float> packed_of(const std::vector<float>& b, int64_t k, int64_t n) {
  AlignedVector<float> p(static_cast<size_t>(packed_floats(k, n)), -1.0f);
  pack_weights(p.data(), b.data(), k, n);
  return p;
}

// Row pointers of a matrix: row i at a + i * lda.
std::vector<const float*> matrix_rows(const std::vector<float>& a, int64_t m, int64_t lda) {
  std::vector<const float*> rows;
  for (int64_t i = 0; i < m; ++i) rows.push_back(a.data() + i * lda);
  return rows;
}

// c[i, j] for j in [j0, j1) = fma chain over kk in order from c's value, with
// A[i, kk] = rows[i][(kk / seg_len) * seg_stride + kk % seg_len].
void expected_product(std::vector<float>& c, const std::vector<const float*>& rows, int64_t seg_len,
                      int64_t seg_stride, const std::vector<float>& b, int64_t m, int64_t k, int64_t n, int64_t j0,
                      int64_t j1, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = j0; j < j1; ++j) {
      float s = c[static_cast<size_t>(i * ldc + j)];
      for (int64_t kk = 0; kk < k; ++kk)
        s = std::fma(rows[static_cast<size_t>(i)][(kk / seg_len) * seg_stride + kk % seg_len],
                     b[static_cast<size_t>(kk * n + j)], s);
      c[static_cast<size_t>(i * ldc + j)] = s;
    }
}

}  // namespace

TEST_CASE("gemm_packed: pack_weights lays B out in panels of kPanel columns, the last one narrower") {
  Rng rng(1);
  const int64_t k = 5, n = kPanel + 21;  // one full panel, one of 21 columns stored 32 wide
  const auto b = random_floats(rng, k * n);
  const auto p = packed_of(b, k, n);
  REQUIRE(p.size() == static_cast<size_t>(k * (kPanel + 32)));
  for (int64_t kk = 0; kk < k; ++kk) {
    for (int64_t jj = 0; jj < kPanel; ++jj) CHECK(p[static_cast<size_t>(kk * kPanel + jj)] == b[static_cast<size_t>(kk * n + jj)]);
    for (int64_t jj = 0; jj < 32; ++jj) {
      const float want = jj < 21 ? b[static_cast<size_t>(kk * n + kPanel + jj)] : 0.0f;
      CHECK(p[static_cast<size_t>(k * kPanel + kk * 32 + jj)] == want);
    }
  }
}

TEST_CASE("gemm_packed: C += A * B equals an in-order fma chain bit for bit on every row, column and depth tail") {
  if (!packed_gemm_supported()) {
    MESSAGE("no AVX-512F on this CPU: gemm_packed is never called here");
    return;
  }
  Rng rng(7);
  // Rows around the 6-row tile, columns around the 64-wide panel and its 16-float registers,
  // depths around the 256-deep reduction block.
  for (int64_t m : {1, 5, 6, 7, 12, 13, 40})
    for (int64_t n : {1, 15, 16, 17, 33, 48, 63, 64, 65, 100, 130})
      for (int64_t k : {1, 3, 255, 256, 257, 600}) {
        const int64_t lda = k + 3, ldc = n + 5;  // row strides wider than the rows
        const auto a = random_floats(rng, m * lda), b = random_floats(rng, k * n);
        const auto packed = packed_of(b, k, n);
        auto c = random_floats(rng, m * ldc);
        auto want = c;
        const auto rows = matrix_rows(a, m, lda);
        expected_product(want, rows, k, 0, b, m, k, n, 0, n, ldc);
        gemm_packed(m, k, n, 0, n, rows.data(), k, 0, packed.data(), nullptr, c.data(), c.data(), ldc, Activation::none);
        INFO("m ", m, " n ", n, " k ", k);
        int64_t wrong = 0;
        for (size_t i = 0; i < c.size(); ++i) wrong += c[i] != want[i];  // padding columns too
        CHECK(wrong == 0);
      }
}

TEST_CASE("gemm_packed: a column range touches only its columns, and pieces give the whole product's bits") {
  if (!packed_gemm_supported()) return;
  Rng rng(11);
  const int64_t m = 30, n = 150, k = 300, lda = k, ldc = n;
  const auto a = random_floats(rng, m * lda), b = random_floats(rng, k * n);
  const auto packed = packed_of(b, k, n);
  const auto c0 = random_floats(rng, m * ldc);
  const auto rows = matrix_rows(a, m, lda);
  auto whole = c0;
  gemm_packed(m, k, n, 0, n, rows.data(), k, 0, packed.data(), nullptr, whole.data(), whole.data(), ldc, Activation::none);
  // Columns [64, 80) alone (part of a full panel): the others stay as they were.
  auto part = c0;
  gemm_packed(m, k, n, 64, 80, rows.data(), k, 0, packed.data(), nullptr, part.data(), part.data(), ldc, Activation::none);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const auto at = static_cast<size_t>(i * ldc + j);
      CHECK(part[at] == (j >= 64 && j < 80 ? whole[at] : c0[at]));
    }
  // Rows in pieces of 7, columns in the blocks [0, 64) and [64, 100).
  auto pieces = c0;
  for (int64_t i = 0; i < m; i += 7)
    for (int64_t j : {0, 64})
      gemm_packed(std::min<int64_t>(7, m - i), k, n, j, j == 0 ? 64 : n, rows.data() + i, k, 0, packed.data(),
                  nullptr, pieces.data() + i * ldc, pieces.data() + i * ldc, ldc, Activation::none);
  CHECK(pieces == whole);
}

TEST_CASE("gemm_packed: rows made of strided segments, rows overlapping, as a convolution's windows") {
  if (!packed_gemm_supported()) return;
  Rng rng(13);
  // Segment lengths below, at and above the 256-float block (split into equal pieces), few and
  // many segments per block; rows start 1 float apart (overlapping windows) or far apart.
  for (int64_t seg_len : {1, 3, 21, 192, 256, 300, 700})
    for (int64_t nseg : {1, 3, 7})
      for (int64_t row_step : {1, 50}) {
        const int64_t m = 13, n = 70, k = seg_len * nseg, seg_stride = seg_len + 9;
        const auto src = random_floats(rng, m * row_step + nseg * seg_stride);
        std::vector<const float*> rows;
        for (int64_t i = 0; i < m; ++i) rows.push_back(src.data() + i * row_step);
        const auto b = random_floats(rng, k * n);
        const auto packed = packed_of(b, k, n);
        auto c = random_floats(rng, m * n);
        auto want = c;
        expected_product(want, rows, seg_len, seg_stride, b, m, k, n, 0, n, n);
        gemm_packed(m, k, n, 0, n, rows.data(), seg_len, seg_stride, packed.data(), nullptr, c.data(), c.data(), n,
                    Activation::none);
        INFO("seg_len ", seg_len, " segments ", nseg, " row step ", row_step);
        CHECK(c == want);
      }
}

TEST_CASE("gemm_packed: starts from bias + residual, from either alone or from 0, and ends with the activation") {
  if (!packed_gemm_supported()) return;
  Rng rng(17);
  const int64_t m = 9, n = 80, k = 600, ldc = n + 3;  // three blocks of the reduction
  auto a = random_floats(rng, m * k), b = random_floats(rng, k * n, -0.2f, 0.2f);
  a[5] = std::numeric_limits<float>::quiet_NaN();  // a NaN sum: activations map it to 0
  const auto packed = packed_of(b, k, n);
  const auto rows = matrix_rows(a, m, k);
  const auto bias = random_floats(rng, n, -3.0f, 9.0f), residual = random_floats(rng, m * ldc, -3.0f, 3.0f);
  for (bool with_bias : {false, true})
    for (bool with_residual : {false, true})
      for (Activation act : {Activation::none, Activation::relu, Activation::relu6}) {
        INFO("bias ", with_bias, " residual ", with_residual, " activation ", static_cast<int>(act));
        std::vector<float> want(static_cast<size_t>(m * ldc), 0.0f);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            float& x = want[static_cast<size_t>(i * ldc + j)];
            if (with_residual) x = residual[static_cast<size_t>(i * ldc + j)];
            if (with_bias) x = with_residual ? x + bias[static_cast<size_t>(j)] : bias[static_cast<size_t>(j)];
          }
        expected_product(want, rows, k, 0, b, m, k, n, 0, n, ldc);
        for (int64_t i = 0; i < m; ++i) activate(want.data() + i * ldc, n, act);
        std::vector<float> c(static_cast<size_t>(m * ldc), 1e30f);
        gemm_packed(m, k, n, 0, n, rows.data(), k, 0, packed.data(), with_bias ? bias.data() : nullptr,
                    with_residual ? residual.data() : nullptr, c.data(), ldc, act);
        int64_t wrong = 0;
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            const float got = c[static_cast<size_t>(i * ldc + j)], w = want[static_cast<size_t>(i * ldc + j)];
            wrong += !(got == w || (std::isnan(got) && std::isnan(w)));
          }
        CHECK(wrong == 0);
        CHECK(c[static_cast<size_t>(n)] == 1e30f);  // the gap between rows stays untouched
      }
}
