// pack_add: an Add as two byte-indexed tables (kernels.h, PackedAdd; docs/int8.md, "The Add
// as two tables").
//
// The reference Add of input bytes q1, q2 (zero points z1, z2, left shift L) is
//   out(q1, q2) = clamp(zo + mbqm(t1(q1) + t2(q2), mo, so), qmin, qmax),
//   t_k(q) = mbqm((q - z_k) 2^L, m_k, s_k),
// a function of the two bytes: 65,536 values. We want integer tables A1, A2 with
//   clamp(floor((A1[q1] + A2[q2]) / 256), qmin, qmax) = out(q1, q2)   for every pair,
// that is lo <= A1[q1] + A2[q2] <= hi with lo = 256 out, hi = 256 out + 255, except that a
// pair whose out is qmin has no lower bound and one whose out is qmax no upper bound (the
// clamp takes any sum beyond). With z = -A2 each bound is a difference constraint,
// A1[i] - z[j] <= hi(i, j) and z[j] - A1[i] <= -lo(i, j), on a graph of 512 nodes; a
// solution exists if and only if the graph has no negative cycle, and Bellman-Ford's
// relaxation from any starting values finds one within 512 passes (each pass relaxes every
// edge), or still changes values after them when there is none.
//
// Why a solution exists: a cycle alternates k upper-bounded pairs P+ and k lower-bounded pairs
// P- over the same variables, so it is non-negative if and only if
//   sum over P- of out - sum over P+ of out <= 255 k / 256,
// which for k <= 256 (a cycle visits each of the 512 nodes at most once) means <= k - 1. If
// out were floor(u(q1) + v(q2)) for real u, v, that difference would be the sum of the
// fractional parts over P+ minus those over P-, in (-k, k): always <= k - 1. The reference is
// such a floor but for its rounding of ties away from zero, which makes the constant inside
// the floor depend on the sign of t1 + t2; a cycle broken by that is possible in principle and
// has not been seen (tests/kernels/opt_test.cpp: every random Add with the converter's
// parameters). Where the search fails, or |A| would exceed 2^23 (an output scale far below the
// inputs'), `exact` stays false and the kernels use the arithmetic form.
//
// The starting values are the linear estimate 256 (zo + 1/2 + (t1 + t2) mo 2^(so - 31)), which
// most pairs already satisfy: the search takes a few passes of about 0.1 ms each.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/check.h"
#include "kernels/fixed_point.h"
#include "kernels/opt/kernels.h"

namespace qatc::opt {

namespace {

constexpr int kPasses = 2 * 512 + 2;  // Bellman-Ford's bound on 512 nodes, with room
constexpr int64_t kMaxAbs = int64_t{1} << 23;  // H = floor(A / 256) fits int16

}  // namespace

bool add_table_used(Isa isa) {
  __builtin_cpu_init();
  return (isa == Isa::avx512_vnni || isa == Isa::amx) && __builtin_cpu_supports("avx512vbmi");
}

PackedAdd pack_add(const kernels::AddParams& p) {
  const int8_t dummy = 0;
  kernels::check(p, &dummy, &dummy, &dummy);
  PackedAdd t;
  t.params = p;
  // The terms and outputs exactly as ref::add_qs8 computes them, indexed by the byte as uint8.
  int32_t term[2][256];
  const int32_t zp[2] = {p.input1_zero_point, p.input2_zero_point};
  const int32_t mult[2] = {p.input1_multiplier, p.input2_multiplier};
  const int32_t shift[2] = {p.input1_shift, p.input2_shift};
  for (int k = 0; k < 2; ++k)
    for (int q = -128; q < 128; ++q)
      term[k][static_cast<uint8_t>(q)] =
          fixed::multiply_by_quantized_multiplier((q - zp[k]) * (int32_t{1} << p.left_shift), mult[k], shift[k]);
  std::vector<int8_t> out(65536);
  for (int i = 0; i < 256; ++i)
    for (int j = 0; j < 256; ++j)
      out[static_cast<size_t>(i * 256 + j)] = static_cast<int8_t>(fixed::requantize(
          term[0][i] + term[1][j], p.output_multiplier, p.output_shift, p.output_zero_point, p.qmin, p.qmax));

  const double scale = std::ldexp(static_cast<double>(p.output_multiplier), p.output_shift - 31 + 8);
  int64_t a1[256], a2[256];
  for (int u = 0; u < 256; ++u) {
    a1[u] = std::llround(term[0][u] * scale + 256.0 * (p.output_zero_point + 0.5));
    a2[u] = std::llround(term[1][u] * scale);
  }
  bool solved = false;
  for (int pass = 0; pass < kPasses && !solved; ++pass) {
    solved = true;
    for (int i = 0; i < 256; ++i)
      for (int j = 0; j < 256; ++j) {
        const int64_t o = out[static_cast<size_t>(i * 256 + j)];
        if (o < p.qmax && a1[i] + a2[j] > 256 * o + 255) {
          a1[i] = 256 * o + 255 - a2[j];
          solved = false;
        }
        if (o > p.qmin && a1[i] + a2[j] < 256 * o) {
          a2[j] = 256 * o - a1[i];
          solved = false;
        }
      }
  }
  if (!solved) return t;
  // Any constant moves between the tables: center both ranges.
  const auto [lo1, hi1] = std::minmax_element(a1, a1 + 256);
  const auto [lo2, hi2] = std::minmax_element(a2, a2 + 256);
  const int64_t c = ((*lo2 + *hi2) - (*lo1 + *hi1)) / 4;
  for (int u = 0; u < 256; ++u) {
    a1[u] += c;
    a2[u] -= c;
    if (std::abs(a1[u]) >= kMaxAbs || std::abs(a2[u]) >= kMaxAbs) return t;
  }
  for (int u = 0; u < 256; ++u)
    for (int k = 0; k < 2; ++k) {
      const int64_t a = k == 0 ? a1[u] : a2[u];
      const int64_t h = a >> 8;  // floor
      t.table[k][u] = static_cast<int32_t>(a);
      t.planes[k][0][u] = static_cast<uint8_t>(a & 255);
      t.planes[k][1][u] = static_cast<uint8_t>(h & 255);
      t.planes[k][2][u] = static_cast<uint8_t>((h >> 8) & 255);
    }
  t.exact = true;
  return t;
}

}  // namespace qatc::opt
