// Thread pool behind parallel_for.
#include "core/threads.h"

#include "core/fpmode.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
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

// Workers wait for a job by spinning on the generation counter for up to kSpin, then sleep
// on a condition variable; the caller waits for the workers the same way. Inference calls
// parallel_for once per layer, a few microseconds to a few milliseconds apart: a worker that
// went to sleep takes tens of microseconds to wake (a futex wake, more under a hypervisor),
// which on a small model (an MNIST CNN at batch 32: ~1.5 ms for 12 layers) ate the whole
// gain of the second thread. The spin is bounded so an idle pool costs no CPU, and a pool
// with more threads than the hardware has does not spin at all: its spinners would take the
// cores from the threads with work (tfmot_cnn at batch 32 with 16 threads on 2 cores: 0.69 ms
// a batch with sleeping workers, 11.5 ms with spinning ones).
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or `spin` has passed; true if done.
template <class Done>
bool spin_until(Done done, std::chrono::microseconds spin) {
  if (spin.count() == 0) return done();
  const auto until = std::chrono::steady_clock::now() + spin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return done();
  }
}

constexpr int kMaxThreads = 4096;  // parts fit the generation word's low 16 bits

class Pool {
 public:
  explicit Pool(int n) {
    n = std::clamp(n, 1, kMaxThreads);
    size_ = n;
    const auto cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    spin_ = n <= cores ? kSpin : std::chrono::microseconds(0);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true);
      generation_.fetch_add(uint64_t{1} << 16);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return size_; }

  // Runs job(i) for i in [0, size) with i == 0 on the calling thread.
  void run(const std::function<void(int)>& job, int parts) {
    job_ = &job;
    error_ = nullptr;
    pending_.store(parts - 1);
    {
      // Under the lock: a worker about to sleep checks the generation under it too.
      std::lock_guard<std::mutex> lk(mu_);
      generation_.store(((generation_.load() >> 16) + 1) << 16 | static_cast<uint64_t>(parts),
                        std::memory_order_release);
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      job(0);
    } catch (...) {
      mine = std::current_exception();
    }
    if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; }, spin_)) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [this] { return pending_.load() == 0; });
    }
    job_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(int index) {
    set_flush_denormals();
    uint64_t seen = 0;
    for (;;) {
      const auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(fresh, spin_)) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, fresh);
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      // A worker outside the job must not read job_: the caller does not wait for it and may
      // already be setting up the next job.
      if (index >= static_cast<int>(seen & 0xFFFF)) continue;
      std::exception_ptr err;
      try {
        (*job_)(index);
      } catch (...) {
        err = std::current_exception();
      }
      if (err) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = err;
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // The caller may be asleep: notify under the lock it checks pending_ under.
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  // Written by run() before the generation moves on, read by the job's workers after they
  // see it (the caller waits for them before it writes again).
  const std::function<void(int)>* job_ = nullptr;
  std::exception_ptr error_;  // under mu_ while a job runs
  std::atomic<int> pending_{0};
  // A count of jobs << 16 | the job's part count (at most kMaxThreads).
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  int size_ = 1;
  std::chrono::microseconds spin_{0};  // set before the workers start
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

namespace {

// Marks the thread as inside a parallel loop (a nested one then runs serially), also when fn
// throws.
struct InParallel {
  InParallel() { t_in_parallel = true; }
  ~InParallel() { t_in_parallel = false; }
};

// How many parts a loop of `pieces` pieces runs in: 1 (on the calling thread: one piece, one
// thread, or already inside a parallel loop), else up to the pool's size.
int64_t parts_for(int64_t pieces) {
  const int64_t parts = std::min<int64_t>(num_threads(), pieces);
  if (parts <= 1 || t_in_parallel) return 1;
  return std::min<int64_t>(parts, pool().size());
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t parts = parts_for((n + grain - 1) / grain);
  if (parts == 1) {
    fn(0, n);
    return;
  }
  const int64_t chunk = (n + parts - 1) / parts;
  pool().run(
      [&](int i) {
        const int64_t b = i * chunk, e = std::min(n, b + chunk);
        if (b >= e) return;
        const InParallel in;
        fn(b, e);
      },
      static_cast<int>(parts));
}

void parallel_for_dynamic(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t parts = parts_for((n + grain - 1) / grain);
  if (parts == 1) {
    fn(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  pool().run(
      [&](int) {
        const InParallel in;
        try {
          for (int64_t b; (b = next.fetch_add(grain, std::memory_order_relaxed)) < n;) fn(b, std::min(n, b + grain));
        } catch (...) {
          next.store(n);  // the others stop at their next piece
          throw;
        }
      },
      static_cast<int>(parts));
}

}  // namespace qatc
