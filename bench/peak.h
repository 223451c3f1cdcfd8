// The register-peak harness of the kernel benchmarks: a loop of independent multiply-add chains
// (held in registers, so nothing but the arithmetic units limits it) run on several threads at
// once, timed by wall clock and by each thread's own CPU time.
#pragma once

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "stats.h"
#include "core/threads.h"

// The accumulators of the peak loops are named variables c0..c23 (so that each keeps its own
// register), declared and updated through these X-macro lists. QATC_OPAQUE12/24 make them opaque
// to the compiler every iteration (register constraint "v": any vector register, "x": the VEX
// ones), so it can neither merge equal chains nor drop any.
#define QATC_CHAINS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define QATC_CHAINS24(X) QATC_CHAINS12(X) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
#define QATC_OPAQUE12(r)                                                                                     \
  __asm__ volatile("" : "+" r(c0), "+" r(c1), "+" r(c2), "+" r(c3), "+" r(c4), "+" r(c5), "+" r(c6), "+" r(c7), \
                   "+" r(c8), "+" r(c9), "+" r(c10), "+" r(c11))
#define QATC_OPAQUE24(r)                                                                                       \
  QATC_OPAQUE12(r);                                                                                            \
  __asm__ volatile("" : "+" r(c12), "+" r(c13), "+" r(c14), "+" r(c15), "+" r(c16), "+" r(c17), "+" r(c18),    \
                   "+" r(c19), "+" r(c20), "+" r(c21), "+" r(c22), "+" r(c23))

namespace qatc::bench {

inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// CPU time of all threads of the process.
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Peak {
  double wall;     // GMAC/s of all threads together, by wall time
  double per_cpu;  // GMAC per CPU second of one thread (its own CPU time: load-independent)
};

// Runs loop(seed) on `threads` threads at once (each the same loop of `macs` multiply-adds;
// its result is kept alive), `repeats` times: the medians, or with use_max the maxima.
template <class Loop>
Peak peak_gmacs(Loop&& loop, double macs, int threads, int repeats, bool use_max) {
  std::vector<double> wall, cpu;
  std::vector<double> sink(static_cast<size_t>(threads));
  std::vector<double> thread_cpu(static_cast<size_t>(threads));
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const double c0 = thread_cpu_seconds();
        sink[static_cast<size_t>(i)] += static_cast<double>(loop(static_cast<int32_t>(i + r)));
        thread_cpu[static_cast<size_t>(i)] = thread_cpu_seconds() - c0;
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    wall.push_back(macs * threads / s * 1e-9);
    for (double c : thread_cpu) cpu.push_back(macs / c * 1e-9);
  }
  if (sink[0] == 42) std::printf(" ");  // keep the results alive
  if (use_max) return {*std::max_element(wall.begin(), wall.end()), *std::max_element(cpu.begin(), cpu.end())};
  return {median(wall), median(cpu)};
}

}  // namespace qatc::bench
