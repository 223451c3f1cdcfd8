// Tests for qrange, choose_qparams (nudging) and the shared quantize/dequantize rounding.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "quant/qparams.h"

using namespace qatc;
using namespace qatc::quant;

TEST_CASE("qrange: signed storage for 2 to 8 bits with and without narrow range") {
  struct Case {
    int bits;
    bool narrow;
    int32_t qmin, qmax;
  };
  const std::vector<Case> cases = {{8, false, -128, 127}, {8, true, -127, 127}, {7, false, -64, 63},
                                   {4, false, -8, 7},     {4, true, -7, 7},     {3, false, -4, 3},
                                   {2, false, -2, 1},     {2, true, -1, 1}};
  for (const Case& c : cases)
    for (bool sym : {false, true}) {
      const QRange r = qrange(c.bits, sym, c.narrow);
      CHECK(r.qmin == c.qmin);
      CHECK(r.qmax == c.qmax);
    }
  CHECK_THROWS_AS(qrange(1, true, true), qatc::Error);
  CHECK_THROWS_AS(qrange(9, false, false), qatc::Error);
  CHECK_THROWS_AS(qrange(16, false, false), qatc::Error);
}

TEST_CASE("choose_qparams: hand-computed asymmetric and symmetric parameters") {
  const QRange r8 = qrange(8, false, false), r8n = qrange(8, true, true);
  // [-2, 13.9375] spans 255/16: scale 1/16, zero_point = round(-128 + 2 * 16) = -96.
  QParams q = choose_qparams(-2.0f, 13.9375f, r8, false);
  CHECK(q.scale == 0.0625f);
  CHECK(q.zero_point == -96);
  CHECK(q.qmin == -128);
  CHECK(q.qmax == 127);
  // [-1, 3]: scale 4/255; -1 / scale = -63.75, so zero_point = round(-128 + 63.75) = -64.
  q = choose_qparams(-1.0f, 3.0f, r8, false);
  CHECK(q.scale == static_cast<float>(4.0 / 255.0));
  CHECK(q.zero_point == -64);
  // Ranges that exclude 0 are widened to it: all positive -> zero_point qmin; all negative -> qmax.
  q = choose_qparams(2.0f, 10.0f, r8, false);
  CHECK(q.scale == static_cast<float>(10.0 / 255.0));
  CHECK(q.zero_point == -128);
  q = choose_qparams(-10.0f, -2.0f, r8, false);
  CHECK(q.scale == static_cast<float>(10.0 / 255.0));
  CHECK(q.zero_point == 127);
  // Symmetric: scale = max(|min|, |max|) / qmax, zero_point 0, narrow or not.
  q = choose_qparams(-2.0f, 5.0f, r8n, true);
  CHECK(q.scale == static_cast<float>(5.0 / 127.0));
  CHECK(q.zero_point == 0);
  CHECK(q.qmin == -127);
  q = choose_qparams(-6.35f, 1.0f, r8, true);
  CHECK(q.scale == static_cast<float>(static_cast<double>(-6.35f) / -127.0));
  CHECK(q.zero_point == 0);
  CHECK(q.qmin == -128);
  // Degenerate all-zero range: scale 1, zero_point by the usual rule.
  q = choose_qparams(0.0f, 0.0f, r8, false);
  CHECK(q.scale == 1.0f);
  CHECK(q.zero_point == -128);
  q = choose_qparams(0.0f, 0.0f, r8n, true);
  CHECK(q.scale == 1.0f);
  CHECK(q.zero_point == 0);
  // A range too small for a normal float scale gets the smallest normal float.
  q = choose_qparams(0.0f, 1e-36f, r8, false);  // normal range, subnormal scale (1e-36 / 255)
  CHECK(q.scale == std::numeric_limits<float>::min());
}

TEST_CASE("choose_qparams: non-finite or inverted ranges are internal errors") {
  const QRange r = qrange(8, false, false);
  const float inf = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(choose_qparams(-inf, 1.0f, r, false), qatc::InternalError);
  CHECK_THROWS_AS(choose_qparams(0.0f, std::nanf(""), r, true), qatc::InternalError);
  CHECK_THROWS_AS(choose_qparams(2.0f, 1.0f, r, false), qatc::InternalError);
}

TEST_CASE("choose_qparams: real 0 is exact for many random ranges - the nudging contract") {
  Rng rng(123);
  int checked = 0;
  for (int bits = 2; bits <= 8; ++bits)
    for (bool sym : {false, true})
      for (bool narrow : {false, true}) {
        const QRange r = qrange(bits, sym, narrow);
        for (int i = 0; i < 600; ++i) {
          // Magnitudes from 1e-42 (subnormal) to 1e30, with both ends of either sign.
          const double mag = std::pow(10.0, rng.uniform(-42.0f, 30.0f));
          float a = static_cast<float>(mag * rng.uniform(-1.0f, 1.0f));
          float b = static_cast<float>(mag * rng.uniform(-1.0f, 1.0f));
          switch (i % 4) {
            case 0: a = std::fabs(a), b = std::fabs(b); break;    // min > 0
            case 1: a = -std::fabs(a), b = -std::fabs(b); break;  // max < 0
            default: break;
          }
          const float mn = std::min(a, b), mx = std::max(a, b);
          const QParams q = choose_qparams(mn, mx, r, sym);
          REQUIRE(q.scale >= std::numeric_limits<float>::min());
          REQUIRE(std::isfinite(q.scale));
          REQUIRE(q.zero_point >= r.qmin);
          REQUIRE(q.zero_point <= r.qmax);
          if (sym) REQUIRE(q.zero_point == 0);
          REQUIRE(quantize(0.0f, q) == q.zero_point);
          REQUIRE(quantize(-0.0f, q) == q.zero_point);
          REQUIRE(dequantize(q.zero_point, q) == 0.0f);
          // The nudged grid still covers the widened range to within half a step.
          const double lo = std::min<double>(mn, 0.0), hi = std::max<double>(mx, 0.0);
          // (Grid ends in double, so the check is about the grid, not float rounding.)
          const double s = q.scale, half = 0.5 * s * (1.0 + 1e-6);
          REQUIRE(s * (q.qmin - q.zero_point) <= lo + half);
          REQUIRE(s * (q.qmax - q.zero_point) >= hi - half);
          ++checked;
        }
      }
  CHECK(checked == 7 * 4 * 600);
}

TEST_CASE("round_half_away_from_zero: equals std::round on edge cases and random floats") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> edge = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f,
                                   0.49999997f, -0.49999997f, 0.50000006f, 8388607.5f,
                                   -8388607.5f, 8388608.0f, 16777217.0f, 1e30f, -1e30f,
                                   std::numeric_limits<float>::denorm_min(), inf, -inf};
  for (float x : edge) {
    INFO("x = " << x);
    CHECK(round_half_away_from_zero(x) == std::round(x));
    CHECK(std::signbit(round_half_away_from_zero(x)) == std::signbit(std::round(x)));
  }
  CHECK(std::isnan(round_half_away_from_zero(std::nanf(""))));
  Rng rng(77);
  for (int i = 0; i < 200000; ++i) {
    // Random bit patterns cover every exponent; also values near half-integers.
    uint32_t bits = static_cast<uint32_t>(rng.next());
    float x;
    std::memcpy(&x, &bits, sizeof x);
    if (std::isnan(x)) continue;
    REQUIRE(round_half_away_from_zero(x) == std::round(x));
    const float h = static_cast<float>(static_cast<int>(rng.below(2000)) - 1000) + 0.5f;
    const float near = std::nextafter(h, (i & 1) ? inf : -inf);
    REQUIRE(round_half_away_from_zero(h) == std::round(h));
    REQUIRE(round_half_away_from_zero(near) == std::round(near));
  }
}

TEST_CASE("quantize: ties round away from real 0 before zero_point is added") {
  const QParams q{0.25f, 0, -127, 127};
  CHECK(quantize(0.125f, q) == 1);    // 0.5 -> 1
  CHECK(quantize(-0.125f, q) == -1);  // -0.5 -> -1
  CHECK(quantize(0.375f, q) == 2);    // 1.5 -> 2
  CHECK(quantize(-0.375f, q) == -2);
  CHECK(quantize(0.625f, q) == 3);    // 2.5 -> 3, not 2 (not banker's rounding)
  CHECK(quantize(0.1249f, q) == 0);
  // With zero_point 3, -0.5 steps rounds to -1 first: 2. Adding zero_point first would give
  // round(2.5) = 3, breaking the symmetry around real 0.
  const QParams z{0.25f, 3, -128, 127};
  CHECK(quantize(-0.125f, z) == 2);
  CHECK(quantize(0.125f, z) == 4);
  CHECK(dequantize(2, z) == -0.25f);
}

TEST_CASE("quantize: clamps to qmin and qmax, infinities clamp and NaN maps to zero_point") {
  const QParams q{0.5f, -10, -128, 127};
  CHECK(quantize(68.5f, q) == 127);   // 137 - 10 = 127, exactly the top
  CHECK(quantize(69.0f, q) == 127);   // 138 - 10 = 128 -> clamped
  CHECK(quantize(-59.0f, q) == -128);
  CHECK(quantize(-60.0f, q) == -128);
  CHECK(quantize(1e30f, q) == 127);
  CHECK(quantize(-1e30f, q) == -128);
  CHECK(quantize(std::numeric_limits<float>::infinity(), q) == 127);
  CHECK(quantize(-std::numeric_limits<float>::infinity(), q) == -128);
  CHECK(quantize(std::nanf(""), q) == -10);
  CHECK(dequantize(127, q) == 68.5f);
  CHECK(dequantize(-128, q) == -59.0f);
}
