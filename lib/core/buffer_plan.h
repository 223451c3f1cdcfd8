// Memory plans for executors that compute a sequence of values (activations): values whose
// lifetimes do not overlap share one buffer, so a deep network needs a few buffers, not one
// per layer.
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

}  // namespace qatc
