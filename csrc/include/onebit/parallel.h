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

}  // namespace onebit
