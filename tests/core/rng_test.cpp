// Tests for the deterministic random streams.
#include <doctest/doctest.h>

#include <algorithm>

#include "core/rng.h"

using namespace qatc;

TEST_CASE("rng: same seed gives the same stream and different seeds differ") {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next();
    CHECK(x == b.next());
    CHECK(x != c.next());
  }
}

TEST_CASE("rng: uniform stays in the unit interval and below(n) under n") {
  Rng r(1);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    float u = r.uniform();
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    sum += u;
    REQUIRE(r.below(7) < 7u);
  }
  CHECK(sum / 100000 == doctest::Approx(0.5).epsilon(0.01));
}

TEST_CASE("rng: normal has mean 0 and variance 1") {
  Rng r(7);
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double x = r.normal();
    s += x;
    s2 += x * x;
  }
  CHECK(s / n == doctest::Approx(0.0).epsilon(0.01).scale(1.0));
  CHECK(s2 / n == doctest::Approx(1.0).epsilon(0.02));
}

TEST_CASE("rng: permutation is a permutation") {
  Rng r(3);
  auto p = r.permutation(1000);
  auto q = p;
  std::sort(q.begin(), q.end());
  for (int i = 0; i < 1000; ++i) CHECK(q[static_cast<size_t>(i)] == i);
  CHECK(p != q);
}
