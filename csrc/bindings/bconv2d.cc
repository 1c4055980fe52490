// Binding of bconv2d: geometry/shape/dtype checks, zero-padding plan, GIL release, threading
// over output positions, dispatch. Writes into a caller-given `out`.
#include <nanobind/stl/string.h>

#include "binary_transform.h"
#include "onebit/dispatch.h"
#include "onebit/parallel.h"

namespace onebit::bindings {
namespace {

constexpr int64_t kMinMacsPerThread = 8 << 20;  // binary MACs: ~10 us at ~800 G binary MAC/s

std::string str(int64_t v) { return std::to_string(v); }

void bconv2d(const CArray<const bword_t>& x, const CArray<const bword_t>& w, int64_t channels, int64_t stride_h,
             int64_t stride_w, int64_t dil_h, int64_t dil_w, int64_t pad_top, int64_t pad_bottom, int64_t pad_left,
             int64_t pad_right, int64_t groups, bool zero_padding, const std::string& output,
             const CArray<const float>& multiplier, const CArray<const float>& bias, float clamp_min,
             float clamp_max, const CArray<const std::int32_t>& threshold, const CArray<const std::uint8_t>& flip,
             AnyArray out, int num_threads) {
  check_threads(num_threads);
  if (x.ndim() != 4 || w.ndim() != 4) {
    throw std::invalid_argument("bconv2d expects input (N, H, W, Cw) and weights (O, kh, kw, Cw_g), both 4-D");
  }
  if (stride_h < 1 || stride_w < 1 || dil_h < 1 || dil_w < 1) throw std::invalid_argument("bconv2d: stride and dilation must be >= 1");
  if (pad_top < 0 || pad_bottom < 0 || pad_left < 0 || pad_right < 0) throw std::invalid_argument("bconv2d: paddings must be >= 0");
  if (groups < 1 || channels < 1 || channels % groups != 0) {
    throw std::invalid_argument("bconv2d: channels=" + str(channels) + " must be >= 1 and divisible by groups=" + str(groups));
  }
  BConv2dGeometry g;
  g.batch = x.shape(0), g.in_h = x.shape(1), g.in_w = x.shape(2), g.channels = channels, g.in_cw = x.shape(3);
  g.out_c = w.shape(0), g.kh = w.shape(1), g.kw = w.shape(2);
  g.stride_h = stride_h, g.stride_w = stride_w, g.dil_h = dil_h, g.dil_w = dil_w;
  g.pad_top = pad_top, g.pad_left = pad_left, g.groups = groups, g.zero_padding = zero_padding;
  const int64_t c_g = channels / groups;
  if (g.in_cw != packed_words(channels)) {
    throw std::invalid_argument("bconv2d: channels=" + str(channels) + " needs " + str(packed_words(channels)) +
                                " words per pixel, got input.shape[3]=" + str(g.in_cw));
  }
  if (groups > 1 && c_g % kBitsPerWord != 0) {
    throw std::invalid_argument("bconv2d: groups > 1 needs channels/groups to be a multiple of 32, got " + str(c_g));
  }
  if (g.out_c < 1 || g.out_c % groups != 0) throw std::invalid_argument("bconv2d: out channels must be a positive multiple of groups");
  if (static_cast<int64_t>(w.shape(3)) != packed_words(c_g)) {
    throw std::invalid_argument("bconv2d: weights need packed_words(channels/groups)=" + str(packed_words(c_g)) +
                                " words on the last axis, got " + str(w.shape(3)));
  }
  if (g.kh < 1 || g.kw < 1) throw std::invalid_argument("bconv2d: kernel size must be >= 1");
  if (g.kh * g.kw * c_g >= (int64_t{1} << 24)) throw std::invalid_argument("bconv2d: kh*kw*channels/groups must be < 2^24");
  const int64_t span_h = dil_h * (g.kh - 1) + 1, span_w = dil_w * (g.kw - 1) + 1;
  if (g.in_h + pad_top + pad_bottom < span_h || g.in_w + pad_left + pad_right < span_w) {
    throw std::invalid_argument("bconv2d: the (dilated) kernel is larger than the padded input");
  }
  g.out_h = (g.in_h + pad_top + pad_bottom - span_h) / stride_h + 1;
  g.out_w = (g.in_w + pad_left + pad_right - span_w) / stride_w + 1;

  const BOutType type = parse_out_type(output);
  const BOutputTransform t = make_transform(type, g.out_c, multiplier, bias, clamp_min, clamp_max, threshold, flip);
  const int64_t ldo =
      check_out(out, type, {g.batch, g.out_h, g.out_w, type == BOutType::bitpacked ? packed_words(g.out_c) : g.out_c});
  if (type == BOutType::bitpacked && out.size() > 0) std::memset(out.data(), 0, out.size() * sizeof(bword_t));

  static Kernel<bconv2d_fn> kernel("bconv2d");
  BConv2dArgs args;
  args.g = g;
  args.input = x.data();
  args.weights = w.data();
  args.transform = &t;
  args.out = out.data();
  args.ldo = ldo;
  {
    nb::gil_scoped_release release;
    const bool padded = pad_top + pad_bottom + pad_left + pad_right > 0;
    BConv2dZeroPad plan;
    if (zero_padding && padded) {
      plan = bconv2d_zero_pad_plan(g, args.weights);
      args.zero_pad = &plan;
    }
    bconv2d_fn fn = kernel();
    // Grain 3 = the AVX2 tile height: balanced chunks even for 7x7 outputs (49 positions).
    // At least kMinMacsPerThread binary MACs per thread (~10 us at ~800 G binary MAC/s).
    const int64_t positions = g.batch * g.out_h * g.out_w;
    const int64_t macs = positions * g.out_c * g.kh * g.kw * (g.channels / g.groups);
    parallel_for_grain(positions, 3, threads_for(macs, kMinMacsPerThread, num_threads),
                       [&](int64_t begin, int64_t end) { fn(args, begin, end); });
  }
}

void bind(nb::module_& m) {
  m.def("bconv2d", &bconv2d, nb::arg("x"), nb::arg("w"), nb::arg("channels"), nb::arg("stride_h"), nb::arg("stride_w"),
        nb::arg("dil_h"), nb::arg("dil_w"), nb::arg("pad_top"), nb::arg("pad_bottom"), nb::arg("pad_left"),
        nb::arg("pad_right"), nb::arg("groups"), nb::arg("zero_padding"), nb::arg("output"), nb::arg("multiplier"),
        nb::arg("bias"), nb::arg("clamp_min"), nb::arg("clamp_max"), nb::arg("threshold"), nb::arg("flip"),
        nb::arg("out"), nb::arg("num_threads") = 1,
        "Binary 2D convolution (NHWC, bitpacked) with fused output transform into `out` "
        "(see onebit.kernels.bconv2d).");
}

}  // namespace

ONEBIT_REGISTER_BINDINGS(bind);

}  // namespace onebit::bindings
