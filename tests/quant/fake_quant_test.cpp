// Tests for fake-quant forward (hand-computed grids), the straight-through gradient, the
// min/max reductions, and independence from the thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "quant/fake_quant.h"
#include "quant/qparams.h"

using namespace qatc;
using namespace qatc::quant;

namespace {

struct Row {
  float x, out;
  int mask;
};

void check_rows(const std::vector<Row>& rows, const QParams& q) {
  std::vector<float> in, out(rows.size());
  std::vector<uint8_t> mask(rows.size(), 7);
  for (const Row& r : rows) in.push_back(r.x);
  fake_quant_forward(out.data(), mask.data(), in.data(), static_cast<int64_t>(in.size()), q);
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("x = " << rows[i].x);
    CHECK(out[i] == rows[i].out);
    CHECK(static_cast<int>(mask[i]) == rows[i].mask);
  }
}

float round_half_away(double v) {
  return static_cast<float>(v < 0 ? -std::floor(-v + 0.5) : std::floor(v + 0.5));
}

std::vector<float> random_floats(size_t n, float lo, float hi, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.uniform(lo, hi);
  return v;
}

}  // namespace

TEST_CASE("fake_quant: symmetric narrow 8-bit grid by hand") {
  // amax 7.9375 = 127/16, so scale is exactly 1/16 and every expected value is exact.
  const QParams q = choose_qparams(-1.0f, 7.9375f, qrange(8, true, true), true);
  REQUIRE(q.scale == 0.0625f);
  REQUIRE(q.zero_point == 0);
  check_rows({{0.0f, 0.0f, 1},
              {0.03125f, 0.0625f, 1},   // half step: away from 0
              {-0.03125f, -0.0625f, 1},
              {0.09375f, 0.125f, 1},    // 1.5 steps -> 2
              {-0.09375f, -0.125f, 1},
              {0.03f, 0.0f, 1},         // 0.48 steps
              {0.1f, 0.125f, 1},        // 1.6 steps
              {-1.0f, -1.0f, 1},
              {7.9375f, 7.9375f, 1},    // top boundary: inside
              {7.96875f, 7.9375f, 0},   // 127.5 steps: clamped
              {100.0f, 7.9375f, 0},
              {-7.9375f, -7.9375f, 1},  // bottom boundary: inside
              {-8.0f, -7.9375f, 0},     // narrow: -128 is not a level
              {-7.96875f, -7.9375f, 0}},
             q);
}

TEST_CASE("fake_quant: asymmetric 8-bit grid by hand") {
  // [-2, 13.9375]: scale 1/16, zero_point -96.
  const QParams q = choose_qparams(-2.0f, 13.9375f, qrange(8, false, false), false);
  REQUIRE(q.scale == 0.0625f);
  REQUIRE(q.zero_point == -96);
  check_rows({{0.0f, 0.0f, 1},
              {1.03f, 1.0f, 1},
              {-0.03125f, -0.0625f, 1},  // -0.5 steps rounds to -1, then + zero_point
              {0.03125f, 0.0625f, 1},
              {-1.96875f, -2.0f, 1},     // -31.5 steps -> -32 = qmin
              {-2.0f, -2.0f, 1},
              {-2.01f, -2.0f, 0},
              {-2.03125f, -2.0f, 0},
              {5.5f, 5.5f, 1},
              {13.9375f, 13.9375f, 1},
              {14.0f, 13.9375f, 0}},
             q);

  // [-1, 3]: scale 4/255, zero_point -64; the nudged grid is [-64, 191] * scale, so 3.0 itself
  // lies just above the top level and is clamped (mask 0), while -1.0 is inside.
  const QParams a = choose_qparams(-1.0f, 3.0f, qrange(8, false, false), false);
  REQUIRE(a.zero_point == -64);
  const float s = a.scale;
  check_rows({{1.0f, 64.0f * s, 1},     // 63.75 steps -> 64
              {-1.0f, -64.0f * s, 1},   // -63.75 -> -64 = qmin - zero_point
              {3.0f, 191.0f * s, 0},    // 191.25 -> clamped at qmax
              {2.99f, 191.0f * s, 1}},  // 190.6 -> 191
             a);
}

TEST_CASE("fake_quant: 2-bit grid by hand") {
  const QParams q = choose_qparams(-0.5f, 0.5f, qrange(2, true, true), true);  // levels -1, 0, 1
  REQUIRE(q.scale == 0.5f);
  check_rows({{0.24f, 0.0f, 1},
              {0.25f, 0.5f, 1},
              {-0.25f, -0.5f, 1},
              {0.5f, 0.5f, 1},
              {0.9f, 0.5f, 0},
              {-0.5f, -0.5f, 1},
              {-0.75f, -0.5f, 0}},
             q);
  // Non-narrow 2-bit asymmetric [-1, 0.5]: qmin -2, qmax 1, scale 0.5, zero_point 0.
  const QParams a = choose_qparams(-1.0f, 0.5f, qrange(2, false, false), false);
  REQUIRE(a.scale == 0.5f);
  REQUIRE(a.zero_point == 0);
  check_rows({{-1.0f, -1.0f, 1}, {-0.75f, -1.0f, 1}, {-1.3f, -1.0f, 0}, {0.7f, 0.5f, 0}}, a);
}

TEST_CASE("fake_quant: every width from 2 to 8 bits against an independent reference") {
  for (int bits = 2; bits <= 8; ++bits) {
    INFO("bits = " << bits);
    const int32_t top = (1 << (bits - 1)) - 1;
    // Symmetric narrow with scale 0.5, and asymmetric with scale 0.25, zero_point qmin + 1.
    const QParams s = choose_qparams(-0.5f * top, 0.5f * top, qrange(bits, true, true), true);
    REQUIRE(s.scale == 0.5f);
    const QRange ra = qrange(bits, false, false);
    const QParams a = choose_qparams(-0.25f, 0.25f * (ra.qmax - ra.qmin) - 0.25f, ra, false);
    REQUIRE(a.scale == 0.25f);
    REQUIRE(a.zero_point == ra.qmin + 1);
    std::vector<float> x;
    for (float v = -(top + 3.0f); v <= top + 3.0f; v += 0.0625f) x.push_back(v);
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<float> out(x.size());
    std::vector<uint8_t> mask(x.size());

    fake_quant_forward(out.data(), mask.data(), x.data(), n, s);
    for (size_t i = 0; i < x.size(); ++i) {
      const float r = std::fmin(std::fmax(round_half_away(x[i] / 0.5), -top), top);
      REQUIRE(out[i] == r * 0.5f);
      REQUIRE(mask[i] == (std::fabs(x[i]) <= 0.5f * top ? 1 : 0));
    }

    fake_quant_forward(out.data(), mask.data(), x.data(), n, a);
    const float lo = 0.25f * (ra.qmin - a.zero_point), hi = 0.25f * (ra.qmax - a.zero_point);
    for (size_t i = 0; i < x.size(); ++i) {
      const float r = std::fmin(std::fmax(round_half_away(x[i] / 0.25) + a.zero_point,
                                          static_cast<float>(ra.qmin)),
                                static_cast<float>(ra.qmax));
      REQUIRE(out[i] == (r - a.zero_point) * 0.25f);
      REQUIRE(mask[i] == (x[i] >= lo && x[i] <= hi ? 1 : 0));
    }
  }
}

TEST_CASE("fake_quant: per-channel uses each channel's own parameters") {
  const QParams q[3] = {choose_qparams(-7.9375f, 7.9375f, qrange(8, true, true), true),
                        choose_qparams(-2.0f, 13.9375f, qrange(8, false, false), false),
                        choose_qparams(-1.75f, 1.75f, qrange(4, true, true), true)};
  REQUIRE(q[2].scale == 0.25f);
  const std::vector<float> in = {0.03125f, -0.03125f, 0.125f,  //
                                 10.0f,    14.0f,     1.8f,    //
                                 -8.0f,    -2.0f,     -1.75f,  //
                                 1.03f,    5.5f,      0.3f};
  const std::vector<float> want = {0.0625f,  -0.0625f, 0.25f,  //
                                   7.9375f,  13.9375f, 1.75f,  //
                                   -7.9375f, -2.0f,    -1.75f,  //
                                   1.0f,     5.5f,     0.25f};
  const std::vector<uint8_t> want_mask = {1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1};
  std::vector<float> out(in.size());
  std::vector<uint8_t> mask(in.size());
  fake_quant_forward_per_channel(out.data(), mask.data(), in.data(), 4, 3, q);
  for (size_t i = 0; i < in.size(); ++i) {
    INFO("element " << i);
    CHECK(out[i] == want[i]);
    CHECK(mask[i] == want_mask[i]);
  }

  // Random data: each column equals the per-tensor forward with that column's parameters.
  const int64_t rows = 333, ch = 3;
  std::vector<float> x = random_floats(static_cast<size_t>(rows * ch), -20.0f, 20.0f, 5);
  std::vector<float> y(x.size());
  std::vector<uint8_t> m(x.size());
  fake_quant_forward_per_channel(y.data(), m.data(), x.data(), rows, ch, q);
  for (int64_t c = 0; c < ch; ++c) {
    std::vector<float> col(static_cast<size_t>(rows)), cy(col.size());
    std::vector<uint8_t> cm(col.size());
    for (int64_t r = 0; r < rows; ++r) col[static_cast<size_t>(r)] = x[static_cast<size_t>(r * ch + c)];
    fake_quant_forward(cy.data(), cm.data(), col.data(), rows, q[c]);
    for (int64_t r = 0; r < rows; ++r) {
      REQUIRE(y[static_cast<size_t>(r * ch + c)] == cy[static_cast<size_t>(r)]);
      REQUIRE(m[static_cast<size_t>(r * ch + c)] == cm[static_cast<size_t>(r)]);
    }
  }
}

TEST_CASE("fake_quant: in place and without a mask give the same values") {
  const QParams q = choose_qparams(-3.0f, 5.0f, qrange(8, false, false), false);
  std::vector<float> x = random_floats(1000, -6.0f, 8.0f, 9);
  std::vector<float> ref(x.size());
  std::vector<uint8_t> mask(x.size());
  fake_quant_forward(ref.data(), mask.data(), x.data(), 1000, q);
  fake_quant_forward(x.data(), nullptr, x.data(), 1000, q);
  CHECK(std::memcmp(x.data(), ref.data(), x.size() * sizeof(float)) == 0);
  // Idempotent: values already on the grid stay put.
  fake_quant_forward(x.data(), nullptr, x.data(), 1000, q);
  CHECK(std::memcmp(x.data(), ref.data(), x.size() * sizeof(float)) == 0);
}

TEST_CASE("fake_quant: NaN propagates with a blocked gradient and infinities clamp") {
  const QParams q = choose_qparams(-1.0f, 1.0f, qrange(8, true, true), true);
  const float inf = std::numeric_limits<float>::infinity();
  const float in[3] = {std::nanf(""), inf, -inf};
  float out[3];
  uint8_t mask[3];
  fake_quant_forward(out, mask, in, 3, q);
  CHECK(std::isnan(out[0]));
  CHECK(out[1] == dequantize(127, q));
  CHECK(out[2] == dequantize(-127, q));
  CHECK(mask[0] == 0);
  CHECK(mask[1] == 0);
  CHECK(mask[2] == 0);
}

TEST_CASE("fake_quant: STE passes the gradient inside the range and at its boundaries only") {
  for (bool sym : {false, true}) {
    const QParams q = choose_qparams(-1.3f, 2.7f, qrange(8, sym, sym), sym);
    const float lo = dequantize(q.qmin, q), hi = dequantize(q.qmax, q);
    std::vector<float> x = random_floats(4000, 3.0f * lo, 3.0f * hi, 11);
    x.push_back(lo);
    x.push_back(hi);
    x.push_back(std::nextafter(lo, -std::numeric_limits<float>::infinity()));
    x.push_back(std::nextafter(hi, std::numeric_limits<float>::infinity()));
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<float> out(x.size()), dout = random_floats(x.size(), -5.0f, 5.0f, 12);
    std::vector<uint8_t> mask(x.size());
    fake_quant_forward(out.data(), mask.data(), x.data(), n, q);
    std::vector<float> din(x.size(), 123.0f);  // overwritten, not accumulated
    fake_quant_backward(din.data(), dout.data(), mask.data(), n);
    int inside = 0, outside = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i] >= lo && x[i] <= hi) {
        REQUIRE(din[i] == dout[i]);
        ++inside;
      } else {
        REQUIRE(din[i] == 0.0f);
        ++outside;
      }
    }
    CHECK(din[x.size() - 4] == dout[x.size() - 4]);  // exactly at dequantize(qmin)
    CHECK(din[x.size() - 3] == dout[x.size() - 3]);  // exactly at dequantize(qmax)
    CHECK(din[x.size() - 2] == 0.0f);
    CHECK(din[x.size() - 1] == 0.0f);
    CHECK(inside > 500);
    CHECK(outside > 500);
    // din may alias dout.
    std::vector<float> g = dout;
    fake_quant_backward(g.data(), g.data(), mask.data(), n);
    CHECK(std::memcmp(g.data(), din.data(), g.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("fake_quant: finite differences - flat steps locally and slope 1 on average inside") {
  // Why the STE: the true derivative is 0 between step edges (checked by central differences
  // away from the edges), but across the range fake-quant follows the identity (secant slope
  // 1 within one step), and outside the range it is flat (slope 0), which is what the mask says.
  const QParams q = choose_qparams(-2.0f, 13.9375f, qrange(8, false, false), false);
  const float h = 1e-3f;
  auto fq = [&](float v) { return dequantize(quantize(v, q), q); };
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) {
    const float v = rng.uniform(-1.9f, 13.8f);
    const float steps = v / q.scale;
    if (std::fabs(steps - std::floor(steps) - 0.5f) < 0.1f) continue;  // too close to an edge
    REQUIRE((fq(v + h) - fq(v - h)) / (2 * h) == 0.0f);
  }
  const float a = -1.5f, b = 12.5f;
  CHECK(std::fabs((fq(b) - fq(a)) / (b - a) - 1.0f) <= q.scale / (b - a));
  CHECK(fq(30.0f) - fq(20.0f) == 0.0f);
}

TEST_CASE("minmax: finite values only, empty gives zero, per channel matches a naive loop") {
  const float inf = std::numeric_limits<float>::infinity();
  const float x[6] = {3.0f, std::nanf(""), -inf, -2.5f, inf, 1.0f};
  MinMax m = tensor_minmax(x, 6);
  CHECK(m.min == -2.5f);
  CHECK(m.max == 3.0f);
  m = tensor_minmax(x, 0);
  CHECK(m.min == 0.0f);
  CHECK(m.max == 0.0f);
  const float bad[2] = {std::nanf(""), inf};
  m = tensor_minmax(bad, 2);
  CHECK(m.min == 0.0f);
  CHECK(m.max == 0.0f);

  for (int64_t ch : {int64_t{5}, int64_t{300}}) {  // both the row-block and column-block paths
    const int64_t rows = 777;
    std::vector<float> v = random_floats(static_cast<size_t>(rows * ch), -10.0f, 10.0f, 8);
    v[static_cast<size_t>(3 * ch + 1)] = 50.0f;
    v[static_cast<size_t>(5 * ch + 2)] = std::nanf("");
    std::vector<MinMax> got(static_cast<size_t>(ch));
    channel_minmax(got.data(), v.data(), rows, ch);
    for (int64_t c = 0; c < ch; ++c) {
      float mn = inf, mx = -inf;
      for (int64_t r = 0; r < rows; ++r) {
        const float e = v[static_cast<size_t>(r * ch + c)];
        if (std::isnan(e)) continue;
        mn = std::min(mn, e);
        mx = std::max(mx, e);
      }
      REQUIRE(got[static_cast<size_t>(c)].min == mn);
      REQUIRE(got[static_cast<size_t>(c)].max == mx);
    }
    CHECK(got[1].max == 50.0f);
  }
}

TEST_CASE("fake_quant: results do not depend on the thread count") {
  const int64_t n = (int64_t{1} << 20) + 17;
  std::vector<float> x = random_floats(static_cast<size_t>(n), -4.0f, 4.0f, 21);
  const QParams q = choose_qparams(-3.0f, 3.5f, qrange(8, false, false), false);
  const int64_t ch = 300, rows = n / ch;
  std::vector<QParams> qc(static_cast<size_t>(ch));
  for (int64_t c = 0; c < ch; ++c)
    qc[static_cast<size_t>(c)] = choose_qparams(-0.01f * c, 0.02f * c + 0.1f, qrange(8, true, true), true);

  struct Out {
    std::vector<float> y, yc;
    std::vector<uint8_t> m, mc;
    MinMax mm;
    std::vector<MinMax> cmm;
  };
  auto run = [&](int threads) {
    set_num_threads(threads);
    Out o{std::vector<float>(x.size()), std::vector<float>(x.size()), std::vector<uint8_t>(x.size()),
          std::vector<uint8_t>(x.size()), {}, std::vector<MinMax>(static_cast<size_t>(ch))};
    fake_quant_forward(o.y.data(), o.m.data(), x.data(), n, q);
    fake_quant_forward_per_channel(o.yc.data(), o.mc.data(), x.data(), rows, ch, qc.data());
    o.mm = tensor_minmax(x.data(), n);
    channel_minmax(o.cmm.data(), x.data(), rows, ch);
    return o;
  };
  const int before = num_threads();
  const Out a = run(1), b = run(5);
  set_num_threads(before);
  CHECK(std::memcmp(a.y.data(), b.y.data(), a.y.size() * sizeof(float)) == 0);
  CHECK(a.m == b.m);
  CHECK(std::memcmp(a.yc.data(), b.yc.data(), a.yc.size() * sizeof(float)) == 0);
  CHECK(a.mc == b.mc);
  CHECK(a.mm.min == b.mm.min);
  CHECK(a.mm.max == b.mm.max);
  for (size_t c = 0; c < a.cmm.size(); ++c) {
    REQUIRE(a.cmm[c].min == b.cmm[c].min);
    REQUIRE(a.cmm[c].max == b.cmm[c].max);
  }
}

// Equal as floats (both NaN counts as equal). The sign of a zero is not compared: the compiler
// may turn float(int(v)) into trunc(v) (it does under -fno-trapping-math), so the scalar
// reference itself gives -0 or +0 depending on inlining; both are the grid's 0.
bool same_value(float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }

TEST_CASE("fake_quant: the vectorized kernels give the scalar quantize/dequantize values") {
  // Every tie k + 0.5 of the grid, both signs, -0, subnormals, values far outside the range,
  // NaN and infinities, in a length that leaves a tail after every vector width.
  const float inf = std::numeric_limits<float>::infinity();
  for (int bits : {2, 4, 8})
    for (bool symmetric : {true, false}) {
      const QParams q = choose_qparams(-1.3f, 2.9f, qrange(bits, symmetric, symmetric), symmetric);
      std::vector<float> x = random_floats(1000, -5.0f, 5.0f, static_cast<uint64_t>(bits));
      for (int k = -300; k <= 300; ++k) x.push_back((static_cast<float>(k) + 0.5f) * q.scale);
      for (float v : {0.0f, -0.0f, 1e-40f, -1e-40f, 1e30f, -1e30f, inf, -inf, std::nanf("")}) x.push_back(v);
      const auto n = static_cast<int64_t>(x.size());
      std::vector<float> got(x.size()), got_nomask(x.size());
      std::vector<uint8_t> mask(x.size());
      fake_quant_forward(got.data(), mask.data(), x.data(), n, q);
      fake_quant_forward(got_nomask.data(), nullptr, x.data(), n, q);
      const float lo = dequantize(q.qmin, q), hi = dequantize(q.qmax, q);
      for (size_t i = 0; i < x.size(); ++i) {
        const float want = std::isnan(x[i]) ? x[i] : dequantize(quantize(x[i], q), q);
        INFO("bits " << bits << " symmetric " << symmetric << " x = " << x[i]);
        REQUIRE(same_value(got[i], want));
        REQUIRE(same_value(got_nomask[i], want));
        REQUIRE(static_cast<int>(mask[i]) == ((x[i] >= lo && x[i] <= hi) ? 1 : 0));
      }
      // Per channel: 7 channels with their own grids over the same values.
      const int64_t ch = 7, rows = n / ch;
      std::vector<QParams> qc;
      for (int64_t c = 0; c < ch; ++c)
        qc.push_back(choose_qparams(-0.2f * static_cast<float>(c + 1), 0.3f * static_cast<float>(c + 1),
                                    qrange(bits, true, true), true));
      std::vector<float> pc(static_cast<size_t>(rows * ch));
      std::vector<uint8_t> pm(pc.size());
      fake_quant_forward_per_channel(pc.data(), pm.data(), x.data(), rows, ch, qc.data());
      for (int64_t i = 0; i < rows * ch; ++i) {
        const QParams& qq = qc[static_cast<size_t>(i % ch)];
        const float xi = x[static_cast<size_t>(i)];
        const float want = std::isnan(xi) ? xi : dequantize(quantize(xi, qq), qq);
        INFO("per channel, x = " << xi);
        REQUIRE(same_value(pc[static_cast<size_t>(i)], want));
        REQUIRE(static_cast<int>(pm[static_cast<size_t>(i)]) ==
                ((xi >= dequantize(qq.qmin, qq) && xi <= dequantize(qq.qmax, qq)) ? 1 : 0));
      }
    }
}

TEST_CASE("minmax: a single finite value anywhere in the vector lanes or the tail is found") {
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{100}})
    for (int64_t at = 0; at < n; ++at) {
      std::vector<float> x(static_cast<size_t>(n), std::nanf(""));
      for (int64_t i = 0; i < n; i += 3) x[static_cast<size_t>(i)] = (i % 2) ? inf : -inf;
      x[static_cast<size_t>(at)] = -7.5f;
      bool any = false;
      const MinMax m = tensor_minmax(x.data(), n, &any);
      REQUIRE(any);
      REQUIRE(m.min == -7.5f);
      REQUIRE(m.max == -7.5f);
    }
  const float none[3] = {inf, std::nanf(""), -inf};
  bool any = true;
  tensor_minmax(none, 3, &any);
  CHECK_FALSE(any);
}
