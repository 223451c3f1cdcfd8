// Convert-time half of the fixed-point helpers: real multipliers to {multiplier, shift}.
#include "kernels/fixed_point.h"

#include <cmath>

namespace qatc::fixed {

QuantizedMultiplier quantize_multiplier(double m) {
  QATC_CHECK(std::isfinite(m));
  QATC_CHECK_GE(m, 0.0);
  if (m == 0.0) return {0, 0};
  int exponent = 0;
  const double mantissa = std::frexp(m, &exponent);  // m = mantissa * 2^exponent, [0.5, 1)
  int64_t q = std::llround(mantissa * 2147483648.0);  // exact scaling; llround: ties away
  if (q == (int64_t{1} << 31)) {  // mantissa rounded up to 1.0: renormalize
    q /= 2;
    ++exponent;
  }
  if (exponent < -31) return {0, 0};
  if (exponent > 30) return {std::numeric_limits<int32_t>::max(), 30};
  return {static_cast<int32_t>(q), exponent};
}

}  // namespace qatc::fixed
