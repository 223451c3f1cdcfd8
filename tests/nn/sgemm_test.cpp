// Tests for the row-major sgemm wrapper and the column sums used for bias gradients.
#include <doctest/doctest.h>

#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "nn/gradcheck.h"
#include "nn/sgemm.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_close;
using qatc::test::random_floats;

TEST_CASE("sgemm: all transpose combinations with padded leading dimensions match a naive product") {
  Rng rng(3);
  const int64_t m = 7, n = 5, k = 9, pad = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("trans_a ", ta, " trans_b ", tb);
      // Stored shapes: A is [m,k] or [k,m], B is [k,n] or [n,k]; each row padded by `pad`.
      const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k;
      const int64_t b_rows = tb ? n : k, b_cols = tb ? k : n;
      const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
      auto a = random_floats(rng, a_rows * lda), b = random_floats(rng, b_rows * ldb);
      auto c = random_floats(rng, m * ldc);
      std::vector<double> expected(c.begin(), c.end());
      const float alpha = 1.5f, beta = -0.5f;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0.0;
          for (int64_t p = 0; p < k; ++p) {
            const double av = ta ? a[static_cast<size_t>(p * lda + i)] : a[static_cast<size_t>(i * lda + p)];
            const double bv = tb ? b[static_cast<size_t>(j * ldb + p)] : b[static_cast<size_t>(p * ldb + j)];
            s += av * bv;
          }
          expected[static_cast<size_t>(i * ldc + j)] = alpha * s + beta * c[static_cast<size_t>(i * ldc + j)];
        }
      // The padding columns of C are not part of the product and must stay untouched.
      auto c1 = c;
      sgemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c1.data(), ldc);
      check_close(c1, expected, 1e-5, 1e-5, "sgemm: C including its padding");
      auto c2 = c;
      sgemm_single_thread(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c2.data(), ldc);
      check_close(c2, expected, 1e-5, 1e-5, "sgemm_single_thread: C including its padding");
    }
}

TEST_CASE("sgemm: single-thread products cut into pieces match a naive product") {
  // Narrow products are cut for OpenBLAS's small-matrix kernels: 250 rows of C at n 32, k 288
  // (pieces of 108, 108 and 34 rows), and a transposed-A product reducing over 250 rows at
  // m 32, n 288 (runs of 108, 108 and 34 added in order, beta applied once).
  struct Case {
    bool ta, tb;
    int64_t m, n, k;
  };
  const Case cases[] = {{false, false, 250, 32, 288}, {false, true, 250, 32, 288}, {true, false, 32, 288, 250}};
  Rng rng(5);
  for (const Case& t : cases) {
    INFO("trans_a ", t.ta, " trans_b ", t.tb, " m ", t.m, " n ", t.n, " k ", t.k);
    const int64_t pad = 2;
    const int64_t a_rows = t.ta ? t.k : t.m, a_cols = t.ta ? t.m : t.k;
    const int64_t b_rows = t.tb ? t.n : t.k, b_cols = t.tb ? t.k : t.n;
    const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = t.n + pad;
    auto a = random_floats(rng, a_rows * lda), b = random_floats(rng, b_rows * ldb);
    auto c = random_floats(rng, t.m * ldc);
    std::vector<double> expected(c.begin(), c.end());
    const float alpha = 0.75f, beta = 0.5f;
    for (int64_t i = 0; i < t.m; ++i)
      for (int64_t j = 0; j < t.n; ++j) {
        double s = 0.0;
        for (int64_t p = 0; p < t.k; ++p) {
          const double av = t.ta ? a[static_cast<size_t>(p * lda + i)] : a[static_cast<size_t>(i * lda + p)];
          const double bv = t.tb ? b[static_cast<size_t>(j * ldb + p)] : b[static_cast<size_t>(p * ldb + j)];
          s += av * bv;
        }
        expected[static_cast<size_t>(i * ldc + j)] = alpha * s + beta * c[static_cast<size_t>(i * ldc + j)];
      }
    sgemm_single_thread(t.ta, t.tb, t.m, t.n, t.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
    check_close(c, expected, 1e-5, 1e-4, "C including its padding");
  }
}

TEST_CASE("sgemm: k = 0 scales C by beta and empty outputs are a no-op") {
  std::vector<float> c = {1, 2, 3, 4};
  sgemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  CHECK(c == std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f});
  sgemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.0f, c.data(), 2);
  CHECK(c == std::vector<float>{0, 0, 0, 0});
  sgemm(false, false, 0, 2, 3, 1.0f, nullptr, 3, nullptr, 2, 0.0f, nullptr, 2);
  c = {1, 2, 3, 4};
  sgemm_single_thread(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  CHECK(c == std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f});
  sgemm_single_thread(false, false, 0, 2, 3, 1.0f, nullptr, 3, nullptr, 2, 0.0f, nullptr, 2);
}

TEST_CASE("sgemm: column sums accumulate and do not depend on the thread count") {
  Rng rng(4);
  const int64_t rows = 3001, cols = 7;  // several fixed-size blocks plus a ragged tail
  auto x = random_floats(rng, rows * cols);
  std::vector<double> expected(static_cast<size_t>(cols), 0.25);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) expected[static_cast<size_t>(j)] += x[static_cast<size_t>(r * cols + j)];
  std::vector<float> one(static_cast<size_t>(cols), 0.25f), two(static_cast<size_t>(cols), 0.25f);
  set_num_threads(1);
  add_column_sums(one.data(), x.data(), rows, cols);
  set_num_threads(2);
  add_column_sums(two.data(), x.data(), rows, cols);
  set_num_threads(0);
  check_close(one, expected, 1e-5, 1e-4, "column sums");
  CHECK(one == two);
}
