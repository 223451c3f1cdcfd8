// Tests of the reference max, average and global average pools: curated shapes against
// real-arithmetic oracles, and hand-computed divisors and rounding.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/params.h"
#include "kernels/ref/kernels.h"
#include "kernels/shapes.h"
#include "kernels/testutil.h"

using namespace qatc;
using namespace qatc::kernels;
using namespace qatc::test;

namespace {

Pool2DParams pool_params(const ConvShape& s, int32_t qmin, int32_t qmax) {
  const ConvGeometry g = geometry(s);
  return {s.n,          s.h,       s.w,        s.c,  s.kh, s.kw, s.stride_h, s.stride_w,
          g.pad_top, g.pad_left, g.oh, g.ow, qmin, qmax};
}

// Oracle of both 2D pools over the non-padded window: max, or the real mean (same scale in
// and out, so the mean of q requantizes to round(mean q)).
std::vector<int32_t> pool_oracle(const std::vector<int8_t>& in, const Pool2DParams& p, bool avg) {
  std::vector<int32_t> out;
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t oy = 0; oy < p.oh; ++oy)
      for (int64_t ox = 0; ox < p.ow; ++ox)
        for (int64_t ch = 0; ch < p.c; ++ch) {
          double sum = 0.0, mx = -1e9;
          int count = 0;
          for (int64_t iy = oy * p.stride_h - p.pad_top; iy < oy * p.stride_h - p.pad_top + p.kh; ++iy)
            for (int64_t ix = ox * p.stride_w - p.pad_left;
                 ix < ox * p.stride_w - p.pad_left + p.kw; ++ix) {
              if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
              const double q = in[static_cast<size_t>(((b * p.h + iy) * p.w + ix) * p.c + ch)];
              sum += q;
              mx = std::max(mx, q);
              ++count;
            }
          REQUIRE(count > 0);
          const double v = avg ? std::round(sum / count) : mx;
          out.push_back(static_cast<int32_t>(std::clamp(v, static_cast<double>(p.qmin), static_cast<double>(p.qmax))));
        }
  return out;
}

}  // namespace

TEST_CASE("ref maxpool2d and avgpool2d equal their oracles on every curated shape") {
  Rng rng(201);
  const auto& shapes = conv_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) {
    const ConvShape& s = shapes[i];
    INFO(describe(s));
    const auto input = random_int8(rng, s.n * s.h * s.w * s.c);
    // Every third case clamps as a fused ReLU with zero point -20 would.
    const Pool2DParams p = pool_params(s, i % 3 == 2 ? -20 : -128, 127);
    std::vector<int8_t> out(static_cast<size_t>(p.n * p.oh * p.ow * p.c));
    ref::maxpool2d_qs8(out.data(), input.data(), p);
    CHECK(compare(out, pool_oracle(input, p, false)).max_diff == 0);
    ref::avgpool2d_qs8(out.data(), input.data(), p);
    CHECK(compare(out, pool_oracle(input, p, true)).max_diff == 0);
  }
}

TEST_CASE("ref avgpool2d same padding divides by the non-padded count") {
  // 3x3 input 1..9, 3x3 window, stride 1, 'same': corners average 4 values, edges 6, centre 9.
  const ConvShape s{1, 3, 3, 1, 1, 3, 3, 1, 1, Padding::same};
  const Pool2DParams p = pool_params(s, -128, 127);
  std::vector<int8_t> in = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<int8_t> out(9);
  ref::avgpool2d_qs8(out.data(), in.data(), p);
  // 12/4 = 3, 21/6 = 3.5 -> 4, 16/4 = 4, 27/6 = 4.5 -> 5, 45/9 = 5, 33/6 = 5.5 -> 6,
  // 24/4 = 6, 39/6 = 6.5 -> 7, 28/4 = 7.
  CHECK(out == std::vector<int8_t>{3, 4, 4, 5, 5, 6, 6, 7, 7});
  for (auto& v : in) v = static_cast<int8_t>(-v);
  ref::avgpool2d_qs8(out.data(), in.data(), p);  // ties away from zero on the negative side
  CHECK(out == std::vector<int8_t>{-3, -4, -4, -5, -5, -6, -6, -7, -7});
}

TEST_CASE("ref maxpool2d ignores padding") {
  // All values negative: a padded position read as 0 or as any zero point would win.
  const ConvShape s{1, 4, 4, 2, 1, 3, 3, 2, 2, Padding::same};
  const Pool2DParams p = pool_params(s, -128, 127);
  std::vector<int8_t> in(32, -100);
  in[5] = -90;  // (y 0, x 2, ch 1)
  std::vector<int8_t> out(static_cast<size_t>(p.oh * p.ow * 2));
  ref::maxpool2d_qs8(out.data(), in.data(), p);
  // oh = ow = 2, pad_total = 1 -> pad before 0: windows start at 0 and 2.
  CHECK(out == std::vector<int8_t>{-100, -90, -100, -90, -100, -100, -100, -100});
}

TEST_CASE("ref global avgpool rounding") {
  // Same scale and zero point in and out over hw = 4: m = 1/4, applied to sum * 2^L with
  // 255 * 4 * 2^L <= 2^30 (L = 20): {2^30, -1 - 20}.
  const auto p = make_global_avgpool_params(1, 4, 8, 0.1, 3, 0.1, 3);
  CHECK(p.left_shift == 20);
  CHECK(p.multiplier == 1 << 30);
  CHECK(p.shift == -21);
  // Columns are channels; rows the 4 positions. Sums of (q - 3) per channel:
  //   2 (0.5 -> 1), -2 (-0.5 -> -1), 6 (1.5 -> 2), -6 (-1.5 -> -2), 8 (2), 0, 7 (1.75 -> 2),
  //   and 5 (1.25 -> 1; without the pre-shift, rounding twice would give 2: 2.5 -> 3 -> 2).
  const int8_t z = 3;
  std::vector<int8_t> in = {
      5, 1, 9, -3, 5, 3, 10, 8,  //
      z, z, z, z,  5, z, z,  z,  //
      z, z, z, z,  5, z, z,  z,  //
      z, z, z, z,  5, z, z,  z,  //
  };
  std::vector<int8_t> out(8);
  ref::global_avgpool_qs8(out.data(), in.data(), p);
  CHECK(out == std::vector<int8_t>{z + 1, z - 1, z + 2, z - 2, z + 2, z, z + 2, z + 1});
}

TEST_CASE("ref global avgpool matches the real-arithmetic oracle on every curated shape") {
  Rng rng(203);
  Agreement total;
  for (const ConvShape& s : conv_shapes()) {
    const int64_t hw = s.h * s.w;
    const auto input = random_int8(rng, s.n * hw * s.c);
    const double s_in = uniform_real(rng, 0.01, 0.1);
    const int32_t zp_in = uniform_int(rng, -50, 50);
    const double s_out = s_in * uniform_real(rng, 0.3, 1.5);
    const int32_t zp_out = uniform_int(rng, -50, 50);
    const auto p = make_global_avgpool_params(s.n, hw, s.c, s_in, zp_in, s_out, zp_out);
    std::vector<int8_t> out(static_cast<size_t>(s.n * s.c));
    ref::global_avgpool_qs8(out.data(), input.data(), p);
    std::vector<int32_t> want;
    for (int64_t b = 0; b < s.n; ++b)
      for (int64_t ch = 0; ch < s.c; ++ch) {
        double sum = 0.0;
        for (int64_t i = 0; i < hw; ++i)
          sum += s_in * (input[static_cast<size_t>((b * hw + i) * s.c + ch)] - zp_in);
        want.push_back(quantize_real(sum / static_cast<double>(hw), s_out, zp_out));
      }
    const Agreement a = compare(out, want);
    INFO(describe(s));
    CHECK(a.max_diff <= 1);
    total += a;
  }
  check_agreement(total, "global avgpool, all shapes");
}
