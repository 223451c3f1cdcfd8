// Thread pool behind parallel_for.
#include "core/threads.h"

#include "core/fpmode.h"

#include <condition_variable>
#include <algorithm>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int num_threads);
// OpenBLAS (pthread build) starts its worker threads when it is loaded; this joins them. Weak:
// absent from serial builds and other BLAS libraries.
extern "C" int blas_thread_shutdown_() __attribute__((weak));

namespace qatc {
namespace {

class Pool {
 public:
  explicit Pool(int n) {
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { loop(i); });
    size_ = n;
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return size_; }

  // Runs job(i) for i in [0, size) with i == 0 on the calling thread.
  void run(const std::function<void(int)>& job, int parts) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &job;
      parts_ = parts;
      pending_ = parts - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      job(0);
    } catch (...) {
      mine = std::current_exception();
    }
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    job_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(int index) {
    set_flush_denormals();
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (index >= parts_) continue;
        job = job_;
      }
      std::exception_ptr err;
      try {
        (*job)(index);
      } catch (...) {
        err = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (err && !error_) error_ = err;
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  int parts_ = 0;
  int pending_ = 0;
  int size_ = 1;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

int g_threads = 0;
thread_local bool t_in_parallel = false;  // nested parallel_for runs serially
std::unique_ptr<Pool> g_pool;
std::mutex g_pool_mu;

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (!g_pool) g_pool = std::make_unique<Pool>(num_threads());
  return *g_pool;
}

}  // namespace

void set_num_threads(int n) {
  set_flush_denormals();  // the calling (main) thread runs chunk 0 of every parallel_for
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (n != g_threads) g_pool.reset();
  g_threads = n;
  // qatc parallelizes around OpenBLAS (nn/sgemm.cpp). OpenBLAS's own threads, started when
  // the library loaded, would spin in sched_yield beside qatc's (perf on an int8 run: a
  // second thread busy for a fifth of the samples): one OpenBLAS thread, and its workers
  // joined. OpenBLAS starts them again only if asked for more threads, which qatc never does.
  openblas_set_num_threads(1);
  if (blas_thread_shutdown_ != nullptr) blas_thread_shutdown_();
}

int num_threads() {
  if (g_threads <= 0) return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return g_threads;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t parts = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  if (parts <= 1 || t_in_parallel) {
    fn(0, n);
    return;
  }
  Pool& p = pool();
  parts = std::min<int64_t>(parts, p.size());
  const int64_t chunk = (n + parts - 1) / parts;
  std::function<void(int)> job = [&](int i) {
    int64_t b = i * chunk, e = std::min(n, b + chunk);
    if (b >= e) return;
    t_in_parallel = true;
    try {
      fn(b, e);
    } catch (...) {
      t_in_parallel = false;
      throw;
    }
    t_in_parallel = false;
  };
  p.run(job, static_cast<int>(parts));
}

}  // namespace qatc
