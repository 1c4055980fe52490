// Persistent worker pool behind onebit::parallel_for (see onebit/parallel.h).
#include "onebit/parallel.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace onebit {
namespace {

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
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
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr err;
    try {
      fn(bounds[0], bounds[1]);
    } catch (...) {
      err = std::current_exception();
    }
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return pending_ == 0; });
    fn_ = nullptr;
    if (!err) err = error_;
    lock.unlock();
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
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
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
      std::lock_guard<std::mutex> lock(mu_);
      if (err && !error_) error_ = err;
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::mutex busy_;  // one parallel_for at a time owns the workers
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const RangeFn* fn_ = nullptr;
  const std::vector<std::int64_t>* bounds_ = nullptr;
  std::uint64_t generation_ = 0;
  int chunks_ = 0;
  int pending_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
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
