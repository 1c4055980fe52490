// Multi-threading for kernels: a persistent worker pool and a static partition.
//
// parallel_for(n, num_threads, fn) splits [0, n) into num_threads contiguous chunks of
// near-equal size (the first n % num_threads chunks get one extra item) and runs
// fn(begin, end) for each, chunk 0 on the calling thread. Each item is computed by exactly
// one call, so a kernel whose items are independent gives bit-identical results for any
// thread count. If the pool is busy (a call from another Python thread), chunks run inline:
// slower, still correct.
#pragma once
#include <cstdint>
#include <functional>

namespace onebit {

using RangeFn = std::function<void(std::int64_t begin, std::int64_t end)>;

void parallel_for(std::int64_t n, int num_threads, const RangeFn& fn);

// Rounds `n` items into chunks whose size is a multiple of `grain` (except the last); use when
// a kernel processes items in blocks (e.g. 4 output rows at a time).
void parallel_for_grain(std::int64_t n, std::int64_t grain, int num_threads, const RangeFn& fn);

int hardware_threads();

// Threads worth using for `work` units when one thread should get at least `min_work` of them:
// min(num_threads, max(1, work / min_work)). Splitting a call costs a few microseconds (waking
// or signalling the workers, then waiting for the slowest), so kernels that take ~10 us on one
// thread run faster on one: e.g. the convolutions of a 32x32 CIFAR QuickNet. Results never
// depend on the thread count, so this is a pure speed choice.
int threads_for(std::int64_t work, std::int64_t min_work, int num_threads);

}  // namespace onebit
