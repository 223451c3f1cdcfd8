// A small fixed thread pool. parallel_for splits [0, n) into one contiguous chunk per
// thread, always the same way for a given thread count, so results are deterministic.
// Between jobs the workers spin for up to 200 us before they sleep (threads.cpp), so the
// next layer's job starts without a wake-up.
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

}  // namespace qatc
