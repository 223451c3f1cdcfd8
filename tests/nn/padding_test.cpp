// Tests for the TensorFlow 'same' / 'valid' padding rule.
#include <doctest/doctest.h>

#include "core/error.h"
#include "nn/padding.h"

using namespace qatc::nn;

TEST_CASE("padding: same padding known cases put the smaller half before") {
  // in=5 k=3 s=2: out 3, pad_total 2 -> 1 before, 1 after.
  PadGeom a = pad_geom(5, 3, 2, Padding::same);
  CHECK(a.out == 3);
  CHECK(a.pad_before == 1);
  // in=4 k=3 s=2: out 2, pad_total 1 -> 0 before, 1 after (TF pads the extra row at the end).
  PadGeom b = pad_geom(4, 3, 2, Padding::same);
  CHECK(b.out == 2);
  CHECK(b.pad_before == 0);
  // in=28 k=3 s=1: out 28, pad_total 2.
  PadGeom c = pad_geom(28, 3, 1, Padding::same);
  CHECK(c.out == 28);
  CHECK(c.pad_before == 1);
  // in=7 k=4 s=1: pad_total 3 -> 1 before.
  CHECK(pad_geom(7, 4, 1, Padding::same).pad_before == 1);
  // Stride larger than the kernel needs no padding: in=5 k=1 s=3 -> out 2.
  PadGeom d = pad_geom(5, 1, 3, Padding::same);
  CHECK(d.out == 2);
  CHECK(d.pad_before == 0);
  // Kernel larger than the input is fine with same padding: in=2 k=5 s=1 -> pad_total 4.
  PadGeom e = pad_geom(2, 5, 1, Padding::same);
  CHECK(e.out == 2);
  CHECK(e.pad_before == 2);
}

TEST_CASE("padding: valid padding known cases and the too-small input error") {
  PadGeom a = pad_geom(28, 5, 1, Padding::valid);
  CHECK(a.out == 24);
  CHECK(a.pad_before == 0);
  PadGeom b = pad_geom(7, 3, 2, Padding::valid);
  CHECK(b.out == 3);
  PadGeom c = pad_geom(8, 3, 2, Padding::valid);
  CHECK(c.out == 3);
  CHECK(pad_geom(3, 3, 1, Padding::valid).out == 1);
  CHECK_THROWS_AS(pad_geom(2, 3, 1, Padding::valid), qatc::Error);
  CHECK_THROWS_WITH_AS(pad_geom(2, 3, 1, Padding::valid), doctest::Contains("kernel"), qatc::Error);
  CHECK_THROWS_AS(pad_geom(5, 3, 0, Padding::same), qatc::Error);
  CHECK_THROWS_AS(pad_geom(5, 0, 1, Padding::valid), qatc::Error);
}

TEST_CASE("padding: every same-padded window overlaps the input") {
  // Pooling relies on this: a window made only of padding would have no maximum.
  for (int64_t in = 1; in <= 20; ++in)
    for (int64_t k = 1; k <= 7; ++k)
      for (int64_t s = 1; s <= 5; ++s) {
        const PadGeom p = pad_geom(in, k, s, Padding::same);
        INFO("in ", in, " k ", k, " s ", s);
        REQUIRE(p.out * s >= in);
        REQUIRE((p.out - 1) * s < in);
        REQUIRE(p.pad_before >= 0);
        REQUIRE(k - 1 - p.pad_before >= 0);               // first window reaches row 0
        REQUIRE((p.out - 1) * s - p.pad_before <= in - 1);  // last window starts inside
      }
}
