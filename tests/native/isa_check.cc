// Differential check of one ISA path of the binary kernels against the scalar reference, as a
// stand-alone program: built with a cross compiler and run under an emulator for ISAs this
// machine cannot run natively (NEON through qemu-aarch64; tests/kernels/test_neon_qemu.py).
// The namespace under test is ONEBIT_CHECK_NS (e.g. -DONEBIT_CHECK_NS=neon).
//
// Ops: bitpack/unpack, bgemm, bconv2d, bmaxpool2d, tgemv/tgemm, quantize_i8.
// Every op runs on shape grids that hit word edges (K and channels 1, 31, 32, 33, 63, 64, 65,
// 127, 128, 129, ...), every output type, row corrections, column offsets, strides,
// dilations, groups and both padding modes; outputs must be equal byte for byte (the float
// output transform is one fmaf per element in every path) and the guard words around every
// output buffer must be untouched. Prints "ok <cases>" and exits 0, or names the first
// mismatch and exits 1.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "onebit/kernels.h"

#ifndef ONEBIT_CHECK_NS
#error "define ONEBIT_CHECK_NS, the namespace under test (e.g. neon)"
#endif

namespace {

using namespace onebit;
namespace fast = onebit::ONEBIT_CHECK_NS;

std::mt19937_64 rng(20261203);
long cases = 0;

[[noreturn]] void fail(const std::string& what) {
  std::printf("FAIL %s\n", what.c_str());
  std::exit(1);
}

constexpr std::size_t kGuard = 64;  // bytes of sentinel on each side of an output buffer
constexpr std::uint8_t kSentinel = 0xA5;

// An output buffer with guard bytes; both paths write a copy of the same initial contents.
struct Guarded {
  std::vector<std::uint8_t> bytes;
  explicit Guarded(std::size_t n) : bytes(n + 2 * kGuard, kSentinel) {
    for (std::size_t i = 0; i < n; ++i) bytes[kGuard + i] = static_cast<std::uint8_t>(rng());
  }
  void* data() { return bytes.data() + kGuard; }
  std::size_t size() const { return bytes.size() - 2 * kGuard; }
  void check_guards(const std::string& what) const {
    for (std::size_t i = 0; i < kGuard; ++i) {
      if (bytes[i] != kSentinel || bytes[bytes.size() - 1 - i] != kSentinel) fail(what + ": buffer overrun");
    }
  }
};

void compare(const Guarded& ref, const Guarded& got, const std::string& what) {
  ref.check_guards(what + " (ref)");
  got.check_guards(what);
  if (std::memcmp(ref.bytes.data(), got.bytes.data(), ref.bytes.size()) != 0) {
    for (std::size_t i = 0; i < ref.bytes.size(); ++i) {
      if (ref.bytes[i] != got.bytes[i]) {
        fail(what + ": first differing byte " + std::to_string(static_cast<long>(i) - static_cast<long>(kGuard)));
      }
    }
  }
  ++cases;
}

std::vector<bword_t> random_packed(std::int64_t rows, std::int64_t k, std::int64_t ld) {
  std::vector<bword_t> v(static_cast<std::size_t>(rows * ld + 1));
  for (auto& w : v) w = static_cast<bword_t>(rng());
  const std::int64_t words = packed_words(k);
  for (std::int64_t r = 0; r < rows; ++r) v[r * ld + words - 1] &= last_word_mask(k);  // padding bits 0
  return v;
}

const std::int64_t kDepths[] = {1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 130, 255, 256, 257, 500, 1000, 4100};

void check_bitpack() {
  for (std::int64_t k : kDepths) {
    for (std::int64_t rows : {1, 3}) {
      const std::string tag = "bitpack k=" + std::to_string(k) + " rows=" + std::to_string(rows);
      std::vector<float> xf(rows * k);
      std::vector<std::int8_t> xi(rows * k);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (std::size_t i = 0; i < xf.size(); ++i) {
        const int kind = static_cast<int>(rng() % 8);
        xf[i] = kind == 0 ? -0.0f : kind == 1 ? 0.0f : kind == 2 ? std::numeric_limits<float>::quiet_NaN() : u(rng);
        xi[i] = static_cast<std::int8_t>(rng());
      }
      const std::size_t out_bytes = rows * packed_words(k) * sizeof(bword_t);
      Guarded a(out_bytes), b = a;
      ref::bitpack_f32(xf.data(), rows, k, static_cast<bword_t*>(a.data()));
      fast::bitpack_f32(xf.data(), rows, k, static_cast<bword_t*>(b.data()));
      compare(a, b, tag + " f32");
      Guarded c(out_bytes), d = c;
      ref::bitpack_i8(xi.data(), rows, k, static_cast<bword_t*>(c.data()));
      fast::bitpack_i8(xi.data(), rows, k, static_cast<bword_t*>(d.data()));
      compare(c, d, tag + " i8");
      const std::vector<bword_t> p = random_packed(rows, k, packed_words(k));
      Guarded e(rows * k * sizeof(float)), f = e;
      ref::unpack_f32(p.data(), rows, k, static_cast<float*>(e.data()));
      fast::unpack_f32(p.data(), rows, k, static_cast<float*>(f.data()));
      compare(e, f, tag + " unpack");
    }
  }
}

// Per-column transform parameters for n_total columns.
struct Params {
  std::vector<float> multiplier, bias;
  std::vector<std::int32_t> threshold;
  std::vector<std::uint8_t> flip;
  explicit Params(std::int64_t n_total, std::int64_t k) {
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::uniform_int_distribution<std::int32_t> t(static_cast<std::int32_t>(-k - 1), static_cast<std::int32_t>(k + 1));
    for (std::int64_t j = 0; j < n_total; ++j) {
      multiplier.push_back(j % 7 == 3 ? 0.0f : u(rng));
      bias.push_back(u(rng) * static_cast<float>(k) / 4);
      threshold.push_back(j % 11 == 5 ? std::numeric_limits<std::int32_t>::min() : t(rng));
      flip.push_back(static_cast<std::uint8_t>(rng() & 1));
    }
  }
  BOutputTransform transform(BOutType type, bool clamp) const {
    BOutputTransform t;
    t.type = type;
    t.multiplier = multiplier.data();
    t.bias = bias.data();
    t.clamp_min = clamp ? 0.0f : -std::numeric_limits<float>::infinity();
    t.clamp_max = clamp ? 6.0f : std::numeric_limits<float>::infinity();
    t.threshold = threshold.data();
    t.flip = flip.data();
    return t;
  }
};

// Bytes of one output row of `ldo` elements (words when bitpacked).
std::size_t out_row_bytes(BOutType type, std::int64_t ldo) { return type == BOutType::i8 ? ldo : ldo * 4; }

void check_bgemm() {
  const BOutType types[] = {BOutType::int32, BOutType::f32, BOutType::i8, BOutType::bitpacked};
  for (std::int64_t k : kDepths) {
    for (std::int64_t m : {1, 3, 4, 5, 9}) {
      for (std::int64_t n : {1, 3, 4, 5, 33, 70}) {
        for (std::int64_t col0 : {0, 32}) {
          const std::int64_t kw = packed_words(k), lda = kw + (m % 2), ldb = kw + (n % 3 == 0 ? 1 : 0);
          const std::vector<bword_t> a = random_packed(m, k, lda), b = random_packed(n, k, ldb);
          const std::int64_t n_total = col0 + n;
          const Params par(n_total, k);
          std::vector<std::vector<std::int32_t>> corr_rows(m);
          std::vector<const std::int32_t*> corr(m, nullptr);
          for (std::int64_t r = 0; r < m; ++r) {
            if (r % 2 == 0) continue;  // some rows without a correction
            for (std::int64_t j = 0; j < n_total; ++j) corr_rows[r].push_back(static_cast<std::int32_t>(rng() % 9) - 4);
            corr[r] = corr_rows[r].data();
          }
          for (BOutType type : types) {
            for (bool with_corr : {false, true}) {
              const BOutputTransform t = par.transform(type, with_corr);
              const std::int64_t ldo = type == BOutType::bitpacked ? packed_words(n_total) : n_total + 1;
              const std::size_t bytes = m * out_row_bytes(type, ldo) + 8;
              Guarded o_ref(bytes), o_fast = o_ref;
              BgemmArgs g;
              g.a = a.data(), g.lda = lda, g.b = b.data(), g.ldb = ldb, g.m = m, g.n = n, g.kw = kw, g.k = k;
              g.row_correction = with_corr ? corr.data() : nullptr;
              g.transform = &t, g.col0 = col0, g.ldo = ldo;
              g.out = o_ref.data();
              ref::bgemm(g);
              g.out = o_fast.data();
              fast::bgemm(g);
              compare(o_ref, o_fast, "bgemm m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" +
                                         std::to_string(k) + " col0=" + std::to_string(col0) + " type=" +
                                         std::to_string(static_cast<int>(type)) + " corr=" + std::to_string(with_corr));
            }
          }
        }
      }
    }
  }
}

void check_bconv2d() {
  struct Case {
    std::int64_t size, channels, out_c, kernel, stride, dil, groups;
  };
  const Case grid[] = {
      {5, 1, 3, 3, 1, 1, 1},   {6, 31, 5, 3, 1, 1, 1},  {7, 32, 33, 3, 2, 1, 1}, {6, 33, 8, 3, 1, 2, 1},
      {8, 64, 64, 1, 1, 1, 1}, {8, 65, 17, 1, 2, 1, 1}, {9, 64, 34, 5, 1, 1, 2}, {7, 96, 33, 3, 2, 1, 3},
      {6, 129, 40, 5, 2, 1, 1}, {10, 256, 64, 3, 1, 1, 1}, {4, 63, 1, 7, 1, 1, 1},
  };
  const BOutType types[] = {BOutType::f32, BOutType::int32, BOutType::i8, BOutType::bitpacked};
  for (const Case& c : grid) {
    for (bool zero_padding : {false, true}) {
      for (std::int64_t pad : {std::int64_t{0}, c.dil * (c.kernel - 1) / 2}) {
        BConv2dGeometry g;
        g.batch = 2, g.in_h = c.size, g.in_w = c.size + 1, g.channels = c.channels, g.in_cw = packed_words(c.channels);
        g.out_c = c.out_c, g.kh = c.kernel, g.kw = c.kernel, g.stride_h = c.stride, g.stride_w = c.stride;
        g.dil_h = c.dil, g.dil_w = c.dil, g.pad_top = pad, g.pad_left = pad, g.groups = c.groups;
        g.zero_padding = zero_padding;
        g.out_h = (g.in_h + 2 * pad - c.dil * (c.kernel - 1) - 1) / c.stride + 1;
        g.out_w = (g.in_w + 2 * pad - c.dil * (c.kernel - 1) - 1) / c.stride + 1;
        if (g.out_h <= 0 || g.out_w <= 0) continue;
        const std::int64_t c_g = c.channels / c.groups, cw_g = packed_words(c_g);
        // input: groups are word-aligned (c_g % 32 == 0 when groups > 1), padding bits 0
        const std::vector<bword_t> input = random_packed(g.batch * g.in_h * g.in_w, c.channels, g.in_cw);
        std::vector<bword_t> weights = random_packed(c.out_c * c.kernel * c.kernel, c_g, cw_g);
        const BConv2dZeroPad plan = bconv2d_zero_pad_plan(g, weights.data());
        const Params par(c.out_c, c_g * c.kernel * c.kernel);
        const std::int64_t positions = g.batch * g.out_h * g.out_w;
        for (BOutType type : types) {
          const BOutputTransform t = par.transform(type, type == BOutType::f32);
          const std::int64_t ldo = type == BOutType::bitpacked ? packed_words(c.out_c) : c.out_c;
          Guarded o_ref(positions * out_row_bytes(type, ldo)), o_fast = o_ref;
          BConv2dArgs args;
          args.g = g, args.input = input.data(), args.weights = weights.data(), args.transform = &t;
          args.ldo = ldo, args.zero_pad = &plan;
          args.out = o_ref.data();
          ref::bconv2d(args, 0, positions);
          args.out = o_fast.data();
          // two calls over a split range, as the threaded caller does
          fast::bconv2d(args, 0, positions / 3);
          fast::bconv2d(args, positions / 3, positions);
          compare(o_ref, o_fast, "bconv2d size=" + std::to_string(c.size) + " c=" + std::to_string(c.channels) +
                                     " o=" + std::to_string(c.out_c) + " k=" + std::to_string(c.kernel) + " s=" +
                                     std::to_string(c.stride) + " d=" + std::to_string(c.dil) + " g=" +
                                     std::to_string(c.groups) + " pad=" + std::to_string(pad) + " zero=" +
                                     std::to_string(zero_padding) + " type=" + std::to_string(static_cast<int>(type)));
        }
      }
    }
  }
}

void check_bmaxpool2d() {
  for (std::int64_t channels : {1, 32, 33, 100, 129, 256, 300}) {
    for (int kernel : {2, 3}) {
      for (int stride : {1, 2}) {
        for (int pad : {0, 1}) {
          if (pad >= kernel) continue;
          BMaxPool2dShape s{2, 7, 6, channels, 0, 0, kernel, kernel, stride, stride, pad, pad};
          s.out_h = (s.in_h + 2 * pad - kernel) / stride + 1;
          s.out_w = (s.in_w + 2 * pad - kernel) / stride + 1;
          const std::int64_t words = packed_words(channels);
          const std::vector<bword_t> in = random_packed(s.batch * s.in_h * s.in_w, channels, words);
          Guarded o_ref(s.batch * s.out_h * s.out_w * words * 4), o_fast = o_ref;
          ref::bmaxpool2d(in.data(), s, 0, s.batch * s.out_h, static_cast<bword_t*>(o_ref.data()));
          fast::bmaxpool2d(in.data(), s, 0, s.batch * s.out_h, static_cast<bword_t*>(o_fast.data()));
          compare(o_ref, o_fast, "bmaxpool2d c=" + std::to_string(channels) + " k=" + std::to_string(kernel) +
                                     " s=" + std::to_string(stride) + " p=" + std::to_string(pad));
        }
      }
    }
  }
}

// Packs ternary rows t[n][k] in {-1, 0, 1} into tq2 rows (formats.h); tail fields hold t = 0.
std::vector<std::uint8_t> pack_tq2(const std::vector<int>& t, std::int64_t n, std::int64_t k) {
  const std::int64_t row_bytes = tq2_row_bytes(k);
  std::vector<std::uint8_t> w(static_cast<std::size_t>(n * row_bytes), 0);
  for (std::int64_t j = 0; j < n; ++j) {
    for (std::int64_t kk = 0; kk < tq2_blocks(k) * kTq2BlockValues; ++kk) {
      const int q = (kk < k ? t[j * k + kk] : 0) + 1;
      const std::int64_t b = kk / kTq2BlockValues, r = kk % kTq2BlockValues;
      w[j * row_bytes + b * 32 + r % 32] |= static_cast<std::uint8_t>(q << (2 * (r / 32)));
    }
  }
  return w;
}

void check_ternary() {
  for (std::int64_t k : kDepths) {
    for (std::int64_t m : {1, 2, 5, 17}) {
      for (std::int64_t n : {1, 3, 16, 17, 33}) {
        std::vector<int> t(static_cast<std::size_t>(n * k));
        for (auto& v : t) v = static_cast<int>(rng() % 3) - 1;
        const std::vector<std::uint8_t> w = pack_tq2(t, n, k);
        std::vector<std::int8_t> x(static_cast<std::size_t>(m * k));
        for (std::size_t i = 0; i < x.size(); ++i) {  // extremes on some rows: all -128 / +127
          const std::int64_t row = static_cast<std::int64_t>(i) / k;
          x[i] = row == 1 ? std::int8_t{-128} : row == 2 ? std::int8_t{127} : static_cast<std::int8_t>(rng());
        }
        std::vector<float> xs(m);
        for (auto& v : xs) v = 0.5f + static_cast<float>(rng() % 1000) / 7.0f;
        const std::int64_t ldo = n + 1;
        for (int op = 0; op < 2; ++op) {
          Guarded f_ref(m * ldo * 4), f_fast = f_ref, a_ref(m * ldo * 4), a_fast = a_ref;
          auto ref_fn = op == 0 ? &ref::tgemv : &ref::tgemm;
          auto fast_fn = op == 0 ? &fast::tgemv : &fast::tgemm;
          ref_fn(w.data(), n, k, 0.37f, x.data(), xs.data(), m, static_cast<float*>(f_ref.data()),
                 static_cast<std::int32_t*>(a_ref.data()), ldo);
          fast_fn(w.data(), n, k, 0.37f, x.data(), xs.data(), m, static_cast<float*>(f_fast.data()),
                  static_cast<std::int32_t*>(a_fast.data()), ldo);
          const std::string tag = std::string(op == 0 ? "tgemv" : "tgemm") + " m=" + std::to_string(m) +
                                  " n=" + std::to_string(n) + " k=" + std::to_string(k);
          compare(f_ref, f_fast, tag + " float out");
          compare(a_ref, a_fast, tag + " int32 out");
        }
      }
    }
  }
}

void check_quantize_i8() {
  for (std::int64_t k : kDepths) {
    const std::int64_t rows = 4;
    std::vector<float> x(static_cast<std::size_t>(rows * k));
    std::uniform_real_distribution<float> u(-3.0f, 3.0f);
    for (std::int64_t i = 0; i < rows * k; ++i) {
      const std::int64_t r = i / k, c = i % k;
      // row 0 random, row 1 zeros (eps scale), row 2 exact ties (amax 127: x * s = j + 0.5), row 3 tiny
      x[i] = r == 0 ? u(rng) : r == 1 ? 0.0f : r == 2 ? (c == 0 ? 127.0f : static_cast<float>(c % 200) - 99.5f)
                                                      : u(rng) * 1e-7f;
    }
    Guarded q_ref(rows * k), q_fast = q_ref, s_ref(rows * 4), s_fast = s_ref;
    ref::quantize_i8(x.data(), rows, k, static_cast<std::int8_t*>(q_ref.data()), static_cast<float*>(s_ref.data()));
    fast::quantize_i8(x.data(), rows, k, static_cast<std::int8_t*>(q_fast.data()), static_cast<float*>(s_fast.data()));
    compare(q_ref, q_fast, "quantize_i8 k=" + std::to_string(k));
    compare(s_ref, s_fast, "quantize_i8 scales k=" + std::to_string(k));
  }
}

}  // namespace

int main() {
  check_bitpack();
  check_bgemm();
  check_bconv2d();
  check_bmaxpool2d();
  check_ternary();
  check_quantize_i8();
  std::printf("ok %ld\n", cases);
  return 0;
}
