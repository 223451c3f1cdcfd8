// Tests for inverted dropout: keep rate, scaling, seed determinism, thread independence.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "nn/dropout.h"
#include "nn/gradcheck.h"

using namespace qatc;
using namespace qatc::nn;
using qatc::test::check_grad;
using qatc::test::dot;
using qatc::test::numeric_grad;
using qatc::test::random_floats;

namespace {
struct Drop {
  std::vector<float> out;
  std::vector<uint8_t> mask;
};
Drop run(const std::vector<float>& in, float rate, uint64_t seed) {
  Drop d{std::vector<float>(in.size()), std::vector<uint8_t>(in.size())};
  dropout_forward(d.out.data(), d.mask.data(), in.data(), static_cast<int64_t>(in.size()), rate, seed);
  return d;
}
}  // namespace

TEST_CASE("dropout: keeps about 1 - rate and scales the kept values") {
  Rng rng(61);
  auto in = random_floats(rng, 200000, 0.5f, 1.5f);  // nonzero, so dropped and kept differ
  for (float rate : {0.1f, 0.3f, 0.5f, 0.9f}) {
    INFO("rate ", rate);
    const Drop d = run(in, rate, 7);
    int64_t kept = 0, wrong = 0;
    const float scale = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < in.size(); ++i) {
      if (d.mask[i] > 1) ++wrong;
      if (d.mask[i]) {
        ++kept;
        if (d.out[i] != in[i] * scale) ++wrong;
      } else if (d.out[i] != 0.0f) {
        ++wrong;
      }
    }
    CHECK(wrong == 0);
    // 200000 Bernoulli draws: the standard deviation of the fraction is below 0.0012.
    const double kept_fraction = static_cast<double>(kept) / 200000.0;
    INFO("kept fraction ", kept_fraction);
    CHECK(std::fabs(kept_fraction - (1.0 - rate)) < 0.006);
  }
}

TEST_CASE("dropout: the mask is a pure function of seed and index") {
  Rng rng(62);
  auto in = random_floats(rng, 100003);
  const Drop a = run(in, 0.4f, 123), b = run(in, 0.4f, 123), c = run(in, 0.4f, 124);
  CHECK(a.mask == b.mask);
  CHECK(a.out == b.out);
  int64_t differ = 0;
  for (size_t i = 0; i < in.size(); ++i) differ += a.mask[i] != c.mask[i];
  CHECK(differ > 30000);  // independent masks disagree on 2 * 0.4 * 0.6 = 48% of elements
  // A shorter tensor sees the same mask on its elements: nothing depends on the length.
  std::vector<float> prefix(in.begin(), in.begin() + 5000);
  const Drop p = run(prefix, 0.4f, 123);
  CHECK(std::equal(p.mask.begin(), p.mask.end(), a.mask.begin()));
}

TEST_CASE("dropout: identical masks with 1 or 2 or 3 threads") {
  Rng rng(63);
  auto in = random_floats(rng, 300007);
  set_num_threads(1);
  const Drop one = run(in, 0.25f, 99);
  set_num_threads(2);
  const Drop two = run(in, 0.25f, 99);
  set_num_threads(3);
  const Drop three = run(in, 0.25f, 99);
  set_num_threads(0);
  CHECK(one.mask == two.mask);
  CHECK(one.mask == three.mask);
  CHECK(one.out == two.out);
  CHECK(one.out == three.out);
}

TEST_CASE("dropout: rate 0 is the identity and rates outside 0 to 1 are rejected") {
  const std::vector<float> in = {1, -2, 3, 0.5f};
  const Drop d = run(in, 0.0f, 5);
  CHECK(d.out == in);
  CHECK(d.mask == std::vector<uint8_t>{1, 1, 1, 1});
  std::vector<float> out(4);
  std::vector<uint8_t> mask(4);
  CHECK_THROWS_AS(dropout_forward(out.data(), mask.data(), in.data(), 4, 1.0f, 5), qatc::Error);
  CHECK_THROWS_AS(dropout_forward(out.data(), mask.data(), in.data(), 4, -0.1f, 5), qatc::Error);
  CHECK_THROWS_AS(dropout_forward(out.data(), mask.data(), in.data(), 4, std::numeric_limits<float>::quiet_NaN(), 5),
                  qatc::Error);
}

TEST_CASE("dropout: gradient matches finite differences for a fixed seed and accumulates") {
  Rng rng(64);
  const int64_t n = 257;
  auto in = random_floats(rng, n), r = random_floats(rng, n);
  std::vector<float> out(static_cast<size_t>(n));
  std::vector<uint8_t> mask(static_cast<size_t>(n));
  auto loss = [&] {
    dropout_forward(out.data(), mask.data(), in.data(), n, 0.3f, 77);
    return dot(out, r);
  };
  loss();
  std::vector<float> din(static_cast<size_t>(n), 0.0f);
  dropout_backward(din.data(), r.data(), mask.data(), n, 0.3f);
  check_grad(din, numeric_grad(in, 0.25f, loss), 1e-4, "input");
  auto twice = din;
  dropout_backward(twice.data(), r.data(), mask.data(), n, 0.3f);
  for (size_t i = 0; i < din.size(); ++i) REQUIRE(twice[i] == 2 * din[i]);
}
