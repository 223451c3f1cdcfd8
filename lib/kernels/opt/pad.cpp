// Spatial padding: row copies and fills instead of the reference's per-element loop.
#include <algorithm>
#include <cstring>

#include "core/threads.h"
#include "kernels/check.h"
#include "kernels/opt/kernels.h"

namespace qatc::opt {

void pad_qs8(int8_t* out, const int8_t* in, const kernels::PadParams& p) {
  kernels::check(p, out, in);
  // Output columns [x0, x1) come from input columns [x0 - left, x1 - left); the rest is fill.
  const int64_t x0 = std::clamp<int64_t>(p.left, 0, p.ow), x1 = std::clamp<int64_t>(p.w + p.left, x0, p.ow);
  const auto fill = static_cast<int>(static_cast<int8_t>(p.zero_point));
  parallel_for(p.n * p.oh, std::max<int64_t>(1, (int64_t{1} << 16) / (p.ow * p.c)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t i = r / p.oh, iy = r % p.oh - p.top;
      int8_t* o = out + r * p.ow * p.c;
      if (iy < 0 || iy >= p.h || x1 == x0) {
        std::memset(o, fill, static_cast<size_t>(p.ow * p.c));
        continue;
      }
      std::memset(o, fill, static_cast<size_t>(x0 * p.c));
      std::memcpy(o + x0 * p.c, in + ((i * p.h + iy) * p.w + (x0 - p.left)) * p.c, static_cast<size_t>((x1 - x0) * p.c));
      std::memset(o + x1 * p.c, fill, static_cast<size_t>((p.ow - x1) * p.c));
    }
  });
}

}  // namespace qatc::opt
