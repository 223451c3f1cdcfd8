// Memory plans for executors that compute a sequence of values (activations): values whose
// lifetimes do not overlap share memory, so a deep network needs a few buffers (or one arena),
// not one per layer. The float inference engine uses buffers, the int8 executor the arena.
#pragma once

#include <cstdint>
#include <vector>

namespace qatc {

// One value: computed by step `first` (-1: before the first step), last read by step `last`.
struct ValueLife {
  int64_t elems;  // size per example
  int first, last;
};

struct BufferPlan {
  std::vector<int> slot;            // per value: its buffer
  std::vector<int64_t> slot_elems;  // per buffer: elements per example (its largest value)
};

// Values must come in order of `first`. Each takes, among the buffers whose values were all last
// read before its `first` (so a step never writes a buffer it reads), the one closest in size,
// or a new buffer when none is free.
BufferPlan plan_buffers(const std::vector<ValueLife>& values);

// One arena instead of buffers: each value gets an offset (in elements per example, a multiple
// of `align`); values whose lifetimes [first, last] overlap get disjoint ranges. Values are
// placed largest first (stable), each at the lowest offset clear of the overlapping values
// placed before it. Values may come in any order. Tighter than plan_buffers (a buffer is as
// large as the largest value it ever holds; a range only as large as its value).
struct ArenaPlan {
  std::vector<int64_t> offset;  // per value
  int64_t elems = 0;            // arena size per example
};
ArenaPlan plan_arena(const std::vector<ValueLife>& values, int64_t align);

}  // namespace qatc
