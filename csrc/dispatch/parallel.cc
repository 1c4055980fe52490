// Persistent worker pool behind onebit::parallel_for (see onebit/parallel.h).
#include "onebit/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace onebit {
namespace {

// Wake-up latency matters more than anything else here: a model runs ~100 short parallel calls
// per inference, tens of microseconds apart, and waking a thread blocked on a futex costs
// 20-100 us on a virtual machine (the idle vCPU must be scheduled again): measured on this
// 2-vCPU VM, a pool that always blocked made 2 threads *slower* than 1 on QuickNet (4.4 vs
// 3.8 ms). So workers, and the caller waiting for them, first spin on an atomic for up to
// kSpin (the gap between two ops of a model) and only then block on the condition variable,
// the scheme of OpenMP runtimes (GOMP_SPINCOUNT / KMP_BLOCKTIME).
constexpr std::chrono::microseconds kSpin(1000);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until pred() or kSpin has passed; returns pred(). The spin yields the CPU every few
// iterations, so a runnable thread of another pool (OpenBLAS, which the runtime uses for float
// GEMMs, spins with sched_yield too) is not starved on the same core.
template <class Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1;; ++i) {
    if (pred()) return true;
    cpu_relax();
    if ((i & 63) == 0) {
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() > deadline) return pred();
    }
  }
}

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  // Runs fn(begin_i, end_i) for chunks i = 1..chunks-1 on workers, chunk 0 on the caller.
  bool try_run(const std::vector<std::int64_t>& bounds, const RangeFn& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    const int chunks = static_cast<int>(bounds.size()) - 1;
    ensure_workers(chunks - 1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      bounds_ = &bounds;
      chunks_ = chunks;
      error_ = nullptr;
      pending_.store(chunks - 1);
      generation_.fetch_add(1);
    }
    cv_.notify_all();  // no system call when every worker is spinning
    std::exception_ptr err;
    try {
      fn(bounds[0], bounds[1]);
    } catch (...) {
      err = std::current_exception();
    }
    if (!spin_until([&] { return pending_.load() == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] { return pending_.load() == 0; });
    }
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = nullptr;
    if (!err) err = error_;
    if (err) std::rethrow_exception(err);
    return true;
  }

 private:
  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      int id = static_cast<int>(workers_.size()) + 1;  // worker id == chunk index
      workers_.emplace_back([this, id] { loop(id); });
    }
  }

  void loop(int id) {
    std::uint64_t seen = 0;
    for (;;) {
      const RangeFn* fn;
      const std::vector<std::int64_t>* bounds;
      if (!spin_until([&] { return generation_.load() != seen; })) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_.load() != seen; });
      }
      {
        // The call's parameters are read under the lock they were written under.
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_.load()) return;
        seen = generation_.load();
        if (id >= chunks_) continue;  // this call needs fewer workers than exist
        fn = fn_;
        bounds = bounds_;
      }
      std::exception_ptr err;
      try {
        (*fn)((*bounds)[id], (*bounds)[id + 1]);
      } catch (...) {
        err = std::current_exception();
      }
      if (err) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = err;
      }
      if (pending_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mu_);  // a caller past its spin may be about to wait
        done_cv_.notify_one();
      }
    }
  }

  std::mutex busy_;  // one parallel_for at a time owns the workers
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const RangeFn* fn_ = nullptr;
  const std::vector<std::int64_t>* bounds_ = nullptr;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  int chunks_ = 0;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

void run_chunks(const std::vector<std::int64_t>& bounds, const RangeFn& fn) {
  if (bounds.size() <= 2 || !pool().try_run(bounds, fn)) {
    for (size_t i = 0; i + 1 < bounds.size(); ++i) {
      if (bounds[i] < bounds[i + 1]) fn(bounds[i], bounds[i + 1]);
    }
  }
}

}  // namespace

int threads_for(std::int64_t work, std::int64_t min_work, int num_threads) {
  const std::int64_t useful = std::max<std::int64_t>(1, work / std::max<std::int64_t>(1, min_work));
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(num_threads, useful)));
}

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

void parallel_for_grain(std::int64_t n, std::int64_t grain, int num_threads, const RangeFn& fn) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(1, grain);
  const std::int64_t blocks = (n + grain - 1) / grain;
  const int chunks = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(num_threads, blocks)));
  std::vector<std::int64_t> bounds(chunks + 1);
  for (int i = 0; i <= chunks; ++i) {
    const std::int64_t b = (blocks / chunks) * i + std::min<std::int64_t>(i, blocks % chunks);
    bounds[i] = std::min(n, b * grain);
  }
  run_chunks(bounds, fn);
}

void parallel_for(std::int64_t n, int num_threads, const RangeFn& fn) {
  parallel_for_grain(n, 1, num_threads, fn);
}

}  // namespace onebit
