// Machine limits for benchmarks/bench_ternary.py (x86-64 with AVX2), printed as JSON:
//   * int8 peak: 12 independent vpmaddubsw + vpaddw (int16 accumulate) pairs per iteration in
//     registers, i.e. the inner loop of the tgemm micro-kernel without its loads; one
//     vpmaddubsw = 32 int8 multiply-adds;
//   * int8 VNNI peak (only where the CPU has AVX512-VNNI; the function is compiled for it with
//     a target attribute and called after a runtime check): 24 independent vpdpbusd zmm chains,
//     the accumulator tile of the avx512 tgemm micro-kernel; one vpdpbusd = 64 multiply-adds;
//   * read bandwidth: one thread summing 32-byte loads (XOR) over a buffer, for a buffer that
//     sits in the last-level cache (like the packed weights of one BitNet matrix) and one that
//     does not (DRAM).
// Build: c++ -O2 -mavx2 peak_avx2.cc -o peak_avx2 -lpthread
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static double int8_peak_gmacs() {
  const long iters = 20000000;
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now();
    for (long it = 0; it < iters; ++it) {
      __asm__ volatile(
          "vpmaddubsw %%ymm15, %%ymm14, %%ymm0\n vpmaddubsw %%ymm15, %%ymm14, %%ymm1\n"
          "vpmaddubsw %%ymm15, %%ymm14, %%ymm2\n vpmaddubsw %%ymm15, %%ymm14, %%ymm3\n"
          "vpmaddubsw %%ymm15, %%ymm14, %%ymm4\n vpmaddubsw %%ymm15, %%ymm14, %%ymm5\n"
          "vpaddw %%ymm0, %%ymm6, %%ymm6\n vpaddw %%ymm1, %%ymm7, %%ymm7\n"
          "vpaddw %%ymm2, %%ymm8, %%ymm8\n vpaddw %%ymm3, %%ymm9, %%ymm9\n"
          "vpaddw %%ymm4, %%ymm10, %%ymm10\n vpaddw %%ymm5, %%ymm11, %%ymm11\n"
          "vpmaddubsw %%ymm15, %%ymm14, %%ymm0\n vpmaddubsw %%ymm15, %%ymm14, %%ymm1\n"
          "vpmaddubsw %%ymm15, %%ymm14, %%ymm2\n vpmaddubsw %%ymm15, %%ymm14, %%ymm3\n"
          "vpmaddubsw %%ymm15, %%ymm14, %%ymm4\n vpmaddubsw %%ymm15, %%ymm14, %%ymm5\n"
          "vpaddw %%ymm0, %%ymm6, %%ymm6\n vpaddw %%ymm1, %%ymm7, %%ymm7\n"
          "vpaddw %%ymm2, %%ymm8, %%ymm8\n vpaddw %%ymm3, %%ymm9, %%ymm9\n"
          "vpaddw %%ymm4, %%ymm10, %%ymm10\n vpaddw %%ymm5, %%ymm11, %%ymm11\n" ::
              : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                "xmm11");
    }
    best = std::min(best, now() - t0);
  }
  return iters * 12.0 * 32.0 / best / 1e9;
}

#define ONEBIT_VNNI4(a, b, c, d)                                                        \
  "vpdpbusd %%zmm30, %%zmm31, %%zmm" #a "\n vpdpbusd %%zmm30, %%zmm31, %%zmm" #b "\n" \
  "vpdpbusd %%zmm30, %%zmm31, %%zmm" #c "\n vpdpbusd %%zmm30, %%zmm31, %%zmm" #d "\n"

__attribute__((target("avx512f,avx512vnni"))) static double int8_vnni_peak_gmacs() {
  const long iters = 10000000;
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now();
    for (long it = 0; it < iters; ++it) {
      __asm__ volatile(ONEBIT_VNNI4(0, 1, 2, 3) ONEBIT_VNNI4(4, 5, 6, 7) ONEBIT_VNNI4(8, 9, 10, 11)
                           ONEBIT_VNNI4(12, 13, 14, 15) ONEBIT_VNNI4(16, 17, 18, 19) ONEBIT_VNNI4(20, 21, 22, 23) ::
                               : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                                 "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18",
                                 "xmm19", "xmm20", "xmm21", "xmm22", "xmm23");
    }
    best = std::min(best, now() - t0);
  }
  return iters * 24.0 * 64.0 / best / 1e9;
}
#undef ONEBIT_VNNI4

// GB/s of `threads` threads each reading its own share of a `bytes` buffer, best of `reps`.
static double read_gbs(size_t bytes, int threads, int reps) {
  std::vector<unsigned char> buf(bytes + 64, 1);
  unsigned char* base = buf.data() + (64 - reinterpret_cast<std::uintptr_t>(buf.data()) % 64) % 64;
  const size_t share = bytes / threads / 128 * 128;
  std::vector<long long> sink(threads * 8);
  auto work = [&](int t) {
    const unsigned char* p = base + t * share;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < share; i += 128) {
      a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
      a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
      a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
      a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
    }
    const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    sink[t * 8] = _mm256_extract_epi64(a, 0);
  };
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    const double t0 = now();
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    best = std::min(best, now() - t0);
  }
  return share * threads / best / 1e9;
}

int main() {
  const double peak = int8_peak_gmacs();
  std::printf("{\"int8_maddubs_peak_gmacs_per_core\": %.1f, ", peak);
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512vnni")) {
    std::printf("\"int8_vnni_peak_gmacs_per_core\": %.1f, ", int8_vnni_peak_gmacs());
  }
  std::printf("\"read_gbs_8MB_1t\": %.1f, ", read_gbs(8u << 20, 1, 50));
  std::printf("\"read_gbs_512MB_1t\": %.1f, ", read_gbs(512u << 20, 1, 5));
  std::printf("\"read_gbs_512MB_2t\": %.1f}\n", read_gbs(512u << 20, 2, 5));
}
