// A small fixed thread pool. parallel_for splits [0, n) into one contiguous chunk per
// thread, always the same way for a given thread count, so results are deterministic.
// Between jobs the workers spin for up to 200 us before they sleep (threads.cpp), so the
// next layer's job starts without a wake-up; not when there are more threads than hardware
// threads.
#pragma once

#include <cstdint>
#include <functional>

namespace qatc {

// Sets the number of worker threads for qatc's loops (OpenBLAS is kept single-threaded).
// n <= 0 means all hardware threads.
void set_num_threads(int n);
int num_threads();

// Runs fn(begin, end) over [0, n) split into at most num_threads() chunks of at least
// `grain` items. Blocks until done. Exceptions from fn are rethrown in the caller.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Runs fn(begin, end) over [0, n) in pieces of `grain` items (the last may be shorter) that
// the threads take in order as they become free: a thread that is slowed down (another
// process on its core, a layer's uneven pieces) takes fewer. Which thread runs which piece
// varies from call to call, so this is for loops whose pieces write disjoint outputs and
// whose result does not depend on the split (the int8 kernels), not for reductions.
void parallel_for_dynamic(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace qatc
