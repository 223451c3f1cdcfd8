// Tests for PTQ range selection: histogram percentiles, re-binning, MSE ranges that clip
// rare outliers, and the exact weight MSE search.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "quant/calibration.h"
#include "quant/qparams.h"

using namespace qatc;
using namespace qatc::quant;

namespace {

double sq_error(const std::vector<float>& w, MinMax range, QRange r, bool symmetric) {
  const QParams q = choose_qparams(range.min, range.max, r, symmetric);
  double s = 0.0;
  for (float v : w) {
    const double d = static_cast<double>(v) - dequantize(quantize(v, q), q);
    s += d * d;
  }
  return s;
}

}  // namespace

TEST_CASE("histogram: percentile of uniform integers") {
  HistogramCollector h;
  // -500..499 in a shuffled order over several batches (the range widens as batches come).
  Rng rng(4);
  const std::vector<int32_t> p = rng.permutation(1000);
  for (int b = 0; b < 10; ++b) {
    std::vector<float> batch;
    for (int i = 0; i < 100; ++i) batch.push_back(static_cast<float>(p[static_cast<size_t>(b * 100 + i)] - 500));
    h.add(batch.data(), static_cast<int64_t>(batch.size()));
  }
  CHECK(h.total_count() == doctest::Approx(1000.0).epsilon(1e-9));
  const MinMax mm = h.range_minmax();
  CHECK(mm.min == -500.0f);
  CHECK(mm.max == 499.0f);
  const MinMax pr = h.range_percentile(99.0);
  CHECK(pr.max == doctest::Approx(490.0).epsilon(0.004));  // within ~2 of 490
  CHECK(pr.min == doctest::Approx(-490.0).epsilon(0.004));
  const MinMax full = h.range_percentile(100.0);
  CHECK(full.min == -500.0f);
  CHECK(full.max == 499.0f);
  CHECK_THROWS_AS(h.range_percentile(49.0), qatc::Error);
  CHECK_THROWS_AS(h.range_percentile(100.5), qatc::Error);

  // 0..999 in one batch: the 99th percentile is near 990, and the low side never excludes 0.
  HistogramCollector u;
  std::vector<float> v;
  for (int i = 0; i < 1000; ++i) v.push_back(static_cast<float>(i));
  u.add(v.data(), 1000);
  const MinMax up = u.range_percentile(99.0);
  CHECK(up.max == doctest::Approx(990.0).epsilon(0.002));
  CHECK(up.min == 0.0f);
  const MinMax up9 = u.range_percentile(90.0);
  CHECK(up9.max == doctest::Approx(900.0).epsilon(0.002));
}

TEST_CASE("histogram: widening re-bins keep the total count and where the mass is") {
  HistogramCollector h(2048);
  Rng rng(6);
  std::vector<float> a(1000);
  for (auto& x : a) x = rng.uniform(0.0f, 1.0f);
  a[0] = 0.0f;
  a[1] = 1.0f;
  h.add(a.data(), 1000);
  const float ends[2] = {-10.0f, 10.0f};
  h.add(ends, 2);
  CHECK(h.total_count() == doctest::Approx(1002.0).epsilon(1e-12));
  // The first batch's mass stays within [0, 1] (give or take one new bin on each side).
  const double w = 20.0 / 2048;
  double inside = 0.0;
  for (size_t i = 0; i < h.counts().size(); ++i) {
    const double left = -10.0 + static_cast<double>(i) * w;
    if (left >= -w && left + w <= 1.0 + w) inside += h.counts()[i];
  }
  CHECK(inside == doctest::Approx(1000.0).epsilon(1e-9));
  // Many more widenings: the count is still kept.
  for (int k = 1; k <= 50; ++k) {
    const float more[3] = {-10.0f - k * 0.37f, 0.5f, 10.0f + k * 1.3f};
    h.add(more, 3);
  }
  CHECK(h.total_count() == doctest::Approx(1152.0).epsilon(1e-9));
  CHECK(h.range_minmax().min == -10.0f - 50 * 0.37f);
  CHECK(h.range_minmax().max == 10.0f + 50 * 1.3f);

  // By hand, 4 bins: [0, 4] holds {0, 0.5 | 1.5 | 2.5 | 3.5, 4} = [2, 1, 1, 2]. Adding -2
  // re-bins onto [-2, 4] (width 1.5): old [0,1] -> new [-0.5,1]; old [1,2] -> new [1,2.5];
  // old [2,3] splits half and half; old [3,4] -> new [2.5,4]. Then -2 lands in bin 0.
  HistogramCollector f(4);
  const float first[6] = {0.0f, 0.5f, 1.5f, 2.5f, 3.5f, 4.0f};
  f.add(first, 6);
  CHECK(f.counts() == std::vector<double>{2.0, 1.0, 1.0, 2.0});
  const float left[1] = {-2.0f};
  f.add(left, 1);
  CHECK(f.counts()[0] == doctest::Approx(1.0));
  CHECK(f.counts()[1] == doctest::Approx(2.0));
  CHECK(f.counts()[2] == doctest::Approx(1.5));
  CHECK(f.counts()[3] == doctest::Approx(2.5));

  // A collector whose first batch is a single value (zero-width histogram) widens too.
  HistogramCollector p(16);
  const float same[3] = {2.0f, 2.0f, 2.0f};
  p.add(same, 3);
  const float wider[1] = {4.0f};
  p.add(wider, 1);
  CHECK(p.total_count() == doctest::Approx(4.0));
  CHECK(p.counts()[0] == doctest::Approx(3.0));
  CHECK(p.counts()[15] == doctest::Approx(1.0));

  HistogramCollector empty;
  CHECK(empty.range_minmax().min == 0.0f);
  CHECK(empty.range_mse(qrange(8, false, false), false).max == 0.0f);
}

TEST_CASE("histogram: mse range clips rare huge outliers where minmax does not") {
  // 1e6 values uniform in [-1, 1] plus outliers at 50, 48 and -50. 8-bit minmax spends its
  // levels on the outliers (step 100/255 ~ 0.39, squared error ~ 1e6 * step^2 / 12 ~ 12800);
  // the MSE range trades their clipping error for a finer grid. Modelling the error as
  // (50-b)^2 + (48-b)^2 + (50-a)^2 + 1e6 ((a+b)/255)^2 / 12 for the range [-a, b] puts the
  // optimum at a ~ 6.6, b ~ 27.3 (symmetric [-a, a] with 254 steps: a ~ 18.1). The real
  // error is flat to ~1% around there (the nudged grid moves the clipped levels), so the
  // checks allow a few units.
  HistogramCollector h;
  Rng rng(10);
  std::vector<float> all;
  std::vector<float> x(100000);
  for (int b = 0; b < 10; ++b) {
    for (auto& v : x) v = rng.uniform(-1.0f, 1.0f);
    h.add(x.data(), static_cast<int64_t>(x.size()));
    all.insert(all.end(), x.begin(), x.end());
  }
  const float outliers[3] = {50.0f, -50.0f, 48.0f};
  h.add(outliers, 3);
  all.insert(all.end(), outliers, outliers + 3);
  const MinMax mm = h.range_minmax();
  CHECK(mm.max == 50.0f);
  CHECK(mm.min == -50.0f);

  const QRange ra = qrange(8, false, false);
  const MinMax ma = h.range_mse(ra, false);
  INFO("asymmetric mse range [" << ma.min << ", " << ma.max << "]");
  CHECK(ma.max > 24.0f);
  CHECK(ma.max < 31.0f);
  CHECK(ma.min < -4.0f);
  CHECK(ma.min > -10.0f);
  CHECK(sq_error(all, ma, ra, false) < 0.5 * sq_error(all, mm, ra, false));

  const QRange rs = qrange(8, true, true);
  const MinMax ms = h.range_mse(rs, true);
  INFO("symmetric mse range [" << ms.min << ", " << ms.max << "]");
  CHECK(ms.min == -ms.max);
  CHECK(ms.max > 15.0f);
  CHECK(ms.max < 21.0f);
  CHECK(sq_error(all, ms, rs, true) < 0.5 * sq_error(all, mm, rs, true));

  // The percentile range clips them too, to the bulk (within one bin of 100/2048).
  const MinMax pr = h.range_percentile(99.99);
  CHECK(std::fabs(pr.max - 1.0f) <= 100.0f / 2048);
  CHECK(std::fabs(pr.min + 1.0f) <= 100.0f / 2048);
}

TEST_CASE("histogram: mse range keeps nearly the full range of clean uniform data") {
  HistogramCollector h;
  Rng rng(12);
  std::vector<float> x(200000);
  for (auto& v : x) v = rng.uniform(0.0f, 6.0f);  // ReLU-like: min side is 0
  h.add(x.data(), static_cast<int64_t>(x.size()));
  const MinMax m = h.range_mse(qrange(8, false, false), false);
  CHECK(m.min == 0.0f);
  CHECK(m.max > 0.95f * 6.0f);
  CHECK(m.max <= 6.0f);
}

TEST_CASE("weight_range_mse: never worse than minmax and better with heavy tails") {
  Rng rng(14);
  for (int bits : {4, 8})
    for (bool sym : {false, true}) {
      INFO("bits = " << bits << " symmetric = " << sym);
      const QRange r = qrange(bits, sym, sym);
      std::vector<float> w(5000);
      for (auto& v : w) v = 0.05f * rng.normal();
      w[17] = 0.6f;  // a few outliers
      w[99] = -0.45f;
      const MinMax best = weight_range_mse(w.data(), static_cast<int64_t>(w.size()), r, sym);
      float mn = 0, mx = 0;
      for (float v : w) mn = std::min(mn, v), mx = std::max(mx, v);
      const double e_best = sq_error(w, best, r, sym);
      const double e_minmax = sq_error(w, MinMax{mn, mx}, r, sym);
      CHECK(e_best <= e_minmax);
      // At 4 bits the outliers make clipping pay; at 8 bits the grid is fine enough that
      // clipping them costs more than it saves, and the search must then keep the range.
      if (bits == 4) CHECK(e_best < 0.9 * e_minmax);
      CHECK(best.max <= mx);
      CHECK(best.max >= 0.3f * (sym ? std::max(-mn, mx) : mx) * 0.999f);
      if (sym) CHECK(best.min == -best.max);
    }
  // Uniform weights: clipping barely helps, and the result is still never worse.
  std::vector<float> u(4096);
  for (auto& v : u) v = rng.uniform(-1.0f, 1.0f);
  const QRange r8 = qrange(8, true, true);
  const MinMax bu = weight_range_mse(u.data(), 4096, r8, true);
  float amax = 0;
  for (float v : u) amax = std::max(amax, std::fabs(v));
  CHECK(sq_error(u, bu, r8, true) <= sq_error(u, MinMax{-amax, amax}, r8, true));
  CHECK(bu.max > 0.9f * amax);
}

TEST_CASE("channel_weight_range_mse: each column searched on its own") {
  Rng rng(15);
  const int64_t rows = 200, ch = 4;
  std::vector<float> w(static_cast<size_t>(rows * ch));
  for (int64_t i = 0; i < rows * ch; ++i) w[static_cast<size_t>(i)] = (1.0f + static_cast<float>(i % ch)) * rng.normal();
  w[7 * ch + 2] = 30.0f;
  std::vector<MinMax> got(static_cast<size_t>(ch));
  const QRange r = qrange(8, true, true);
  channel_weight_range_mse(got.data(), w.data(), rows, ch, r, true);
  for (int64_t c = 0; c < ch; ++c) {
    std::vector<float> col;
    for (int64_t i = 0; i < rows; ++i) col.push_back(w[static_cast<size_t>(i * ch + c)]);
    const MinMax want = weight_range_mse(col.data(), rows, r, true);
    CHECK(got[static_cast<size_t>(c)].min == want.min);
    CHECK(got[static_cast<size_t>(c)].max == want.max);
  }
  CHECK(got[0].max < got[3].max);  // different spreads give different ranges
}

TEST_CASE("histogram: mse range from a coarse histogram whose bins span many steps") {
  // 64 bins over [-50, 50] are 1.56 wide, far wider than the candidate steps (~0.14): the bulk
  // sits in two bins, and the expected error must count every whole rounding interval inside
  // a bin (step^3 / 12 each). The optimum is the same as with fine bins (see above).
  HistogramCollector h(64);
  Rng rng(10);
  std::vector<float> x(100000);
  for (int b = 0; b < 10; ++b) {
    for (auto& v : x) v = rng.uniform(-1.0f, 1.0f);
    h.add(x.data(), static_cast<int64_t>(x.size()));
  }
  const float outliers[3] = {50.0f, -50.0f, 48.0f};
  h.add(outliers, 3);
  const MinMax ma = h.range_mse(qrange(8, false, false), false);
  INFO("asymmetric mse range [" << ma.min << ", " << ma.max << "]");
  CHECK(ma.max > 24.0f);
  CHECK(ma.max < 31.0f);
  CHECK(ma.min < -4.0f);
  CHECK(ma.min > -10.0f);
}
