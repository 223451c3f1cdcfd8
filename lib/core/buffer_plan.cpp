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

ArenaPlan plan_arena(const std::vector<ValueLife>& values, int64_t align) {
  QATC_CHECK_GE(align, 1);
  ArenaPlan p;
  p.offset.assign(values.size(), 0);
  auto elems = [&](size_t v) { return (values[v].elems + align - 1) / align * align; };
  std::vector<size_t> order(values.size());
  for (size_t v = 0; v < order.size(); ++v) order[v] = v;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return elems(a) > elems(b); });
  std::vector<std::pair<int64_t, int64_t>> busy;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t t = order[k];
    busy.clear();
    for (size_t j = 0; j < k; ++j) {
      const size_t u = order[j];
      if (values[u].first <= values[t].last && values[t].first <= values[u].last)
        busy.emplace_back(p.offset[u], p.offset[u] + elems(u));
    }
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (const auto& [begin, end] : busy) {
      if (begin - at >= elems(t)) break;
      at = std::max(at, end);
    }
    p.offset[t] = at;
    p.elems = std::max(p.elems, at + elems(t));
  }
  return p;
}

}  // namespace qatc
