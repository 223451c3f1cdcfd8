// Summary statistics shared by the C++ benchmarks.
#pragma once

#include <algorithm>
#include <vector>

namespace qatc::bench {

// The median of v (the mean of the two middle values for an even count); v must not be empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace qatc::bench
