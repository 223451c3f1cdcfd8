// Post-training range selection: a streamed histogram of activations (values are never kept)
// with minmax, percentile and MSE ranges, and an exact MSE range search for weights.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/fake_quant.h"
#include "quant/qparams.h"

namespace qatc::quant {

class HistogramCollector {
 public:
  // bins < 1 is a caller bug (checked).
  explicit HistogramCollector(int bins = 2048);

  // Adds the finite values of x (NaN and +-inf are skipped, as in tensor_minmax). Tracks the
  // exact min/max; the histogram spans [min, max] and, when a batch widens that range, the old
  // counts are re-binned onto the new range, each old bin spread over the new bins it overlaps
  // in proportion to the overlap (so the total count is kept exactly up to float rounding).
  void add(const float* x, int64_t n);

  // Exact min and max of everything added; {0, 0} when nothing was added.
  MinMax range_minmax() const;

  // Clips each side separately: min at the (100 - percentile) percentile, max at the
  // percentile-th, read from the cumulative histogram with linear interpolation inside a bin;
  // then widened to contain 0 (a range never excludes 0). percentile outside [50, 100] raises
  // qatc::Error (it comes from the recipe). 100 gives range_minmax widened to 0.
  MinMax range_percentile(double percentile) const;

  // The clipping range minimizing the expected squared error of fake-quantizing the
  // histogrammed values with choose_qparams(range, r, symmetric): rounding error inside the
  // range plus clipping error outside it, each bin taken as uniformly filled. Symmetric
  // candidates are [-a, a]; asymmetric ones scale min and max down independently (a coarse
  // 2-D grid, then a finer grid around the best). Ties keep the wider range. {0, 0} if empty.
  MinMax range_mse(QRange r, bool symmetric) const;

  // Per-bin counts over [range_minmax().min, range_minmax().max] (for tests and reports).
  const std::vector<double>& counts() const { return counts_; }
  // Sum of counts: the number of finite values added, up to re-binning float rounding.
  double total_count() const;

 private:
  void rebin(double lo, double hi);
  // Expected squared fake-quant error of the histogram under q.
  double expected_error(const QParams& q) const;

  int bins_;
  bool empty_ = true;
  double lo_ = 0.0, hi_ = 0.0;  // exact min/max of all values (floats, held as double)
  std::vector<double> counts_;
};

// The clipping range of weights w [n] minimizing the exact sum over w of
// (w - dequantize(quantize(w)))^2 with choose_qparams(range, r, symmetric), over 100 clipping
// ratios t from 0.3 to 1.0 (1.0 included, so never worse than minmax): symmetric ranges
// [-t*max|w|, t*max|w|]; asymmetric [t*min, t*max] (min, max widened to 0 first).
// Ties keep the larger ratio. {0, 0} for no finite weight.
MinMax weight_range_mse(const float* w, int64_t n, QRange r, bool symmetric);

// w [rows,channels] -> out [channels]: weight_range_mse of each column (channel = last axis,
// the output channel of a Keras kernel), for per-channel weight quantization.
void channel_weight_range_mse(MinMax* out, const float* w, int64_t rows, int64_t channels,
                              QRange r, bool symmetric);

}  // namespace qatc::quant
