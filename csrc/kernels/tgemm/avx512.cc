// AVX-512 VNNI tgemv / tgemm: tq2 ternary weights (formats.h) x int8 activations, exact int32 sums.
//
// Arithmetic: as in avx2.cc, the packed field is q = t + 1 in {0, 1, 2}, an unsigned byte, so
// VPDPBUSD (_mm512_dpbusd_epi32: unsigned bytes x signed bytes, 4 products summed into each
// int32 lane) takes it as is, and
//     sum_k t[k] * x[k] = sum_k q[k] * x[k] - sum_k x[k]          (row sum of x, once per row).
// Numeric invariants:
//   * VPDPBUSD adds into int32 without intermediate saturation (not the "s" variant), so there
//     is no int16 stage and no flush: every int8 activation, -128 included, is exact;
//   * tgemv pre-scales group l of the four 32-weight groups by 4^l (4^l q <= 128): an int32 lane
//     sums K / 64 products of at most 2^14, exact for K < 2^23 (tgemm: |acc| <= 2 * 128 * K);
//   * the float output is float(acc) * (w_scale / x_scale[i]): vcvtdq2ps rounds to nearest even
//     like static_cast<float>, then one vmulps (no FMA), the ref's two operations, bit-identical.
// Padding: fields past K hold t = 0 (q = 1) and always meet zero activations (zero-padded copies
// of x); the last odd block of a tgemv row is a masked load, and tgemm's weight-row loads are
// masked past N, so no load reads past a caller's buffer.
//
// Measured (Zen 5 EPYC, GCC 12; benchmarks/bench_ternary.py --repeats 15, medians, avx2 and
// avx512 samples interleaved; load average 0.6-1.1). Register-only peaks in the same run: 234 G
// int8 MAC/s per core with vpdpbusd (3.6 G zmm/s: one per cycle; ymm gives the same MACs),
// 196 with vpmaddubsw, DRAM read ~22-25 GB/s per core. (DESIGN.md's ~455 G VNNI and ~113 G fp32
// MAC/s are twice what such loops reach on this machine now: zmm FMA gives 58 G MAC/s.)
// avx2 -> avx512, 1 thread:
//   tgemv hot   1536x4096 0.076 -> 0.044 ms, 4096x1536 0.086 -> 0.054, 3200x8640 0.319 -> 0.164,
//               8640x3200 0.317 -> 0.186 ms (30-39 GB/s of packed weights, L2/L3-resident)
//   tgemv cold  (weights rotated over >= 128 MB of copies): 9-13 -> 20-23 GB/s, 82-106% of a
//               numpy read of the same buffers in the same rotation
//   tgemm M=512 127-152 -> 208-214 G MAC/s, 89-91% of the VNNI peak (2 threads: 378-401)
//   torch fp32 F.linear: GEMV 1.3-6.1 ms, GEMM 65-308 ms (onebit incl. quantize_i8: 24-37x, 4-5x).
// Tried and dropped are noted at each kernel.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "onebit/kernels.h"
#include "scratch.h"

namespace onebit::avx512 {
namespace {

constexpr std::int64_t kPrefetchBytes = 12 * 1024;
constexpr std::int64_t kBlockBytes = static_cast<std::int64_t>(sizeof(tq2_block));  // 32 bytes = 128 weights

inline __m512i load(const void* p) { return _mm512_loadu_si512(p); }

using detail::Scratch;

// sum of the k int8 values at x (masked tail: reads nothing past x + k).
std::int32_t row_sum(const std::int8_t* x, std::int64_t k) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  for (std::int64_t i = 0; i < k; i += 64) {
    const std::int64_t left = k - i;
    const __mmask64 m = left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1;
    acc = _mm512_dpbusd_epi32(acc, ones, _mm512_maskz_loadu_epi8(m, x + i));
  }
  return _mm512_reduce_add_epi32(acc);
}

// The 4 horizontal sums of s[0..3] in one xmm (lane r = sum of s[r]): two unpack+add levels
// leave [s0 s1 s2 s3] partial sums in every 128-bit lane, then the 4 lanes are added (~10
// instructions instead of ~4 x 8; matters for short rows, 384 bytes at K = 1536).
inline __m128i reduce4(const __m512i* s) {
  const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(s[0], s[1]), _mm512_unpackhi_epi32(s[0], s[1]));
  const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(s[2], s[3]), _mm512_unpackhi_epi32(s[2], s[3]));
  const __m512i c = _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
  const __m256i d = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
}

// ---- tgemv: 4 packed weight rows . one activation row, streaming the weights ----------------
// One zmm load v covers two blocks (256 weights): its 256-bit halves are blocks 2p and 2p + 1,
// byte c holding weights 128 b + 32 l + c in bits 2l. No shifts: the four groups are taken in
// place, pre-scaled,  4^l q_l = v & (3 << 2l)  (<= 128, still an unsigned byte), each into its own
// accumulator; at the end  acc_0 + (acc_1 >> 2) + (acc_2 >> 4) + (acc_3 >> 6)  (exact: every lane
// of acc_l is a multiple of 4^l; |lane| <= 2^14 * K / 64, so K < 2^23). Each masked vector holds
// group l of both blocks, so the activation row is repacked once (O(K)) to match:
//     xr[256 p + 64 l + 32 h + c] = x[128 (2p + h) + 32 l + c]   (zero past K).
// Per 64 weight bytes and row: 1 load, 1 prefetch, 4 vpandd, 4 vpdpbusd (one vpsrlw fewer than
// avx2.cc's masks 3 / 12 on v and v >> 4; the two measured alike within this machine's noise).
// Prefetch: one per 64-byte line, kPrefetchBytes ahead of each load into L2 (_MM_HINT_T1). The
// rows are one contiguous stream; with DRAM-cold weights (rotating over 256 MB of copies) this
// took 1536x4096 from ~9 to ~15-20 GB/s. Measured and dropped (intrinsics versions): prefetching
// the next 4 rows at the same offset into L1 (avx2.cc's scheme: ~9-14 GB/s), NTA, distances
// 1-64 KiB (4-16 KiB alike within the noise), prefetching the first 12 KiB up front (no gain at
// 1.5 MB), 1 or 2 rows per pass (no better), 8 (spills: 32 accumulators), and for M > 1 two
// activation rows sharing each masked weight vector (2 x 2: per row no faster than 1 x 4).
// Hot (L2/L3-resident) gemv_rows4 streams 34-49 GB/s here; DRAM-cold it reaches 85-100% of a
// plain read of the same buffers (the loop has slack: it is not what limits the cold case).

// One row (the n % 4 rows after the groups of 4; also the reference for gemv_rows4 below).
std::int32_t gemv_row(const std::uint8_t* w, const std::int8_t* xr, std::int64_t blocks) {
  const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0C), m2 = _mm512_set1_epi8(0x30),
                m3 = _mm512_set1_epi8(static_cast<char>(0xC0));
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (std::int64_t p = 0; 2 * p < blocks; ++p) {
    // the last block of an odd count alone: the upper half is masked to 0 (and meets x = 0)
    const __mmask64 live = 2 * p + 1 < blocks ? ~__mmask64(0) : __mmask64(0xFFFFFFFFu);
    const std::int8_t* xp = xr + p * 256;
    const __m512i v = _mm512_maskz_loadu_epi8(live, w + p * 2 * kBlockBytes);
    a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(v, m0), load(xp));
    a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(v, m1), load(xp + 64));
    a2 = _mm512_dpbusd_epi32(a2, _mm512_and_si512(v, m2), load(xp + 128));
    a3 = _mm512_dpbusd_epi32(a3, _mm512_and_si512(v, m3), load(xp + 192));
  }
  const __m512i lo = _mm512_add_epi32(a0, _mm512_srai_epi32(a1, 2));
  const __m512i hi = _mm512_add_epi32(_mm512_srai_epi32(a2, 4), _mm512_srai_epi32(a3, 6));
  return _mm512_reduce_add_epi32(_mm512_add_epi32(lo, hi));
}

// 4 rows at once (one pass over the activations), in inline assembly: GCC 12 compiles the
// same loop in intrinsics (arrays of 4 x 4 accumulators) with ~20 register copies and 2 stack
// spills per step (hot 1536x4096 0.050 ms, 3200x8640 0.20 ms;
// this: 0.037 and 0.14 ms; DRAM-cold alike). Registers: accumulators a_l[r] = zmm(4r + l),
// masks zmm16-19, activations zmm20-23, the weight line zmm24 and its masked groups zmm25-28.
// An odd last block is one more step with the upper half of each weight load masked to 0.
void gemv_rows4(const std::uint8_t* w, std::int64_t row_bytes, const std::int8_t* xr, std::int64_t blocks,
                std::int32_t* res) {
  static_assert(kPrefetchBytes == 12288, "the assembly below hard-codes the prefetch distance");
  alignas(64) std::int32_t sums[4][16];
  const std::uint32_t m0 = 0x03030303u, m1 = 0x0C0C0C0Cu, m2 = 0x30303030u, m3 = 0xC0C0C0C0u;
  const std::uint8_t* w2 = w + 2 * row_bytes;
  std::int64_t pairs = blocks / 2;
  const std::int64_t odd = blocks % 2;
  const __mmask64 live = 0xFFFFFFFFu;
#define ONEBIT_ZERO(r) "vpxord %%zmm" r ", %%zmm" r ", %%zmm" r "\n\t"
#define ONEBIT_ROW(addr, zmm24, a0, a1, a2, a3)                                                           \
  "prefetcht1 12288" addr "\n\t"                                                                         \
  "vmovdqu8 " addr ", " zmm24 "\n\t"                                                                     \
  "vpandd %%zmm16, %%zmm24, %%zmm25\n\t vpandd %%zmm17, %%zmm24, %%zmm26\n\t"                            \
  "vpandd %%zmm18, %%zmm24, %%zmm27\n\t vpandd %%zmm19, %%zmm24, %%zmm28\n\t"                            \
  "vpdpbusd %%zmm20, %%zmm25, %%zmm" a0 "\n\t vpdpbusd %%zmm21, %%zmm26, %%zmm" a1 "\n\t"                \
  "vpdpbusd %%zmm22, %%zmm27, %%zmm" a2 "\n\t vpdpbusd %%zmm23, %%zmm28, %%zmm" a3 "\n\t"
#define ONEBIT_STEP(zmm24)                                                                               \
  "vmovdqu64 (%[x]), %%zmm20\n\t vmovdqu64 64(%[x]), %%zmm21\n\t"                                        \
  "vmovdqu64 128(%[x]), %%zmm22\n\t vmovdqu64 192(%[x]), %%zmm23\n\t"                                    \
  ONEBIT_ROW("(%[w])", zmm24, "0", "1", "2", "3") ONEBIT_ROW("(%[w],%[rs],1)", zmm24, "4", "5", "6", "7") \
  ONEBIT_ROW("(%[w2])", zmm24, "8", "9", "10", "11") ONEBIT_ROW("(%[w2],%[rs],1)", zmm24, "12", "13", "14", "15")
#define ONEBIT_SUM(a0, a1, a2, a3, off)                                                                  \
  "vpsrad $2, %%zmm" a1 ", %%zmm" a1 "\n\t vpsrad $4, %%zmm" a2 ", %%zmm" a2 "\n\t"                      \
  "vpsrad $6, %%zmm" a3 ", %%zmm" a3 "\n\t vpaddd %%zmm" a1 ", %%zmm" a0 ", %%zmm" a0 "\n\t"             \
  "vpaddd %%zmm" a3 ", %%zmm" a2 ", %%zmm" a2 "\n\t vpaddd %%zmm" a2 ", %%zmm" a0 ", %%zmm" a0 "\n\t"    \
  "vmovdqu64 %%zmm" a0 ", " off "(%[sums])\n\t"
  __asm__ volatile(
      "vpbroadcastd %k[m0], %%zmm16\n\t vpbroadcastd %k[m1], %%zmm17\n\t"
      "vpbroadcastd %k[m2], %%zmm18\n\t vpbroadcastd %k[m3], %%zmm19\n\t"
      ONEBIT_ZERO("0") ONEBIT_ZERO("1") ONEBIT_ZERO("2") ONEBIT_ZERO("3") ONEBIT_ZERO("4") ONEBIT_ZERO("5")
      ONEBIT_ZERO("6") ONEBIT_ZERO("7") ONEBIT_ZERO("8") ONEBIT_ZERO("9") ONEBIT_ZERO("10") ONEBIT_ZERO("11")
      ONEBIT_ZERO("12") ONEBIT_ZERO("13") ONEBIT_ZERO("14") ONEBIT_ZERO("15")
      "testq %[pairs], %[pairs]\n\t"
      "jz 2f\n\t"
      "1:\n\t"
      ONEBIT_STEP("%%zmm24")
      "addq $256, %[x]\n\t addq $64, %[w]\n\t addq $64, %[w2]\n\t"
      "decq %[pairs]\n\t"
      "jnz 1b\n\t"
      "2:\n\t"
      "testq %[odd], %[odd]\n\t"
      "jz 3f\n\t"
      ONEBIT_STEP("%%zmm24%{%[live]%}%{z%}")
      "3:\n\t"
      ONEBIT_SUM("0", "1", "2", "3", "0") ONEBIT_SUM("4", "5", "6", "7", "64")
      ONEBIT_SUM("8", "9", "10", "11", "128") ONEBIT_SUM("12", "13", "14", "15", "192")
      : [w] "+r"(w), [w2] "+r"(w2), [x] "+r"(xr), [pairs] "+r"(pairs)
      : [rs] "r"(row_bytes), [odd] "r"(odd), [live] "Yk"(live), [sums] "r"(&sums[0][0]), [m0] "r"(m0),
        [m1] "r"(m1), [m2] "r"(m2), [m3] "r"(m3)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
        "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "cc", "memory");
#undef ONEBIT_SUM
#undef ONEBIT_STEP
#undef ONEBIT_ROW
#undef ONEBIT_ZERO
  __m512i v[4];
  for (int r = 0; r < 4; ++r) v[r] = _mm512_load_si512(sums[r]);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(res), reduce4(v));
}

// Repacks one activation row into the pair layout of gemv_row(s4) (2 * ceil(blocks / 2) blocks).
void repack_gemv_row(const std::int8_t* x, std::int64_t k, std::int64_t blocks, std::int8_t* xr) {
  const std::int64_t padded = (blocks + 1) / 2 * 2;
  for (std::int64_t b = 0; b < padded; ++b) {
    for (std::int64_t l = 0; l < 4; ++l) {
      const std::int64_t src = b * 128 + l * 32, left = std::min<std::int64_t>(32, std::max<std::int64_t>(0, k - src));
      std::int8_t* dst = xr + (b / 2) * 256 + l * 64 + (b % 2) * 32;
      if (left > 0) std::memcpy(dst, x + src, static_cast<size_t>(left));  // the rest stays 0
    }
  }
}

inline void store_result(std::int32_t acc, std::int64_t i, std::int64_t j, float mult, float* out,
                         std::int32_t* acc_out, std::int64_t ldo) {
  if (out) out[i * ldo + j] = static_cast<float>(acc) * mult;
  if (acc_out) acc_out[i * ldo + j] = acc;
}

// ---- tgemm: outer-product VNNI micro-kernel on repacked operands ----------------------------
// K is cut into quads of 4 consecutive values (S4 = 32 * blocks quads, K padded to blocks * 128).
// One VPDPBUSD adds, for 16 output columns, the dot products of one quad of weights (q bytes,
// 16 columns x 4 in a zmm) with one activation quad broadcast to every lane (vpbroadcastd):
//   activations, tiles of kMR rows:   xt[((it * S4 + s) * kMR + i) * 4 + e] = x[kMR it + i, 4 s + e]
//   weights, panels of kNC columns:   bp[(s * kNC + j) * 4 + e] = q[j0 + j, 4 s + e]   (per K chunk)
// The micro-kernel keeps a kMR x kNC int32 tile in kMR * kNV zmm accumulators (6 x 4 = 24 of
// 32 registers, 4 for the weights, 1 for the broadcast): per quad 4 weight loads + 6
// broadcasts feed 24 VPDPBUSD.
// Rows past M and columns past N are zero and never stored; values past K meet x = 0.
constexpr int kMR = 6, kNV = 4, kNC = 16 * kNV;  // 64 columns divide every BitNet N (1536 ... 8640)
constexpr std::int64_t kQuadsPerBlock = 32;
constexpr std::int64_t kMinTiledRows = 6;  // tgemm below this many rows runs tgemv per row

// c[i * kNC + j] += sum over `steps` >= 1 quads of bp . xt for one tile (c: kMR x kNC int32).
// The 24 accumulators (zmm0-23, acc(i, v) = zmm(4i + v)) stay in registers for the whole loop,
// the 4 weight vectors use zmm24-27 and the broadcast activation quad zmm28. In inline
// assembly because GCC 12, given the same loop in intrinsics, spills a weight vector every
// step when it is inlined (~3% slower) and keeps all 24 accumulators in memory when it is not
// (~2x slower).
void micro_6x64(const std::uint8_t* pb, const std::int8_t* px, std::int64_t steps, std::int32_t* c) {
#define ONEBIT_LD(r, off) "vmovdqu64 " off "(%[c]), %%zmm" r "\n\t"
#define ONEBIT_ST(r, off) "vmovdqu64 %%zmm" r ", " off "(%[c])\n\t"
#define ONEBIT_ROW(off, r0, r1, r2, r3)           \
  "vpbroadcastd " off "(%[px]), %%zmm28\n\t"      \
  "vpdpbusd %%zmm28, %%zmm24, %%zmm" r0 "\n\t"    \
  "vpdpbusd %%zmm28, %%zmm25, %%zmm" r1 "\n\t"    \
  "vpdpbusd %%zmm28, %%zmm26, %%zmm" r2 "\n\t"    \
  "vpdpbusd %%zmm28, %%zmm27, %%zmm" r3 "\n\t"
#define ONEBIT_TILE(M)                                                                        \
  M("0", "0") M("1", "64") M("2", "128") M("3", "192") M("4", "256") M("5", "320")             \
  M("6", "384") M("7", "448") M("8", "512") M("9", "576") M("10", "640") M("11", "704")        \
  M("12", "768") M("13", "832") M("14", "896") M("15", "960") M("16", "1024") M("17", "1088")  \
  M("18", "1152") M("19", "1216") M("20", "1280") M("21", "1344") M("22", "1408") M("23", "1472")
  static_assert(kMR == 6 && kNV == 4 && kNC * 4 == 256, "the assembly below hard-codes the 6 x 64 tile");
  __asm__ volatile(
      ONEBIT_TILE(ONEBIT_LD)
      "1:\n\t"
      "vmovdqu64 (%[pb]), %%zmm24\n\t"
      "vmovdqu64 64(%[pb]), %%zmm25\n\t"
      "vmovdqu64 128(%[pb]), %%zmm26\n\t"
      "vmovdqu64 192(%[pb]), %%zmm27\n\t"
      ONEBIT_ROW("0", "0", "1", "2", "3")
      ONEBIT_ROW("4", "4", "5", "6", "7")
      ONEBIT_ROW("8", "8", "9", "10", "11")
      ONEBIT_ROW("12", "12", "13", "14", "15")
      ONEBIT_ROW("16", "16", "17", "18", "19")
      ONEBIT_ROW("20", "20", "21", "22", "23")
      "addq $256, %[pb]\n\t"
      "addq $24, %[px]\n\t"
      "decq %[steps]\n\t"
      "jnz 1b\n\t"
      ONEBIT_TILE(ONEBIT_ST)
      : [pb] "+r"(pb), [px] "+r"(px), [steps] "+r"(steps)
      : [c] "r"(c)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
        "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "cc", "memory");
#undef ONEBIT_TILE
#undef ONEBIT_ROW
#undef ONEBIT_ST
#undef ONEBIT_LD
}

// Packs m activation rows (stride k) into kMR-row tiles of S4 quads (zero padded) and returns
// their row sums in xsum[0..m).
void pack_activations(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t S4, std::int8_t* xt,
                      std::int32_t* xsum) {
  for (std::int64_t r = 0; r < m; ++r) {
    std::int8_t* dst = xt + (r / kMR) * S4 * kMR * 4 + (r % kMR) * 4;
    const std::int8_t* src = x + r * k;
    const std::int64_t full = k / 4;
    for (std::int64_t s = 0; s < full; ++s) std::memcpy(dst + s * kMR * 4, src + 4 * s, 4);
    if (k % 4) std::memcpy(dst + full * kMR * 4, src + 4 * full, static_cast<size_t>(k % 4));
    xsum[r] = row_sum(src, k);
  }
}

// Permutation tables of a 16 x 8 dword transpose in 3 stages of vpermt2d. Vector p starts with
// rows 2p, 2p + 1 (lane 8h + g = dword g of row 2p + h); stage s merges vectors 2q, 2q + 1 into
// new q (elements with bit 2 - s of g clear) and q + 4 (set), lanes ordered by (row, g). After
// the 3 stages vector p holds dword g[p] of rows 0..15 in lanes 0..15. Built once by simulating
// the element labels (row * 8 + g), so the tables are correct by construction.
struct Transpose16x8 {
  alignas(64) std::int32_t idx[3][8][16];  // [stage][output vector][lane]
  int g[8];

  Transpose16x8() {
    int label[8][16];
    for (int p = 0; p < 8; ++p)
      for (int lane = 0; lane < 16; ++lane) label[p][lane] = (2 * p + lane / 8) * 8 + lane % 8;
    for (int stage = 0; stage < 3; ++stage) {
      const int bit = 2 - stage;
      int next[8][16];
      for (int q = 0; q < 4; ++q) {
        for (int half = 0; half < 2; ++half) {
          int count = 0;
          for (int key = 0; key < 128; ++key) {  // (row, g) order
            if (((key % 8) >> bit & 1) != half) continue;
            for (int src = 0; src < 32; ++src) {
              if (label[2 * q + src / 16][src % 16] != key) continue;
              idx[stage][q + 4 * half][count] = src;
              next[q + 4 * half][count++] = key;
            }
          }
        }
      }
      std::memcpy(label, next, sizeof(label));
    }
    for (int p = 0; p < 8; ++p) g[p] = label[p][0] % 8;
  }
};

// Expands blocks [b0, b1) of panel rows j0 .. j0 + kNC (rows >= n are zeroed) into bp. Quad
// s = 32 b + 8 l + g of row j is bytes 4g .. 4g + 3 of block b, field l: the 16 x 8 dwords of a
// block of 16 rows are transposed in registers (16 loads, 24 vpermt2d), then each dword vector
// d (dword g of 16 rows) gives 4 quads, ((d >> 2l) & 0x03030303). Masked gathers of the same
// dwords were 3-5x slower (~0.3-0.5 vs ~0.1 ms per 1.5 MB of packed weights, any M).
void expand_panel(const std::uint8_t* w, std::int64_t row_bytes, std::int64_t rows, std::int64_t b0,
                  std::int64_t b1, std::uint8_t* bp) {
  static const Transpose16x8 tr;
  const __m512i mask3 = _mm512_set1_epi8(3);
  for (int v = 0; v < kNV; ++v) {
    const std::uint8_t* base = w + 16 * v * row_bytes;
    for (std::int64_t b = b0; b < b1; ++b) {
      __m512i d[8];
      for (int p = 0; p < 8; ++p) {
        auto row = [&](std::int64_t r) {  // rows past the panel's live rows read as 0
          const __mmask8 live = 16 * v + r < rows ? __mmask8(0xFF) : __mmask8(0);
          return _mm256_maskz_loadu_epi32(live, base + r * row_bytes + b * kBlockBytes);
        };
        d[p] = _mm512_inserti64x4(_mm512_castsi256_si512(row(2 * p)), row(2 * p + 1), 1);
      }
      for (int stage = 0; stage < 3; ++stage) {
        __m512i next[8];
        for (int q = 0; q < 4; ++q) {
          for (int half = 0; half < 2; ++half) {
            const __m512i idx = _mm512_load_si512(tr.idx[stage][q + 4 * half]);
            next[q + 4 * half] = _mm512_permutex2var_epi32(d[2 * q], idx, d[2 * q + 1]);
          }
        }
        for (int p = 0; p < 8; ++p) d[p] = next[p];
      }
      for (int p = 0; p < 8; ++p) {
        std::uint8_t* dst = bp + (((b - b0) * kQuadsPerBlock + tr.g[p]) * kNC + 16 * v) * 4;
        _mm512_storeu_si512(dst, _mm512_and_si512(d[p], mask3));
        _mm512_storeu_si512(dst + 8 * kNC * 4, _mm512_and_si512(_mm512_srli_epi32(d[p], 2), mask3));
        _mm512_storeu_si512(dst + 16 * kNC * 4, _mm512_and_si512(_mm512_srli_epi32(d[p], 4), mask3));
        _mm512_storeu_si512(dst + 24 * kNC * 4, _mm512_and_si512(_mm512_srli_epi32(d[p], 6), mask3));
      }
    }
  }
}

// out / acc_out of panel columns [j0, j0 + kNC) (masked past n) for rows [0, m), c = q . x.
void store_panel(const std::int32_t* c, std::int64_t m, std::int64_t n, std::int64_t j0, const std::int32_t* xsum,
                 const float* mult, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  for (int v = 0; v < kNV; ++v) {
    const std::int64_t j = j0 + 16 * v, left = n - j;
    if (left <= 0) break;
    const __mmask16 live = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    for (std::int64_t i = 0; i < m; ++i) {
      const __m512i acc = _mm512_sub_epi32(load(c + i * kNC + 16 * v), _mm512_set1_epi32(xsum[i]));
      if (acc_out) _mm512_mask_storeu_epi32(acc_out + i * ldo + j, live, acc);
      if (out) {
        _mm512_mask_storeu_ps(out + i * ldo + j, live, _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(mult[i])));
      }
    }
  }
}

}  // namespace

void tgemv(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  const std::int64_t blocks = tq2_blocks(k), row_bytes = tq2_row_bytes(k);
  constexpr int R = 4;  // rows per pass over the activations (gemv_rows4)
  Scratch<std::int8_t> xr((blocks + 1) / 2 * 256);
  for (std::int64_t i = 0; i < m; ++i) {
    repack_gemv_row(x + i * k, k, blocks, xr.data());
    const std::int32_t xsum = row_sum(x + i * k, k);
    const float mult = w_scale / x_scale[i];
    std::int32_t res[R];
    std::int64_t j = 0;
    for (; j + R <= n; j += R) {
      gemv_rows4(w + j * row_bytes, row_bytes, xr.data(), blocks, res);
      // the 4 results at once: vcvtdq2ps + vmulps, the same two roundings as store_result
      const __m128i acc = _mm_sub_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(res)), _mm_set1_epi32(xsum));
      if (acc_out) _mm_storeu_si128(reinterpret_cast<__m128i*>(acc_out + i * ldo + j), acc);
      if (out) _mm_storeu_ps(out + i * ldo + j, _mm_mul_ps(_mm_cvtepi32_ps(acc), _mm_set1_ps(mult)));
    }
    for (; j < n; ++j) {
      store_result(gemv_row(w + j * row_bytes, xr.data(), blocks) - xsum, i, j, mult, out, acc_out, ldo);
    }
  }
}

// Blocking: per panel of kNC weight rows, K in chunks of kChunkBlocks blocks (128 quads, a
// 32 KiB expanded chunk that stays in L1 / near L2 while every activation tile goes by, each
// VPDPBUSD reusing it for 6 rows); the int32 panel tile c (M x 64, 128 KiB at M = 512) and
// the activation chunks (M x 512 bytes) live in L2. The expansion (16 row loads + 24 vpermt2d
// per block of 16 rows) is amortized over M rows; the c tile is loaded / stored once per chunk (24 zmm per
// 3072 VPDPBUSD).
void tgemm(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  if (m <= 0 || n <= 0) return;
  // Few rows: at 1536 x 4096 one 6-row tile costs ~0.22-0.28 ms (expansion included) and tgemv
  // ~0.036 ms per row with L2/L3-hot weights (hot crossover near m = 14), but ~0.075 ms per row
  // when the weights come from DRAM, as in a model's prefill (crossover near m = 4-6): below
  // one full tile, tgemv per row.
  if (m < kMinTiledRows) {
    tgemv(w, n, k, w_scale, x, x_scale, m, out, acc_out, ldo);
    return;
  }
  const std::int64_t blocks = tq2_blocks(k), row_bytes = tq2_row_bytes(k), S4 = kQuadsPerBlock * blocks;
  const std::int64_t m_tiles = (m + kMR - 1) / kMR;
  Scratch<std::int8_t> xt(m_tiles * S4 * kMR * 4);
  std::vector<std::int32_t> xsum(static_cast<size_t>(m));
  pack_activations(x, m, k, S4, xt.data(), xsum.data());
  std::vector<float> mult(static_cast<size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) mult[i] = w_scale / x_scale[i];
  constexpr std::int64_t kChunkBlocks = 4;  // 2, 4, 8 measured within 3% (max of 3 runs)
  Scratch<std::uint8_t> bp(kChunkBlocks * kQuadsPerBlock * kNC * 4);
  Scratch<std::int32_t> c(m_tiles * kMR * kNC);
  for (std::int64_t j0 = 0; j0 < n; j0 += kNC) {
    std::fill(c.data(), c.data() + m_tiles * kMR * kNC, 0);
    for (std::int64_t b0 = 0; b0 < blocks; b0 += kChunkBlocks) {
      const std::int64_t b1 = std::min(blocks, b0 + kChunkBlocks), steps = (b1 - b0) * kQuadsPerBlock;
      expand_panel(w + j0 * row_bytes, row_bytes, std::min<std::int64_t>(kNC, n - j0), b0, b1, bp.data());
      for (std::int64_t it = 0; it < m_tiles; ++it) {
        micro_6x64(bp.data(), xt.data() + (it * S4 + b0 * kQuadsPerBlock) * kMR * 4, steps,
                   c.data() + it * kMR * kNC);
      }
    }
    store_panel(c.data(), m, n, j0, xsum.data(), mult.data(), out, acc_out, ldo);
  }
}

}  // namespace onebit::avx512
