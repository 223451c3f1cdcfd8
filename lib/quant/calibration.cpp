// PTQ range selection: streamed histogram (minmax, percentile, MSE) and exact weight MSE search.
#include "quant/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/threads.h"

namespace qatc::quant {
namespace {

constexpr int64_t kChunk = int64_t{1} << 16;  // values per partial histogram in add()

// Coarse grid steps per side, then fine steps per coarse step on each side of the best.
constexpr int kSymCoarse = 256;
constexpr int kAsymCoarse = 32;
constexpr int kFine = 16;
constexpr int kWeightRatios = 100;
constexpr double kWeightMinRatio = 0.3;

// Integral over [u, v] of (x - level)^2, written without the cancellation of a difference
// of cubes: (p - m)(p^2 + p m + m^2) / 3 with p = v - level, m = u - level.
double sq_integral(double u, double v, double level) {
  const double p = v - level, m = u - level;
  return (p - m) * (p * p + p * m + m * m) / 3.0;
}

// Integral over [a, b] (a < b) of (x - fake_quant(x))^2: a partial interval at each end and
// step^3 / 12 for every whole rounding interval in between; clamped tails are the end pieces.
double fq_sq_integral(double a, double b, const QParams& q) {
  const int32_t ka = quantize(static_cast<float>(a), q);
  const int32_t kb = quantize(static_cast<float>(b), q);
  const double s = q.scale;
  auto level = [&](int32_t k) { return s * static_cast<double>(k - q.zero_point); };
  if (ka >= kb) return sq_integral(a, b, level(ka));
  const double t1 = level(ka) + 0.5 * s, t2 = level(kb) - 0.5 * s;
  return sq_integral(a, t1, level(ka)) + sq_integral(t2, b, level(kb)) +
         static_cast<double>(kb - ka - 1) * s * s * s / 12.0;
}

// Candidate fractions, widest first: the coarse grid 1, (n-1)/n, ..., 1/n.
std::vector<double> coarse_fractions(int n) {
  std::vector<double> f;
  for (int k = n; k >= 1; --k) f.push_back(static_cast<double>(k) / n);
  return f;
}

// Fine fractions around `center` (a coarse value), widest first, kept inside (0, 1].
std::vector<double> fine_fractions(double center, int coarse) {
  std::vector<double> f;
  const double step = 1.0 / (static_cast<double>(coarse) * kFine);
  for (int k = kFine; k >= -kFine; --k) {
    const double v = center + k * step;
    if (v > 0.0 && v <= 1.0) f.push_back(v);
  }
  return f;
}

// Index of the smallest error; ties keep the earliest (the widest range).
size_t argmin(const std::vector<double>& err) {
  size_t best = 0;
  for (size_t i = 1; i < err.size(); ++i)
    if (err[i] < err[best]) best = i;
  return best;
}

}  // namespace

HistogramCollector::HistogramCollector(int bins) : bins_(bins) {
  QATC_CHECK_GE(bins, 1);
  counts_.assign(static_cast<size_t>(bins), 0.0);
}

double HistogramCollector::total_count() const {
  double t = 0.0;
  for (double c : counts_) t += c;
  return t;
}

void HistogramCollector::rebin(double lo, double hi) {
  std::vector<double> out(static_cast<size_t>(bins_), 0.0);
  const double nw = (hi - lo) / bins_;
  auto new_index = [&](double x) {
    const double f = std::floor((x - lo) / nw);
    return static_cast<int64_t>(std::clamp(f, 0.0, static_cast<double>(bins_ - 1)));
  };
  const double ow = (hi_ - lo_) / bins_;
  for (int i = 0; i < bins_; ++i) {
    const double c = counts_[static_cast<size_t>(i)];
    if (c == 0.0) continue;
    if (ow == 0.0) {  // a single-value histogram: all mass is a point at lo_
      out[static_cast<size_t>(new_index(lo_))] += c;
      continue;
    }
    const double a = lo_ + i * ow, b = (i + 1 == bins_) ? hi_ : lo_ + (i + 1) * ow;
    const int64_t j0 = new_index(a), j1 = new_index(b);
    // Overlaps are normalized by their own sum so each old bin hands over exactly c.
    double total = 0.0;
    for (int64_t j = j0; j <= j1; ++j) {
      const double e0 = lo + j * nw, e1 = (j + 1 == bins_) ? hi : lo + (j + 1) * nw;
      total += std::max(0.0, std::min(b, e1) - std::max(a, e0));
    }
    if (total <= 0.0) {
      out[static_cast<size_t>(j0)] += c;
      continue;
    }
    for (int64_t j = j0; j <= j1; ++j) {
      const double e0 = lo + j * nw, e1 = (j + 1 == bins_) ? hi : lo + (j + 1) * nw;
      const double ov = std::max(0.0, std::min(b, e1) - std::max(a, e0));
      out[static_cast<size_t>(j)] += c * (ov / total);
    }
  }
  counts_.swap(out);
  lo_ = lo;
  hi_ = hi;
}

void HistogramCollector::add(const float* x, int64_t n) {
  bool any = false;
  for (int64_t i = 0; i < n && !any; ++i) any = std::isfinite(x[i]);
  if (!any) return;
  const MinMax b = tensor_minmax(x, n);
  if (empty_) {
    lo_ = b.min;
    hi_ = b.max;
    empty_ = false;
  } else if (b.min < lo_ || b.max > hi_) {
    rebin(std::min(lo_, static_cast<double>(b.min)), std::max(hi_, static_cast<double>(b.max)));
  }
  const double lo = lo_, width = hi_ - lo_;
  const int bins = bins_;
  // Integer partial histograms per fixed chunk: the sum is exact in any order.
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<int64_t> part(static_cast<size_t>(chunks * bins), 0);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* h = part.data() + c * bins;
      for (int64_t i = c * kChunk, e = std::min(n, (c + 1) * kChunk); i < e; ++i) {
        const float v = x[i];
        if (!std::isfinite(v)) continue;
        int64_t j = 0;
        if (width > 0.0) {
          const double f = std::floor((static_cast<double>(v) - lo) / width * bins);
          j = static_cast<int64_t>(std::clamp(f, 0.0, static_cast<double>(bins - 1)));
        }
        ++h[j];
      }
    }
  });
  for (int64_t c = 0; c < chunks; ++c)
    for (int j = 0; j < bins; ++j)
      counts_[static_cast<size_t>(j)] += static_cast<double>(part[static_cast<size_t>(c * bins + j)]);
}

MinMax HistogramCollector::range_minmax() const {
  if (empty_) return MinMax{0.0f, 0.0f};
  return MinMax{static_cast<float>(lo_), static_cast<float>(hi_)};
}

MinMax HistogramCollector::range_percentile(double percentile) const {
  if (!(percentile >= 50.0 && percentile <= 100.0))
    fail("calibration percentile must be in [50, 100], got {}", percentile);
  if (empty_) return MinMax{0.0f, 0.0f};
  const double w = (hi_ - lo_) / bins_;
  double mn = lo_, mx = hi_;
  if (percentile < 100.0 && w > 0.0) {
    const double total = total_count();
    // Position where the cumulative count reaches `target`, linear inside the bin.
    auto position = [&](double target) {
      double cum = 0.0;
      for (int i = 0; i < bins_; ++i) {
        const double c = counts_[static_cast<size_t>(i)];
        if (c > 0.0 && cum + c >= target)
          return lo_ + (i + std::clamp((target - cum) / c, 0.0, 1.0)) * w;
        cum += c;
      }
      return hi_;
    };
    mn = std::clamp(position(total * (1.0 - percentile / 100.0)), lo_, hi_);
    mx = std::clamp(position(total * (percentile / 100.0)), lo_, hi_);
  }
  return MinMax{static_cast<float>(std::min(mn, 0.0)), static_cast<float>(std::max(mx, 0.0))};
}

double HistogramCollector::expected_error(const QParams& q) const {
  const double w = (hi_ - lo_) / bins_;
  double err = 0.0;
  for (int i = 0; i < bins_; ++i) {
    const double c = counts_[static_cast<size_t>(i)];
    if (c == 0.0) continue;
    if (w == 0.0) {
      const double d = lo_ - dequantize(quantize(static_cast<float>(lo_), q), q);
      err += c * d * d;
      continue;
    }
    const double a = lo_ + i * w, b = (i + 1 == bins_) ? hi_ : lo_ + (i + 1) * w;
    err += c * fq_sq_integral(a, b, q) / (b - a);
  }
  return err;
}

MinMax HistogramCollector::range_mse(QRange r, bool symmetric) const {
  if (empty_) return MinMax{0.0f, 0.0f};
  const double mn = std::min(lo_, 0.0), mx = std::max(hi_, 0.0);
  if (mn == mx) return MinMax{0.0f, 0.0f};

  // Evaluates candidate ranges in parallel (each error is computed serially, so the choice
  // does not depend on the thread count) and returns the index of the best.
  auto best_of = [&](const std::vector<MinMax>& cand) {
    std::vector<double> err(cand.size());
    parallel_for(static_cast<int64_t>(cand.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const MinMax& m = cand[static_cast<size_t>(i)];
        err[static_cast<size_t>(i)] = expected_error(choose_qparams(m.min, m.max, r, symmetric));
      }
    });
    return argmin(err);
  };

  if (symmetric) {
    const double amax = std::max(-mn, mx);
    auto ranges = [&](const std::vector<double>& f) {
      std::vector<MinMax> c;
      for (double v : f) {
        const float a = static_cast<float>(v * amax);
        c.push_back(MinMax{-a, a});
      }
      return c;
    };
    const std::vector<double> coarse = coarse_fractions(kSymCoarse);
    const double fc = coarse[best_of(ranges(coarse))];
    const std::vector<MinMax> fine = ranges(fine_fractions(fc, kSymCoarse));
    return fine[best_of(fine)];
  }

  // A side that is 0 has nothing to clip: its only fraction is 1.
  auto side = [](double v, std::vector<double> f) {
    return v == 0.0 ? std::vector<double>{1.0} : f;
  };
  auto ranges = [&](const std::vector<double>& fa, const std::vector<double>& fb) {
    std::vector<MinMax> c;
    for (double a : fa)
      for (double b : fb) c.push_back(MinMax{static_cast<float>(a * mn), static_cast<float>(b * mx)});
    return c;
  };
  const std::vector<double> ca = side(mn, coarse_fractions(kAsymCoarse));
  const std::vector<double> cb = side(mx, coarse_fractions(kAsymCoarse));
  const size_t ic = best_of(ranges(ca, cb));
  const double fa = ca[ic / cb.size()], fb = cb[ic % cb.size()];
  const std::vector<MinMax> fine =
      ranges(side(mn, fine_fractions(fa, kAsymCoarse)), side(mx, fine_fractions(fb, kAsymCoarse)));
  return fine[best_of(fine)];
}

MinMax weight_range_mse(const float* w, int64_t n, QRange r, bool symmetric) {
  bool any = false;
  for (int64_t i = 0; i < n && !any; ++i) any = std::isfinite(w[i]);
  if (!any) return MinMax{0.0f, 0.0f};
  const MinMax m = tensor_minmax(w, n);
  const double mn = std::min(static_cast<double>(m.min), 0.0);
  const double mx = std::max(static_cast<double>(m.max), 0.0);
  const double amax = std::max(-mn, mx);

  std::vector<MinMax> cand(kWeightRatios);
  for (int i = 0; i < kWeightRatios; ++i) {
    // Ratio 1 first and exact, so minmax is a candidate and wins ties.
    const double t = 1.0 - (1.0 - kWeightMinRatio) * i / (kWeightRatios - 1);
    cand[static_cast<size_t>(i)] =
        symmetric ? MinMax{static_cast<float>(-t * amax), static_cast<float>(t * amax)}
                  : MinMax{static_cast<float>(t * mn), static_cast<float>(t * mx)};
  }
  std::vector<double> err(cand.size());
  parallel_for(kWeightRatios, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const QParams q = choose_qparams(cand[static_cast<size_t>(c)].min,
                                       cand[static_cast<size_t>(c)].max, r, symmetric);
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(w[i])) continue;
        const double d = static_cast<double>(w[i]) - dequantize(quantize(w[i], q), q);
        s += d * d;
      }
      err[static_cast<size_t>(c)] = s;
    }
  });
  return cand[argmin(err)];
}

void channel_weight_range_mse(MinMax* out, const float* w, int64_t rows, int64_t channels,
                              QRange r, bool symmetric) {
  std::vector<float> col(static_cast<size_t>(std::max<int64_t>(rows, 0)));
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < rows; ++i) col[static_cast<size_t>(i)] = w[i * channels + c];
    out[c] = weight_range_mse(col.data(), rows, r, symmetric);
  }
}

}  // namespace qatc::quant
