// Tests of the shared kernel argument checks: good parameters pass, each kind of bad one
// throws before any data is touched.
#include <doctest/doctest.h>

#include <vector>

#include "core/error.h"
#include "kernels/check.h"
#include "kernels/params.h"
#include "kernels/ref/kernels.h"

using namespace qatc;
using namespace qatc::kernels;

namespace {

struct ConvFixture {
  std::vector<int8_t> in = std::vector<int8_t>(5 * 5 * 3, 1);
  std::vector<int8_t> out = std::vector<int8_t>(3 * 3 * 4);
  std::vector<int8_t> w = std::vector<int8_t>(4 * 3 * 3 * 3, 1);
  std::vector<int32_t> bias = std::vector<int32_t>(4, 0);
  std::vector<int32_t> mult = std::vector<int32_t>(4, 1 << 30);
  std::vector<int32_t> shift = std::vector<int32_t>(4, -8);
  // 5x5x3 -> 3x3x4, 3x3 stride 2 'same' (pads 1/1).
  Conv2DParams p{1, 5, 5, 3, 3, 3, 4, 2, 2, 1, 1, 3, 3, 0, 0,
                 w.data(), bias.data(), mult.data(), shift.data(), -128, 127};
};

}  // namespace

TEST_CASE("check accepts good conv2d parameters") {
  ConvFixture f;
  CHECK_NOTHROW(check(f.p, f.out.data(), f.in.data()));
  CHECK_NOTHROW(ref::conv2d_qs8(f.out.data(), f.in.data(), f.p));
  f.p.bias = nullptr;
  CHECK_NOTHROW(check(f.p, f.out.data(), f.in.data()));
  f.mult[2] = 0;  // m == 0 is {0, 0}
  f.shift[2] = 0;
  CHECK_NOTHROW(check(f.p, f.out.data(), f.in.data()));
}

TEST_CASE("check with Channels::packed skips only the per-channel arrays") {
  ConvFixture f;
  f.mult[1] = 5;  // not a quantized multiplier
  CHECK_THROWS_AS(check(f.p, f.out.data(), f.in.data()), InternalError);
  CHECK_NOTHROW(check(f.p, f.out.data(), f.in.data(), Channels::packed));
  f.p.multiplier = f.p.shift = f.p.bias = nullptr;
  CHECK_THROWS_AS(check(f.p, f.out.data(), f.in.data()), InternalError);
  CHECK_NOTHROW(check(f.p, f.out.data(), f.in.data(), Channels::packed));
  f.p.oh = 4;  // the geometry is still checked
  CHECK_THROWS_AS(check(f.p, f.out.data(), f.in.data(), Channels::packed), InternalError);
}

TEST_CASE("check rejects bad conv2d parameters") {
  const auto rejects = [](auto mutate) {
    ConvFixture f;
    mutate(f);
    CHECK_THROWS_AS(check(f.p, f.out.data(), f.in.data()), InternalError);
    CHECK_THROWS_AS(ref::conv2d_qs8(f.out.data(), f.in.data(), f.p), InternalError);
  };
  rejects([](ConvFixture& f) { f.p.weights = nullptr; });
  rejects([](ConvFixture& f) { f.p.multiplier = nullptr; });
  rejects([](ConvFixture& f) { f.p.c = 0; });
  rejects([](ConvFixture& f) { f.p.stride_h = 0; });
  rejects([](ConvFixture& f) { f.p.pad_top = 3; });          // a whole window of padding
  rejects([](ConvFixture& f) { f.p.pad_left = -1; });
  rejects([](ConvFixture& f) { f.p.oh = 4; });               // last window past the input
  rejects([](ConvFixture& f) { f.p.input_zero_point = 128; });
  rejects([](ConvFixture& f) { f.p.output_zero_point = -129; });
  rejects([](ConvFixture& f) {
    f.p.qmin = 10;
    f.p.qmax = 9;
  });
  rejects([](ConvFixture& f) { f.p.qmax = 128; });
  rejects([](ConvFixture& f) { f.mult[3] = 12345; });        // not normalized
  rejects([](ConvFixture& f) { f.shift[0] = 31; });
  rejects([](ConvFixture& f) { f.shift[0] = -32; });
  rejects([](ConvFixture& f) { f.bias[1] = 2147000000; });   // accumulator could wrap
  {
    ConvFixture f;
    CHECK_THROWS_AS(check(f.p, nullptr, f.in.data()), InternalError);
    CHECK_THROWS_AS(check(f.p, f.out.data(), nullptr), InternalError);
  }
}

TEST_CASE("check bounds the int32 accumulator by depth and bias") {
  std::vector<int32_t> mult(1, 1 << 30), shift(1, -8);
  const int8_t w = 1, x = 0;
  int8_t out = 0;
  // depth * 255 * 128 <= INT32_MAX holds up to depth 65793.
  DenseParams ok{1, 65793, 1, 0, 0, &w, nullptr, mult.data(), shift.data(), -128, 127};
  CHECK_NOTHROW(check(ok, &out, &x));
  DenseParams deep = ok;
  deep.in_features = 65794;
  CHECK_THROWS_AS(check(deep, &out, &x), InternalError);
}

TEST_CASE("check rejects bad add concat pool global avgpool and quantize parameters") {
  int8_t a = 0, b = 0, out = 0;
  const uint8_t pixel = 0;
  AddParams add = make_add_params(0.1, 0, 0.2, 0, 0.3, 0, -128, 127, 1);
  CHECK_NOTHROW(check(add, &out, &a, &b));
  AddParams bad_add = add;
  bad_add.input1_shift = 1;  // input multipliers must stay below 1
  CHECK_THROWS_AS(check(bad_add, &out, &a, &b), InternalError);
  bad_add = add;
  bad_add.left_shift = 24;
  CHECK_THROWS_AS(check(bad_add, &out, &a, &b), InternalError);
  CHECK_THROWS_AS(check(add, &out, nullptr, &b), InternalError);

  const std::vector<ConcatInputSpec> specs = {{1, 0.1, 0}, {1, 0.2, 0}};
  ConcatParams cat = make_concat_params(1, specs, 0.1, 0);
  const int8_t* inputs[] = {&a, &b};
  CHECK_NOTHROW(check(cat, &out, inputs));
  const int8_t* missing[] = {&a, nullptr};
  CHECK_THROWS_AS(check(cat, &out, missing), InternalError);
  cat.inputs[0].zero_point = 1;  // copied, but zero points differ
  CHECK_THROWS_AS(check(cat, &out, inputs), InternalError);

  Pool2DParams pool{1, 2, 2, 1, 2, 2, 2, 2, 0, 0, 1, 1, -128, 127};
  CHECK_NOTHROW(check(pool, &out, &a));
  pool.oh = 2;
  CHECK_THROWS_AS(check(pool, &out, &a), InternalError);

  GlobalAvgPoolParams gap = make_global_avgpool_params(1, 4, 1, 0.1, 0, 0.1, 0);
  CHECK_NOTHROW(check(gap, &out, &a));
  gap.hw = 0;
  CHECK_THROWS_AS(check(gap, &out, &a), InternalError);

  QuantizeParams q = make_quantize_params(1.0 / 255.0, 0, 1.0 / 255.0, -128);
  CHECK_NOTHROW(check(q, &out, &pixel, 1));
  CHECK_THROWS_AS(check(q, &out, &pixel, 0), InternalError);
  q.pixel_zero_point = 256;
  CHECK_THROWS_AS(check(q, &out, &pixel, 1), InternalError);
}
