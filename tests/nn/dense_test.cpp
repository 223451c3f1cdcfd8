// Tests for the dense layer: direct product, finite differences, accumulation and nullptr.
#include <doctest/doctest.h>

#include <vector>

#include "core/rng.h"
#include "nn/dense.h"
#include "nn/gradcheck.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_close;
using qatc::test::check_grad;
using qatc::test::dot;
using qatc::test::numeric_grad;
using qatc::test::random_floats;

namespace {
struct DenseCase {
  int64_t n, in, out;
};
const DenseCase kCases[] = {{1, 1, 1}, {3, 5, 4}, {7, 13, 10}, {2, 64, 3}, {5, 3, 17}};
}  // namespace

TEST_CASE("dense: forward matches a hand-computed product") {
  // in [2,3], w [3,2] in Keras [in, out] layout.
  const std::vector<float> in = {1, 2, 3, -1, 0, 2}, w = {1, 0, 0, 1, 2, -1}, b = {0.5f, -0.5f};
  std::vector<float> out(4);
  dense_forward(out.data(), in.data(), w.data(), b.data(), 2, 3, 2);
  CHECK(out == std::vector<float>{7.5f, -1.5f, 3.5f, -2.5f});
  dense_forward(out.data(), in.data(), w.data(), nullptr, 2, 3, 2);
  CHECK(out == std::vector<float>{7.0f, -1.0f, 3.0f, -2.0f});
}

TEST_CASE("dense: forward matches a direct product on random shapes") {
  Rng rng(21);
  for (const DenseCase& k : kCases) {
    INFO("n ", k.n, " in ", k.in, " out ", k.out);
    auto in = random_floats(rng, k.n * k.in), w = random_floats(rng, k.in * k.out);
    auto b = random_floats(rng, k.out);
    std::vector<double> expected(static_cast<size_t>(k.n * k.out));
    for (int64_t i = 0; i < k.n; ++i)
      for (int64_t o = 0; o < k.out; ++o) {
        double s = b[static_cast<size_t>(o)];
        for (int64_t p = 0; p < k.in; ++p)
          s += static_cast<double>(in[static_cast<size_t>(i * k.in + p)]) * w[static_cast<size_t>(p * k.out + o)];
        expected[static_cast<size_t>(i * k.out + o)] = s;
      }
    std::vector<float> out(expected.size());
    dense_forward(out.data(), in.data(), w.data(), b.data(), k.n, k.in, k.out);
    check_close(out, expected, 1e-5, 1e-5, "forward");
  }
}

TEST_CASE("dense: gradients match finite differences") {
  Rng rng(22);
  for (const DenseCase& k : kCases) {
    INFO("n ", k.n, " in ", k.in, " out ", k.out);
    auto in = random_floats(rng, k.n * k.in), w = random_floats(rng, k.in * k.out);
    auto b = random_floats(rng, k.out), r = random_floats(rng, k.n * k.out);
    std::vector<float> out(r.size());
    auto loss = [&] {
      dense_forward(out.data(), in.data(), w.data(), b.data(), k.n, k.in, k.out);
      return dot(out, r);
    };
    std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
    dense_backward(din.data(), dw.data(), db.data(), r.data(), in.data(), w.data(), k.n, k.in, k.out);
    // Linear in each argument: a large step is exact up to float rounding of the loss.
    check_grad(din, numeric_grad(in, 0.25f, loss), 2e-3, "input");
    check_grad(dw, numeric_grad(w, 0.25f, loss), 2e-3, "weights");
    check_grad(db, numeric_grad(b, 0.25f, loss), 2e-3, "bias");
  }
}

TEST_CASE("dense: backward accumulates and skips gradients passed as nullptr") {
  Rng rng(23);
  const int64_t n = 4, fin = 6, fout = 3;
  auto in = random_floats(rng, n * fin), w = random_floats(rng, fin * fout);
  auto dout = random_floats(rng, n * fout);
  std::vector<float> din(in.size(), 0.0f), dw(w.size(), 0.0f), db(static_cast<size_t>(fout), 0.0f);
  dense_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(), w.data(), n, fin, fout);
  auto din2 = din, dw2 = dw, db2 = db;
  dense_backward(din2.data(), dw2.data(), db2.data(), dout.data(), in.data(), w.data(), n, fin, fout);
  for (size_t i = 0; i < din.size(); ++i) REQUIRE(din2[i] == doctest::Approx(2 * din[i]));
  for (size_t i = 0; i < dw.size(); ++i) REQUIRE(dw2[i] == doctest::Approx(2 * dw[i]));
  for (size_t i = 0; i < db.size(); ++i) REQUIRE(db2[i] == doctest::Approx(2 * db[i]));
  std::vector<float> dw3(w.size(), 0.0f);
  dense_backward(nullptr, dw3.data(), nullptr, dout.data(), in.data(), w.data(), n, fin, fout);
  CHECK(dw3 == dw);
}
