// Helpers of the int8 kernel tests: random int8 data and the real-arithmetic oracle check.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace qatc::test {

inline int32_t uniform_int(Rng& rng, int32_t lo, int32_t hi) {  // [lo, hi]
  return lo + static_cast<int32_t>(rng.below(static_cast<uint32_t>(hi - lo + 1)));
}

inline double uniform_real(Rng& rng, double lo, double hi) {
  return lo + (hi - lo) * (static_cast<double>(rng.next() >> 11) * (1.0 / 9007199254740992.0));
}

inline std::vector<int8_t> random_int8(Rng& rng, int64_t n, int32_t lo = -128, int32_t hi = 127) {
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(uniform_int(rng, lo, hi));
  return v;
}

// The oracle's requantization: a real value r to int8 with scale s and zero point zp,
// round half away from zero, clamped to [qmin, qmax].
inline int32_t quantize_real(double r, double s, int32_t zp, int32_t qmin = -128,
                             int32_t qmax = 127) {
  const double q = static_cast<double>(zp) + std::round(r / s);
  return static_cast<int32_t>(std::clamp(q, static_cast<double>(qmin), static_cast<double>(qmax)));
}

// The agreement of an int8 kernel output with its real-arithmetic oracle: |diff| <= 1
// everywhere (the integer pipeline rounds twice and carries a 2^-31 multiplier error) and
// equal on all but a small fraction of elements.
struct Agreement {
  int64_t total = 0, equal = 0, max_diff = 0;
  Agreement& operator+=(const Agreement& o) {
    total += o.total;
    equal += o.equal;
    max_diff = std::max(max_diff, o.max_diff);
    return *this;
  }
};

inline Agreement compare(const std::vector<int8_t>& got, const std::vector<int32_t>& want) {
  REQUIRE(got.size() == want.size());
  Agreement a;
  for (size_t i = 0; i < got.size(); ++i) {
    const int64_t d = std::abs(int64_t{got[i]} - int64_t{want[i]});
    a.total += 1;
    a.equal += d == 0 ? 1 : 0;
    a.max_diff = std::max(a.max_diff, d);
  }
  return a;
}

// `min_equal_fraction` is the share of elements that must match exactly (use it on totals
// over many cases; a tiny case alone says little).
inline void check_agreement(const Agreement& a, const std::string& what,
                            double min_equal_fraction = 0.995) {
  INFO(what << ": " << a.equal << " of " << a.total << " equal, max |diff| " << a.max_diff);
  CHECK(a.max_diff <= 1);
  CHECK(static_cast<double>(a.equal) >= min_equal_fraction * static_cast<double>(a.total));
}

}  // namespace qatc::test
