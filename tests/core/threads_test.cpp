// Tests for the thread pool behind parallel_for: coverage of the range, the fixed split,
// exceptions, nesting, and many short jobs back to back (the workers spin between jobs, and a
// job may use fewer workers than the pool has).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/threads.h"

using namespace qatc;

namespace {

// Restores the thread count of the other tests.
struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

}  // namespace

TEST_CASE("threads: parallel_for covers 0..n-1 once, in min(threads, n / grain) equal chunks") {
  ThreadsGuard guard;
  for (int threads : {1, 2, 3, 4}) {
    set_num_threads(threads);
    for (int64_t n : {1, 2, 3, 7, 64, 1000}) {
      for (int64_t grain : {1, 5, 100}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::mutex mu;
        std::vector<std::pair<int64_t, int64_t>> chunks;
        parallel_for(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
          std::lock_guard<std::mutex> lk(mu);
          chunks.emplace_back(b, e);
        });
        for (auto& h : hits) REQUIRE(h.load() == 1);
        std::sort(chunks.begin(), chunks.end());
        const int64_t parts = std::min<int64_t>(threads, (n + grain - 1) / grain);
        const int64_t chunk = (n + parts - 1) / parts;
        REQUIRE(static_cast<int64_t>(chunks.size()) <= parts);
        for (size_t i = 0; i < chunks.size(); ++i) {
          CHECK(chunks[i].first == static_cast<int64_t>(i) * chunk);
          CHECK(chunks[i].second == std::min(n, chunks[i].first + chunk));
        }
      }
    }
  }
}

TEST_CASE("threads: the split is the same on every call for a given thread count") {
  ThreadsGuard guard;
  set_num_threads(3);
  auto split = [] {
    std::vector<std::pair<int64_t, int64_t>> chunks(3, {-1, -1});
    parallel_for(100, 1, [&](int64_t b, int64_t e) { chunks[static_cast<size_t>(b / 34)] = {b, e}; });
    return chunks;
  };
  const auto first = split();
  CHECK(first[0] == std::pair<int64_t, int64_t>{0, 34});
  CHECK(first[1] == std::pair<int64_t, int64_t>{34, 68});
  CHECK(first[2] == std::pair<int64_t, int64_t>{68, 100});
  for (int i = 0; i < 50; ++i) REQUIRE(split() == first);
}

TEST_CASE("threads: many short jobs in a row, some using fewer workers than the pool has") {
  ThreadsGuard guard;
  set_num_threads(4);
  std::atomic<int64_t> total{0};
  int64_t expect = 0;
  for (int i = 0; i < 20000; ++i) {
    const int64_t n = 1 + i % 4;  // 1..4 parts of 1 item: workers 2 and 3 sit some jobs out
    parallel_for(n, 1, [&](int64_t b, int64_t e) { total += e - b; });
    expect += n;
    if (i % 5000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // workers asleep
  }
  CHECK(total.load() == expect);
}

TEST_CASE("threads: an exception in any chunk reaches the caller and the pool still works") {
  ThreadsGuard guard;
  set_num_threads(2);
  for (int64_t bad : {0, 99}) {  // the caller's chunk, a worker's chunk
    CHECK_THROWS_AS(parallel_for(100, 1,
                                 [&](int64_t b, int64_t e) {
                                   if (b <= bad && bad < e) throw std::runtime_error("chunk failed");
                                 }),
                    std::runtime_error);
  }
  std::atomic<int64_t> sum{0};
  parallel_for(100, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  CHECK(sum.load() == 4950);
}

TEST_CASE("threads: a parallel_for inside a chunk runs on that chunk's thread") {
  ThreadsGuard guard;
  set_num_threads(2);
  std::atomic<int64_t> inner{0};
  parallel_for(2, 1, [&](int64_t, int64_t) {
    const auto me = std::this_thread::get_id();
    parallel_for(10, 1, [&](int64_t b, int64_t e) {
      CHECK(std::this_thread::get_id() == me);
      inner += e - b;
    });
  });
  CHECK(inner.load() == 20);
}

TEST_CASE("threads: parallel_for_dynamic covers 0..n-1 once, in pieces of grain items") {
  ThreadsGuard guard;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int64_t n : {1, 5, 64, 1001}) {
      for (int64_t grain : {1, 4, 2000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad{0};
        parallel_for_dynamic(n, grain, [&](int64_t b, int64_t e) {
          // A piece starts at a multiple of grain and is grain long (the last one: the rest),
          // or is the whole range when it runs on one thread.
          const bool whole = b == 0 && e == n;
          if (!whole && (b % grain != 0 || e != std::min(n, b + grain))) ++bad;
          for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
        });
        CHECK(bad.load() == 0);
        for (auto& h : hits) REQUIRE(h.load() == 1);
      }
    }
  }
  set_num_threads(2);
  CHECK_THROWS_AS(parallel_for_dynamic(100, 1,
                                       [&](int64_t b, int64_t) {
                                         if (b == 57) throw std::runtime_error("piece failed");
                                       }),
                  std::runtime_error);
}
