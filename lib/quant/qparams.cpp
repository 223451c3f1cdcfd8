// Range -> (scale, zero_point): the single implementation of nudging.
#include "quant/qparams.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace qatc::quant {

QRange qrange(int bits, bool symmetric, bool narrow_range) {
  (void)symmetric;  // both schemes use the same signed storage; see the header
  if (bits < 2 || bits > 8)
    fail("quantization bits must be between 2 and 8 (int8 storage), got {}", bits);
  const int32_t top = (int32_t{1} << (bits - 1)) - 1;
  return QRange{narrow_range ? -top : -top - 1, top};
}

QParams choose_qparams(float min, float max, QRange r, bool symmetric) {
  QATC_CHECK(std::isfinite(min));
  QATC_CHECK(std::isfinite(max));
  QATC_CHECK_LE(min, max);
  QATC_CHECK_LT(r.qmin, r.qmax);
  // Widening to 0 is what makes real 0 representable at all (zero padding, ReLU outputs).
  const double lo = std::min(static_cast<double>(min), 0.0);
  const double hi = std::max(static_cast<double>(max), 0.0);

  double scale_d;
  if (symmetric) {
    QATC_CHECK_LT(r.qmin, 0);
    QATC_CHECK_GT(r.qmax, 0);
    // Divide by qmax, not (qmax - qmin) / 2: then -amax and amax are both levels (-qmax, qmax);
    // in a non-narrow range the extra level qmin = -qmax - 1 lies one step beyond -amax.
    scale_d = std::max(-lo, hi) / static_cast<double>(r.qmax);
  } else {
    scale_d = (hi - lo) / static_cast<double>(r.qmax - r.qmin);
  }
  float scale = static_cast<float>(scale_d);
  if (hi == lo) {
    scale = 1.0f;  // every value is 0; any positive scale represents it exactly
  } else if (!(scale >= std::numeric_limits<float>::min())) {
    // A subnormal or zero scale would make x / scale lose precision or divide by zero.
    scale = std::numeric_limits<float>::min();
  }

  int32_t zero_point = 0;
  if (!symmetric) {
    // From the stored float scale, so quantize(0) == zero_point holds for the real parameters.
    const double zp = std::round(static_cast<double>(r.qmin) - lo / static_cast<double>(scale));
    zero_point = static_cast<int32_t>(std::clamp(zp, static_cast<double>(r.qmin),
                                                 static_cast<double>(r.qmax)));
  }
  return QParams{scale, zero_point, r.qmin, r.qmax};
}

}  // namespace qatc::quant
