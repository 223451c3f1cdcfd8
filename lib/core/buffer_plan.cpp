// Greedy best-fit buffer sharing over value lifetimes.
#include "core/buffer_plan.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace qatc {

BufferPlan plan_buffers(const std::vector<ValueLife>& values) {
  BufferPlan p;
  p.slot.assign(values.size(), -1);
  std::vector<int> free_after;  // per buffer: the step after which it is free again
  for (size_t v = 0; v < values.size(); ++v) {
    const ValueLife& life = values[v];
    QATC_CHECK(v == 0 || values[v - 1].first <= life.first);
    int best = -1;
    for (size_t s = 0; s < free_after.size(); ++s)
      if (free_after[s] < life.first &&
          (best < 0 || std::abs(p.slot_elems[s] - life.elems) <
                           std::abs(p.slot_elems[static_cast<size_t>(best)] - life.elems)))
        best = static_cast<int>(s);
    if (best < 0) {
      best = static_cast<int>(free_after.size());
      free_after.push_back(0);
      p.slot_elems.push_back(0);
    }
    const auto b = static_cast<size_t>(best);
    p.slot_elems[b] = std::max(p.slot_elems[b], life.elems);
    free_after[b] = life.last;
    p.slot[v] = best;
  }
  return p;
}

}  // namespace qatc
