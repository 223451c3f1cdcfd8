// Tests for the liveness buffer plan: values whose lifetimes do not overlap share a buffer, a
// value never shares with one still read at its own step, and a buffer is as large as the
// largest value it holds.
#include <doctest/doctest.h>

#include <cstddef>
#include <vector>

#include "core/buffer_plan.h"

using namespace qatc;

TEST_CASE("buffer plan: a chain needs two buffers, sized for the largest value each holds") {
  // v0 (input) -> v1 -> v2 -> v3, each read by the next step only.
  const std::vector<ValueLife> chain = {{10, -1, 0}, {40, 0, 1}, {20, 1, 2}, {30, 2, 3}};
  const BufferPlan p = plan_buffers(chain);
  CHECK(p.slot_elems.size() == 2);
  CHECK(p.slot[0] == p.slot[2]);
  CHECK(p.slot[1] == p.slot[3]);
  CHECK(p.slot[0] != p.slot[1]);
  CHECK(p.slot_elems[static_cast<size_t>(p.slot[0])] == 20);
  CHECK(p.slot_elems[static_cast<size_t>(p.slot[1])] == 40);
}

TEST_CASE("buffer plan: a value read later (a skip connection) keeps its buffer") {
  // v1 is read by step 1 and step 3; v2, v3 must not take its buffer.
  const std::vector<ValueLife> skip = {{8, -1, 0}, {8, 0, 3}, {8, 1, 2}, {8, 2, 3}, {8, 3, 4}};
  const BufferPlan p = plan_buffers(skip);
  CHECK(p.slot[2] != p.slot[1]);
  CHECK(p.slot[3] != p.slot[1]);
  CHECK(p.slot[3] != p.slot[2]);  // step 2 reads v2 while it writes v3
  CHECK(p.slot[4] != p.slot[1]);  // step 3 reads v1 while it writes v4
  CHECK(p.slot[4] != p.slot[3]);
  CHECK(p.slot[4] == p.slot[2]);  // v2 was last read at step 2
}

TEST_CASE("buffer plan: the closest size among the free buffers") {
  // Two buffers (100 and 10 elements) are free at step 2; a value of 12 takes the small one.
  const std::vector<ValueLife> v = {{100, -1, 1}, {10, 0, 1}, {12, 2, 3}};
  const BufferPlan p = plan_buffers(v);
  CHECK(p.slot[2] == p.slot[1]);
  CHECK(p.slot_elems[static_cast<size_t>(p.slot[1])] == 12);
}

TEST_CASE("arena plan: overlapping lifetimes get disjoint ranges, others reuse, sizes aligned") {
  // v0 -> v1 -> v2 -> v3 plus v1 read again at step 3 (a skip connection).
  const std::vector<ValueLife> v = {{10, -1, 0}, {40, 0, 3}, {20, 1, 2}, {30, 2, 3}};
  const ArenaPlan p = plan_arena(v, 16);
  auto range = [&](size_t i) { return std::pair<int64_t, int64_t>{p.offset[i], p.offset[i] + (v[i].elems + 15) / 16 * 16}; };
  auto overlap = [&](size_t a, size_t b) { return range(a).first < range(b).second && range(b).first < range(a).second; };
  for (size_t i = 0; i < v.size(); ++i) {
    CHECK(p.offset[i] % 16 == 0);
    CHECK(range(i).second <= p.elems);
    for (size_t j = i + 1; j < v.size(); ++j)
      if (v[i].first <= v[j].last && v[j].first <= v[i].last) CHECK_FALSE(overlap(i, j));
  }
  // v1 (48) lives throughout; v2 and v3 (32 each) overlap each other; v0 (16) reuses their space.
  CHECK(p.elems == 48 + 32 + 32);
}
